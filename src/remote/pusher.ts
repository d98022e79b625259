import type { ContentStore } from '../content/index.js';
import { StrataError } from '../errors/index.js';
import {
  type Descriptor,
  type Digest,
  formatPlatform,
  hostPlatform,
  type ImageManifest,
  isIndexType,
  MediaType,
  type Platform,
  parseDocument,
  selectManifest,
} from '../oci/index.js';
import type { Reference } from '../reference/index.js';
import { blobSourcesFor, recordBlobSource } from './blob-sources.js';
import type { ProgressEvent, RegistryTransport, RemoteOptions } from './types.js';
import { limiter } from '../util/index.js';
import { type BlobPushResult, pushBlob, putManifest } from './upload.js';

export interface PushOptions extends RemoteOptions {
  /** Blobs uploaded at once (default 3). */
  concurrency?: number;
  /** Blobs below this many bytes go in one PUT (default 16 MiB); larger ones in chunks. */
  monolithicMax?: number;
  /** Chunk size of a chunked upload (default 16 MiB). */
  chunkSize?: number;
  /** Network failures tolerated in a row without progress, per blob (default 5). */
  retries?: number;
  retryDelayMs?: number;
  /**
   * The strata root whose `remote/blob-sources.json` says where blobs were seen (for cross-repository mounts);
   * the push records where it put them. Without it, no mounts are tried.
   */
  root?: string;
  /** Extra repositories of the destination registry to try mounting from, before the recorded ones. */
  mountFrom?: string[];
  /** For a local index whose platform images are not all here: which one to push (default this host's). */
  platform?: Platform;
}

export interface PushedBlob {
  digest: Digest;
  size: number;
  state: 'exists' | 'mounted' | 'uploaded';
  /** The repository a mounted blob came from. */
  from?: string;
}

export interface PushResult {
  reference: Reference;
  /** The tag pushed (or the digest, for a push by digest). */
  tag: string;
  /** What the tag now names on the registry: the manifest's digest (the index's, when an index was pushed). */
  digest: Digest;
  mediaType: string;
  /** Bytes of that manifest or index. */
  size: number;
  /** Every manifest put, in order (platform manifests before their index). */
  manifests: Descriptor[];
  /** Layers and configs, each once. */
  blobs: PushedBlob[];
  /** Blob bytes sent (counting bytes re-sent after a network failure). */
  bytesUploaded: number;
}

const FOREIGN = new Set<string>([
  MediaType.DockerForeignLayer,
  MediaType.OciLayerNondistributable,
  MediaType.OciLayerNondistributableGzip,
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

interface LocalManifest {
  descriptor: Descriptor;
  bytes: Buffer;
  manifest: ImageManifest;
}

async function readManifest(store: ContentStore, desc: Descriptor, what: string): Promise<LocalManifest> {
  const bytes = await store.readBytes(desc.digest);
  const doc = parseDocument(bytes, desc.mediaType ? { mediaType: desc.mediaType } : {});
  if (doc.kind !== 'manifest')
    throw new StrataError('UNIMPLEMENTED', `${what}: nested image indexes are not supported`);
  return {
    descriptor: { mediaType: doc.mediaType, digest: desc.digest, size: bytes.length },
    bytes,
    manifest: doc.manifest,
  };
}

/** Blobs of a manifest the store lacks (foreign layers excepted: registries never get those). */
async function missingBlobs(store: ContentStore, m: ImageManifest): Promise<Digest[]> {
  const out: Digest[] = [];
  if (!(await store.has(m.config.digest))) out.push(m.config.digest);
  for (const l of m.layers) if (!FOREIGN.has(l.mediaType) && !(await store.has(l.digest))) out.push(l.digest);
  return out;
}

/**
 * Push a local image (the manifest or index `descriptor` names) to `ref`'s repository: for every layer, then the
 * config, HEAD (already there), a cross-repository mount from a repository of the same registry known to hold it,
 * or an upload (monolithic when small, chunked and resumable when large; bytes stream from the store as stored,
 * never recompressed); the manifest last, byte for byte with its own media type, under the tag. An index whose
 * platform images are all in the store is pushed whole (platform manifests by digest, then the index under the
 * tag); otherwise only the platform image (`opts.platform`, default this host's) is pushed under the tag.
 */
export async function pushImage(
  transport: RegistryTransport,
  store: ContentStore,
  ref: Reference,
  descriptor: Descriptor,
  opts: PushOptions = {},
): Promise<PushResult> {
  const repo = ref.repository;
  const tag = ref.tag ?? ref.digest ?? 'latest';
  const what = ref.familiar();
  const signal = opts.signal;
  const emit = (e: ProgressEvent) => {
    try {
      opts.onProgress?.(e);
    } catch {
      // a renderer's failure never fails the push
    }
  };

  const rawTop = await store.readBytes(descriptor.digest);
  const top = parseDocument(rawTop, descriptor.mediaType ? { mediaType: descriptor.mediaType } : {});
  const images: LocalManifest[] = [];
  let index: { descriptor: Descriptor; bytes: Buffer } | undefined;
  if (top.kind === 'index') {
    const children: LocalManifest[] = [];
    let complete = true;
    for (const [i, d] of top.index.manifests.entries()) {
      if (isIndexType(d.mediaType) || !(await store.has(d.digest))) {
        complete = false;
        break;
      }
      const m = await readManifest(store, d, `${what} manifests[${i}]`);
      if ((await missingBlobs(store, m.manifest)).length > 0) {
        complete = false;
        break;
      }
      children.push(m);
    }
    if (complete && children.length > 0) {
      images.push(...children);
      index = {
        descriptor: { mediaType: top.mediaType, digest: descriptor.digest, size: rawTop.length },
        bytes: rawTop,
      };
    } else {
      const want = opts.platform ?? hostPlatform();
      const chosen = selectManifest(top.index, want);
      if (!chosen || !(await store.has(chosen.digest))) {
        throw new StrataError('NOT_FOUND', `${what}: no image for ${formatPlatform(want)} in the local store`, {
          hint: 'pull the image for this platform first, or pass --platform',
        });
      }
      images.push(await readManifest(store, chosen, `${what} (${formatPlatform(want)})`));
    }
  } else {
    images.push({
      descriptor: { mediaType: top.mediaType, digest: descriptor.digest, size: rawTop.length },
      bytes: rawTop,
      manifest: top.manifest,
    });
  }
  for (const m of images) {
    const missing = await missingBlobs(store, m.manifest);
    if (missing.length > 0) {
      throw new StrataError('NOT_FOUND', `${what}: blob ${missing[0]} is not in the local store`, {
        hint: 'the image is incomplete: pull or load it again, and run `strata fsck`',
        details: { missing },
      });
    }
  }

  // Mount candidates: repositories of this registry known to hold each blob.
  const allDigests = [
    ...new Set(images.flatMap((m) => [...m.manifest.layers.map((l) => l.digest), m.manifest.config.digest])),
  ];
  const known = opts.root
    ? await blobSourcesFor(opts.root, ref.registry, allDigests).catch(() => new Map<Digest, string[]>())
    : new Map<Digest, string[]>();
  const mountFrom = (d: Digest): string[] =>
    [...new Set([...(opts.mountFrom ?? []), ...(known.get(d) ?? [])])].filter((r) => r !== repo).slice(0, 3);

  const limit = limiter(Math.max(1, opts.concurrency ?? 3));
  const pushed = new Map<Digest, Promise<BlobPushResult>>();
  const blobs: PushedBlob[] = [];
  let bytesUploaded = 0;
  const ctl = new AbortController();
  const inner = signal ? AbortSignal.any([signal, ctl.signal]) : ctl.signal;

  const push = (desc: Descriptor, kind: 'layer' | 'config'): Promise<BlobPushResult> => {
    let p = pushed.get(desc.digest);
    if (p) return p;
    p = limit(() =>
      pushBlob(transport, repo, desc, (start, s) => store.read(desc.digest, { start, ...(s ? { signal: s } : {}) }), {
        signal: inner,
        progress: kind === 'layer',
        mountFrom: mountFrom(desc.digest),
        what: `${kind} ${desc.digest} of ${what}`,
        onBytes: (n) => {
          bytesUploaded += n;
        },
        ...(opts.onProgress ? { onProgress: emit } : {}),
        ...(opts.monolithicMax !== undefined ? { monolithicMax: opts.monolithicMax } : {}),
        ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}),
        ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
        ...(opts.retryDelayMs !== undefined ? { retryDelayMs: opts.retryDelayMs } : {}),
      }),
    ).then((r) => {
      blobs.push({
        digest: desc.digest,
        size: desc.size,
        state: r.state,
        ...(r.state === 'mounted' ? { from: r.from } : {}),
      });
      return r;
    });
    pushed.set(desc.digest, p);
    return p;
  };

  const manifests: Descriptor[] = [];
  try {
    for (const m of images) {
      const layers = m.manifest.layers.filter((l) => !FOREIGN.has(l.mediaType));
      for (const l of layers) {
        if (!pushed.has(l.digest))
          emit({ kind: 'blob', digest: l.digest, size: l.size, state: 'waiting', detail: 'Preparing' });
      }
      const all = layers.map((l) => push(l, 'layer'));
      // One failure stops the others (their uploads are left for the registry to purge).
      await Promise.all(
        all.map((p) =>
          p.catch((err: unknown) => {
            ctl.abort(err);
            throw err;
          }),
        ),
      );
      await push(m.manifest.config, 'config');
      const reference = index ? m.descriptor.digest : tag;
      await putManifest(
        transport,
        repo,
        reference,
        { ...m.descriptor, bytes: m.bytes },
        {
          what: `manifest of ${what}`,
          ...(signal ? { signal } : {}),
        },
      );
      manifests.push(m.descriptor);
    }
    if (index) {
      await putManifest(
        transport,
        repo,
        tag,
        { ...index.descriptor, bytes: index.bytes },
        {
          what: `index of ${what}`,
          ...(signal ? { signal } : {}),
        },
      );
      manifests.push(index.descriptor);
    }
  } catch (err) {
    ctl.abort(err);
    await Promise.allSettled(pushed.values());
    throw err;
  }

  if (opts.root) {
    await recordBlobSource(opts.root, ref.registry, repo, [...pushed.keys()]).catch(() => {});
  }
  const final = index?.descriptor ?? (manifests.at(-1) as Descriptor);
  return {
    reference: ref,
    tag,
    digest: final.digest,
    mediaType: final.mediaType,
    size: final.size,
    manifests,
    blobs,
    bytesUploaded,
  };
}

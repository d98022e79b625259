import { Readable } from 'node:stream';
import { resolve } from 'node:path';
import { DigestMismatchError, SizeMismatchError, StrataError } from '../errors/index.js';
import {
  type Descriptor,
  type Digest,
  digestAlgorithm,
  digestFromHex,
  formatPlatform,
  hostPlatform,
  isIndexType,
  MAX_DOCUMENT_BYTES,
  MediaType,
  type Platform,
  parseDocument,
  parseImageConfig,
  selectManifest,
} from '../oci/index.js';
import { parseReference, type Reference } from '../reference/index.js';
import { blobSourcesFor, recordBlobSource } from './blob-sources.js';
import {
  type CopyManifest,
  DockerArchiveDestination,
  DockerArchiveSource,
  type ImageDestination,
  type ImageSource,
  OciArchiveDestination,
  OciDirDestination,
  OciSource,
  RegistryDestination,
  RegistrySource,
  tempArea,
} from './sources.js';
import type { ProgressEvent, RegistryTransport, RemoteOptions } from './types.js';
import { limiter } from '../util/index.js';
import { createHash } from 'node:crypto';

const NON_DISTRIBUTABLE = new Set<string>([
  MediaType.DockerForeignLayer,
  MediaType.OciLayerNondistributable,
  MediaType.OciLayerNondistributableGzip,
]);

/** An image name as skopeo takes them: `transport:details`. */
export type ImageName =
  | { transport: 'docker'; reference: Reference }
  | { transport: 'oci' | 'oci-archive' | 'docker-archive'; path: string; ref: string | undefined };

const FILE_TRANSPORTS = ['oci-archive', 'docker-archive', 'oci'] as const;

/**
 * Parse `docker://REF` (or a bare registry reference), `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`,
 * `docker-archive:FILE[:REF]`. As skopeo does, the path ends at the first `:`, so REF may hold colons
 * (`oci:/tmp/l:docker.io/library/busybox:latest`).
 */
export function parseImageName(input: string): ImageName {
  if (input.startsWith('docker://')) return { transport: 'docker', reference: parseReference(input.slice(9)) };
  for (const t of FILE_TRANSPORTS) {
    if (input.startsWith(`${t}:`)) {
      const rest = input.slice(t.length + 1);
      const i = rest.indexOf(':');
      const path = i < 0 ? rest : rest.slice(0, i);
      const ref = i < 0 ? undefined : rest.slice(i + 1);
      if (!path) {
        throw new StrataError('INVALID_ARGUMENT', `invalid image name "${input}": no path after "${t}:"`, {
          hint: `write ${t}:PATH[:REF]`,
        });
      }
      return { transport: t, path: resolve(path), ref: ref === '' ? undefined : ref };
    }
  }
  const m = /^([a-z][a-z0-9-]*):(?!\d)/.exec(input);
  if (
    m &&
    !input.includes('/') &&
    m[1] !== undefined &&
    ['dir', 'containers-storage', 'docker-daemon'].includes(m[1])
  ) {
    throw new StrataError('UNIMPLEMENTED', `the "${m[1]}" transport is not supported`, {
      hint: 'use docker://, oci:, oci-archive: or docker-archive:',
    });
  }
  try {
    return { transport: 'docker', reference: parseReference(input) };
  } catch (err) {
    throw new StrataError('INVALID_ARGUMENT', `invalid image name "${input}"`, {
      cause: err,
      hint: 'write docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF]',
    });
  }
}

export function formatImageName(n: ImageName): string {
  return n.transport === 'docker'
    ? `docker://${n.reference.toString()}`
    : `${n.transport}:${n.path}${n.ref ? `:${n.ref}` : ''}`;
}

export interface CopyOptions extends RemoteOptions {
  /** Copy every image of an index and the index itself (skopeo --all); default: this host's platform only. */
  all?: boolean;
  /** The platform to take from an index (default this host's). */
  platform?: Platform;
  /** Blobs copied at once (default 3). */
  concurrency?: number;
  chunkSize?: number;
  monolithicMax?: number;
  retries?: number;
  retryDelayMs?: number;
}

export interface CopyEnvironment {
  /** A transport for a registry host (the caller closes it, unless `closeTransports`). */
  transport(registry: string): Promise<RegistryTransport>;
  /** Where temp files go (archives that must be decompressed or layers compressed). */
  tmpDir: string;
  /** A strata root whose blob-sources record suggests mounts and learns where blobs went. */
  root?: string;
}

export interface CopiedBlob {
  digest: Digest;
  size: number;
  state: 'exists' | 'mounted' | 'uploaded';
}

export interface CopyResult {
  source: string;
  destination: string;
  /** The manifest (or index) the destination's name now points at; for a docker-archive, the image's manifest at the source. */
  digest: Digest;
  mediaType: string;
  /** Manifests copied (platform images and the index, with --all). */
  manifests: Descriptor[];
  blobs: CopiedBlob[];
  /** Blob bytes read from the source and written (counting retried bytes). */
  bytes: number;
}

interface Opened<T> {
  end: T;
  close(): Promise<void>;
}

async function openSource(
  name: ImageName,
  env: CopyEnvironment,
  tmp: () => Promise<string>,
  compress: boolean,
): Promise<Opened<ImageSource>> {
  switch (name.transport) {
    case 'docker': {
      const src = new RegistrySource(await env.transport(name.reference.registry), name.reference);
      return { end: src, close: () => src.close() };
    }
    case 'oci': {
      const src = await OciSource.directory(name.path, name.ref);
      return { end: src, close: () => src.close() };
    }
    case 'oci-archive': {
      const src = await OciSource.archive(name.path, name.ref, tmp);
      return { end: src, close: () => src.close() };
    }
    case 'docker-archive': {
      const src = await DockerArchiveSource.open(name.path, name.ref, tmp, { compress });
      return { end: src, close: () => src.close() };
    }
  }
}

async function openDestination(
  name: ImageName,
  env: CopyEnvironment,
  tmp: () => Promise<string>,
  opts: CopyOptions,
  blobSourceHints: Map<Digest, string[]>,
): Promise<Opened<ImageDestination>> {
  switch (name.transport) {
    case 'docker': {
      const dst = new RegistryDestination(await env.transport(name.reference.registry), name.reference, {
        mountCandidates: (d) => blobSourceHints.get(d) ?? [],
        ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}),
        ...(opts.monolithicMax !== undefined ? { monolithicMax: opts.monolithicMax } : {}),
        ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
        ...(opts.retryDelayMs !== undefined ? { retryDelayMs: opts.retryDelayMs } : {}),
      });
      return { end: dst, close: () => dst.close() };
    }
    case 'oci':
      return { end: new OciDirDestination(name.path, name.ref), close: async () => {} };
    case 'oci-archive':
      return { end: new OciArchiveDestination(name.path, name.ref), close: async () => {} };
    case 'docker-archive':
      return { end: new DockerArchiveDestination(name.path, name.ref, tmp), close: async () => {} };
  }
}

/** Read a small blob (a config) whole, verified against its descriptor. */
async function readBlobBytes(src: ImageSource, desc: Descriptor, what: string, signal?: AbortSignal): Promise<Buffer> {
  if (desc.size > MAX_DOCUMENT_BYTES) {
    throw new StrataError('INVALID_ARGUMENT', `${what} is ${desc.size} bytes, over the ${MAX_DOCUMENT_BYTES} allowed`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of (await src.blob(desc, 0, signal)) as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > desc.size) throw new SizeMismatchError(what, desc.size, n);
    chunks.push(c);
  }
  const bytes = Buffer.concat(chunks);
  if (bytes.length !== desc.size) throw new SizeMismatchError(what, desc.size, bytes.length);
  const alg = digestAlgorithm(desc.digest);
  const actual = digestFromHex(createHash(alg).update(bytes).digest('hex'), alg);
  if (actual !== desc.digest) throw new DigestMismatchError(what, desc.digest, actual);
  return bytes;
}

/**
 * Copy one image (or, with `all`, an index and all its images) from `source` to `destination`, as skopeo copy:
 * blobs the destination has are skipped (registries: HEAD; a mount from the source repository on the same
 * registry), others stream across verified (digest and size); manifests are copied byte for byte, so digests stay
 * the same between registries and OCI layouts. A docker-archive has no manifest: reading one builds a Docker schema 2
 * manifest, writing one writes manifest.json. The destination's name is set (tag, index.json, archive renamed into
 * place) only after every blob and manifest arrived; on failure it is left as it was.
 */
export async function copyImage(
  source: ImageName,
  destination: ImageName,
  env: CopyEnvironment,
  opts: CopyOptions = {},
): Promise<CopyResult> {
  const signal = opts.signal;
  const emit = (e: ProgressEvent) => {
    try {
      opts.onProgress?.(e);
    } catch {
      // a renderer's failure never fails the copy
    }
  };
  const tmp = tempArea(env.tmpDir);
  const closers: (() => Promise<void>)[] = [tmp.cleanup];
  const srcName = formatImageName(source);
  const dstName = formatImageName(destination);
  try {
    const src = await openSource(source, env, tmp.dir, destination.transport !== 'docker-archive');
    closers.unshift(src.close);
    const hints = new Map<Digest, string[]>();
    const dst = await openDestination(destination, env, tmp.dir, opts, hints);
    closers.unshift(dst.close);
    const s = src.end;
    const d = dst.end;

    const top = await s.topManifest(signal);
    const topDoc = parseDocument(top.bytes, { mediaType: top.mediaType });
    const images: { manifest: CopyManifest; top: boolean }[] = [];
    let index: CopyManifest | undefined;
    if (topDoc.kind === 'index') {
      if (opts.all && d.storesManifests) {
        index = top;
        for (const child of topDoc.index.manifests) {
          if (isIndexType(child.mediaType)) {
            throw new StrataError('UNIMPLEMENTED', `${srcName}: nested image indexes are not supported`);
          }
          images.push({ manifest: await s.manifest(child, signal), top: false });
        }
      } else {
        const want = opts.platform ?? hostPlatform();
        const chosen = selectManifest(topDoc.index, want);
        if (!chosen) {
          throw new StrataError('NOT_FOUND', `${srcName}: no image for ${formatPlatform(want)} in the index`, {
            hint: 'pass --platform with one the index lists, or --all to copy every image',
          });
        }
        images.push({ manifest: await s.manifest(chosen, signal), top: true });
      }
    } else {
      images.push({ manifest: top, top: true });
    }

    // Mount hints: repositories of the destination registry known to hold the blobs.
    if (destination.transport === 'docker' && env.root) {
      const digests: Digest[] = [];
      for (const im of images) {
        const doc = parseDocument(im.manifest.bytes, { mediaType: im.manifest.mediaType });
        if (doc.kind === 'manifest')
          digests.push(doc.manifest.config.digest, ...doc.manifest.layers.map((l) => l.digest));
      }
      const known = await blobSourcesFor(env.root, destination.reference.registry, digests).catch(() => new Map());
      for (const [k, v] of known) hints.set(k, v);
    }

    const blobs: CopiedBlob[] = [];
    const done = new Map<Digest, Promise<unknown>>();
    const limit = limiter(Math.max(1, opts.concurrency ?? 3));
    let bytes = 0;
    const manifests: Descriptor[] = [];
    const ctl = new AbortController();
    const inner = signal ? AbortSignal.any([signal, ctl.signal]) : ctl.signal;

    try {
      for (const im of images) {
        const doc = parseDocument(im.manifest.bytes, { mediaType: im.manifest.mediaType });
        if (doc.kind !== 'manifest') {
          throw new StrataError('UNIMPLEMENTED', `${srcName}: nested image indexes are not supported`);
        }
        const m = doc.manifest;
        const rawConfig = await readBlobBytes(s, m.config, `config ${m.config.digest} of ${srcName}`, inner);
        let config: ReturnType<typeof parseImageConfig> | undefined;
        try {
          config = parseImageConfig(rawConfig);
        } catch (err) {
          // Artifacts (not images) carry other configs: fine for stores of manifests, not for a docker-archive.
          if (!d.storesManifests) throw err;
        }
        await d.beginImage({ manifest: m, config: config as NonNullable<typeof config>, rawConfig });

        const put = (
          desc: Descriptor,
          layer: boolean,
          open: (start: number, sig?: AbortSignal) => Promise<Readable>,
        ) => {
          let p = done.get(desc.digest);
          if (p) return p;
          if (layer)
            emit({ kind: 'blob', digest: desc.digest, size: desc.size, state: 'waiting', detail: 'Preparing' });
          p = limit(async () => {
            const state = await d.putBlob(desc, open, {
              layer,
              what: `${layer ? 'layer' : 'config'} ${desc.digest} of ${srcName}`,
              signal: inner,
              onBytes: (n) => {
                bytes += n;
              },
              ...(s.registry ? { source: s.registry } : {}),
              ...(opts.onProgress ? { onProgress: emit } : {}),
            });
            blobs.push({ digest: desc.digest, size: desc.size, state });
            if (layer && destination.transport !== 'docker') {
              // Registries report their own progress; other destinations say only how it ended.
              emit({
                kind: 'blob',
                digest: desc.digest,
                size: desc.size,
                state: state === 'exists' ? 'exists' : 'done',
              });
            }
          });
          done.set(desc.digest, p);
          return p;
        };
        await Promise.all(
          m.layers
            // Non-distributable layers with URLs stay where the URLs point (as docker and skopeo leave them).
            .filter((l) => !(l.urls?.length && NON_DISTRIBUTABLE.has(l.mediaType)))
            .map((l) =>
              put(l, true, (start, sig) => s.blob(l, start, sig)).catch((err: unknown) => {
                ctl.abort(err);
                throw err;
              }),
            ),
        );
        await put(m.config, false, async () => Readable.from([rawConfig]));
        emit({ kind: 'message', text: `Copying config ${m.config.digest} done` });
        await d.putManifest(im.manifest, im.top, inner);
        manifests.push({
          mediaType: im.manifest.mediaType,
          digest: im.manifest.digest,
          size: im.manifest.bytes.length,
        });
      }
      if (index) {
        await d.putManifest(index, true, inner);
        manifests.push({ mediaType: index.mediaType, digest: index.digest, size: index.bytes.length });
      }
      emit({ kind: 'message', text: 'Writing manifest to image destination' });
      const final = index ?? (images[0]?.manifest as CopyManifest);
      await d.commit(final, inner);

      if (env.root && destination.transport === 'docker' && dst.end instanceof RegistryDestination) {
        await recordBlobSource(env.root, destination.reference.registry, destination.reference.repository, [
          ...dst.end.blobs,
        ]).catch(() => {});
      }
      if (env.root && source.transport === 'docker') {
        await recordBlobSource(
          env.root,
          source.reference.registry,
          source.reference.repository,
          blobs.map((b) => b.digest),
        ).catch(() => {});
      }
      return {
        source: srcName,
        destination: dstName,
        digest: final.digest,
        mediaType: final.mediaType,
        manifests,
        blobs,
        bytes,
      };
    } catch (err) {
      ctl.abort(err);
      await Promise.allSettled(done.values());
      await d.abort().catch(() => {});
      throw err;
    }
  } finally {
    for (const c of closers) await c().catch(() => {});
  }
}

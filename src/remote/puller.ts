import { createReadStream } from 'node:fs';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import type { ContentStore, ResumableIngest } from '../content/index.js';
import { paths, parseNextLink } from '../distribution/index.js';
import { errnoCode, StrataError } from '../errors/index.js';
import { layerPairs, type UnpackSource, unpackLayers } from '../image/index.js';
import {
  type Descriptor,
  type Digest,
  formatPlatform,
  hostPlatform,
  isIndexType,
  type Platform,
  parseImageConfig,
  platformMatches,
  selectManifest,
} from '../oci/index.js';
import type { Reference } from '../reference/index.js';
import type { Snapshotter } from '../snapshot/index.js';
import { limiter } from '../util/index.js';
import { recordBlobSource } from './blob-sources.js';
import { type FetchedManifest, fetchBlobBytes, fetchManifest } from './manifest.js';
import type { ProgressEvent, ProgressFn, ProgressState, RegistryTransport, RemoteOptions } from './types.js';

export interface PullOptions extends RemoteOptions {
  /** Which platform to take from an index (default: this host's, as hostPlatform() says). */
  platform?: Platform;
  /** Blobs downloaded at once (default 3, as docker). */
  concurrency?: number;
  /** Connection cuts tolerated per blob without progress in between (default 5). */
  retries?: number;
  /** First retry delay in ms, doubled each time up to 8 s (default 500). */
  retryDelayMs?: number;
}

export interface PulledLayer {
  digest: Digest;
  size: number;
  /** `exists`: the blob was in the store already ("Already exists"); `downloaded`: fetched now. */
  state: 'exists' | 'downloaded';
}

export interface PullResult {
  reference: Reference;
  /**
   * What a tag should name: the index when the image came through one and the host's platform was taken (so the
   * tag carries the repository digest, as docker's RepoDigests), else the platform manifest itself.
   */
  descriptor: Descriptor;
  /** The repository digest: the index's when there was one, else the manifest's. */
  digest: Digest;
  manifest: Descriptor;
  index: Descriptor | undefined;
  /** The image ID (config digest). */
  id: Digest;
  platform: Platform;
  layers: PulledLayer[];
  /** Blob bytes received (layers and config), counting retried ranges. */
  bytesDownloaded: number;
  /** Blobs (layers, config, manifest, index) that were not in the store before. */
  newBlobs: number;
}

type Emit = (e: ProgressEvent) => void;

function emitter(fn: ProgressFn | undefined): Emit {
  if (!fn) return () => {};
  return (e) => {
    try {
      fn(e);
    } catch {
      // a renderer's failure never fails the pull
    }
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_ABORTED',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/** A failure worth another attempt from the current offset: the network, not the data. */
export function isTransient(err: unknown): boolean {
  // A registry's answer (429/5xx) was retried by the transport already; a network failure it gave up on was not.
  if (err instanceof StrataError) return err.code === 'UNAVAILABLE' && !('status' in err);
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = errnoCode(e);
    if (code && TRANSIENT_CODES.has(code)) return true;
    if (e instanceof Error && /terminated|other side closed|socket hang up|premature close/i.test(e.message)) {
      return true;
    }
  }
  return false;
}

export interface DownloadOptions {
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  retries?: number;
  retryDelayMs?: number;
  what?: string;
  /** Hears every chunk written (bytes received for this blob, across attempts). */
  onBytes?: (n: number) => void;
}

/**
 * Download one blob into a resumable ingest entry and verify it; the result is verified and still holds the
 * blob's lock: the caller commits it (or releases it to keep the bytes) promptly. Bytes a killed or failed earlier
 * attempt left are re-hashed and the download continues with `Range: bytes=<offset>-` (206; a 200 restarts from
 * 0). A connection cut mid-blob is retried from the current offset with backoff, `retries` times without progress.
 * On failure the entry is kept when the cause was the network (a later pull resumes) and dropped when the bytes
 * were wrong. Returns undefined when another process committed the blob meanwhile.
 */
export async function downloadBlob(
  transport: RegistryTransport,
  store: ContentStore,
  repository: string,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  opts: DownloadOptions = {},
): Promise<ResumableIngest | undefined> {
  const what = opts.what ?? `blob ${desc.digest}`;
  const emit = emitter(opts.onProgress);
  const signal = opts.signal;
  const blob = (state: ProgressState, extra: { current?: number; detail?: string } = {}) =>
    emit({ kind: 'blob', digest: desc.digest, size: desc.size, state, ...extra });
  const w = await store.resumable(desc.digest, desc.size, { what, ...(signal ? { signal } : {}) });
  if (await store.has(desc.digest)) {
    await w.abort();
    return undefined;
  }
  const maxRetries = opts.retries ?? 5;
  const baseDelay = opts.retryDelayMs ?? 500;
  let failures = 0;
  let fromScratch = w.restored === 0;
  let lastEmit = 0;
  const onBytes = (n: number) => {
    opts.onBytes?.(n);
    const now = Date.now();
    if (now - lastEmit >= 100 || w.offset === desc.size) {
      lastEmit = now;
      blob('downloading', { current: w.offset });
    }
  };
  try {
    for (;;) {
      if (w.offset < desc.size) {
        const start = w.offset;
        blob('downloading', { current: start });
        try {
          const res = await transport.request({
            method: 'GET',
            path: paths.blob(repository, desc.digest),
            headers: start > 0 ? { range: `bytes=${start}-` } : {},
            scope: { name: repository, actions: ['pull'] },
            ...(start > 0 ? { accept: [416] } : {}),
            ...(signal ? { signal } : {}),
          });
          if (res.status === 416) {
            await res.dump().catch(() => {});
            await w.reset();
            fromScratch = true;
            continue;
          }
          if (start > 0) {
            const range = /^bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''));
            if (res.status !== 206 || !range || Number(range[1]) !== start) {
              // The registry ignored the range (or answered another): take the whole blob from the beginning.
              await w.reset();
              fromScratch = true;
              if (res.status === 206) {
                await res.dump().catch(() => {});
                continue;
              }
            }
          }
          await w.append(res.body, { ...(signal ? { signal } : {}), onBytes });
          if (w.offset < desc.size) {
            throw new StrataError(
              'UNAVAILABLE',
              `${what}: the connection closed after ${w.offset} of ${desc.size} bytes`,
            );
          }
        } catch (err) {
          if (signal?.aborted) throw err;
          if (w.offset > start) failures = 0;
          if (!isTransient(err) || ++failures > maxRetries) throw err;
          const delay = Math.min(8000, baseDelay * 2 ** (failures - 1));
          blob('retrying', {
            current: w.offset,
            detail: `Retrying in ${Math.max(1, Math.round(delay / 1000))} second${delay > 1500 ? 's' : ''}`,
          });
          await sleep(delay, signal);
          continue;
        }
      }
      blob('verifying', { current: w.offset });
      try {
        await w.verify();
      } catch (err) {
        if (!fromScratch && err instanceof StrataError && err.code === 'DATA_LOSS') {
          // The bytes an earlier attempt left were wrong: fetch the whole blob once more.
          await w.reset();
          fromScratch = true;
          continue;
        }
        throw err;
      }
      blob('waiting', { current: desc.size, detail: 'Download complete' });
      return w;
    }
  } catch (err) {
    // Stopped from outside: the reason tells whether the bytes are worth keeping (a cancel or a network failure
    // elsewhere) or not (another blob of the image was wrong: nothing of it is kept).
    const cause: unknown = signal?.aborted ? signal.reason : err;
    if (!signal?.aborted) {
      blob('failed', { current: w.offset, detail: err instanceof Error ? err.message : String(err) });
    }
    if (isTransient(cause) || isAbort(cause)) await w.release();
    else await w.abort();
    throw err;
  }
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');
}

/** Counts bytes read from a layer while it unpacks, for the Extracting bar. */
class Counter extends Transform {
  n = 0;
  constructor(readonly tick: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.n += chunk.length;
    this.tick(this.n);
    cb(null, chunk);
  }
}

function platformOf(config: { os: string; architecture: string; variant?: string }): Platform {
  return config.variant
    ? { os: config.os, architecture: config.architecture, variant: config.variant }
    : { os: config.os, architecture: config.architecture };
}

function isAttestation(d: Descriptor): boolean {
  return (
    d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' ||
    (d.platform?.os === 'unknown' && d.platform.architecture === 'unknown')
  );
}

/** Put a small verified document in the store unless it is there; true when it was new. */
async function putIfMissing(store: ContentStore, bytes: Buffer, digest: Digest, what: string): Promise<boolean> {
  if (await store.has(digest)) return false;
  await store.put(bytes, { digest, size: bytes.length, what });
  return true;
}

/**
 * Pull one image: resolve the reference to a manifest (content negotiation; an index resolves to the platform
 * asked for), fetch the config, download the layers the store lacks (bounded parallelism, verified while they
 * stream, resumable) and unpack each into its snapshot as soon as it and the layers below it are there. A layer
 * blob is committed as soon as its digest checked out (as containerd does: a blob is content, right or absent),
 * so the next attempt or a concurrent pull finds it; config, manifest and index are stored only when every layer
 * unpacked. Tagging is the caller's (under a lease, so GC cannot race: see `Strata.pull`).
 *
 * On failure no manifest is stored and nothing is tagged; bytes whose digest did not match are never a blob.
 * Downloads cut by the network (or a kill) stay in ingest/ for the next attempt to resume; downloads stopped
 * because another blob was wrong are dropped. Verified layers and their snapshots stay until `image prune`.
 */
export async function pullImage(
  transport: RegistryTransport,
  store: ContentStore,
  snapshots: Snapshotter,
  ref: Reference,
  opts: PullOptions = {},
): Promise<PullResult> {
  const emit = emitter(opts.onProgress);
  const repo = ref.repository;
  const reference = ref.digest ?? ref.tag ?? 'latest';
  const userSignal = opts.signal;
  const what = ref.familiar();
  emit({ kind: 'message', text: `${reference}: Pulling from ${repo}` });

  const top = await fetchManifest(transport, repo, reference, { what, ...(userSignal ? { signal: userSignal } : {}) });
  const want = opts.platform ?? hostPlatform();
  let index: FetchedManifest | undefined;
  let man = top;
  if (top.doc.kind === 'index') {
    index = top;
    const chosen = selectManifest(top.doc.index, want);
    if (!chosen) {
      const available = top.doc.index.manifests
        .filter((d) => d.platform && !isAttestation(d))
        .map((d) => formatPlatform(d.platform as Platform));
      throw new StrataError(
        'NOT_FOUND',
        `no matching manifest for ${formatPlatform(want)} in the manifest list entries of ${what}`,
        {
          hint: available.length
            ? `the image is available for: ${[...new Set(available)].join(', ')}; pass --platform with one of them`
            : 'the index lists no platforms',
          details: { platform: formatPlatform(want), available },
        },
      );
    }
    if (isIndexType(chosen.mediaType)) {
      throw new StrataError('UNIMPLEMENTED', `${what}: nested image indexes are not supported`);
    }
    man = await fetchManifest(transport, repo, chosen.digest, {
      what: `${what} (${chosen.platform ? formatPlatform(chosen.platform) : chosen.digest})`,
      ...(userSignal ? { signal: userSignal } : {}),
    });
  }
  if (man.doc.kind !== 'manifest') {
    throw new StrataError('UNIMPLEMENTED', `${what}: nested image indexes are not supported`);
  }
  const manifest = man.doc.manifest;

  let bytesDownloaded = 0;
  let newBlobs = 0;
  const cfg = manifest.config;
  let rawConfig: Buffer;
  if (await store.has(cfg.digest)) rawConfig = await store.readBytes(cfg.digest);
  else {
    rawConfig = await fetchBlobBytes(transport, repo, cfg, {
      what: `config of ${what}`,
      ...(userSignal ? { signal: userSignal } : {}),
    });
    bytesDownloaded += rawConfig.length;
  }
  const config = parseImageConfig(rawConfig);
  const platform = platformOf(config);
  if (!index && opts.platform && !platformMatches(opts.platform, platform)) {
    throw new StrataError(
      'FAILED_PRECONDITION',
      `image ${what} was found but does not match the specified platform: wanted ${formatPlatform(opts.platform)}, actual: ${formatPlatform(platform)}`,
      { hint: 'drop --platform, or pull a reference built for that platform' },
    );
  }
  const pairs = layerPairs(manifest, config, `image ${what}`);

  // Downloads run in the background, bounded; unpacking walks the layers in order and waits for each.
  const ctl = new AbortController();
  const signal = userSignal ? AbortSignal.any([userSignal, ctl.signal]) : ctl.signal;
  // The first failure stops everything (downloads of other layers, the unpack) and is the one reported.
  const fail = (err: unknown): void => {
    if (!ctl.signal.aborted) ctl.abort(err);
  };
  const limit = limiter(Math.max(1, opts.concurrency ?? 3));
  const ready = new Map<Digest, Promise<() => Promise<Readable>>>();
  const downloading = new Map<Digest, Promise<void>>();
  const layers: PulledLayer[] = [];
  const sizes = new Map<Digest, number>();
  for (const [l] of pairs) {
    sizes.set(l.digest, l.size);
    if (ready.has(l.digest)) continue;
    if (await store.has(l.digest)) {
      layers.push({ digest: l.digest, size: l.size, state: 'exists' });
      emit({ kind: 'blob', digest: l.digest, size: l.size, state: 'exists' });
      ready.set(
        l.digest,
        Promise.resolve(() => store.read(l.digest, { signal })),
      );
      continue;
    }
    layers.push({ digest: l.digest, size: l.size, state: 'downloaded' });
    emit({ kind: 'blob', digest: l.digest, size: l.size, state: 'waiting', detail: 'Pulling fs layer' });
    // Each blob is committed as soon as it verified, which lets go of its lock: a lock is only ever held while its
    // blob downloads, so concurrent pulls of images sharing blobs cannot deadlock, and the second finds the blob.
    let fresh = false;
    const dl = limit(async () => {
      const w = await downloadBlob(transport, store, repo, l, {
        signal,
        what: `layer ${l.digest} of ${what}`,
        onBytes: (n) => {
          bytesDownloaded += n;
        },
        ...(opts.onProgress ? { onProgress: emit } : {}),
        ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
        ...(opts.retryDelayMs !== undefined ? { retryDelayMs: opts.retryDelayMs } : {}),
      });
      if (w) {
        await w.commit();
        fresh = true;
        newBlobs++;
      }
    });
    dl.catch(fail);
    downloading.set(l.digest, dl);
    const opener = dl.then(() => {
      const path = store.blobPath(l.digest);
      // Just verified by this process: read it as is; one another process committed is read verified.
      if (fresh) return async () => createReadStream(path, { highWaterMark: 1 << 20 }) as Readable;
      return () => store.read(l.digest, { signal });
    });
    opener.catch(() => {});
    ready.set(l.digest, opener);
  }

  const extracted = new Set<Digest>();
  const sources: UnpackSource[] = pairs.map(([l, diffId], i) => ({
    diffId,
    what: `layer ${i} (${l.digest}) of ${what}`,
    open: async () => {
      const open = await (ready.get(l.digest) as Promise<() => Promise<Readable>>);
      const size = l.size;
      let last = 0;
      emit({ kind: 'blob', digest: l.digest, size, state: 'extracting', current: 0 });
      const counter = new Counter((n) => {
        const now = Date.now();
        if (now - last >= 100 || n === size) {
          last = now;
          emit({ kind: 'blob', digest: l.digest, size, state: 'extracting', current: n });
        }
      });
      const src = await open();
      src.on('error', (err: Error) => counter.destroy(err));
      counter.on('close', () => {
        if (!src.destroyed) src.destroy();
      });
      extracted.add(l.digest);
      return src.pipe(counter);
    },
  }));

  try {
    await unpackLayers(snapshots, sources, {
      signal,
      onLayer: (i, state) => {
        const d = pairs[i]?.[0].digest as Digest;
        if (state === 'unpacked' || downloading.has(d)) {
          emit({ kind: 'blob', digest: d, size: sizes.get(d) ?? 0, state: 'done' });
        }
      },
    });
    // Layers whose snapshot existed already were not waited for: their blobs must still arrive.
    for (const [d, dl] of downloading) {
      await dl;
      if (!extracted.has(d)) emit({ kind: 'blob', digest: d, size: sizes.get(d) ?? 0, state: 'done' });
    }
    // Accepted: the config, then the documents that name it and the layers.
    if (await putIfMissing(store, rawConfig, cfg.digest, `config of ${what}`)) newBlobs++;
    if (await putIfMissing(store, man.bytes, man.digest, `manifest of ${what}`)) newBlobs++;
    if (index && (await putIfMissing(store, index.bytes, index.digest, `index of ${what}`))) newBlobs++;
  } catch (err) {
    fail(err);
    // Downloads still running stop; each keeps its bytes for a resume or drops them (see downloadBlob).
    await Promise.allSettled(downloading.values());
    throw ctl.signal.reason ?? err;
  }

  // A hint for later pushes to this registry: where these blobs can be mounted from.
  await recordBlobSource(store.root, transport.registry, repo, [...sizes.keys(), cfg.digest]).catch(() => {});

  // Tag the index only when an image opened through it (host platform by default) is the one pulled.
  const hostChoice = index?.doc.kind === 'index' ? selectManifest(index.doc.index, hostPlatform()) : undefined;
  const descriptor = index && hostChoice?.digest === man.digest ? index.descriptor : man.descriptor;
  return {
    reference: ref,
    descriptor,
    digest: index ? index.digest : man.digest,
    manifest: man.descriptor,
    index: index?.descriptor,
    id: cfg.digest,
    platform,
    layers,
    bytesDownloaded,
    newBlobs,
  };
}

/**
 * Every tag of a repository, following the `Link: <...>; rel="next"` pagination of `/v2/<name>/tags/list`.
 */
export async function listTags(
  transport: RegistryTransport,
  repository: string,
  opts: { signal?: AbortSignal; pageSize?: number } = {},
): Promise<string[]> {
  const tags: string[] = [];
  let path: string | undefined = `${paths.tags(repository)}?n=${opts.pageSize ?? 100}`;
  const seen = new Set<string>();
  while (path && !seen.has(path)) {
    seen.add(path);
    const res = await transport.request({
      method: 'GET',
      path,
      scope: { name: repository, actions: ['pull'] },
      accept: [404],
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (res.status === 404) {
      await res.dump().catch(() => {});
      throw new StrataError('NOT_FOUND', `repository ${transport.registry}/${repository} not found`, {
        hint: 'check the repository name (and that you are logged in if it is private)',
      });
    }
    const body = await res.json<{ tags?: unknown }>();
    if (Array.isArray(body.tags)) for (const t of body.tags) if (typeof t === 'string') tags.push(t);
    const link = res.headers['link'];
    path = parseNextLink(Array.isArray(link) ? link[0] : link);
  }
  return [...new Set(tags)];
}

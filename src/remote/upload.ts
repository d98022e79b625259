import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Header, paths, parseErrorBody } from '../distribution/index.js';
import { DigestMismatchError, SizeMismatchError, StrataError } from '../errors/index.js';
import { type Descriptor, type Digest, digestAlgorithm, isDigest } from '../oci/index.js';
import { isTransient } from './puller.js';
import type { ProgressFn, ProgressState, RegistryTransport, TransportResponse } from './types.js';

/**
 * Blob upload to a registry, as the distribution spec describes it: HEAD first (the registry has it), then a
 * cross-repository mount from a repository of the same registry that holds it (201; 202 falls back to uploading at
 * the Location it returns), else an upload: monolithic (POST, then PUT ?digest= with the body) for small blobs,
 * chunked (PATCH with Content-Range, then PUT ?digest=) for large ones. The bytes are streamed from an opener and
 * hashed as they go; a chunked upload cut by the network asks the registry how much it holds (GET on the upload,
 * `Range: 0-N`) and continues from there, re-reading the source only from the last chunk boundary it knows the
 * hash at. A source whose bytes do not match the descriptor never completes an upload: the last bytes are held
 * back until the digest checks out.
 */

/** A blob's bytes from `start` to its end (the upload verifies them). */
export type BlobOpener = (start: number, signal?: AbortSignal) => Promise<Readable>;

export interface BlobPushOptions {
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  /** Emit blob progress events (default true; configs are pushed silently, as docker does). */
  progress?: boolean;
  /** Repositories of the same registry that may hold the blob, tried in order for a cross-repository mount. */
  mountFrom?: readonly string[];
  /** Blobs smaller than this go in one PUT (default 16 MiB). */
  monolithicMax?: number;
  /** PATCH size of a chunked upload (default 16 MiB; raised to the registry's OCI-Chunk-Min-Length). */
  chunkSize?: number;
  /** Network failures tolerated in a row without progress (default 5). */
  retries?: number;
  /** First retry delay in ms, doubled up to 8 s (default 500). */
  retryDelayMs?: number;
  /** Hears every chunk of bytes sent (counting re-sent ones). */
  onBytes?: (n: number) => void;
  /** For messages: "layer sha256:... of app:latest". */
  what?: string;
}

export type BlobPushResult =
  | { state: 'exists' }
  | { state: 'mounted'; from: string }
  | { state: 'uploaded'; bytes: number; resumes: number };

export const DEFAULT_CHUNK_SIZE = 16 << 20;
export const DEFAULT_MONOLITHIC_MAX = 16 << 20;

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function header(res: TransportResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** A Location header as something `transport.request` takes: a path on the registry's origin, else an absolute URL. */
function resolveLocation(transport: RegistryTransport, res: TransportResponse, what: string): string {
  const loc = header(res, 'location');
  if (!loc) {
    throw new StrataError('INTERNAL', `${what}: the registry answered ${res.status} without a Location header`, {
      hint: 'the registry does not follow the distribution spec for uploads',
    });
  }
  const base = res.url || `${transport.origin}/`;
  const url = new URL(loc, base);
  return url.origin === new URL(transport.origin).origin ? `${url.pathname}${url.search}` : url.toString();
}

function withQuery(location: string, key: string, value: string): string {
  const abs = /^https?:\/\//.test(location);
  const url = new URL(location, 'http://placeholder');
  url.searchParams.set(key, value);
  return abs ? url.toString() : `${url.pathname}${url.search}`;
}

/** `Range: 0-N` of an upload status: bytes held (N + 1), 0 when absent. `0-0` is read as 0 (see resync). */
function rangeEnd(res: TransportResponse): number | undefined {
  const v = header(res, 'range');
  if (v === undefined) return undefined;
  const m = /^(?:bytes=)?(\d+)-(\d+)$/.exec(v.trim());
  if (!m) return undefined;
  return Number(m[2]) + 1;
}

/**
 * Reads a source in consecutive slices of exact lengths, hashing each byte as it is handed out. The hash of the
 * last byte of the blob is checked before that byte is released, so a corrupt source fails the request carrying it
 * instead of completing it.
 */
class Slicer {
  readonly #src: Readable;
  readonly #it: AsyncIterator<Buffer>;
  #left: Buffer | undefined;
  /** The first error the source itself raised (not the network): it fails the blob for good. */
  sourceError: unknown;

  constructor(
    src: Readable,
    public offset: number,
    public hash: Hash,
    readonly desc: Pick<Descriptor, 'digest' | 'size'>,
    readonly what: string,
  ) {
    this.#src = src;
    this.#it = (src as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  async #next(): Promise<Buffer> {
    let buf = this.#left;
    this.#left = undefined;
    if (buf) return buf;
    let r: IteratorResult<Buffer>;
    try {
      r = await this.#it.next();
    } catch (err) {
      this.sourceError ??= err;
      throw err;
    }
    if (r.done) {
      const err = new SizeMismatchError(this.what, this.desc.size, this.offset);
      this.sourceError ??= err;
      throw err;
    }
    buf = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    return buf;
  }

  #check(): void {
    const actual = `${digestAlgorithm(this.desc.digest)}:${this.hash.copy().digest('hex')}`;
    if (actual !== this.desc.digest) {
      const err = new DigestMismatchError(this.what, this.desc.digest, actual);
      this.sourceError ??= err;
      throw err;
    }
  }

  /** Skip `n` bytes into the hash without handing them out (rebuilding the hash state after a resume). */
  async skip(n: number): Promise<void> {
    for (let need = n; need > 0; ) need -= (await this.#read(need)).length;
  }

  /** Up to `max` bytes from the source, hashed and counted (what is left over is kept for the next read). */
  async #read(max: number): Promise<Buffer> {
    let buf = await this.#next();
    if (buf.length > max) {
      this.#left = buf.subarray(max);
      buf = buf.subarray(0, max);
    }
    this.hash.update(buf);
    this.offset += buf.length;
    return buf;
  }

  /** The next `n` bytes as a stream (the request body of one chunk); `onBytes` hears each piece handed out. */
  take(n: number, onBytes: (k: number) => void): Readable {
    const self = this;
    async function* gen(): AsyncGenerator<Buffer> {
      let need = n;
      if (need === 0 && self.offset === self.desc.size) self.#check();
      while (need > 0) {
        const buf = await self.#read(need);
        need -= buf.length;
        if (self.offset === self.desc.size) self.#check();
        onBytes(buf.length);
        yield buf;
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  /** After the last byte: the source must end here (its own verification, if any, runs now). */
  async end(): Promise<void> {
    if (this.#left && this.#left.length > 0) {
      throw new SizeMismatchError(this.what, this.desc.size, this.offset + this.#left.length);
    }
    let r: IteratorResult<Buffer>;
    try {
      r = await this.#it.next();
    } catch (err) {
      this.sourceError ??= err;
      throw err;
    }
    if (!r.done) {
      const err = new SizeMismatchError(this.what, this.desc.size, this.offset + r.value.length);
      this.sourceError ??= err;
      this.destroy();
      throw err;
    }
  }

  destroy(): void {
    if (!this.#src.destroyed) this.#src.destroy();
  }
}

/** Raised inside an upload when the registry lost the upload session: start a new one. */
class UploadLost extends Error {}

interface Ctx {
  transport: RegistryTransport;
  repository: string;
  desc: Pick<Descriptor, 'digest' | 'size'>;
  open: BlobOpener;
  opts: BlobPushOptions;
  what: string;
  emit: (state: ProgressState, extra?: { current?: number; detail?: string }) => void;
  signal: AbortSignal | undefined;
  sent: number;
  resumes: number;
}

/** Does the repository have the blob? (HEAD: 200 yes, 404 no.) */
export async function blobExists(
  transport: RegistryTransport,
  repository: string,
  digest: Digest,
  signal?: AbortSignal,
): Promise<boolean> {
  const res = await transport.request({
    method: 'HEAD',
    path: paths.blob(repository, digest),
    scope: { name: repository, actions: ['pull', 'push'] },
    accept: [404],
    ...(signal ? { signal } : {}),
  });
  await res.dump().catch(() => {});
  return res.status >= 200 && res.status < 300;
}

/**
 * Put one blob in `repository` unless it is there: HEAD, mount, or upload (see the module comment). Returns what
 * happened; throws DigestMismatchError/SizeMismatchError when the source's bytes are not the descriptor's (the
 * upload is cancelled, nothing is committed), or the registry's error.
 */
export async function pushBlob(
  transport: RegistryTransport,
  repository: string,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  open: BlobOpener,
  opts: BlobPushOptions = {},
): Promise<BlobPushResult> {
  const what = opts.what ?? `blob ${desc.digest}`;
  const signal = opts.signal;
  const report = opts.progress !== false && opts.onProgress ? opts.onProgress : undefined;
  const emit = (state: ProgressState, extra: { current?: number; detail?: string } = {}) => {
    if (!report) return;
    try {
      report({ kind: 'blob', digest: desc.digest, size: desc.size, state, ...extra });
    } catch {
      // a renderer's failure never fails the push
    }
  };
  const ctx: Ctx = { transport, repository, desc, open, opts, what, emit, signal, sent: 0, resumes: 0 };

  if (await blobExists(transport, repository, desc.digest, signal)) {
    emit('exists');
    return { state: 'exists' };
  }

  let location: string | undefined;
  const candidates = (opts.mountFrom ?? []).filter((r) => r !== repository);
  for (const [i, from] of candidates.entries()) {
    const mounted = await tryMount(ctx, from);
    if (mounted === true) {
      emit('mounted', { detail: from });
      return { state: 'mounted', from };
    }
    if (typeof mounted === 'string') {
      // 202: the registry started an upload instead. Keep it for the last candidate, else drop it and go on.
      if (i === candidates.length - 1) location = mounted;
      else await cancel(ctx, mounted);
    }
  }

  for (let restarts = 0; ; restarts++) {
    try {
      if (location === undefined) location = await startUpload(ctx);
      const start = location;
      location = undefined;
      await upload(ctx, start);
      emit('done', { current: desc.size });
      return { state: 'uploaded', bytes: ctx.sent, resumes: ctx.resumes };
    } catch (err) {
      if (err instanceof UploadLost && restarts < 2) continue;
      emit('failed', { detail: err instanceof Error ? err.message : String(err) });
      throw err instanceof UploadLost
        ? new StrataError('UNAVAILABLE', `${what}: the registry lost the upload twice`, {
            hint: 'the registry may be purging uploads or running behind a load balancer without shared state',
          })
        : err;
    }
  }
}

/** POST ?mount=&from=: true when mounted (201), the upload Location when the registry started an upload (202). */
async function tryMount(ctx: Ctx, from: string): Promise<true | string | undefined> {
  const { transport, repository, desc, signal } = ctx;
  let res: TransportResponse;
  try {
    res = await transport.request({
      method: 'POST',
      path: `${paths.uploads(repository)}?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`,
      scope: { name: repository, actions: ['pull', 'push'], also: [{ name: from, actions: ['pull'] }] },
      headers: { 'content-length': '0' },
      accept: [201, 202, 401, 403, 404],
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    if (signal?.aborted) throw err;
    // A registry that refuses mounts (or the source repository) is no reason to fail: upload instead.
    return undefined;
  }
  await res.dump().catch(() => {});
  if (res.status === 201) {
    const sent = header(res, Header.ContentDigest);
    if (sent && isDigest(sent.trim()) && sent.trim() !== desc.digest) return undefined;
    return true;
  }
  if (res.status === 202 && header(res, 'location')) return resolveLocation(transport, res, ctx.what);
  return undefined;
}

async function startUpload(ctx: Ctx): Promise<string> {
  const { transport, repository, signal } = ctx;
  const res = await transport.request({
    method: 'POST',
    path: paths.uploads(repository),
    scope: { name: repository, actions: ['pull', 'push'] },
    headers: { 'content-length': '0' },
    ...(signal ? { signal } : {}),
  });
  await res.dump().catch(() => {});
  const min = Number(header(res, Header.OciChunkMinLength) ?? 0);
  if (Number.isSafeInteger(min) && min > (ctx.opts.chunkSize ?? DEFAULT_CHUNK_SIZE)) ctx.opts.chunkSize = min;
  return resolveLocation(transport, res, ctx.what);
}

async function cancel(ctx: Ctx, location: string): Promise<void> {
  try {
    const res = await ctx.transport.request({
      method: 'DELETE',
      path: location,
      scope: { name: ctx.repository, actions: ['pull', 'push'] },
      accept: [400, 404, 405],
    });
    await res.dump().catch(() => {});
  } catch {
    // best effort: the registry purges stale uploads itself
  }
}

async function finish(ctx: Ctx, location: string, body?: Readable): Promise<void> {
  const { transport, repository, desc, signal } = ctx;
  const res = await transport.request({
    method: 'PUT',
    path: withQuery(location, 'digest', desc.digest),
    scope: { name: repository, actions: ['pull', 'push'] },
    headers: {
      'content-type': 'application/octet-stream',
      'content-length': String(body ? desc.size : 0),
    },
    ...(body ? { body } : {}),
    ...(signal ? { signal } : {}),
  });
  await res.dump().catch(() => {});
  const sent = header(res, Header.ContentDigest)?.trim();
  if (sent && isDigest(sent) && sent !== desc.digest) {
    throw new DigestMismatchError(`${ctx.what} (as the registry stored it)`, desc.digest, sent);
  }
}

function backoff(ctx: Ctx, failures: number): number {
  return Math.min(8000, (ctx.opts.retryDelayMs ?? 500) * 2 ** (failures - 1));
}

async function upload(ctx: Ctx, location: string): Promise<void> {
  const { desc } = ctx;
  if (desc.size < (ctx.opts.monolithicMax ?? DEFAULT_MONOLITHIC_MAX)) return monolithic(ctx, location);
  return chunked(ctx, location);
}

/** One PUT with the whole body; a network failure starts over with a new upload (the blob is small). */
async function monolithic(ctx: Ctx, first: string): Promise<void> {
  const { desc, signal } = ctx;
  const retries = ctx.opts.retries ?? 5;
  let location = first;
  for (let failures = 0; ; ) {
    const src = await ctx.open(0, signal);
    const slicer = new Slicer(src, 0, createHash(digestAlgorithm(desc.digest)), desc, ctx.what);
    let lastEmit = 0;
    ctx.emit('uploading', { current: 0 });
    try {
      const body = slicer.take(desc.size, (n) => {
        ctx.sent += n;
        ctx.opts.onBytes?.(n);
        const now = Date.now();
        if (now - lastEmit >= 100) {
          lastEmit = now;
          ctx.emit('uploading', { current: slicer.offset });
        }
      });
      await finish(ctx, location, body);
      await slicer.end();
      return;
    } catch (err) {
      slicer.destroy();
      if (slicer.sourceError !== undefined) {
        await cancel(ctx, location);
        throw slicer.sourceError;
      }
      if (signal?.aborted || !isTransient(err) || ++failures > retries) throw err;
      ctx.emit('retrying', { current: 0, detail: `Retrying in ${Math.round(backoff(ctx, failures) / 1000)} s` });
      await sleep(backoff(ctx, failures), signal);
      await cancel(ctx, location);
      location = await startUpload(ctx);
      ctx.resumes++;
    }
  }
}

/**
 * PATCH chunks with Content-Range; on a network failure (or 416) ask the registry where the upload stands and go
 * on from there. The hash state is kept at every chunk boundary, so resuming at N re-reads only [boundary, N).
 */
async function chunked(ctx: Ctx, first: string): Promise<void> {
  const { transport, repository, desc, signal } = ctx;
  const alg = digestAlgorithm(desc.digest);
  const retries = ctx.opts.retries ?? 5;
  /** Hash states at chunk boundaries, ascending. */
  const marks: { offset: number; hash: Hash }[] = [{ offset: 0, hash: createHash(alg) }];
  let location = first;
  let slicer = new Slicer(await ctx.open(0, signal), 0, createHash(alg), desc, ctx.what);
  let failures = 0;
  let lastEmit = 0;
  ctx.emit('uploading', { current: 0 });

  /** Ask the registry how much it holds and position the source (and hash) there. */
  const resync = async (hint?: number): Promise<void> => {
    let held = hint;
    if (held === undefined) {
      const res = await transport.request({
        method: 'GET',
        path: location,
        scope: { name: repository, actions: ['pull', 'push'] },
        accept: [404],
        ...(signal ? { signal } : {}),
      });
      await res.dump().catch(() => {});
      if (res.status === 404) throw new UploadLost();
      if (header(res, 'location')) location = resolveLocation(transport, res, ctx.what);
      held = rangeEnd(res) ?? 0;
      // `0-0` means 0 or 1 byte; no chunk is 1 byte long unless the blob is, so read it as 0.
      if (held === 1 && desc.size !== 1) held = 0;
    }
    if (held > desc.size) throw new UploadLost();
    slicer.destroy();
    let mark = marks[0]!;
    for (const m of marks) if (m.offset <= held) mark = m;
    slicer = new Slicer(await ctx.open(mark.offset, signal), mark.offset, mark.hash.copy(), desc, ctx.what);
    await slicer.skip(held - mark.offset);
    ctx.resumes++;
  };

  try {
    while (slicer.offset < desc.size) {
      const start = slicer.offset;
      if (marks.at(-1)!.offset < start) marks.push({ offset: start, hash: slicer.hash.copy() });
      const chunkSize = Math.max(1, ctx.opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
      const len = Math.min(chunkSize, desc.size - start);
      const body = slicer.take(len, (n) => {
        ctx.sent += n;
        ctx.opts.onBytes?.(n);
        const now = Date.now();
        if (now - lastEmit >= 100) {
          lastEmit = now;
          ctx.emit('uploading', { current: slicer.offset });
        }
      });
      let res: TransportResponse;
      try {
        res = await transport.request({
          method: 'PATCH',
          path: location,
          scope: { name: repository, actions: ['pull', 'push'] },
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${start}-${start + len - 1}`,
            'content-length': String(len),
          },
          body,
          accept: [400, 404, 416],
          ...(signal ? { signal } : {}),
        });
      } catch (err) {
        body.destroy();
        if (slicer.sourceError !== undefined) throw slicer.sourceError;
        if (signal?.aborted || !isTransient(err)) throw err;
        if (++failures > retries) throw err;
        const delay = backoff(ctx, failures);
        ctx.emit('retrying', {
          current: start,
          detail: `Retrying in ${Math.max(1, Math.round(delay / 1000))} second${delay > 1500 ? 's' : ''}`,
        });
        await sleep(delay, signal);
        await resync();
        if (slicer.offset > start) failures = 0;
        continue;
      }
      if (res.status === 404) {
        await res.dump().catch(() => {});
        throw new UploadLost();
      }
      if (res.status === 400 || res.status === 416) {
        // 416: the chunk did not start where the upload ends; 400 BLOB_UPLOAD_INVALID: the registry is still
        // writing the request the cut connection carried. Either way: ask where it stands, then go on.
        const codes = parseErrorBody(await res.text().catch(() => '')).map((e) => e.code);
        if (res.status === 400 && !codes.includes('BLOB_UPLOAD_INVALID')) {
          throw new StrataError('INVALID_ARGUMENT', `${ctx.what}: the registry refused a chunk (${codes.join(', ')})`);
        }
        if (++failures > retries) {
          throw new StrataError('UNAVAILABLE', `${ctx.what}: the registry keeps refusing the chunk at ${start}`);
        }
        await sleep(backoff(ctx, failures), signal);
        await resync();
        continue;
      }
      await res.dump().catch(() => {});
      location = resolveLocation(transport, res, ctx.what);
      const held = rangeEnd(res);
      if (held !== undefined && held !== slicer.offset && !(held === 1 && slicer.offset === 0)) {
        // The registry holds another amount than we sent: trust it.
        await resync(held);
        continue;
      }
      failures = 0;
    }
    await slicer.end();
  } catch (err) {
    slicer.destroy();
    if (!(err instanceof UploadLost) && slicer.sourceError !== undefined) {
      await cancel(ctx, location);
      throw slicer.sourceError;
    }
    if (err instanceof DigestMismatchError || err instanceof SizeMismatchError) await cancel(ctx, location);
    throw err;
  }
  const actual = `${alg}:${slicer.hash.copy().digest('hex')}`;
  if (actual !== desc.digest) {
    await cancel(ctx, location);
    throw new DigestMismatchError(ctx.what, desc.digest, actual);
  }
  ctx.emit('uploading', { current: desc.size });
  await finish(ctx, location);
}

/**
 * PUT a manifest (or index) by tag or digest, with its own media type, byte for byte. Checks the digest the
 * registry reports (Docker-Content-Digest) against the bytes' own. Unless `always`, a HEAD first: when the
 * reference already names this very manifest the PUT is skipped (a repeated push moves no bytes at all); returns
 * whether it was put.
 */
export async function putManifest(
  transport: RegistryTransport,
  repository: string,
  reference: string,
  manifest: { bytes: Buffer; mediaType: string; digest: Digest },
  opts: { signal?: AbortSignal; what?: string; always?: boolean } = {},
): Promise<boolean> {
  if (!opts.always) {
    try {
      const head = await transport.request({
        method: 'HEAD',
        path: paths.manifest(repository, reference),
        headers: { accept: manifest.mediaType },
        scope: { name: repository, actions: ['pull', 'push'] },
        accept: [404],
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      await head.dump().catch(() => {});
      const have = header(head, Header.ContentDigest)?.trim();
      if (head.status === 200 && have === manifest.digest) return false;
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      // Cannot tell: put it.
    }
  }
  const res = await transport.request({
    method: 'PUT',
    path: paths.manifest(repository, reference),
    scope: { name: repository, actions: ['pull', 'push'] },
    headers: { 'content-type': manifest.mediaType },
    body: manifest.bytes,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  await res.dump().catch(() => {});
  const sent = header(res, Header.ContentDigest)?.trim();
  if (sent && isDigest(sent) && sent !== manifest.digest) {
    throw new DigestMismatchError(`${opts.what ?? 'manifest'} (as the registry stored it)`, manifest.digest, sent);
  }
  return true;
}

import { createHash, type Hash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, type FileHandle, mkdir, open, readdir, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { addAbortSignal, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestMismatchError, errnoCode, SizeMismatchError, StrataError } from '../errors/index.js';
import {
  type Digest,
  type DigestAlgorithm,
  digestAlgorithm,
  digestFromHex,
  digestHex,
  parseDigest,
} from '../oci/index.js';
import { fsyncDir, HashingStream, withLock } from '../util/index.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

export interface Expected {
  digest?: Digest;
  size?: number;
  /** What the bytes are, for error messages ("layer 2 of busybox:latest"). */
  what?: string;
}

/**
 * Bytes written and verified in ingest/, not yet visible as a blob. `commit()` makes them visible (idempotent: if
 * another writer committed the same digest first, this one is discarded); `abort()` throws them away.
 * `path` may be read before commit, e.g. to unpack a layer before the image that uses it is accepted.
 */
export interface Ingested extends BlobInfo {
  readonly path: string;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export interface ReadOptions {
  /** Byte offset to start at; a read from 0 to the end is verified against the digest as it streams. */
  start?: number;
  signal?: AbortSignal;
}

/**
 * The content-addressed blob store: `blobs/<alg>/<hex>` under the root, each blob stored once, read-only.
 *
 * Contract: nothing becomes visible under blobs/ until its bytes hashed to the expected digest and size, were
 * fsynced, renamed into place and the directory fsynced (containerd's order). A process killed at any moment
 * leaves at most an entry under ingest/, which is never read as a blob. Two writers of the same digest are safe:
 * both write their own ingest file and the second rename replaces identical bytes.
 */
export class ContentStore {
  readonly root: string;
  readonly #blobs: string;
  readonly #ingest: string;

  constructor(root: string) {
    this.root = root;
    this.#blobs = join(root, 'blobs');
    this.#ingest = join(root, 'ingest');
  }

  blobPath(d: Digest): string {
    return join(this.#blobs, digestAlgorithm(d), digestHex(d));
  }

  async info(d: Digest): Promise<BlobInfo | undefined> {
    try {
      const st = await stat(this.blobPath(d));
      return { digest: d, size: st.size };
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  async has(d: Digest): Promise<boolean> {
    return (await this.info(d)) !== undefined;
  }

  async #require(d: Digest): Promise<BlobInfo> {
    const info = await this.info(d);
    if (!info) {
      throw new StrataError('NOT_FOUND', `blob ${d} not found in the content store at ${this.root}`, {
        hint: 'the image is incomplete: pull or load it again, and run `strata fsck` to check the store',
      });
    }
    return info;
  }

  /** A stream of the blob's bytes. A whole-blob read fails with DigestMismatchError if the bytes on disk rotted. */
  async read(d: Digest, opts: ReadOptions = {}): Promise<Readable> {
    const info = await this.#require(d);
    const start = opts.start ?? 0;
    const file = createReadStream(this.blobPath(d), { start, signal: opts.signal, highWaterMark: 1 << 20 });
    if (start !== 0) return file;
    const verifier = new VerifyingStream(d, info.size, `blob ${d}`);
    file.on('error', (err) => verifier.destroy(err));
    return file.pipe(verifier);
  }

  /** The whole blob in memory, verified; for manifests and configs, refused above `maxBytes`. */
  async readBytes(d: Digest, maxBytes = 4 << 20): Promise<Buffer> {
    const info = await this.#require(d);
    if (info.size > maxBytes) {
      throw new StrataError(
        'INVALID_ARGUMENT',
        `blob ${d} is ${info.size} bytes, more than the ${maxBytes} allowed here`,
      );
    }
    const data = await readFile(this.blobPath(d));
    const hex = createHash(digestAlgorithm(d)).update(data).digest('hex');
    if (hex !== digestHex(d)) {
      throw new DigestMismatchError(`blob ${this.blobPath(d)}`, d, `${digestAlgorithm(d)}:${hex}`, {
        hint: 'the store is corrupt: run `strata fsck`, then pull or load the image again',
      });
    }
    return data;
  }

  /**
   * Stream `src` into ingest/, hashing as it goes, then verify size and digest and fsync. The result is not yet a
   * blob: call `commit()`. On any error the ingest file is removed and the error rethrown.
   */
  async ingest(src: Readable | Uint8Array, expected: Expected = {}, signal?: AbortSignal): Promise<Ingested> {
    const algorithm: DigestAlgorithm = expected.digest ? digestAlgorithm(expected.digest) : 'sha256';
    const dir = join(this.#ingest, `${Date.now().toString(36)}-${process.pid}-${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { recursive: true });
    const path = join(dir, 'data');
    const hasher = new HashingStream(algorithm);
    const what = expected.what ?? (expected.digest ? `blob ${expected.digest}` : 'blob');
    try {
      const source = src instanceof Uint8Array ? Readable.from([src]) : src;
      const limit = expected.size === undefined ? undefined : new SizeLimit(expected.size, what);
      const stages: NodeJS.ReadWriteStream[] = limit ? [limit, hasher] : [hasher];
      await pipeline([source, ...stages, createWriteStream(path, { flags: 'wx', mode: 0o644 })], { signal });
      const fh = await open(path, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (expected.size !== undefined && hasher.size !== expected.size) {
        throw new SizeMismatchError(what, expected.size, hasher.size);
      }
      const digest = digestFromHex(hasher.hex(), algorithm);
      if (expected.digest && digest !== expected.digest) throw new DigestMismatchError(what, expected.digest, digest);
      return this.#ingested(dir, path, digest, hasher.size);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  #ingested(dir: string, path: string, digest: Digest, size: number): Ingested {
    let done = false;
    return {
      digest,
      size,
      path,
      commit: async () => {
        if (done) return;
        done = true;
        const target = this.blobPath(digest);
        const targetDir = join(this.#blobs, digestAlgorithm(digest));
        await mkdir(targetDir, { recursive: true });
        await chmod(path, 0o444);
        await rename(path, target);
        await fsyncDir(targetDir);
        await rm(dir, { recursive: true, force: true });
      },
      abort: async () => {
        if (done) return;
        done = true;
        await rm(dir, { recursive: true, force: true });
      },
    };
  }

  /** ingest + commit. Returns what was stored; a blob already present is verified against the new bytes anyway. */
  async put(src: Readable | Uint8Array, expected: Expected = {}, signal?: AbortSignal): Promise<BlobInfo> {
    const sameSize = expected.size === undefined || (src instanceof Uint8Array && expected.size === src.byteLength);
    if (src instanceof Uint8Array && sameSize && expected.digest?.startsWith('sha256:')) {
      // Bytes in hand whose blob is already stored (a rebuild's config and manifest): nothing to write or fsync.
      const d = expected.digest;
      const have = await this.info(d);
      if (have?.size === src.byteLength && `sha256:${createHash('sha256').update(src).digest('hex')}` === d) {
        return have;
      }
    }
    const ing = await this.ingest(src, expected, signal);
    await ing.commit();
    return { digest: ing.digest, size: ing.size };
  }

  async delete(d: Digest): Promise<boolean> {
    try {
      await rm(this.blobPath(d));
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw err;
    }
  }

  /** Every blob in the store (by its file name; `verify()` checks the content). */
  async *walk(): AsyncGenerator<BlobInfo> {
    for (const alg of ['sha256', 'sha512'] as const) {
      let names: string[];
      try {
        names = await readdir(join(this.#blobs, alg));
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue;
        throw err;
      }
      for (const name of names.sort()) {
        let digest: Digest;
        try {
          digest = parseDigest(`${alg}:${name}`);
        } catch {
          continue; // not a blob name: fsck reports it
        }
        const st = await stat(join(this.#blobs, alg, name)).catch(() => undefined);
        if (st) yield { digest, size: st.size };
      }
    }
  }

  /** Names under blobs/<alg>/ that are not valid digests (fsck reports them). */
  async strayBlobNames(): Promise<string[]> {
    const out: string[] = [];
    for (const alg of ['sha256', 'sha512'] as const) {
      const names = await readdir(join(this.#blobs, alg)).catch(() => [] as string[]);
      for (const name of names) {
        try {
          parseDigest(`${alg}:${name}`);
        } catch {
          out.push(join(this.#blobs, alg, name));
        }
      }
    }
    return out;
  }

  /** Re-hash a blob; returns the digest its bytes actually have. */
  async verify(d: Digest): Promise<Digest> {
    const h = new HashingStream(digestAlgorithm(d));
    await pipeline(createReadStream(this.blobPath(d), { highWaterMark: 1 << 20 }), h, new DevNull());
    return digestFromHex(h.hex(), digestAlgorithm(d));
  }

  /**
   * A resumable ingest for one blob: a stable entry `ingest/r-<alg>-<hex>/data` named by the digest (so a later
   * process finds it), held under a cross-process lock (`ingest/r-<alg>-<hex>.lock`) so two writers never write the
   * same file. Bytes already there are re-hashed on open (streaming) to restore the hash state; `offset` says where
   * to continue (an HTTP `Range: bytes=<offset>-`). The entry survives its writer's death (cleanIngest spares it
   * until its age limit) and is never visible as a blob until `commit()`.
   *
   * Waits while another process holds the lock; check `has(digest)` afterwards, it may have committed the blob.
   */
  async resumable(
    digest: Digest,
    size: number,
    opts: { what?: string; signal?: AbortSignal } = {},
  ): Promise<ResumableIngest> {
    const dir = join(this.#ingest, resumableName(digest));
    let release: () => Promise<void>;
    for (;;) {
      opts.signal?.throwIfAborted();
      try {
        release = await holdLock(dir);
        break;
      } catch (err) {
        // withLock gave up after about a minute: the holder is alive (it refreshes the lock), so keep waiting.
        if (!(err instanceof StrataError && err.code === 'UNAVAILABLE')) throw err;
      }
    }
    try {
      await mkdir(dir, { recursive: true });
      const path = join(dir, 'data');
      let fh: FileHandle;
      try {
        fh = await open(path, 'r+');
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
        fh = await open(path, 'w+', 0o644);
      }
      const w = new ResumableIngest(this, dir, path, fh, digest, size, opts.what ?? `blob ${digest}`, release);
      await w.restore(opts.signal);
      return w;
    } catch (err) {
      await release();
      throw err;
    }
  }

  /**
   * Remove ingest entries left by processes that died (the writer's pid is in the entry's name) or older than
   * `maxAgeMs`. A live writer's entry is never touched.
   */
  async cleanIngest(maxAgeMs = 24 * 3600_000): Promise<number> {
    const names = await readdir(this.#ingest).catch(() => [] as string[]);
    let removed = 0;
    for (const name of names) {
      const p = join(this.#ingest, name);
      const st = await stat(p).catch(() => undefined);
      if (!st) continue;
      if (name.startsWith('r-')) {
        // Resumable entries outlive their writer on purpose; only age removes them, never while a live writer
        // holds the lock (refreshed every second) or appends to the data (its mtime).
        if (name.endsWith('.lock')) continue;
        const data = await stat(join(p, 'data')).catch(() => undefined);
        const lock = await stat(`${p}.lock`).catch(() => undefined);
        if (lock && Date.now() - lock.mtimeMs < 30_000) continue;
        if (Date.now() - Math.max(st.mtimeMs, data?.mtimeMs ?? 0) > maxAgeMs) {
          await rm(p, { recursive: true, force: true });
          await rm(`${p}.lock`, { recursive: true, force: true });
          removed++;
        }
        continue;
      }
      const pid = Number(name.split('-')[1]);
      const dead = Number.isInteger(pid) && pid > 0 && !processAlive(pid);
      if (dead || Date.now() - st.mtimeMs > maxAgeMs) {
        await rm(p, { recursive: true, force: true });
        removed++;
      }
    }
    return removed;
  }
}

function resumableName(d: Digest): string {
  return `r-${digestAlgorithm(d)}-${digestHex(d)}`;
}

/** Take a `withLock` lock and keep it until the returned function is called. */
function holdLock(path: string): Promise<() => Promise<void>> {
  return new Promise((resolve, reject) => {
    let letGo!: () => void;
    const held = new Promise<void>((r) => {
      letGo = r;
    });
    let acquired = false;
    const done: Promise<void> = withLock(path, async () => {
      acquired = true;
      resolve(async () => {
        letGo();
        await done.catch(() => {});
      });
      await held;
    });
    done.catch((err: unknown) => {
      if (!acquired) reject(err);
    });
  });
}

/**
 * A blob being written resumably (see `ContentStore.resumable`). Bytes are written at explicit positions and
 * hashed after they were written, so `offset` always counts bytes that are on disk and in the hash state. Exactly
 * one of `commit()`, `release()` (keep the bytes for a later resume) or `abort()` (drop them) ends it and lets go
 * of the lock.
 */
export class ResumableIngest {
  #hash: Hash;
  #offset = 0;
  #verified = false;
  #ended = false;
  readonly #release: () => Promise<void>;
  readonly algorithm: DigestAlgorithm;

  constructor(
    readonly store: ContentStore,
    readonly dir: string,
    /** The data file: readable before commit (to unpack a layer as soon as it is verified). */
    readonly path: string,
    readonly fh: FileHandle,
    readonly digest: Digest,
    readonly size: number,
    readonly what: string,
    release: () => Promise<void>,
  ) {
    this.#release = release;
    this.algorithm = digestAlgorithm(digest);
    this.#hash = createHash(this.algorithm);
  }

  /** Bytes on disk and hashed: where the next byte goes. */
  get offset(): number {
    return this.#offset;
  }

  /** Bytes found on disk when it was opened (restored from an earlier attempt). */
  restored = 0;

  /** Re-hash the bytes an earlier writer left (streaming). Called once, by `ContentStore.resumable`. */
  async restore(signal?: AbortSignal): Promise<void> {
    const st = await this.fh.stat();
    if (st.size > this.size) {
      await this.reset();
      return;
    }
    if (st.size === 0) return;
    const src = this.fh.createReadStream({ start: 0, end: st.size - 1, autoClose: false, highWaterMark: 1 << 20 });
    if (signal) addAbortSignal(signal, src);
    for await (const chunk of src as AsyncIterable<Buffer>) {
      this.#hash.update(chunk);
      this.#offset += chunk.length;
    }
    this.restored = this.#offset;
  }

  /**
   * Append a stream at `offset`, hashing as it goes; `onBytes` hears each chunk written. Bytes past `size` fail
   * with SizeMismatchError. On any error (a cut connection) what was written stays and `offset` counts it.
   */
  async append(
    src: Readable | Uint8Array,
    opts: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
  ): Promise<number> {
    this.#check();
    this.#verified = false;
    const source = src instanceof Uint8Array ? Readable.from([src]) : src;
    if (opts.signal) addAbortSignal(opts.signal, source);
    let n = 0;
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (this.#offset + chunk.length > this.size) {
          throw new SizeMismatchError(this.what, this.size, this.#offset + chunk.length);
        }
        let done = 0;
        while (done < chunk.length) {
          const { bytesWritten } = await this.fh.write(chunk, done, chunk.length - done, this.#offset + done);
          done += bytesWritten;
        }
        this.#hash.update(chunk);
        this.#offset += chunk.length;
        n += chunk.length;
        opts.onBytes?.(chunk.length);
      }
    } finally {
      if (!source.destroyed) source.destroy();
    }
    return n;
  }

  /** Throw away the bytes and start again at 0 (the source cannot resume, or the bytes were wrong). */
  async reset(): Promise<void> {
    this.#check();
    await this.fh.truncate(0);
    this.#hash = createHash(this.algorithm);
    this.#offset = 0;
    this.#verified = false;
  }

  /**
   * Check the complete blob against its size and digest and fsync it. Throws SizeMismatchError or
   * DigestMismatchError; the bytes stay until `reset()` or `abort()`.
   */
  async verify(): Promise<void> {
    this.#check();
    if (this.#offset !== this.size) throw new SizeMismatchError(this.what, this.size, this.#offset);
    const actual = digestFromHex(this.#hash.copy().digest('hex'), this.algorithm);
    if (actual !== this.digest) throw new DigestMismatchError(this.what, this.digest, actual);
    await this.fh.sync();
    this.#verified = true;
  }

  get verified(): boolean {
    return this.#verified;
  }

  /** Make the verified bytes a blob (idempotent if the blob exists already) and let go of the lock. */
  async commit(): Promise<void> {
    if (!this.#verified) throw new StrataError('INTERNAL', `${this.what}: commit before verify`);
    this.#check();
    this.#ended = true;
    try {
      await this.fh.close();
      const target = this.store.blobPath(this.digest);
      const targetDir = dirname(target);
      await mkdir(targetDir, { recursive: true });
      await chmod(this.path, 0o444);
      await rename(this.path, target);
      await fsyncDir(targetDir);
      await rm(this.dir, { recursive: true, force: true });
    } finally {
      await this.#release();
    }
  }

  /** Keep the bytes for a later attempt and let go of the lock. */
  async release(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    try {
      await this.fh.truncate(this.#offset).catch(() => {});
      await this.fh.close().catch(() => {});
    } finally {
      await this.#release();
    }
  }

  /** Drop the bytes and the entry, and let go of the lock. */
  async abort(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    try {
      await this.fh.close().catch(() => {});
      await rm(this.path, { force: true });
      await rmdir(this.dir).catch(() => {});
    } finally {
      await this.#release();
    }
  }

  #check(): void {
    if (this.#ended) throw new StrataError('INTERNAL', `${this.what}: resumable ingest used after it ended`);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/** Passes bytes through and fails the stream at the end if they do not hash to `digest` with `size` bytes. */
export class VerifyingStream extends Transform {
  readonly #hasher: Hash;
  #size = 0;
  constructor(
    readonly digest: Digest,
    readonly expectedSize: number | undefined,
    readonly what: string,
  ) {
    super();
    this.#hasher = createHash(digestAlgorithm(digest));
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.#hasher.update(chunk);
    this.#size += chunk.length;
    if (this.expectedSize !== undefined && this.#size > this.expectedSize) {
      cb(new SizeMismatchError(this.what, this.expectedSize, this.#size));
      return;
    }
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.expectedSize !== undefined && this.#size !== this.expectedSize) {
      cb(new SizeMismatchError(this.what, this.expectedSize, this.#size));
      return;
    }
    const actual = `${digestAlgorithm(this.digest)}:${this.#hasher.digest('hex')}`;
    cb(actual === this.digest ? null : new DigestMismatchError(this.what, this.digest, actual));
  }
}

/** Fails as soon as more than `max` bytes pass, so an oversized or endless source is cut early. */
class SizeLimit extends Transform {
  #seen = 0;
  constructor(
    readonly max: number,
    readonly what: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.max) cb(new SizeMismatchError(this.what, this.max, this.#seen));
    else cb(null, chunk);
  }
}

class DevNull extends Transform {
  override _transform(_c: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    cb();
  }
}

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { createParallelGzip, decompressStream, layerMediaType } from '../archive/index.js';
import { VerifyingStream } from '../content/index.js';
import { paths } from '../distribution/index.js';
import { DigestMismatchError, errnoCode, StrataError } from '../errors/index.js';
import {
  Annotation,
  type Descriptor,
  type Digest,
  digestAlgorithm,
  digestFromHex,
  digestHex,
  digestOf,
  type ImageConfig,
  type ImageManifest,
  layerCompression,
  MAX_DOCUMENT_BYTES,
  MediaType,
  parseImageConfig,
  parseIndex,
} from '../oci/index.js';
import { parseReference, type Reference } from '../reference/index.js';
import { fsyncDir, HashingStream, tempPathFor, withLock, writeFileAtomic } from '../util/index.js';
import { fetchManifest } from './manifest.js';
import { isTransient } from './puller.js';
import { decompressFile, isGzipFile, TarIndex } from './tar-index.js';
import type { ProgressFn, RegistryTransport } from './types.js';
import { type BlobPushResult, pushBlob, putManifest, sleep } from './upload.js';

/**
 * The ends of a copy (skopeo's transports): an image source gives manifests and blobs, an image destination takes
 * them. Registries (`docker://`), OCI image layout directories (`oci:`), OCI layout tars (`oci-archive:`) and
 * docker-archive tars (`docker-archive:`). Blob bytes stream from source to destination and are verified on the
 * way (digest and size); nothing goes through the local store. Sources read archives in place (an index of the
 * tar's entries); destinations write archives to a temp file renamed into place on commit, so a failed copy
 * leaves no manifest behind.
 */

/** A manifest (or index) exactly as stored: its digest is the bytes' digest. */
export interface CopyManifest {
  bytes: Buffer;
  digest: Digest;
  mediaType: string;
}

export interface ImageSource {
  /** As the user named it: `docker://127.0.0.1:5000/app:1`, `oci:/tmp/layout:app`. */
  readonly description: string;
  /** Set for a registry: where the blobs are (cross-repository mounts on the same registry). */
  readonly registry?: { host: string; repository: string };
  /** The manifest or index the name points at. */
  topManifest(signal?: AbortSignal): Promise<CopyManifest>;
  /** A manifest an index lists. */
  manifest(desc: Descriptor, signal?: AbortSignal): Promise<CopyManifest>;
  /** A blob's bytes from `start` (the copy verifies them). */
  blob(desc: Descriptor, start: number, signal?: AbortSignal): Promise<Readable>;
  close(): Promise<void>;
}

export interface ImageContext {
  manifest: ImageManifest;
  config: ImageConfig;
  rawConfig: Buffer;
}

export type BlobOpen = (start: number, signal?: AbortSignal) => Promise<Readable>;

export interface PutBlobOptions {
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  /** Layers report progress; configs do not. */
  layer: boolean;
  /** Where the source registry holds the blob, for a mount when the destination is the same registry. */
  source?: { host: string; repository: string };
  onBytes?: (n: number) => void;
  what: string;
}

export interface ImageDestination {
  readonly description: string;
  /** False for docker-archive: it has no manifests (it writes manifest.json); one image per copy. */
  readonly storesManifests: boolean;
  /** Called before an image's blobs, with its manifest and (verified) config. */
  beginImage(ctx: ImageContext): Promise<void>;
  putBlob(desc: Descriptor, open: BlobOpen, opts: PutBlobOptions): Promise<BlobPushResult['state']>;
  /** Put a manifest; `top` is the one the destination's name will point at. */
  putManifest(m: CopyManifest, top: boolean, signal?: AbortSignal): Promise<void>;
  /** Make the copy visible (tag, index.json, rename the archive into place). */
  commit(top: CopyManifest, signal?: AbortSignal): Promise<void>;
  /** Throw away what commit would have made visible. */
  abort(): Promise<void>;
}

function copyError(what: string, problem: string, hint?: string): StrataError {
  return new StrataError('INVALID_ARGUMENT', `${what}: ${problem}`, hint ? { hint } : {});
}

function checkBytes(bytes: Buffer, digest: Digest, what: string): void {
  const actual = digestFromHex(
    createHash(digestAlgorithm(digest)).update(bytes).digest('hex'),
    digestAlgorithm(digest),
  );
  if (actual !== digest) throw new DigestMismatchError(what, digest, actual);
}

function blobPath(d: Digest): string {
  return `blobs/${digestAlgorithm(d)}/${digestHex(d)}`;
}

function docMediaType(bytes: Buffer, fallback: string | undefined): string {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (typeof v.mediaType === 'string' && v.mediaType) return v.mediaType;
    if (fallback) return fallback;
    return Array.isArray(v.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  } catch {
    return fallback ?? MediaType.OciManifest;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Registry

/**
 * A registry blob from `start`, read through a connection cut: the GET is repeated with `Range: bytes=<offset>-`
 * from where the bytes stopped, `retries` times in a row without progress.
 */
function registryBlobStream(
  transport: RegistryTransport,
  repository: string,
  desc: Descriptor,
  start: number,
  signal: AbortSignal | undefined,
  retries = 5,
): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    let offset = start;
    let failures = 0;
    while (offset < desc.size || (desc.size === 0 && offset === 0 && failures === 0)) {
      let body: Readable | undefined;
      try {
        const res = await transport.request({
          method: 'GET',
          path: paths.blob(repository, desc.digest),
          headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
          scope: { name: repository, actions: ['pull'] },
          ...(signal ? { signal } : {}),
        });
        body = res.body;
        let skip = 0;
        if (offset > 0 && res.status !== 206) skip = offset; // the registry sent it all: drop what we have
        for await (const chunk of body as AsyncIterable<Buffer>) {
          let c = chunk;
          if (skip > 0) {
            if (c.length <= skip) {
              skip -= c.length;
              continue;
            }
            c = c.subarray(skip);
            skip = 0;
          }
          offset += c.length;
          failures = 0;
          yield c;
        }
        if (desc.size === 0 || offset >= desc.size) return;
        throw new StrataError('UNAVAILABLE', `blob ${desc.digest}: the connection closed at ${offset} of ${desc.size}`);
      } catch (err) {
        body?.destroy();
        if (signal?.aborted || !isTransient(err) || ++failures > retries) throw err;
        await sleep(Math.min(8000, 250 * 2 ** failures), signal);
      }
    }
  }
  return Readable.from(gen(), { objectMode: false });
}

export class RegistrySource implements ImageSource {
  readonly description: string;
  readonly registry: { host: string; repository: string };
  constructor(
    readonly transport: RegistryTransport,
    readonly ref: Reference,
    readonly ownsTransport = false,
  ) {
    this.description = `docker://${ref.toString()}`;
    this.registry = { host: ref.registry, repository: ref.repository };
  }

  async topManifest(signal?: AbortSignal): Promise<CopyManifest> {
    const m = await fetchManifest(this.transport, this.ref.repository, this.ref.digest ?? this.ref.tag ?? 'latest', {
      what: this.ref.familiar(),
      ...(signal ? { signal } : {}),
    });
    return { bytes: m.bytes, digest: m.digest, mediaType: m.mediaType };
  }

  async manifest(desc: Descriptor, signal?: AbortSignal): Promise<CopyManifest> {
    const m = await fetchManifest(this.transport, this.ref.repository, desc.digest, {
      what: `${this.ref.name}@${desc.digest}`,
      ...(signal ? { signal } : {}),
    });
    return { bytes: m.bytes, digest: m.digest, mediaType: m.mediaType };
  }

  async blob(desc: Descriptor, start: number, signal?: AbortSignal): Promise<Readable> {
    return registryBlobStream(this.transport, this.ref.repository, desc, start, signal);
  }

  async close(): Promise<void> {
    if (this.ownsTransport) await this.transport.close();
  }
}

export interface RegistryDestinationOptions {
  /** Repositories of this registry to try mounting from (from a blob-sources record). */
  mountCandidates?: (digest: Digest) => string[];
  chunkSize?: number;
  monolithicMax?: number;
  retries?: number;
  retryDelayMs?: number;
}

export class RegistryDestination implements ImageDestination {
  readonly description: string;
  readonly storesManifests = true;
  /** Blobs now in the repository (pushed, mounted or already there), for the caller's blob-source record. */
  readonly blobs = new Set<Digest>();
  constructor(
    readonly transport: RegistryTransport,
    readonly ref: Reference,
    readonly opts: RegistryDestinationOptions = {},
    readonly ownsTransport = false,
  ) {
    this.description = `docker://${ref.toString()}`;
  }

  async beginImage(): Promise<void> {}

  async putBlob(desc: Descriptor, open: BlobOpen, o: PutBlobOptions): Promise<BlobPushResult['state']> {
    const repo = this.ref.repository;
    const from: string[] = [];
    if (o.source && o.source.host === this.ref.registry && o.source.repository !== repo) from.push(o.source.repository);
    for (const r of this.opts.mountCandidates?.(desc.digest) ?? []) if (r !== repo && !from.includes(r)) from.push(r);
    const res = await pushBlob(this.transport, repo, desc, open, {
      progress: o.layer,
      mountFrom: from.slice(0, 3),
      what: o.what,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      ...(o.onBytes ? { onBytes: o.onBytes } : {}),
      ...(this.opts.chunkSize !== undefined ? { chunkSize: this.opts.chunkSize } : {}),
      ...(this.opts.monolithicMax !== undefined ? { monolithicMax: this.opts.monolithicMax } : {}),
      ...(this.opts.retries !== undefined ? { retries: this.opts.retries } : {}),
      ...(this.opts.retryDelayMs !== undefined ? { retryDelayMs: this.opts.retryDelayMs } : {}),
    });
    this.blobs.add(desc.digest);
    return res.state;
  }

  async putManifest(m: CopyManifest, top: boolean, signal?: AbortSignal): Promise<void> {
    const reference = top ? (this.ref.digest ?? this.ref.tag ?? 'latest') : m.digest;
    if (top && this.ref.digest && this.ref.digest !== m.digest) {
      throw copyError(
        this.description,
        `the copied manifest has digest ${m.digest}, not the ${this.ref.digest} the destination names`,
        'name the destination by tag',
      );
    }
    await putManifest(this.transport, this.ref.repository, reference, m, {
      what: `manifest for ${this.description}`,
      ...(signal ? { signal } : {}),
    });
  }

  async commit(): Promise<void> {}
  async abort(): Promise<void> {}

  async close(): Promise<void> {
    if (this.ownsTransport) await this.transport.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// OCI image layout (directory or tar)

/** Files of an OCI layout, in a directory or a tar. */
interface LayoutFiles {
  readonly where: string;
  size(path: string): Promise<number | undefined>;
  open(path: string, start: number, signal?: AbortSignal): Promise<Readable>;
  readSmall(path: string, max: number, what: string): Promise<Buffer>;
}

class DirFiles implements LayoutFiles {
  constructor(readonly where: string) {}
  async size(path: string): Promise<number | undefined> {
    try {
      const st = await stat(join(this.where, path));
      return st.isFile() ? st.size : undefined;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
      throw err;
    }
  }
  async open(path: string, start: number, signal?: AbortSignal): Promise<Readable> {
    if ((await this.size(path)) === undefined) throw copyError(this.where, `${path} is missing`);
    return createReadStream(join(this.where, path), { start, highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
  }
  async readSmall(path: string, max: number, what: string): Promise<Buffer> {
    const size = await this.size(path);
    if (size === undefined) throw copyError(this.where, `${what} (${path}) is missing`);
    if (size > max) throw copyError(this.where, `${what} is ${size} bytes, over the ${max} allowed`);
    return readFile(join(this.where, path));
  }
}

class TarFiles implements LayoutFiles {
  constructor(
    readonly where: string,
    readonly index: TarIndex,
  ) {}
  async size(path: string): Promise<number | undefined> {
    return this.index.get(path)?.size;
  }
  async open(path: string, start: number, signal?: AbortSignal): Promise<Readable> {
    const e = this.index.get(path);
    if (!e) throw copyError(this.where, `${path} is missing from the archive`);
    return this.index.read(e, start, signal);
  }
  async readSmall(path: string, max: number, what: string): Promise<Buffer> {
    const e = this.index.get(path);
    if (!e) throw copyError(this.where, `${what} (${path}) is missing from the archive`);
    return this.index.readSmall(e, max, what);
  }
}

/** Index a tar (decompressing it to `tmp` first when it is gzip-compressed). */
async function openTar(path: string, tmp: () => Promise<string>, signal?: AbortSignal): Promise<TarIndex> {
  try {
    await stat(path);
  } catch (err) {
    throw new StrataError('NOT_FOUND', `archive ${path} not found`, { cause: err });
  }
  if (await isGzipFile(path)) {
    const out = join(await tmp(), 'archive.tar');
    await decompressFile(path, out, signal);
    return TarIndex.open(out);
  }
  return TarIndex.open(path);
}

function refMatches(name: string | undefined, want: string): boolean {
  if (name === undefined) return false;
  if (name === want) return true;
  try {
    return parseReference(name).toString() === parseReference(want).toString();
  } catch {
    return false;
  }
}

export class OciSource implements ImageSource {
  #top: Descriptor | undefined;
  constructor(
    readonly description: string,
    readonly files: LayoutFiles,
    readonly ref: string | undefined,
    readonly cleanup: () => Promise<void> = async () => {},
  ) {}

  static async directory(dir: string, ref: string | undefined): Promise<OciSource> {
    if ((await stat(dir).catch(() => undefined))?.isDirectory() !== true) {
      throw new StrataError('NOT_FOUND', `OCI layout directory ${dir} not found`);
    }
    return new OciSource(`oci:${dir}${ref ? `:${ref}` : ''}`, new DirFiles(dir), ref);
  }

  static async archive(file: string, ref: string | undefined, tmp: () => Promise<string>): Promise<OciSource> {
    const index = await openTar(file, tmp);
    return new OciSource(`oci-archive:${file}${ref ? `:${ref}` : ''}`, new TarFiles(file, index), ref);
  }

  async #resolve(): Promise<Descriptor> {
    if (this.#top) return this.#top;
    if ((await this.files.size('oci-layout')) === undefined) {
      throw copyError(this.description, 'not an OCI image layout (no oci-layout file)');
    }
    const index = parseIndex(await this.files.readSmall('index.json', MAX_DOCUMENT_BYTES, 'index.json'));
    const names = index.manifests.map((d) => d.annotations?.[Annotation.RefName]).filter((n): n is string => !!n);
    let found: Descriptor | undefined;
    if (this.ref !== undefined) {
      found =
        index.manifests.find((d) => d.annotations?.[Annotation.RefName] === this.ref) ??
        index.manifests.find((d) => refMatches(d.annotations?.[Annotation.RefName], this.ref as string));
      if (!found) {
        throw new StrataError('NOT_FOUND', `${this.description}: no image named "${this.ref}" in index.json`, {
          hint: names.length ? `the layout names: ${names.join(', ')}` : 'the layout names no images',
        });
      }
    } else if (index.manifests.length === 1) {
      found = index.manifests[0];
    } else {
      throw copyError(
        this.description,
        `index.json lists ${index.manifests.length} images: say which one`,
        names.length ? `append :NAME, one of: ${names.join(', ')}` : undefined,
      );
    }
    this.#top = found as Descriptor;
    return this.#top;
  }

  async topManifest(): Promise<CopyManifest> {
    return this.manifest(await this.#resolve());
  }

  async manifest(desc: Descriptor): Promise<CopyManifest> {
    const bytes = await this.files.readSmall(blobPath(desc.digest), MAX_DOCUMENT_BYTES, `manifest ${desc.digest}`);
    checkBytes(bytes, desc.digest, `manifest ${desc.digest} in ${this.description}`);
    return { bytes, digest: desc.digest, mediaType: docMediaType(bytes, desc.mediaType || undefined) };
  }

  async blob(desc: Descriptor, start: number, signal?: AbortSignal): Promise<Readable> {
    return this.files.open(blobPath(desc.digest), start, signal);
  }

  async close(): Promise<void> {
    await this.cleanup();
  }
}

/** Write a verified blob into `dir/blobs/...` (temp file, fsync, rename); false when it was there already. */
async function writeLayoutBlob(dir: string, desc: Descriptor, src: Readable, signal?: AbortSignal): Promise<boolean> {
  const target = join(dir, blobPath(desc.digest));
  const st = await stat(target).catch(() => undefined);
  if (st?.isFile() && st.size === desc.size) {
    src.destroy();
    return false;
  }
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  try {
    await pipeline(
      src,
      new VerifyingStream(desc.digest, desc.size, `blob ${desc.digest}`),
      createWriteStream(tmp, { flags: 'wx', mode: 0o644 }),
      signal ? { signal } : {},
    );
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return true;
}

export class OciDirDestination implements ImageDestination {
  readonly description: string;
  readonly storesManifests = true;
  constructor(
    readonly dir: string,
    readonly ref: string | undefined,
  ) {
    this.description = `oci:${dir}${ref ? `:${ref}` : ''}`;
  }

  async beginImage(): Promise<void> {
    await mkdir(join(this.dir, 'blobs'), { recursive: true });
    const layout = join(this.dir, 'oci-layout');
    if ((await stat(layout).catch(() => undefined)) === undefined) {
      await writeFileAtomic(layout, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    }
  }

  async putBlob(desc: Descriptor, open: BlobOpen, o: PutBlobOptions): Promise<BlobPushResult['state']> {
    const target = join(this.dir, blobPath(desc.digest));
    const st = await stat(target).catch(() => undefined);
    if (st?.isFile() && st.size === desc.size) return 'exists';
    const src = await open(0, o.signal);
    const counted = countBytes(src, o.onBytes);
    await writeLayoutBlob(this.dir, desc, counted, o.signal);
    return 'uploaded';
  }

  async putManifest(m: CopyManifest, _top: boolean, signal?: AbortSignal): Promise<void> {
    await mkdir(join(this.dir, 'blobs'), { recursive: true });
    await writeLayoutBlob(
      this.dir,
      { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length },
      Readable.from([m.bytes]),
      signal,
    );
  }

  async commit(top: CopyManifest): Promise<void> {
    const indexPath = join(this.dir, 'index.json');
    const desc: Descriptor = {
      mediaType: top.mediaType,
      digest: top.digest,
      size: top.bytes.length,
      ...(this.ref ? { annotations: { [Annotation.RefName]: this.ref } } : {}),
    };
    await withLock(indexPath, async () => {
      let manifests: Descriptor[] = [];
      try {
        manifests = parseIndex(await readFile(indexPath)).manifests;
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') {
          throw new StrataError('DATA_LOSS', `${indexPath} is not a valid image index`, { cause: err });
        }
      }
      manifests = this.ref
        ? manifests.filter((d) => d.annotations?.[Annotation.RefName] !== this.ref)
        : manifests.filter((d) => d.digest !== top.digest || d.annotations?.[Annotation.RefName]);
      manifests.push(desc);
      const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
      await writeFileAtomic(indexPath, `${JSON.stringify(index)}\n`);
    });
    await fsyncDir(this.dir).catch(() => {});
  }

  async abort(): Promise<void> {}
}

/** `src` passed through a counter that tells `onBytes` about each chunk (errors forwarded). */
function countBytes(src: Readable, onBytes: ((n: number) => void) | undefined): Readable {
  if (!onBytes) return src;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
  src.on('error', (err) => counter.destroy(err));
  return src.pipe(counter);
}

/** A tar written entry by entry to a temp file next to `path`, renamed over it on `finish()`. */
class TarWriter {
  readonly pack = tar.pack();
  readonly tmp: string;
  readonly done: Promise<void>;
  readonly names = new Set<string>();
  #queue: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string) {
    this.tmp = tempPathFor(path);
    this.done = pipeline(this.pack, createWriteStream(this.tmp, { flags: 'wx', mode: 0o644 }));
    this.done.catch(() => {});
  }

  /** Entries are written one at a time, in call order. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  addBytes(name: string, data: Buffer): Promise<void> {
    this.names.add(name);
    return new Promise((resolve, reject) => {
      this.pack.entry({ name, size: data.length, mode: 0o644, mtime: new Date(0) }, data, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  /** Stream `size` bytes into an entry. A failing source fails the whole archive (it is only renamed on finish). */
  async addStream(name: string, size: number, src: Readable, signal?: AbortSignal): Promise<void> {
    this.names.add(name);
    const entry = this.pack.entry({ name, size, mode: 0o644, mtime: new Date(0) });
    try {
      await pipeline(src, entry, signal ? { signal } : {});
    } catch (err) {
      this.pack.destroy(err as Error);
      throw err;
    }
  }

  async finish(): Promise<void> {
    this.pack.finalize();
    await this.done;
    const fh = await open(this.tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(this.tmp, this.path);
    await fsyncDir(dirname(this.path)).catch(() => {});
  }

  async abort(): Promise<void> {
    if (!this.pack.destroyed) this.pack.destroy();
    await this.done.catch(() => {});
    await rm(this.tmp, { force: true });
  }
}

export class OciArchiveDestination implements ImageDestination {
  readonly description: string;
  readonly storesManifests = true;
  #tar: TarWriter | undefined;
  readonly #manifests = new Set<Digest>();
  constructor(
    readonly file: string,
    readonly ref: string | undefined,
  ) {
    this.description = `oci-archive:${file}${ref ? `:${ref}` : ''}`;
  }

  #writer(): TarWriter {
    if (!this.#tar) {
      this.#tar = new TarWriter(this.file);
      const t = this.#tar;
      t.serial(() => t.addBytes('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })))).catch(
        () => {},
      );
    }
    return this.#tar;
  }

  async beginImage(): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    this.#writer();
  }

  async putBlob(desc: Descriptor, open: BlobOpen, o: PutBlobOptions): Promise<BlobPushResult['state']> {
    const t = this.#writer();
    const name = blobPath(desc.digest);
    return t.serial(async () => {
      if (t.names.has(name)) return 'exists';
      const src = countBytes(await open(0, o.signal), o.onBytes);
      await t.addStream(name, desc.size, src.pipe(verifier(src, desc, o.what)), o.signal);
      return 'uploaded';
    });
  }

  async putManifest(m: CopyManifest): Promise<void> {
    const t = this.#writer();
    const name = blobPath(m.digest);
    this.#manifests.add(m.digest);
    await t.serial(async () => {
      if (!t.names.has(name)) await t.addBytes(name, m.bytes);
    });
  }

  async commit(top: CopyManifest): Promise<void> {
    const t = this.#writer();
    const desc: Descriptor = {
      mediaType: top.mediaType,
      digest: top.digest,
      size: top.bytes.length,
      ...(this.ref ? { annotations: { [Annotation.RefName]: this.ref } } : {}),
    };
    const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [desc] };
    await t.serial(() => t.addBytes('index.json', Buffer.from(JSON.stringify(index))));
    await t.finish();
  }

  async abort(): Promise<void> {
    await this.#tar?.abort();
  }
}

/** A VerifyingStream fed by `src` (its errors forwarded). */
function verifier(src: Readable, desc: Descriptor, what: string): VerifyingStream {
  const v = new VerifyingStream(desc.digest, desc.size, what);
  src.on('error', (err) => v.destroy(err));
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// docker-archive

interface BuiltArchive {
  manifest: CopyManifest;
  blobs: Map<Digest, () => Readable>;
}

interface DockerArchiveItem {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/**
 * A docker-archive (what `docker save` writes) as a source. It has no manifest: one is built as docker and skopeo
 * do, a Docker schema 2 manifest over the config (byte for byte, so the image ID stays) and the layers. Layers the
 * archive holds uncompressed are gzip-compressed (deterministically) to a temp file first, unless the destination
 * is another docker-archive: registries and layouts get compressed layers, as they would from skopeo.
 */
export class DockerArchiveSource implements ImageSource {
  readonly description: string;
  #built: BuiltArchive | undefined;
  constructor(
    readonly file: string,
    readonly ref: string | undefined,
    readonly index: TarIndex,
    readonly tmp: () => Promise<string>,
    readonly compress: boolean,
  ) {
    this.description = `docker-archive:${file}${ref ? `:${ref}` : ''}`;
  }

  static async open(
    file: string,
    ref: string | undefined,
    tmp: () => Promise<string>,
    opts: { compress: boolean },
  ): Promise<DockerArchiveSource> {
    return new DockerArchiveSource(file, ref, await openTar(file, tmp), tmp, opts.compress);
  }

  #item(list: DockerArchiveItem[]): DockerArchiveItem {
    const tags = (i: DockerArchiveItem) => i.RepoTags ?? [];
    if (this.ref === undefined) {
      if (list.length === 1) return list[0]!;
      throw copyError(
        this.description,
        `the archive holds ${list.length} images: say which one`,
        `append :NAME:TAG or :@N; it holds ${list.flatMap(tags).join(', ') || 'untagged images'}`,
      );
    }
    const at = /^@(\d+)$/.exec(this.ref);
    if (at) {
      const item = list[Number(at[1])];
      if (!item) throw copyError(this.description, `there is no image ${this.ref} (the archive holds ${list.length})`);
      return item;
    }
    const found = list.find((i) => tags(i).some((t) => refMatches(t, this.ref as string)));
    if (!found) {
      throw new StrataError('NOT_FOUND', `${this.description}: no image tagged "${this.ref}" in the archive`, {
        hint: `it holds ${list.flatMap(tags).join(', ') || 'untagged images'}`,
      });
    }
    return found;
  }

  async #build(signal?: AbortSignal): Promise<BuiltArchive> {
    if (this.#built) return this.#built;
    const what = this.description;
    const mf = this.index.get('manifest.json');
    if (!mf) throw copyError(what, 'not a docker-archive (no manifest.json)');
    let list: unknown;
    try {
      list = JSON.parse((await this.index.readSmall(mf, MAX_DOCUMENT_BYTES, 'manifest.json')).toString('utf8'));
    } catch (err) {
      if (err instanceof StrataError) throw err;
      throw copyError(what, 'manifest.json is not valid JSON');
    }
    if (!Array.isArray(list) || list.length === 0) throw copyError(what, 'manifest.json lists no images');
    for (const [i, it] of list.entries()) {
      const e = it as Partial<DockerArchiveItem>;
      if (typeof e.Config !== 'string' || !Array.isArray(e.Layers) || !e.Layers.every((l) => typeof l === 'string')) {
        throw copyError(what, `manifest.json[${i}] needs Config (a string) and Layers (strings)`);
      }
    }
    const item = this.#item(list as DockerArchiveItem[]);
    const cfgEntry = this.index.get(item.Config);
    if (!cfgEntry) throw copyError(what, `the config ${item.Config} is missing from the archive`);
    const rawConfig = await this.index.readSmall(cfgEntry, MAX_DOCUMENT_BYTES, 'image config');
    const configDigest = digestOf(rawConfig);
    const base = basename(item.Config).replace(/\.json$/, '');
    if (/^[0-9a-f]{64}$/.test(base) && configDigest !== `sha256:${base}`) {
      throw new DigestMismatchError(`config ${item.Config} in ${what}`, `sha256:${base}`, configDigest);
    }
    const config = parseImageConfig(rawConfig);
    if (config.rootfs.diff_ids.length !== item.Layers.length) {
      throw copyError(
        what,
        `manifest.json lists ${item.Layers.length} layers but the config has ${config.rootfs.diff_ids.length} diff_ids`,
      );
    }
    const blobs = new Map<Digest, () => Readable>();
    blobs.set(configDigest, () => Readable.from([rawConfig]));
    const layers: Descriptor[] = [];
    for (const [i, name] of item.Layers.entries()) {
      const entry = this.index.get(name);
      if (!entry) throw copyError(what, `layer ${name} is missing from the archive`);
      const diffId = config.rootfs.diff_ids[i] as Digest;
      const gz = await isGzipFile(this.index.path, entry.offset).catch(() => false);
      const layerWhat = `layer ${i} ("${name}") of ${what}`;
      if (gz) {
        // Already compressed: pushed as it is; its digest is the file's.
        const h = new HashingStream('sha256');
        await pipeline(this.index.read(entry, 0, signal), h, devNull());
        const digest = digestFromHex(h.hex());
        layers.push({ mediaType: MediaType.DockerLayer, digest, size: entry.size });
        blobs.set(digest, () => this.index.read(entry, 0));
      } else if (!this.compress) {
        layers.push({ mediaType: layerMediaType('docker', 'none'), digest: diffId, size: entry.size });
        blobs.set(diffId, () => this.index.read(entry, 0));
      } else {
        const out = join(await this.tmp(), `layer-${i}.tar.gz`);
        const raw = new VerifyingStream(diffId, entry.size, layerWhat);
        const packed = new HashingStream('sha256');
        await pipeline(this.index.read(entry, 0, signal), raw, createParallelGzip(), packed, createWriteStream(out), {
          ...(signal ? { signal } : {}),
        });
        const digest = digestFromHex(packed.hex());
        layers.push({ mediaType: MediaType.DockerLayer, digest, size: packed.size });
        blobs.set(digest, () => createReadStream(out, { highWaterMark: 1 << 20 }));
      }
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, digest: configDigest, size: rawConfig.length },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    this.#built = { manifest: { bytes, digest: digestOf(bytes), mediaType: MediaType.DockerManifest }, blobs };
    return this.#built;
  }

  async topManifest(signal?: AbortSignal): Promise<CopyManifest> {
    return (await this.#build(signal)).manifest;
  }

  async manifest(desc: Descriptor): Promise<CopyManifest> {
    const top = await this.topManifest();
    if (desc.digest !== top.digest) throw copyError(this.description, `no manifest ${desc.digest}`);
    return top;
  }

  async blob(desc: Descriptor, start: number): Promise<Readable> {
    const open = (await this.#build()).blobs.get(desc.digest);
    if (!open) throw copyError(this.description, `no blob ${desc.digest}`);
    const src = open();
    return start > 0 ? skipBytes(src, start) : src;
  }

  async close(): Promise<void> {}
}

function skipBytes(src: Readable, n: number): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    let skip = n;
    for await (const chunk of src as AsyncIterable<Buffer>) {
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      yield skip > 0 ? chunk.subarray(skip) : chunk;
      skip = 0;
    }
  }
  return Readable.from(gen(), { objectMode: false });
}

function devNull(): Writable {
  return new Writable({
    write(_chunk, _enc, cb) {
      cb();
    },
  });
}

/**
 * A docker-archive destination: `manifest.json` (Config, RepoTags, Layers), the config as `<id>.json` and each
 * layer uncompressed as `<diffId>.tar`, what `docker load`, `podman load` and `strata load` read. Compressed layers
 * are decompressed through a temp file (a tar entry needs its size first), checked against the blob digest and
 * the config's diff_id on the way.
 */
export class DockerArchiveDestination implements ImageDestination {
  readonly description: string;
  readonly storesManifests = false;
  #tar: TarWriter | undefined;
  #image: ImageContext | undefined;
  readonly repoTags: string[];
  constructor(
    readonly file: string,
    readonly ref: string | undefined,
    readonly tmp: () => Promise<string>,
  ) {
    this.description = `docker-archive:${file}${ref ? `:${ref}` : ''}`;
    this.repoTags = [];
    if (ref) {
      const r = parseReference(ref);
      if (r.digest) throw copyError(this.description, 'a docker-archive names images by tag, not by digest');
      this.repoTags.push(r.familiar());
    }
  }

  async beginImage(ctx: ImageContext): Promise<void> {
    if (this.#image) throw copyError(this.description, 'a docker-archive destination takes one image');
    if (ctx.manifest.layers.length !== ctx.config.rootfs.diff_ids.length) {
      throw copyError(
        this.description,
        `the manifest lists ${ctx.manifest.layers.length} layers but the config has ${ctx.config.rootfs.diff_ids.length} diff_ids`,
      );
    }
    this.#image = ctx;
    await mkdir(dirname(this.file), { recursive: true });
    this.#tar = new TarWriter(this.file);
  }

  async putBlob(desc: Descriptor, open: BlobOpen, o: PutBlobOptions): Promise<BlobPushResult['state']> {
    const img = this.#image;
    const t = this.#tar;
    if (!img || !t) throw new StrataError('INTERNAL', 'docker-archive: putBlob before beginImage');
    if (desc.digest === img.manifest.config.digest) {
      return t.serial(async () => {
        const name = `${digestHex(desc.digest)}.json`;
        if (t.names.has(name)) return 'exists';
        const src = await open(0, o.signal);
        const chunks: Buffer[] = [];
        for await (const c of src.pipe(verifier(src, desc, o.what)) as AsyncIterable<Buffer>) chunks.push(c);
        await t.addBytes(name, Buffer.concat(chunks));
        return 'uploaded';
      });
    }
    const i = img.manifest.layers.findIndex((l) => l.digest === desc.digest);
    if (i < 0) throw new StrataError('INTERNAL', `docker-archive: ${desc.digest} is not a layer of the image`);
    const diffId = img.config.rootfs.diff_ids[i] as Digest;
    const name = `${digestHex(diffId)}.tar`;
    if (layerCompression(desc.mediaType) === 'none' || desc.digest === diffId) {
      if (desc.digest !== diffId) {
        throw new DigestMismatchError(
          `${o.what}: an uncompressed layer's digest must be its diff_id`,
          diffId,
          desc.digest,
        );
      }
      return t.serial(async () => {
        if (t.names.has(name)) return 'exists';
        const src = countBytes(await open(0, o.signal), o.onBytes);
        await t.addStream(name, desc.size, src.pipe(verifier(src, desc, o.what)), o.signal);
        return 'uploaded';
      });
    }
    if (t.names.has(name)) return 'exists';
    // Decompress to a temp file (verifying both digests), then add it: a tar entry needs its size up front.
    const out = join(await this.tmp(), `${digestHex(diffId)}.tar`);
    const src = countBytes(await open(0, o.signal), o.onBytes);
    const plain = new HashingStream(digestAlgorithm(diffId));
    await pipeline(decompressStream(src.pipe(verifier(src, desc, o.what))), plain, createWriteStream(out), {
      ...(o.signal ? { signal: o.signal } : {}),
    });
    const got = digestFromHex(plain.hex(), digestAlgorithm(diffId));
    if (got !== diffId) {
      await rm(out, { force: true });
      throw new DigestMismatchError(`${o.what} (uncompressed, against the config's diff_id)`, diffId, got);
    }
    try {
      return await t.serial(async () => {
        if (t.names.has(name)) return 'exists';
        await t.addStream(name, plain.size, createReadStream(out, { highWaterMark: 1 << 20 }), o.signal);
        return 'uploaded';
      });
    } finally {
      await rm(out, { force: true });
    }
  }

  async putManifest(): Promise<void> {}

  async commit(): Promise<void> {
    const img = this.#image;
    const t = this.#tar;
    if (!img || !t) throw new StrataError('INTERNAL', 'docker-archive: commit before beginImage');
    const manifest = [
      {
        Config: `${digestHex(img.manifest.config.digest)}.json`,
        RepoTags: this.repoTags,
        Layers: img.config.rootfs.diff_ids.map((d) => `${digestHex(d)}.tar`),
      },
    ];
    await t.serial(() => t.addBytes('manifest.json', Buffer.from(JSON.stringify(manifest))));
    await t.finish();
  }

  async abort(): Promise<void> {
    await this.#tar?.abort();
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** A lazily made temp directory, removed by `cleanup()`. */
export function tempArea(base: string): { dir: () => Promise<string>; cleanup: () => Promise<void> } {
  let made: Promise<string> | undefined;
  return {
    dir: () => {
      made ??= mkdir(base, { recursive: true }).then(() => mkdtemp(join(base, 'copy-')));
      return made;
    },
    cleanup: async () => {
      if (made) await rm(await made, { recursive: true, force: true });
    },
  };
}

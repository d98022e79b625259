import type { BigIntStats } from 'node:fs';
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readlinkSync, readSync } from 'node:fs';
import { type FileHandle, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Duplex, pipeline, Readable } from 'node:stream';
import { errnoCode, PathEscapeError, StrataError } from '../errors/index.js';
import { type Digest, digestFromHex } from '../oci/index.js';
import { HashingStream } from '../util/index.js';
import { devMajor, devMinor, getXattrSync, readXattrsSync } from './fs-meta.js';
import { createParallelGzip } from './gzip.js';
import { type Compression, layerMediaType } from './media-type.js';
import { entryComponents, sortByPathBytes } from './paths.js';
import { END_OF_ARCHIVE, encodeHeader, padding, type TarHeader } from './tar-format.js';

export interface LayerInfo {
  /** sha256 of the uncompressed tar: what the image config lists in rootfs.diff_ids. */
  diffId: Digest;
  /** sha256 of the bytes of `stream`: the blob digest in the manifest. */
  digest: Digest;
  /** Bytes of `stream`. */
  size: number;
  uncompressedSize: number;
  mediaType: string;
}

export interface PackOptions {
  /** Default 'gzip'. */
  compression?: Compression;
  /** gzip level, default 6 (gzip's and pigz's default). */
  level?: number;
  /** Seconds; every mtime later than this is clamped to it, for reproducible layers. */
  sourceDateEpoch?: number;
  /** Which media type string LayerInfo carries (default 'oci'). */
  mediaType?: 'oci' | 'docker';
  signal?: AbortSignal;
}

/**
 * A layer being produced. Nothing is read from disk until `stream` is read; `info` resolves once `stream` has ended
 * (so a caller must consume the stream) and rejects with the same error the stream fails with.
 */
export interface PackedLayer {
  stream: Readable;
  info: Promise<LayerInfo>;
}

export type ChangeKind = 'A' | 'C' | 'D';

/** One line of `docker diff`: added, changed or deleted; `path` is absolute within the container, e.g. '/etc/passwd'. */
export interface Change {
  kind: ChangeKind;
  path: string;
}

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

/** What goes into the tar, before sorting: a file system object to describe, or a synthesized whiteout. */
type Planned = { name: string; source: string } | { name: string; header: TarHeader };

const SMALL_FILE = 512 * 1024;
const READ_CHUNK = 1024 * 1024;
const BATCH_BYTES = 256 * 1024;

function cancelled(signal: AbortSignal): StrataError {
  return new StrataError('CANCELLED', 'layer creation was cancelled', { cause: signal.reason });
}

function mtimeSeconds(st: BigIntStats): number {
  const ns = st.mtimeNs;
  let s = ns / 1_000_000_000n;
  if (ns < 0n && ns % 1_000_000_000n !== 0n) s -= 1n;
  return Number(s);
}

function clampMtime(mtime: number, epoch: number | undefined): number {
  return epoch !== undefined && mtime > epoch ? epoch : mtime;
}

function changedWhilePacking(path: string, what = 'changed size'): StrataError {
  return new StrataError('FAILED_PRECONDITION', `${path} ${what} while it was being packed`, {
    hint: 'stop whatever writes to the directory (pause or stop the container) and try again',
  });
}

// O_NOFOLLOW plus an inode check: if the file was swapped for a symlink (or anything else) after it was examined,
// packing fails instead of reading whatever the new path points at, possibly a host file.
const OPEN_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW;

function sameInode(a: BigIntStats, b: BigIntStats, path: string): void {
  if (a.ino !== b.ino || a.dev !== b.dev) throw changedWhilePacking(path, 'was replaced');
}

// Small files are read synchronously: open/read/close from the page cache cost microseconds, far less than three
// threadpool round trips each, and the deflate work keeps running on the threadpool meanwhile.
function readSmallFile(path: string, st: BigIntStats, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (err) {
    throw errnoCode(err) === 'ELOOP' ? changedWhilePacking(path, 'was replaced') : err;
  }
  try {
    sameInode(st, fstatSync(fd, { bigint: true }), path);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, null);
      if (n === 0) throw changedWhilePacking(path);
      off += n;
    }
  } finally {
    closeSync(fd);
  }
  return buf;
}

async function* readLargeFile(path: string, st: BigIntStats, size: number): AsyncGenerator<Buffer> {
  let fh: FileHandle;
  try {
    fh = await open(path, OPEN_FLAGS);
  } catch (err) {
    throw errnoCode(err) === 'ELOOP' ? changedWhilePacking(path, 'was replaced') : err;
  }
  try {
    sameInode(st, await fh.stat({ bigint: true }), path);
    let remaining = size;
    while (remaining > 0) {
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, remaining));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) throw changedWhilePacking(path);
      remaining -= bytesRead;
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

function lstatForPacking(path: string): BigIntStats {
  try {
    return lstatSync(path, { bigint: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw changedWhilePacking(path, 'was removed');
    throw err;
  }
}

/** The header for one file system object, or undefined for what a layer cannot hold (sockets). */
function headerFor(name: string, path: string, st: BigIntStats, opts: PackOptions): TarHeader | undefined {
  const base = {
    name,
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: 0,
    mtime: clampMtime(mtimeSeconds(st), opts.sourceDateEpoch),
  };
  if (st.isFile()) return { ...base, type: 'file', size: Number(st.size), xattrs: readXattrsSync(path) };
  if (st.isDirectory()) return { ...base, type: 'directory', xattrs: readXattrsSync(path) };
  if (st.isSymbolicLink()) return { ...base, type: 'symlink', linkname: readlinkSync(path) };
  if (st.isFIFO()) return { ...base, type: 'fifo', xattrs: readXattrsSync(path) };
  if (st.isCharacterDevice() || st.isBlockDevice()) {
    return {
      ...base,
      type: st.isCharacterDevice() ? 'character-device' : 'block-device',
      devmajor: devMajor(st.rdev),
      devminor: devMinor(st.rdev),
      xattrs: readXattrsSync(path),
    };
  }
  return undefined; // sockets: docker and BuildKit leave them out too
}

/**
 * The tar stream: entries in the order given (already sorted), file data streamed with bounded memory, hardlinks
 * (same dev+ino met again) written as links to the first path. Small entries are batched into larger chunks so the
 * stages downstream see few, large buffers.
 */
async function* tarChunks(plan: () => Promise<Planned[]>, opts: PackOptions): AsyncGenerator<Buffer> {
  const entries = await plan();
  const seen = new Map<string, string>();
  let batch: Buffer[] = [];
  let batched = 0;
  const take = (): Buffer => {
    const out = batch.length === 1 ? batch[0]! : Buffer.concat(batch, batched);
    batch = [];
    batched = 0;
    return out;
  };
  for (const entry of entries) {
    if (opts.signal?.aborted) throw cancelled(opts.signal);
    if ('header' in entry) {
      batch.push(encodeHeader(entry.header));
      batched += 512;
    } else {
      const st = lstatForPacking(entry.source);
      let header = headerFor(entry.name, entry.source, st, opts);
      if (!header) continue;
      if (header.type === 'file' && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = seen.get(key);
        if (first === undefined) seen.set(key, entry.name);
        else header = { ...header, type: 'link', linkname: first, size: 0, xattrs: new Map() };
      }
      const head = encodeHeader(header);
      if (header.type !== 'file' || header.size === 0) {
        batch.push(head);
        batched += head.length;
      } else if (header.size <= SMALL_FILE) {
        batch.push(head, readSmallFile(entry.source, st, header.size), padding(header.size));
        batched += head.length + header.size + padding(header.size).length;
      } else {
        batch.push(head);
        batched += head.length;
        yield take();
        yield* readLargeFile(entry.source, st, header.size);
        const pad = padding(header.size);
        if (pad.length > 0) {
          batch.push(pad);
          batched += pad.length;
        }
      }
    }
    if (batched >= BATCH_BYTES) yield take();
  }
  batch.push(END_OF_ARCHIVE);
  batched += END_OF_ARCHIVE.length;
  yield take();
}

/** Wires tar → diffId hash → [gzip → digest hash] and exposes the last stage as the layer stream. */
function packedLayer(plan: () => Promise<Planned[]>, opts: PackOptions): PackedLayer {
  const compression = opts.compression ?? 'gzip';
  if (compression !== 'gzip' && compression !== 'none') {
    throw new StrataError('INVALID_ARGUMENT', `unsupported layer compression "${String(compression)}"`, {
      hint: "use 'gzip' or 'none'",
    });
  }
  const tar = Readable.from(tarChunks(plan, opts), { objectMode: false, highWaterMark: READ_CHUNK });
  const diff = new HashingStream();
  const stages: Duplex[] = [diff];
  let out: HashingStream = diff;
  if (compression === 'gzip') {
    out = new HashingStream();
    stages.push(createParallelGzip({ level: opts.level ?? 6 }), out);
  }
  const signal = opts.signal;
  const onAbort = (): void => {
    tar.destroy(cancelled(signal!));
  };
  let fail: (err: unknown) => void = () => {};
  const info = new Promise<LayerInfo>((resolve, reject) => {
    fail = reject;
    out.once('end', () => {
      signal?.removeEventListener('abort', onAbort);
      const diffId = digestFromHex(diff.hex());
      resolve({
        diffId,
        digest: out === diff ? diffId : digestFromHex(out.hex()),
        size: out.size,
        uncompressedSize: diff.size,
        mediaType: layerMediaType(opts.mediaType ?? 'oci', compression),
      });
    });
  });
  // A caller that only reads the stream sees the error there; it must not also surface as an unhandled rejection.
  info.catch(() => {});
  pipeline([tar, ...stages], (err) => {
    if (!err) return;
    signal?.removeEventListener('abort', onAbort);
    fail(err);
  });
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  return { stream: out, info };
}

/** Every path under `dir` (relative, '/'-separated), parents before children; symlinked dirs are not followed. */
async function walk(dir: string, visit?: (rel: string, abs: string) => void): Promise<string[]> {
  const out: string[] = [];
  const pending: string[] = [''];
  while (pending.length > 0) {
    const rel = pending.pop()!;
    const abs = rel === '' ? dir : join(dir, rel);
    for (const d of await readdir(abs, { withFileTypes: true })) {
      const child = rel === '' ? d.name : `${rel}/${d.name}`;
      out.push(child);
      visit?.(child, join(abs, d.name));
      if (d.isDirectory()) pending.push(child);
    }
  }
  return out;
}

async function ensureDirectory(dir: string): Promise<void> {
  let st: BigIntStats;
  try {
    st = lstatSync(dir, { bigint: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new StrataError('NOT_FOUND', `directory ${dir} does not exist`);
    throw err;
  }
  if (!st.isDirectory()) throw new StrataError('INVALID_ARGUMENT', `${dir} is not a directory`);
}

/**
 * A layer holding the whole tree under `dir` (the directory itself is not an entry): entries sorted bytewise by
 * path, owners, modes, mtimes, xattrs, hardlinks, symlinks, devices and fifos preserved.
 */
export function packDirectory(dir: string, opts: PackOptions = {}): PackedLayer {
  return packedLayer(async () => {
    await ensureDirectory(dir);
    const names = await walk(dir);
    return sortByPathBytes(
      names.map((name) => ({ name, source: join(dir, name) })),
      (p) => p.name,
    );
  }, opts);
}

function whiteoutName(components: string[]): string {
  const base = components[components.length - 1]!;
  return [...components.slice(0, -1), `${WHITEOUT_PREFIX}${base}`].join('/');
}

/**
 * A layer from a change list (`docker diff` / commit): 'A' and 'C' paths are read from `root` (each path alone, not
 * its subtree: changed children are listed on their own), 'D' paths become `.wh.<name>` whiteouts. A change path that
 * climbs out with ".." or crosses a symlink inside `root` is refused with PathEscapeError: `root` is usually a
 * container's file system, and a symlink there must not pull host files into the layer.
 */
export function packChanges(root: string, changes: Change[], opts: PackOptions = {}): PackedLayer {
  return packedLayer(async () => {
    await ensureDirectory(root);
    const byName = new Map<string, Planned>();
    for (const change of changes) {
      const parts = entryComponents(change.path, change.path);
      if (parts.length === 0) continue; // the root directory is never an entry
      if (change.kind === 'D') {
        const name = whiteoutName(parts);
        byName.set(name, {
          name,
          header: { name, type: 'file', mode: 0o600, uid: 0, gid: 0, size: 0, mtime: opts.sourceDateEpoch ?? 0 },
        });
        continue;
      }
      if (change.kind !== 'A' && change.kind !== 'C') {
        throw new StrataError('INVALID_ARGUMENT', `unknown change kind "${String(change.kind)}" for ${change.path}`);
      }
      let abs = root;
      for (const [i, part] of parts.entries()) {
        abs = join(abs, part);
        let st: BigIntStats;
        try {
          st = lstatSync(abs, { bigint: true });
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') throw err;
          throw new StrataError('NOT_FOUND', `changed path ${change.path} does not exist under ${root}`, {
            hint: 'the file system changed after the change list was computed; compute it again',
          });
        }
        if (i < parts.length - 1 && !st.isDirectory()) {
          throw new PathEscapeError(change.path, `parent "${parts.slice(0, i + 1).join('/')}" is not a directory`);
        }
      }
      const name = parts.join('/');
      byName.set(name, { name, source: abs });
    }
    return sortByPathBytes([...byName.values()], (p) => p.name);
  }, opts);
}

/**
 * A layer from an overlayfs upper directory, converting overlay's whiteouts to OCI's: a 0/0 character device becomes
 * an empty `.wh.<name>` file (mode 0600, the device's owner and mtime, as docker writes it), a directory with
 * trusted.overlay.opaque=y becomes the directory plus `.wh..wh..opq` inside it (its children stay in the layer).
 * overlay's internal xattrs (trusted.overlay.*) are left out.
 */
export function packOverlayUpper(upperDir: string, opts: PackOptions = {}): PackedLayer {
  return packedLayer(async () => {
    await ensureDirectory(upperDir);
    const planned: Planned[] = [];
    await walk(upperDir, (rel, abs) => {
      const st = lstatSync(abs, { bigint: true });
      const parts = rel.split('/');
      if (st.isCharacterDevice() && st.rdev === 0n) {
        const name = whiteoutName(parts);
        planned.push({
          name,
          header: {
            name,
            type: 'file',
            mode: 0o600,
            uid: Number(st.uid),
            gid: Number(st.gid),
            size: 0,
            mtime: clampMtime(mtimeSeconds(st), opts.sourceDateEpoch),
          },
        });
        return;
      }
      planned.push({ name: rel, source: abs });
      if (st.isDirectory() && getXattrSync(abs, OVERLAY_OPAQUE_XATTR)?.toString() === 'y') {
        const name = `${rel}/${OPAQUE_WHITEOUT}`;
        planned.push({
          name,
          header: {
            name,
            type: 'file',
            mode: Number(st.mode) & 0o777,
            uid: Number(st.uid),
            gid: Number(st.gid),
            size: 0,
            mtime: clampMtime(mtimeSeconds(st), opts.sourceDateEpoch),
          },
        });
      }
    });
    return sortByPathBytes(planned, (p) => p.name);
  }, opts);
}

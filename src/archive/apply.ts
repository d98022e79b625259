import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import {
  closeSync,
  constants as fsc,
  fchmodSync,
  fchownSync,
  futimesSync,
  chmodSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  write,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { errnoCode, PathEscapeError, StrataError } from '../errors/index.js';
import { type Digest, digestFromHex } from '../oci/index.js';
import { mapLimit } from '../util/index.js';
import { decompressStream } from './decompress.js';
import { isOverlayXattr, mknod, setXattrSync } from './fs-meta.js';
import { OPAQUE_WHITEOUT, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX } from './pack.js';
import { entryComponents } from './paths.js';
import { decodePaxRecords } from './tar-format.js';

export interface ApplyOptions {
  /**
   * 'delete': OCI whiteouts delete what lower layers put in `targetDir` (a flattened root file system).
   * 'overlay': they become overlayfs whiteouts (0/0 character devices, trusted.overlay.opaque=y) in a fresh snapshot
   * directory that will be an overlay lowerdir.
   */
  whiteouts: 'delete' | 'overlay';
  signal?: AbortSignal;
}

export interface ApplyResult {
  /** Tar entries read, whiteouts included. */
  entries: number;
  uncompressedSize: number;
  /** sha256 of the uncompressed tar; compare it with the image config's rootfs.diff_ids. */
  diffId: Digest;
}

/** A tar-stream header once PAX records have been decoded by decodePax below (xattr values stay raw bytes). */
interface EntryHeader {
  name: string;
  type: string | null;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  linkname: string | null;
  devmajor: number;
  devminor: number;
  pax: Record<string, string | Buffer> | null;
}

type PaxObject = Record<string, string | Buffer>;

interface ExtractInternals {
  _header: { type: string };
  _pax: PaxObject | null;
  _paxGlobal: PaxObject | null;
  _decodeLongHeader(buf: Buffer): void;
}

const XATTR_SCHILY = 'SCHILY.xattr.';
const XATTR_LIBARCHIVE = 'LIBARCHIVE.xattr.';

/**
 * tar-stream decodes PAX values as UTF-8 strings, which destroys binary xattrs such as security.capability. This
 * replaces its PAX decoding on one extractor so xattr values stay Buffers (everything else stays a string, as
 * tar-stream expects). The override is checked so an upgrade that renames the hook fails loudly, not silently.
 */
function rawPaxExtractor(): tar.Extract {
  const ex = tar.extract();
  const internals = ex as unknown as ExtractInternals;
  const original = internals._decodeLongHeader;
  if (typeof original !== 'function' || !('_paxGlobal' in internals)) {
    throw new StrataError('INTERNAL', 'tar-stream internals changed: cannot decode binary PAX records', {
      hint: 'pin tar-stream to 3.x in package.json',
    });
  }
  internals._decodeLongHeader = function (this: ExtractInternals, buf: Buffer): void {
    const type = this._header.type;
    if (type !== 'pax-header' && type !== 'pax-global-header') {
      original.call(this, buf);
      return;
    }
    const records = decodePaxRecords(buf);
    if (!records) throw new StrataError('INVALID_ARGUMENT', 'layer tar has a malformed PAX extended header');
    const obj: PaxObject = {};
    for (const [key, value] of records) {
      obj[key] = key.startsWith(XATTR_SCHILY) ? value : value.toString('utf8');
    }
    if (type === 'pax-global-header') this._paxGlobal = obj;
    else this._pax = this._paxGlobal === null ? obj : { ...this._paxGlobal, ...obj };
  };
  return ex;
}

function paxNumber(pax: PaxObject | null, key: string): number | undefined {
  const v = pax?.[key];
  if (typeof v !== 'string' || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function xattrsOf(h: EntryHeader): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [];
  for (const [key, value] of Object.entries(h.pax ?? {})) {
    let name: string;
    let data: Buffer;
    if (key.startsWith(XATTR_SCHILY)) {
      name = key.slice(XATTR_SCHILY.length);
      data = Buffer.isBuffer(value) ? value : Buffer.from(value);
    } else if (key.startsWith(XATTR_LIBARCHIVE)) {
      // bsdtar: URL-encoded name, base64 value.
      name = decodeURIComponent(key.slice(XATTR_LIBARCHIVE.length));
      data = Buffer.from(String(value), 'base64');
    } else continue;
    // A layer must not be able to forge overlay state (opaque dirs, redirects) in a snapshot.
    if (name === '' || isOverlayXattr(name)) continue;
    out.push([name, data]);
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

const LARGE_FILE = 4 * 1024 * 1024;

function writeAllSync(fd: number, chunk: Buffer): void {
  for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
}

async function writeAll(fd: number, chunk: Buffer): Promise<void> {
  for (let off = 0; off < chunk.length; ) {
    off += await new Promise<number>((resolve, reject) => {
      write(fd, chunk, off, chunk.length - off, null, (err, n) => (err ? reject(err) : resolve(n)));
    });
  }
}

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) {
    // discard: entries without data, or data strata does not use
  }
}

/**
 * Applies entries one at a time, in archive order. File system calls are synchronous on purpose: each is a few
 * microseconds against the page cache, while the async versions cost a threadpool round trip each (about 6 per
 * file) and would have to be ordered by hand anyway; decompression keeps running on the threadpool meanwhile.
 */
class Applier {
  entries = 0;
  current = '';
  readonly #root: string;
  readonly #mode: 'delete' | 'overlay';
  /** Paths this layer wrote, and their ancestors: an opaque marker or whiteout must not remove them. */
  readonly #written = new Set<string>();
  readonly #ancestors = new Set<string>();
  /** Directories known to be real directories (not symlinks) inside the root; '' is the root. */
  readonly #dirs = new Set<string>(['']);
  readonly #dirTimes = new Map<string, number>();
  /** Overlay whiteout devices to create at the end (path → mtime), a few mknod processes at a time. */
  readonly #overlayWhiteouts = new Map<string, number>();

  constructor(root: string, mode: 'delete' | 'overlay') {
    this.#root = root;
    this.#mode = mode;
  }

  async entry(h: EntryHeader, data: Readable): Promise<void> {
    this.entries++;
    this.current = h.name;
    const parts = entryComponents(h.name, h.name);
    // The root itself ("./" in `tar -C dir .` output) belongs to the caller; leave it alone.
    if (parts.length === 0) return drain(data);
    const base = parts[parts.length - 1]!;
    const mtime = paxNumber(h.pax, 'mtime') ?? h.mtime.getTime() / 1000;
    if (base.startsWith(WHITEOUT_PREFIX)) {
      await drain(data);
      return this.#whiteout(parts, h.name, mtime);
    }
    const rel = parts.join('/');
    const abs = join(this.#ensureParents(parts, h.name), base);
    const uid = paxNumber(h.pax, 'uid') ?? h.uid;
    const gid = paxNumber(h.pax, 'gid') ?? h.gid;
    const mode = h.mode & 0o7777;

    switch (h.type) {
      case 'file':
      case 'contiguous-file': {
        this.#removeExisting(abs, rel, false);
        const fd = openSync(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
        try {
          if (h.size <= LARGE_FILE) {
            for await (const chunk of data as AsyncIterable<Buffer>) writeAllSync(fd, chunk);
          } else {
            // One write in flight on the threadpool while this thread hashes and parses the next chunk: for big
            // files the copy into the page cache then overlaps the sha256 instead of adding to it.
            let inFlight: Promise<void> | undefined;
            try {
              for await (const chunk of data as AsyncIterable<Buffer>) {
                await inFlight;
                inFlight = writeAll(fd, chunk);
              }
            } finally {
              await inFlight?.catch(() => {});
            }
            await inFlight;
          }
          // chown before chmod (chown clears setuid/setgid) and before xattrs (it clears security.capability).
          fchownSync(fd, uid, gid);
          fchmodSync(fd, mode);
          this.#setXattrs(abs, h);
          futimesSync(fd, mtime, mtime);
        } finally {
          closeSync(fd);
        }
        break;
      }
      case 'directory': {
        await drain(data);
        if (!this.#removeExisting(abs, rel, true)) mkdirSync(abs, 0o700);
        this.#dirs.add(rel);
        lchownSync(abs, uid, gid);
        chmodSync(abs, mode);
        this.#setXattrs(abs, h);
        this.#dirTimes.set(rel, mtime);
        break;
      }
      case 'symlink': {
        await drain(data);
        // The target is stored as is: a symlink is harmless until followed, and nothing here follows one.
        if (!h.linkname) throw new StrataError('INVALID_ARGUMENT', `symlink entry "${h.name}" has no target`);
        this.#removeExisting(abs, rel, false);
        symlinkSync(h.linkname, abs);
        lchownSync(abs, uid, gid);
        lutimesSync(abs, mtime, mtime);
        break;
      }
      case 'link': {
        await drain(data);
        const target = this.#hardlinkTarget(h);
        if (target === abs) throw new StrataError('INVALID_ARGUMENT', `hardlink entry "${h.name}" links to itself`);
        this.#removeExisting(abs, rel, false);
        // link(2) does not follow a symlink at the target, so this links the symlink itself, inside the root.
        // Owner and mode belong to the shared inode, which the first entry already set.
        linkSync(target, abs);
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        await drain(data);
        this.#removeExisting(abs, rel, false);
        await mknod(abs, h.type, 0o600, h.devmajor, h.devminor);
        lchownSync(abs, uid, gid);
        chmodSync(abs, mode);
        this.#setXattrs(abs, h);
        lutimesSync(abs, mtime, mtime);
        break;
      }
      default:
        await drain(data);
        throw new StrataError(
          'UNIMPLEMENTED',
          `tar entry "${h.name}" has an unsupported type (${h.type ?? 'unknown'})`,
          {
            hint: 'layers hold files, directories, links, devices and fifos; GNU sparse and volume entries are not supported',
          },
        );
    }
    this.#markWritten(rel);
  }

  /** Directory mtimes last (creating children changes them), then overlay whiteout devices. */
  async finish(): Promise<void> {
    const whiteouts = [...this.#overlayWhiteouts].filter(([rel]) => !this.#written.has(rel));
    // mknod is a process spawn; a few at a time hides most of its latency.
    await mapLimit(whiteouts, 8, async ([rel, mtime]) => {
      const abs = join(this.#root, rel);
      await mknod(abs, 'character-device', 0, 0, 0);
      lutimesSync(abs, mtime, mtime);
    });
    for (const [rel, mtime] of this.#dirTimes) {
      const abs = join(this.#root, rel);
      if (lstatOrUndefined(abs)?.isDirectory()) lutimesSync(abs, mtime, mtime);
    }
  }

  #markWritten(rel: string): void {
    this.#written.add(rel);
    for (let i = rel.lastIndexOf('/'); i > 0; i = rel.lastIndexOf('/', i - 1)) {
      const parent = rel.slice(0, i);
      if (this.#ancestors.has(parent)) break;
      this.#ancestors.add(parent);
    }
  }

  /**
   * Makes sure every parent of the entry is a real directory inside the root, creating missing ones (0755, like
   * containerd). A symlink among them is refused: following it, even one this same archive just created, is how a
   * tar writes outside the root.
   */
  #ensureParents(parts: string[], entry: string): string {
    return this.#walkParents(parts.slice(0, -1), entry, true)!;
  }

  #walkParents(dirParts: string[], entry: string, create: boolean): string | undefined {
    let abs = this.#root;
    let rel = '';
    for (const part of dirParts) {
      rel = rel === '' ? part : `${rel}/${part}`;
      abs = join(abs, part);
      if (this.#dirs.has(rel)) continue;
      const st = lstatOrUndefined(abs);
      if (!st) {
        if (!create) return undefined;
        mkdirSync(abs, 0o755);
        this.#markWritten(rel);
      } else if (st.isSymbolicLink()) {
        throw new PathEscapeError(entry, `its path goes through the symlink "${rel}"`);
      } else if (!st.isDirectory()) {
        throw new StrataError('INVALID_ARGUMENT', `tar entry "${entry}": "${rel}" is not a directory`);
      }
      this.#dirs.add(rel);
    }
    return abs;
  }

  /** Clears the way for a new entry; returns true when an existing directory is kept (a directory over a directory). */
  #removeExisting(abs: string, rel: string, keepDir: boolean): boolean {
    const st = lstatOrUndefined(abs);
    if (!st) return false;
    if (st.isDirectory()) {
      if (keepDir) return true;
      rmSync(abs, { recursive: true, force: true });
      this.#forgetDirs(rel);
    } else {
      unlinkSync(abs);
    }
    return false;
  }

  #forgetDirs(rel: string): void {
    this.#dirs.delete(rel);
    const prefix = `${rel}/`;
    for (const d of this.#dirs) if (d.startsWith(prefix)) this.#dirs.delete(d);
  }

  #hardlinkTarget(h: EntryHeader): string {
    if (!h.linkname) throw new StrataError('INVALID_ARGUMENT', `hardlink entry "${h.name}" has no target`);
    let parts: string[];
    try {
      parts = entryComponents(h.linkname, h.name);
    } catch (err) {
      if (err instanceof PathEscapeError) {
        throw new PathEscapeError(h.name, `hardlink target "${h.linkname}" is outside the extraction root`);
      }
      throw err;
    }
    if (parts.length === 0) throw new PathEscapeError(h.name, 'hardlink target is the extraction root');
    let parent: string | undefined;
    try {
      parent = this.#walkParents(parts.slice(0, -1), h.name, false);
    } catch (err) {
      if (err instanceof PathEscapeError) {
        throw new PathEscapeError(h.name, `hardlink target "${h.linkname}" goes through a symlink`);
      }
      throw err;
    }
    const target = parent === undefined ? undefined : join(parent, parts[parts.length - 1]!);
    const st = target === undefined ? undefined : lstatOrUndefined(target);
    if (!target || !st) {
      throw new StrataError('INVALID_ARGUMENT', `hardlink entry "${h.name}": target "${h.linkname}" does not exist`);
    }
    if (st.isDirectory()) {
      throw new StrataError('INVALID_ARGUMENT', `hardlink entry "${h.name}": target "${h.linkname}" is a directory`);
    }
    return target;
  }

  #setXattrs(abs: string, h: EntryHeader): void {
    for (const [name, value] of xattrsOf(h)) setXattrSync(abs, name, value);
  }

  #whiteout(parts: string[], entry: string, mtime: number): void {
    const base = parts[parts.length - 1]!;
    const dirParts = parts.slice(0, -1);
    if (base === OPAQUE_WHITEOUT) {
      const dir = this.#walkParents(dirParts, entry, this.#mode === 'overlay');
      if (dir === undefined) return;
      if (this.#mode === 'overlay') {
        if (!setXattrSync(dir, OVERLAY_OPAQUE_XATTR, Buffer.from('y'))) {
          throw new StrataError(
            'FAILED_PRECONDITION',
            `cannot mark ${dir} opaque: the filesystem has no trusted xattrs`,
            {
              hint: 'overlay snapshots need a filesystem with xattr support (ext4, xfs) and root',
            },
          );
        }
      } else {
        this.#clearLower(dir, dirParts.join('/'));
      }
      return;
    }
    // Other .wh..wh. names are aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs); docker ignores them too.
    if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return;
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === '..') throw new PathEscapeError(entry, 'the whiteout names ".." (outside its directory)');
    if (name === '' || name === '.') throw new PathEscapeError(entry, 'the whiteout names its own directory');
    const rel = [...dirParts, name].join('/');
    if (this.#mode === 'overlay') {
      const dir = this.#walkParents(dirParts, entry, true)!;
      const abs = join(dir, name);
      if (this.#written.has(rel)) return;
      this.#removeExisting(abs, rel, false);
      this.#overlayWhiteouts.set(rel, mtime);
      return;
    }
    const dir = this.#walkParents(dirParts, entry, false);
    if (dir === undefined) return; // nothing below to delete
    const abs = join(dir, name);
    if (this.#written.has(rel) || this.#ancestors.has(rel)) {
      // A whiteout only ever removes what lower layers had; keep what this layer wrote.
      if (lstatOrUndefined(abs)?.isDirectory()) this.#clearLower(abs, rel);
      return;
    }
    if (lstatOrUndefined(abs)) {
      rmSync(abs, { recursive: true, force: true });
      this.#forgetDirs(rel);
    }
  }

  /** Removes what lower layers left in `dir`, keeping this layer's own entries whatever order they came in. */
  #clearLower(dir: string, rel: string): void {
    for (const name of readdirSync(dir)) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const abs = join(dir, name);
      if (this.#written.has(childRel) || this.#ancestors.has(childRel)) {
        if (this.#ancestors.has(childRel) && lstatOrUndefined(abs)?.isDirectory()) this.#clearLower(abs, childRel);
        continue;
      }
      rmSync(abs, { recursive: true, force: true });
      this.#forgetDirs(childRel);
    }
  }
}

function waitDrain(ws: tar.Extract): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      ws.off('drain', onDrain);
      ws.off('close', onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      cleanup();
      reject(new StrataError('CANCELLED', 'tar reader closed'));
    };
    ws.on('drain', onDrain);
    ws.on('close', onClose);
  });
}

/** Maps tar-stream's plain Error messages to StrataErrors that say what is wrong with the layer. */
function tarError(err: unknown, applier: Applier, bytes: number): unknown {
  if (err instanceof StrataError || !(err instanceof Error)) return err;
  const after = applier.current
    ? ` (after entry "${applier.current}", #${applier.entries})`
    : ' (before the first entry)';
  const m = err.message;
  if (m === 'Unexpected end of data') {
    if (applier.entries === 0 && bytes < 512) {
      return new StrataError(
        'INVALID_ARGUMENT',
        `layer is not a tar archive: only ${bytes} bytes, less than one header`,
        {
          cause: err,
        },
      );
    }
    return new StrataError('DATA_LOSS', `layer tar is truncated${after}`, {
      cause: err,
      hint: 'the blob was cut short; fetch it again',
    });
  }
  const problem: Record<string, string> = {
    'Invalid tar header. Maybe the tar is corrupted or it needs to be gunzipped?': 'header checksum mismatch',
    'Invalid tar header: unknown format.': 'header has neither ustar nor GNU magic',
    'Invalid header': 'header has an invalid size field',
    'Header exceeds max size': 'extended header larger than 4 MiB',
  };
  if (problem[m] !== undefined) {
    return new StrataError('INVALID_ARGUMENT', `layer is not a valid tar archive: ${problem[m]}${after}`, {
      cause: err,
      hint: 'the blob is not a layer tar (or uses a compression strata does not read) or is corrupt',
    });
  }
  if (errnoCode(err)?.startsWith('E')) {
    return new StrataError('INTERNAL', `applying layer entry "${applier.current}": ${m}`, { cause: err });
  }
  return err;
}

/**
 * Extracts a layer (gzip, zstd where Node supports it, or plain tar) into `targetDir`, converting OCI whiteouts per
 * `opts.whiteouts`, and hashes the uncompressed tar on the way (diffId). Never writes outside `targetDir`: entries
 * climbing out with "..", going through a symlink, hardlinking outside, or whiteouts naming ".." are refused with a
 * PathEscapeError naming the entry. A leading "/" is dropped, as containerd does. On error the promise rejects (the
 * source is destroyed); what was already extracted stays, so callers extract into a directory they can discard.
 */
export async function applyLayer(src: Readable, targetDir: string, opts: ApplyOptions): Promise<ApplyResult> {
  if (opts?.whiteouts !== 'delete' && opts?.whiteouts !== 'overlay') {
    throw new StrataError('INVALID_ARGUMENT', "applyLayer needs whiteouts: 'delete' or 'overlay'");
  }
  let root: string;
  try {
    root = realpathSync(targetDir);
  } catch (err) {
    src.destroy();
    throw new StrataError('NOT_FOUND', `layer target directory ${targetDir} does not exist`, { cause: err });
  }
  if (!lstatSync(root).isDirectory()) {
    src.destroy();
    throw new StrataError('INVALID_ARGUMENT', `layer target ${targetDir} is not a directory`);
  }
  const signal = opts.signal;
  const input = decompressStream(src);
  const extract = rawPaxExtractor();
  const hash = createHash('sha256');
  let size = 0;
  const applier = new Applier(root, opts.whiteouts);
  const onAbort = (): void => {
    input.destroy(new StrataError('CANCELLED', 'applying the layer was cancelled', { cause: signal?.reason }));
  };
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });

  const feeding = (async () => {
    try {
      for await (const chunk of input as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
        if (extract.destroyed) return;
        if (!extract.write(chunk)) await waitDrain(extract);
      }
      (extract as unknown as { end(): void }).end();
    } catch (err) {
      extract.destroy(err as Error);
      throw err;
    }
  })();
  feeding.catch(() => {});

  try {
    for await (const entry of extract) {
      await applier.entry(entry.header as unknown as EntryHeader, entry as unknown as Readable);
    }
    await feeding;
    await applier.finish();
  } catch (err) {
    input.destroy();
    extract.destroy();
    // The feeder's own error (truncated gzip, say) explains a tar-level failure better; a refusal by the applier
    // is the real cause whatever the feeder saw after it.
    const first = await feeding.then(
      () => err,
      (feedErr: unknown) =>
        !(err instanceof StrataError) && feedErr instanceof StrataError && feedErr.code !== 'CANCELLED' ? feedErr : err,
    );
    throw tarError(first, applier, size);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  return { entries: applier.entries, uncompressedSize: size, diffId: digestFromHex(hash.digest('hex')) };
}

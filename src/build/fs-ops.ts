import {
  chmodSync,
  closeSync,
  createReadStream,
  constants as fsConstants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readlinkSync,
  readSync,
  rmSync,
  type Stats,
  symlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { chmod, copyFile, lchown, mkdir, open } from 'node:fs/promises';
import { constants, gunzipSync } from 'node:zlib';
import { join, posix } from 'node:path';
import { applyLayer } from '../archive/index.js';
import { walkInRoot } from '../container/index.js';
import { StrataError } from '../errors/index.js';
import { type SourceEntry, yielder } from './context.js';

/** Owner and mode overrides of a COPY: `--chown` (resolved to ids) and `--chmod` (octal or symbolic). */
export interface CopyAttributes {
  uid?: number;
  gid?: number;
  /** --chmod in octal: every copied file and directory gets it. */
  mode?: number;
  /** --chmod in chmod(1)'s symbolic form (`u+x,go-w`), applied to each copied entry's own mode. */
  symbolic?: string;
  /** Keep the source's owners (COPY --from a stage or image); else root's, or uid/gid when given. */
  keepOwner?: boolean;
}

/**
 * The host path of `path` inside `rootfs` with every symlink resolved inside `rootfs`, creating missing directories
 * (mode 0755, owned by `owner` when given) on the way: COPY's destination, never outside the container's tree.
 */
export async function mkdirInRoot(rootfs: string, path: string, owner?: { uid: number; gid: number }): Promise<string> {
  const host = await walkInRoot(rootfs, path, {
    create: async (dir) => {
      await mkdir(dir, { mode: 0o755 });
      await chmod(dir, 0o755);
      if (owner) await lchown(dir, owner.uid, owner.gid);
    },
    notDirectory: (inRoot) => {
      throw new StrataError('FAILED_PRECONDITION', `cannot copy to ${path}: ${inRoot} is not a directory`, {
        hint: 'the destination (or one of its parents) exists in the image as a file',
      });
    },
  });
  if (host === undefined) throw new StrataError('INVALID_ARGUMENT', `too many levels of symbolic links in ${path}`);
  return host;
}

const WHO: Record<string, number> = { u: 0o4700, g: 0o2070, o: 0o1007 };
const PERM: Record<string, number> = { r: 0o444, w: 0o222, x: 0o111, s: 0o6000, t: 0o1000 };

/**
 * chmod(1)'s symbolic modes: comma-separated clauses of who (`ugoa`, none meaning all; there is no umask in a build,
 * as with BuildKit), then operations `+ - =` each with permissions `rwxXst` or a class to copy (`u g o`). `X` is
 * execute for a directory or for a file someone may already execute. Clauses apply in order to `mode`.
 */
export function applySymbolicMode(expression: string, mode: number, isDir: boolean): number {
  let out = mode & 0o7777;
  for (const clause of expression.split(',')) {
    const m = /^([ugoa]*)(.*)$/.exec(clause)!;
    const who = m[1]!.replace('a', 'ugo') || 'ugo';
    const whoMask = [...new Set(who)].reduce((acc, w) => acc | (WHO[w] ?? 0), 0);
    for (const op of m[2]!.match(/[-+=][^-+=]*/g) ?? []) {
      const perms = op.slice(1);
      let bits = 0;
      if (/^[ugo]$/.test(perms)) {
        // copy a class's rwx bits (as they are now) to every class named
        const shift = { u: 6, g: 3, o: 0 }[perms as 'u' | 'g' | 'o'];
        bits = ((out >> shift) & 7) * 0o111;
      } else {
        for (const p of perms) {
          if (p === 'X') bits |= isDir || (out & 0o111) !== 0 ? 0o111 : 0;
          else bits |= PERM[p] ?? 0;
        }
      }
      bits &= whoMask;
      if (op[0] === '+') out |= bits;
      else if (op[0] === '-') out &= ~bits;
      else out = (out & ~whoMask) | bits;
    }
  }
  return out & 0o7777;
}

/** The mode a copied entry gets: --chmod's (octal, or symbolic applied to `mode`), else its own. */
export function copiedMode(attrs: CopyAttributes, mode: number, isDir: boolean): number {
  if (attrs.mode !== undefined) return attrs.mode;
  if (attrs.symbolic !== undefined) return applySymbolicMode(attrs.symbolic, mode, isDir);
  return mode & 0o7777;
}

/** Hard links within one COPY: the first target written for each source inode. */
export type LinkMap = Map<string, string>;

/** Files up to this size are copied through one reused buffer, synchronously; bigger ones on the threadpool. */
const SMALL_FILE = 1024 * 1024;
let copyBuffer: Buffer | undefined;

/**
 * A small file: read whole into a reused buffer, written to a new file (O_EXCL|O_NOFOLLOW: never through a symlink
 * at the target), and given its owner, mode and times through the open descriptor. About twice as fast as
 * copyFileSync plus chown/chmod/utimes by path (measured: 2,000 10 KB files in 96 ms instead of 180 ms): one path
 * lookup per file instead of four, and no sendfile set-up for a few kilobytes. False when the file grew past the
 * buffer since it was listed (the caller copies it the slow way).
 */
function copySmallFile(srcPath: string, target: string, uid: number, gid: number, mode: number, st: Stats): boolean {
  copyBuffer ??= Buffer.allocUnsafe(SMALL_FILE + 1);
  const buf = copyBuffer;
  let len = 0;
  const src = openSync(srcPath, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  try {
    for (let n = -1; n !== 0 && len < buf.length; len += n) n = readSync(src, buf, len, buf.length - len, len);
  } finally {
    closeSync(src);
  }
  if (len > SMALL_FILE) return false;
  const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
  const fd = openSync(target, flags, 0o600);
  try {
    for (let off = 0; off < len; ) off += writeSync(fd, buf, off, len - off);
    fchownSync(fd, uid, gid);
    // after the chown, which clears setuid/setgid; the open's mode went through the umask
    fchmodSync(fd, mode);
    futimesSync(fd, st.atime, st.mtime);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Replace whatever is at `target` (never following a symlink there) with a copy of one source entry; `fresh`: the
 * parent directory was just made by this copy, so nothing is there yet. Returns whether a directory was created.
 * File system calls are synchronous (microseconds each against the page cache; an awaited call is a threadpool
 * round trip): a COPY of thousands of small files is bound by the file system, not by the event loop.
 */
async function copyEntry(
  src: SourceEntry,
  target: string,
  attrs: CopyAttributes,
  links: LinkMap | undefined,
  fresh: boolean,
): Promise<boolean> {
  const st = src.st;
  const existing = fresh ? undefined : lstatSync(target, { throwIfNoEntry: false });
  if (existing && (!existing.isDirectory() || !st.isDirectory())) rmSync(target, { recursive: true, force: true });
  let created = false;
  if (st.isDirectory()) {
    if (!existing?.isDirectory()) {
      mkdirSync(target);
      created = true;
    }
  } else if (st.isSymbolicLink()) {
    symlinkSync(readlinkSync(src.abs), target);
  } else if (st.isFile()) {
    const inode = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1 ? links?.get(inode) : undefined;
    if (first) {
      // a hard link in the source stays one in the copy
      linkSync(first, target);
      return false;
    }
    const uid = attrs.uid ?? (attrs.keepOwner ? st.uid : 0);
    const gid = attrs.gid ?? (attrs.keepOwner ? st.gid : 0);
    const done =
      st.size <= SMALL_FILE && copySmallFile(src.abs, target, uid, gid, copiedMode(attrs, st.mode, false), st);
    if (st.nlink > 1) links?.set(inode, target);
    if (done) return false;
    // copy_file_range where the kernel has it (no data through JS); the copy gets the source's mode
    await copyFile(src.abs, target, fsConstants.COPYFILE_EXCL);
  } else {
    return false; // sockets, devices and fifos in a build context are skipped, as docker does
  }
  const uid = attrs.uid ?? (attrs.keepOwner ? st.uid : 0);
  const gid = attrs.gid ?? (attrs.keepOwner ? st.gid : 0);
  lchownSync(target, uid, gid);
  if (!st.isSymbolicLink()) {
    // chown clears setuid/setgid, and mkdir applies the umask: only then (or with --chmod) is a chmod needed
    const mode = copiedMode(attrs, st.mode, st.isDirectory());
    if (mode !== (st.mode & 0o7777) || st.isDirectory() || (mode & 0o7000) !== 0) chmodSync(target, mode);
    utimesSync(target, st.atime, st.mtime);
  } else {
    try {
      lutimesSync(target, st.atime, st.mtime);
    } catch {
      // a file system without symlink times
    }
  }
  return created;
}

/**
 * Copy one matched source into the destination directory `destDir` (a host path inside the rootfs): a directory's
 * contents (not the directory itself, as docker does) or one file named `name` there.
 */
export async function copyInto(
  destDir: string,
  name: string | undefined,
  entry: SourceEntry,
  walk: (rel: string) => Promise<SourceEntry[]>,
  attrs: CopyAttributes,
  links: LinkMap = new Map(),
): Promise<void> {
  if (!entry.st.isDirectory()) {
    await copyEntry(entry, join(destDir, name ?? posix.basename(entry.rel)), attrs, links, false);
    return;
  }
  const prefix = entry.rel === '.' ? '' : `${entry.rel}/`;
  const below = await walk(entry.rel);
  // Directories get their times again after their children are written.
  const dirs: [SourceEntry, string][] = [];
  // Where each copied directory is (resolved inside destDir once), and the ones this copy created (empty so far).
  const hostDirs = new Map<string, string>([['.', destDir]]);
  const created = new Set<string>();
  const pause = yielder();
  for (const e of below) {
    await pause();
    const rel = e.rel.slice(prefix.length);
    const parentRel = posix.dirname(rel);
    // The parent through mkdirInRoot: a symlink the image has there is resolved inside destDir, never on the host.
    let parent = hostDirs.get(parentRel);
    if (parent === undefined) {
      parent = await mkdirInRoot(destDir, parentRel);
      hostDirs.set(parentRel, parent);
    }
    const target = join(parent, posix.basename(rel));
    const made = await copyEntry(e, target, attrs, links, created.has(parent));
    if (e.st.isDirectory()) {
      dirs.push([e, target]);
      hostDirs.set(rel, target);
      if (made) created.add(target);
    }
  }
  for (const [e, target] of dirs.reverse()) utimesSync(target, e.st.atime, e.st.mtime);
}

/** ADD of a local tar archive (plain or compressed): unpacked into the destination directory. */
export async function extractArchive(file: string, destDir: string, signal?: AbortSignal): Promise<void> {
  await applyLayer(createReadStream(file), destDir, signal ? { whiteouts: 'delete', signal } : { whiteouts: 'delete' });
}

/**
 * Whether ADD unpacks a local file: a tar archive, plain or gzip-compressed (looked at inside the compression); any
 * other file, a lone .gz included, is copied as it is (docker).
 */
export async function isTarArchive(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    let b = buf.subarray(0, bytesRead);
    if (b[0] === 0x1f && b[1] === 0x8b) {
      try {
        b = gunzipSync(b, { finishFlush: constants.Z_SYNC_FLUSH });
      } catch {
        return false;
      }
    }
    return b.length >= 512 && b.subarray(257, 262).toString('latin1') === 'ustar';
  } finally {
    await fh.close();
  }
}

import { createReadStream, constants as fsConstants } from 'node:fs';
import {
  chmod,
  copyFile,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  open,
  readlink,
  rm,
  symlink,
  utimes,
} from 'node:fs/promises';
import { constants, gunzipSync } from 'node:zlib';
import { join, posix } from 'node:path';
import { applyLayer } from '../archive/index.js';
import { walkInRoot } from '../container/index.js';
import { StrataError } from '../errors/index.js';
import type { SourceEntry } from './context.js';

/** Owner and mode overrides of a COPY: `--chown` (resolved to ids) and `--chmod` (octal). */
export interface CopyAttributes {
  uid?: number;
  gid?: number;
  mode?: number;
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

/** Hard links within one COPY: the first target written for each source inode. */
export type LinkMap = Map<string, string>;

/** Replace whatever is at `target` (never following a symlink there) with a copy of one source entry. */
async function copyEntry(src: SourceEntry, target: string, attrs: CopyAttributes, links?: LinkMap): Promise<void> {
  const st = src.st;
  const existing = await lstat(target).catch(() => undefined);
  if (existing && (!existing.isDirectory() || !st.isDirectory())) await rm(target, { recursive: true, force: true });
  if (st.isDirectory()) {
    if (!existing?.isDirectory()) await mkdir(target);
  } else if (st.isSymbolicLink()) {
    await symlink(await readlink(src.abs), target);
  } else if (st.isFile()) {
    const inode = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1 ? links?.get(inode) : undefined;
    if (first) {
      // a hard link in the source stays one in the copy
      await link(first, target);
      return;
    }
    // copy_file_range where the kernel has it (one system call for a small file, no data through JS)
    await copyFile(src.abs, target, fsConstants.COPYFILE_EXCL);
    if (st.nlink > 1) links?.set(inode, target);
  } else {
    return; // sockets, devices and fifos in a build context are skipped, as docker does
  }
  const uid = attrs.uid ?? (attrs.keepOwner ? st.uid : 0);
  const gid = attrs.gid ?? (attrs.keepOwner ? st.gid : 0);
  await lchown(target, uid, gid);
  if (!st.isSymbolicLink()) {
    await chmod(target, attrs.mode ?? st.mode & 0o7777);
    await utimes(target, st.atime, st.mtime);
  } else {
    await lutimes(target, st.atime, st.mtime).catch(() => {});
  }
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
    await copyEntry(entry, join(destDir, name ?? posix.basename(entry.rel)), attrs, links);
    return;
  }
  const prefix = entry.rel === '.' ? '' : `${entry.rel}/`;
  const below = await walk(entry.rel);
  // Directories get their times again after their children are written.
  const dirs: [SourceEntry, string][] = [];
  for (const e of below) {
    const rel = e.rel.slice(prefix.length);
    // The parent through mkdirInRoot: a symlink the image has there is resolved inside destDir, never on the host.
    const parent = posix.dirname(rel) === '.' ? destDir : await mkdirInRoot(destDir, posix.dirname(rel));
    const target = join(parent, posix.basename(rel));
    await copyEntry(e, target, attrs, links);
    if (e.st.isDirectory()) dirs.push([e, target]);
  }
  for (const [e, target] of dirs.reverse()) await utimes(target, e.st.atime, e.st.mtime);
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

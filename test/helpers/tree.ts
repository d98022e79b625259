import { createHash } from 'node:crypto';
import { readFile, readdir, readlink, lstat } from 'node:fs/promises';
import { join } from 'node:path';

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'other';
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
  /** Index of the first path sharing this inode, for hardlinks. */
  linkGroup?: string;
}

/**
 * A comparable description of a directory tree: type, permission bits, owner, content hash, symlink target and
 * hardlink grouping per path. Used to check that two unpackers (strata, umoci, GNU tar) produce the same tree.
 */
export async function describeTree(
  root: string,
  opts: { ignore?: (rel: string) => boolean } = {},
): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {};
  const inodes = new Map<string, string>();
  const walk = async (dir: string, rel: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      if (opts.ignore?.(r)) continue;
      const st = await lstat(p);
      const type = st.isFile()
        ? 'file'
        : st.isDirectory()
          ? 'dir'
          : st.isSymbolicLink()
            ? 'symlink'
            : st.isFIFO()
              ? 'fifo'
              : st.isCharacterDevice()
                ? 'char'
                : st.isBlockDevice()
                  ? 'block'
                  : 'other';
      const e: TreeEntry = { type, mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid };
      if (type === 'file') {
        e.size = st.size;
        e.sha256 = createHash('sha256')
          .update(await readFile(p))
          .digest('hex');
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          if (!inodes.has(key)) inodes.set(key, r);
          e.linkGroup = inodes.get(key)!;
        }
      }
      if (type === 'symlink') {
        e.target = await readlink(p);
        delete (e as Partial<TreeEntry>).mode; // symlink modes are not portable
      }
      out[r] = e;
      if (type === 'dir') await walk(p, r);
    }
  };
  await walk(root, '');
  return out;
}

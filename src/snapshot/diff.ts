// What a container changed, in `docker diff` terms, from an overlay upper directory or from a full copy of the
// rootfs, each compared with the image's committed layer chain (overlay-form whiteouts) merged as overlayfs does.
import type { BigIntStats } from 'node:fs';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { getAttributeSync, listAttributesSync } from '../util/index.js';
import { errnoCode, StrataError } from '../errors/index.js';

export type ChangeKind = 'A' | 'C' | 'D';

/** One line of `docker diff`: `path` is absolute in the container ('/etc/passwd'). Same shape as archive's Change. */
export interface Change {
  kind: ChangeKind;
  path: string;
}

export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

export function isWhiteout(st: BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n;
}

export function isOpaqueDir(path: string, st: BigIntStats): boolean {
  if (!st.isDirectory()) return false;
  try {
    return getAttributeSync(path, OVERLAY_OPAQUE_XATTR)?.toString() === 'y';
  } catch {
    return false; // no such attribute, or a file system without xattrs
  }
}

function lstatOrUndefined(path: string): BigIntStats | undefined {
  try {
    return lstatSync(path, { bigint: true });
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

export interface LowerEntry {
  st: BigIntStats;
  /** Where the visible object lives (in the topmost lower that has it). */
  path: string;
}

type Probe =
  | { kind: 'found'; st: BigIntStats; path: string }
  | { kind: 'hidden' }
  | { kind: 'absent'; opaque: boolean };

/**
 * Committed layers merged as overlayfs merges lowerdirs (first = topmost): a path is what the first layer that has
 * it, or hides it (whiteout, non-directory parent, opaque parent), says. Components are looked up with lstat, so a
 * symlink inside a layer is never followed.
 */
export class MergedLowers {
  readonly #lowers: string[];
  readonly #cache = new Map<string, LowerEntry | undefined>();

  constructor(lowers: readonly string[]) {
    this.#lowers = [...lowers];
  }

  #probe(lower: string, parts: string[]): Probe {
    let path = lower;
    let opaque = false;
    const rootSt = lstatOrUndefined(lower);
    if (!rootSt?.isDirectory()) return { kind: 'absent', opaque };
    if (parts.length === 0) return { kind: 'found', st: rootSt, path };
    for (const [i, part] of parts.entries()) {
      path = join(path, part);
      const st = lstatOrUndefined(path);
      if (!st) return { kind: 'absent', opaque };
      if (isWhiteout(st)) return { kind: 'hidden' };
      if (i === parts.length - 1) return { kind: 'found', st, path };
      if (!st.isDirectory()) return { kind: 'hidden' };
      if (isOpaqueDir(path, st)) opaque = true;
    }
    return { kind: 'absent', opaque };
  }

  lookup(rel: string): LowerEntry | undefined {
    if (this.#cache.has(rel)) return this.#cache.get(rel);
    const parts = rel === '' ? [] : rel.split('/');
    let found: LowerEntry | undefined;
    for (const lower of this.#lowers) {
      const p = this.#probe(lower, parts);
      if (p.kind === 'found') found = { st: p.st, path: p.path };
      if (p.kind !== 'absent' || p.opaque) break;
    }
    this.#cache.set(rel, found);
    return found;
  }

  /** Names visible in the merged directory `rel` ('' for the root); none if it is not a directory. */
  children(rel: string): string[] {
    const names = new Set<string>();
    const parts = rel === '' ? [] : rel.split('/');
    for (const lower of this.#lowers) {
      const p = this.#probe(lower, parts);
      if (p.kind === 'hidden') break;
      if (p.kind === 'found') {
        if (!p.st.isDirectory()) break;
        for (const name of readdirSync(p.path)) names.add(name);
        if (isOpaqueDir(p.path, p.st)) break;
      } else if (p.opaque) break;
    }
    return [...names].filter((name) => this.lookup(childOf(rel, name)) !== undefined);
  }
}

const childOf = (rel: string, name: string): string => (rel === '' ? name : `${rel}/${name}`);

function sameDirectory(a: BigIntStats, b: BigIntStats): boolean {
  return a.isDirectory() && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.mtimeNs === b.mtimeNs;
}

/** Add every ancestor of a change as 'C' (docker lists `C /etc` for `A /etc/x`), make paths absolute, sort. */
function finish(kinds: Map<string, ChangeKind>): Change[] {
  for (const path of [...kinds.keys()]) {
    for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
      const parent = path.slice(0, i);
      if (!kinds.has(parent)) kinds.set(parent, 'C');
    }
  }
  return [...kinds]
    .map(([path, kind]) => ({ kind, path: `/${path}`, key: Buffer.from(`/${path}`) }))
    .sort((a, b) => Buffer.compare(a.key, b.key))
    .map(({ kind, path }) => ({ kind, path }));
}

/**
 * Changes from an overlay upper directory over `lowers` (topmost first). A whiteout is 'D'; an entry the lower
 * chain has is 'C', else 'A'; a directory that is only a copied-up parent (mode, owner and mtime as below) is no
 * change of its own. An opaque directory is 'C' (or 'A') plus a 'D' for each lower entry it hides that the upper
 * does not re-create, and the same holds for directories re-created inside it (their lower content is hidden too).
 */
export function overlayChanges(upperDir: string, lowers: readonly string[]): Change[] {
  const rootSt = lstatOrUndefined(upperDir);
  if (!rootSt?.isDirectory()) throw new StrataError('NOT_FOUND', `overlay upper directory ${upperDir} does not exist`);
  const merged = new MergedLowers(lowers);
  const kinds = new Map<string, ChangeKind>();
  // hideLower: this directory is opaque or inside an opaque one, so lower entries it does not hold are deleted.
  const walk = (rel: string, hideLower: boolean): void => {
    const dir = rel === '' ? upperDir : join(upperDir, rel);
    const names = readdirSync(dir);
    if (hideLower) {
      const present = new Set(names);
      for (const name of merged.children(rel)) if (!present.has(name)) kinds.set(childOf(rel, name), 'D');
    }
    for (const name of names) {
      const child = childOf(rel, name);
      const abs = join(dir, name);
      const st = lstatSync(abs, { bigint: true });
      const below = merged.lookup(child);
      if (isWhiteout(st)) {
        if (below) kinds.set(child, 'D');
        continue;
      }
      if (st.isDirectory()) {
        const opaque = hideLower || isOpaqueDir(abs, st);
        walk(child, opaque);
        if (!opaque && below && sameDirectory(below.st, st)) continue;
      }
      kinds.set(child, below ? 'C' : 'A');
    }
  };
  walk('', isOpaqueDir(upperDir, rootSt));
  return finish(kinds);
}

function xattrsOf(path: string, st: BigIntStats): string {
  if (st.isSymbolicLink()) return ''; // the addon follows symlinks
  let names: string[];
  try {
    names = listAttributesSync(path);
  } catch {
    return '';
  }
  return names
    .filter((n) => !n.startsWith('trusted.overlay.'))
    .sort()
    .map((n) => {
      try {
        return `${n}=${getAttributeSync(path, n)?.toString('base64') ?? ''}`;
      } catch {
        return `${n}=`;
      }
    })
    .join('\n');
}

async function sameContent(a: string, b: string, size: bigint): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const chunk = 1 << 20;
    const ba = Buffer.allocUnsafe(chunk);
    const bb = Buffer.allocUnsafe(chunk);
    let left = Number(size);
    let pos = 0;
    while (left > 0) {
      const n = Math.min(chunk, left);
      const [ra, rb] = await Promise.all([fa.read(ba, 0, n, pos), fb.read(bb, 0, n, pos)]);
      if (ra.bytesRead !== n || rb.bytesRead !== n) return false;
      if (!ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
      left -= n;
      pos += n;
    }
    return true;
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

/**
 * Whether the object at `path` (in a full copy of the rootfs) differs from `below` (in the layer chain): type and
 * mode, owner, device number, symlink target, size, xattrs; a different mtime counts for directories and special
 * files, and for a regular file only when its content differs too (it is compared when sizes are equal).
 */
async function differs(path: string, st: BigIntStats, below: LowerEntry): Promise<boolean> {
  const b = below.st;
  if (st.mode !== b.mode || st.uid !== b.uid || st.gid !== b.gid) return true;
  if ((st.isCharacterDevice() || st.isBlockDevice()) && st.rdev !== b.rdev) return true;
  if (st.isSymbolicLink() && readlinkSync(path) !== readlinkSync(below.path)) return true;
  if (st.isFile() && st.size !== b.size) return true;
  if (xattrsOf(path, st) !== xattrsOf(below.path, b)) return true;
  if (st.mtimeNs === b.mtimeNs) return false;
  if (st.isFile()) return !(await sameContent(path, below.path, st.size));
  return !st.isSymbolicLink();
}

/**
 * Changes in a full copy of the rootfs (the copy-based snapshotter) against the layer chain `lowers` (topmost
 * first), walking both trees: entries only in the copy are 'A' (with everything below them), entries only in the
 * chain are 'D' (their subtree is not listed), entries in both that differ are 'C'; ancestors of changes are 'C'.
 */
export async function treeChanges(rootDir: string, lowers: readonly string[]): Promise<Change[]> {
  const rootSt = lstatOrUndefined(rootDir);
  if (!rootSt?.isDirectory()) throw new StrataError('NOT_FOUND', `rootfs directory ${rootDir} does not exist`);
  const merged = new MergedLowers(lowers);
  const kinds = new Map<string, ChangeKind>();
  const walk = async (rel: string, belowIsDir: boolean): Promise<void> => {
    const dir = rel === '' ? rootDir : join(rootDir, rel);
    const names = readdirSync(dir);
    if (belowIsDir) {
      const present = new Set(names);
      for (const name of merged.children(rel)) if (!present.has(name)) kinds.set(childOf(rel, name), 'D');
    }
    for (const name of names) {
      const child = childOf(rel, name);
      const abs = join(dir, name);
      const st = lstatSync(abs, { bigint: true });
      const below = belowIsDir ? merged.lookup(child) : undefined;
      if (!below) kinds.set(child, 'A');
      else if (await differs(abs, st, below)) kinds.set(child, 'C');
      if (st.isDirectory()) await walk(child, below?.st.isDirectory() ?? false);
    }
  };
  const top = merged.lookup('');
  await walk('', top?.st.isDirectory() ?? false);
  return finish(kinds);
}

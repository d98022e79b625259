import type { BigIntStats } from 'node:fs';
import { lstatSync, lutimesSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { errnoCode, StrataError } from '../errors/index.js';
import { getXattrSync, isOverlayXattr, listXattrsSync, removeXattrSync } from './fs-meta.js';
import { type Change, type ChangeKind, OVERLAY_OPAQUE_XATTR } from './pack.js';
import { sortByPathBytes } from './paths.js';

function lstatOrUndefined(path: string): BigIntStats | undefined {
  try {
    return lstatSync(path, { bigint: true });
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

export function isOverlayWhiteout(st: BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n;
}

function isOpaque(path: string, st: BigIntStats): boolean {
  return st.isDirectory() && getXattrSync(path, OVERLAY_OPAQUE_XATTR)?.toString() === 'y';
}

type Probe = { kind: 'found'; st: BigIntStats } | { kind: 'hidden' } | { kind: 'absent'; opaqueAbove: boolean };

/**
 * The lower layers as overlayfs merges them (first = topmost, as in lowerdir=): a path exists if the first layer
 * that has it, or hides it (whiteout, non-directory parent, opaque parent), has it. Lookups walk the components
 * with lstat, so a symlink inside a lower is never followed out of it.
 */
class MergedLowers {
  readonly #lowers: string[];
  readonly #cache = new Map<string, BigIntStats | undefined>();

  constructor(lowers: string[]) {
    this.#lowers = lowers;
  }

  #probe(lower: string, parts: string[]): Probe {
    let path = lower;
    let opaqueAbove = false;
    for (const [i, part] of parts.entries()) {
      path = join(path, part);
      const st = lstatOrUndefined(path);
      if (!st) return { kind: 'absent', opaqueAbove };
      if (isOverlayWhiteout(st)) return { kind: 'hidden' };
      if (i === parts.length - 1) return { kind: 'found', st };
      if (!st.isDirectory()) return { kind: 'hidden' };
      if (isOpaque(path, st)) opaqueAbove = true;
    }
    return { kind: 'absent', opaqueAbove };
  }

  lookup(rel: string): BigIntStats | undefined {
    if (this.#cache.has(rel)) return this.#cache.get(rel);
    const parts = rel.split('/');
    let found: BigIntStats | undefined;
    for (const lower of this.#lowers) {
      const p = this.#probe(lower, parts);
      if (p.kind === 'found') found = p.st;
      if (p.kind !== 'absent' || p.opaqueAbove) break;
    }
    this.#cache.set(rel, found);
    return found;
  }

  /** Names visible in the merged lower directory `rel`. */
  children(rel: string): string[] {
    const names = new Set<string>();
    const parts = rel.split('/');
    for (const lower of this.#lowers) {
      const p = this.#probe(lower, parts);
      if (p.kind === 'hidden') break;
      if (p.kind === 'found') {
        if (!p.st.isDirectory()) break;
        for (const name of readdirSync(join(lower, rel))) names.add(name);
        if (isOpaque(join(lower, rel), p.st)) break;
      } else if (p.opaqueAbove) break;
    }
    return [...names].filter((name) => this.lookup(`${rel}/${name}`) !== undefined);
  }
}

function sameDirectory(a: BigIntStats, b: BigIntStats): boolean {
  return a.isDirectory() && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.mtimeNs === b.mtimeNs;
}

/**
 * What a container changed, from its overlay upper directory, with `docker diff` semantics: 'A' for paths no lower
 * layer has, 'C' for the others, 'D' for whiteouts; a directory that is only a copied-up parent (same mode, owner and
 * mtime as below) is not a change of its own, but every ancestor of a change is listed as 'C'. An opaque directory is
 * listed as 'C' (or 'A') plus a 'D' for each lower child it hides, so `packChanges` of the result rebuilds the layer.
 * Sorted by path; paths are absolute ('/etc/passwd').
 */
export async function changesFromOverlayUpper(upperDir: string, lowerDirs: string[]): Promise<Change[]> {
  const rootSt = lstatOrUndefined(upperDir);
  if (!rootSt?.isDirectory()) throw new StrataError('NOT_FOUND', `overlay upper directory ${upperDir} does not exist`);
  const lowers = new MergedLowers(lowerDirs);
  const kinds = new Map<string, ChangeKind>();
  const pending: string[] = [''];
  while (pending.length > 0) {
    const rel = pending.pop()!;
    for (const name of readdirSync(rel === '' ? upperDir : join(upperDir, rel))) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const abs = join(upperDir, child);
      const st = lstatSync(abs, { bigint: true });
      if (isOverlayWhiteout(st)) {
        kinds.set(child, 'D');
        continue;
      }
      const below = lowers.lookup(child);
      if (st.isDirectory()) {
        pending.push(child);
        if (isOpaque(abs, st)) {
          kinds.set(child, below ? 'C' : 'A');
          const inUpper = new Set(readdirSync(abs));
          if (below?.isDirectory()) {
            for (const hidden of lowers.children(child)) if (!inUpper.has(hidden)) kinds.set(`${child}/${hidden}`, 'D');
          }
          continue;
        }
        if (below && sameDirectory(below, st)) continue;
      }
      kinds.set(child, below ? 'C' : 'A');
    }
  }
  for (const path of [...kinds.keys()]) {
    for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
      const parent = path.slice(0, i);
      if (!kinds.has(parent)) kinds.set(parent, 'C');
    }
  }
  return sortByPathBytes(
    [...kinds].map(([path, kind]) => ({ kind, path: `/${path}` })),
    (c) => c.path,
  );
}

/**
 * Make an overlayfs upper directory hold exactly what unpacking `packOverlayUpper(upperDir, { sourceDateEpoch })`
 * would write, so it can become the layer's snapshot as it is instead of being packed and unpacked again: mtimes
 * and atimes set to the packed mtime (whole seconds, clamped to the epoch), sockets removed (layers leave them
 * out), and overlay's bookkeeping xattrs (origin, impure...) removed; whiteouts and opaque markers stay, being how
 * a snapshot records deletions. Children are settled before their directory, whose mtime a removal would change.
 */
export function settleUpperAsLayer(upperDir: string, sourceDateEpoch: number | undefined): void {
  const settle = (abs: string, st: BigIntStats): void => {
    if (!st.isSymbolicLink() && !isOverlayWhiteout(st)) {
      // The xattr addon follows symlinks, so links keep theirs; overlay never reads them on a lower layer.
      for (const name of listXattrsSync(abs)) {
        if (isOverlayXattr(name) && name !== OVERLAY_OPAQUE_XATTR) removeXattrSync(abs, name);
      }
    }
    let seconds = st.mtimeNs / 1_000_000_000n;
    if (st.mtimeNs < 0n && st.mtimeNs % 1_000_000_000n !== 0n) seconds -= 1n;
    if (sourceDateEpoch !== undefined && seconds > BigInt(sourceDateEpoch)) seconds = BigInt(sourceDateEpoch);
    const ns = seconds * 1_000_000_000n;
    if (st.mtimeNs !== ns || st.atimeNs !== ns) lutimesSync(abs, Number(seconds), Number(seconds));
  };
  const visit = (dir: string): void => {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      const abs = join(dir, d.name);
      if (d.isSocket()) {
        unlinkSync(abs);
        continue;
      }
      if (d.isDirectory()) visit(abs);
      settle(abs, lstatSync(abs, { bigint: true }));
    }
  };
  visit(upperDir);
}

// Active (writable) snapshots for containers and build steps: an image's committed layer snapshots as overlay
// lowerdirs plus one upper/work pair, or, where overlayfs cannot mount, a full copy of the chain.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { dirname, join } from 'node:path';
import { errnoCode, StrataError } from '../errors/index.js';
import { fsyncDir, withLock, writeFileAtomic } from '../util/index.js';
import { copyChain } from './copy.js';
import { type Change, overlayChanges, treeChanges } from './diff.js';
import {
  canonicalPath,
  type Mount,
  type MountInfo,
  mount,
  mountAt,
  mountsUnder,
  overlayFeatureOptions,
  readMountInfo,
  unmount,
} from './mount.js';
import type { SnapshotInfo, Snapshotter } from './snapshotter.js';

/** 'overlay': upper/work over the layer chain; 'copy': a full copy of the chain (no overlayfs needed). */
export type ActiveMode = 'overlay' | 'copy';

export interface ActiveSnapshot {
  key: string;
  /** The committed snapshot (chainId of the image's top layer) it stands on; none for an image without layers. */
  parent?: string;
  mode: ActiveMode;
  created: string;
  labels?: Record<string, string>;
  /** The snapshot's own directory (snapshots/<id>/). */
  dir: string;
  /** overlay: the upperdir, what the container wrote. copy: the whole rootfs. Same as `Snapshotter.fsDir(key)`. */
  upperDir: string;
  /** overlay: the workdir. */
  workDir?: string;
  /** The committed layer directories, topmost first (overlay's lowerdir order); empty for an image without layers. */
  lowerDirs: string[];
  /** Where `mountActive` mounted it (and it was not unmounted since). */
  mountTargets: string[];
  /** Set when it cannot be used (a layer it stands on is gone); it can still be listed and removed. */
  problem?: string;
  /** A build step's scratch rootfs (see prepareActive's `scratch`). */
  scratch?: boolean;
}

/** What `commit` packs into a layer (with archive's packOverlayUpper or packChanges, OCI whiteouts either way). */
export type ActiveLayerSource =
  /** `packOverlayUpper(upperDir)`: overlay whiteouts become `.wh.<name>`, opaque directories `.wh..wh..opq`. */
  | { kind: 'overlay-upper'; upperDir: string }
  /** `packChanges(root, changes)`: A/C paths read from the rootfs copy, D paths become `.wh.<name>`. */
  | { kind: 'changes'; root: string; changes: Change[] };

interface ActiveState {
  mode: ActiveMode;
  /** Lower directories are linked as `l/<i>` so that lowerdir= stays short whatever the root path and depth. */
  layers: number;
  /** Plain directories above the parent chain (topmost first), owned by the caller: a build step's init layer. */
  extra?: string[];
  scratch?: boolean;
}

const STATE = 'active.json';
const MOUNTS = 'mounts.json';
const LINKS = 'l';

const dirOf = (s: Snapshotter, key: string): string => dirname(s.fsDir(key));

// Paths that can go into overlay options as they are (',' separates options, ':' lowerdirs, '\' escapes).
const optionSafe = (p: string): boolean => !/[,:\\\s]/.test(p);

const probes = new Map<string, Promise<ActiveMode>>();

/**
 * Which kind of active snapshot this root gets: STRATA_SNAPSHOTTER=copy or =overlay forces one; otherwise overlayfs
 * is tried once per process and root (a tiny mount under <root>/tmp, on the file system the uppers live on).
 */
export async function activeMode(s: Snapshotter): Promise<ActiveMode> {
  const forced = process.env['STRATA_SNAPSHOTTER'];
  if (forced === 'copy' || forced === 'overlay') return forced;
  if (forced !== undefined && forced !== '' && forced !== 'auto') {
    throw new StrataError('INVALID_ARGUMENT', `STRATA_SNAPSHOTTER=${forced} is not a snapshotter`, {
      hint: 'use overlay, copy or auto',
    });
  }
  let p = probes.get(s.root);
  if (!p) {
    p = cachedProbe(s.root);
    probes.set(s.root, p);
  }
  return p;
}

/**
 * The probe's result is kept in `<root>/overlay.json` for this kernel and file system, so a command does not pay a
 * mount and an unmount before its real work. Only success is kept: a host without overlay is probed again (it may
 * get the module loaded), and a mount that fails later is an error of its own.
 */
async function cachedProbe(snapshotsRoot: string): Promise<ActiveMode> {
  const root = dirname(snapshotsRoot);
  const file = join(root, 'overlay.json');
  const dev = (await stat(root).catch(() => undefined))?.dev;
  const key = { kernel: release(), dev };
  const cached = await readJson<{ kernel?: string; dev?: number; mode?: string }>(file).catch(() => undefined);
  if (cached?.mode === 'overlay' && cached.kernel === key.kernel && cached.dev === key.dev) return 'overlay';
  const mode = await probeOverlay(join(root, 'tmp'));
  if (mode === 'overlay' && dev !== undefined) {
    await writeFileAtomic(file, JSON.stringify({ ...key, mode })).catch(() => {});
  }
  return mode;
}

async function probeOverlay(tmpRoot: string): Promise<ActiveMode> {
  const dir = join(tmpRoot, `snapshot-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  const merged = join(dir, 'merged');
  try {
    for (const d of ['lower', 'upper', 'work', 'merged']) await mkdir(join(dir, d), { recursive: true });
    await writeFile(join(dir, 'lower', 'probe'), 'ok');
    await mount(
      {
        type: 'overlay',
        source: 'overlay',
        options: ['lowerdir=lower', 'upperdir=upper', 'workdir=work', ...overlayFeatureOptions()],
      },
      merged,
      { cwd: dir },
    );
    try {
      await writeFile(join(merged, 'written'), 'ok');
      return (await readFile(join(merged, 'probe'), 'utf8')) === 'ok' ? 'overlay' : 'copy';
    } finally {
      await unmount(merged);
    }
  } catch {
    return 'copy';
  } finally {
    if ((await mountsUnder(dir).catch(() => [])).length === 0) await rm(dir, { recursive: true, force: true });
  }
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

async function snapshotOf(s: Snapshotter, info: SnapshotInfo): Promise<ActiveSnapshot | undefined> {
  if (info.kind !== 'active') return undefined;
  const dir = dirOf(s, info.name);
  const state = await readJson<ActiveState>(join(dir, STATE));
  if (!state) return undefined; // an extract-/import- key of the layer unpacker, not a rootfs
  const lowerDirs: string[] = [...(state.extra ?? [])];
  let problem: string | undefined;
  try {
    if (info.parent !== undefined) lowerDirs.push(...(await s.chain(info.parent)).map((c) => s.fsDir(c.name)));
  } catch (err) {
    problem = `its layer chain is broken: ${(err as Error).message}`;
  }
  const out: ActiveSnapshot = {
    key: info.name,
    mode: state.mode,
    created: info.created,
    dir,
    upperDir: s.fsDir(info.name),
    lowerDirs,
    mountTargets: (await readJson<string[]>(join(dir, MOUNTS))) ?? [],
  };
  if (info.parent !== undefined) out.parent = info.parent;
  if (info.labels) out.labels = info.labels;
  if (problem !== undefined) out.problem = problem;
  if (state.mode === 'overlay') out.workDir = s.workDir(info.name);
  if (state.scratch) out.scratch = true;
  return out;
}

/** The active snapshot `key`, or undefined if there is none (or `key` is not a rootfs snapshot). */
export async function getActive(s: Snapshotter, key: string): Promise<ActiveSnapshot | undefined> {
  const info = await s.stat(key);
  return info ? snapshotOf(s, info) : undefined;
}

async function mustGet(s: Snapshotter, key: string): Promise<ActiveSnapshot> {
  const a = await getActive(s, key);
  if (!a) {
    throw new StrataError('NOT_FOUND', `active snapshot ${key} not found`, {
      hint: 'it was removed, or never prepared with prepareActive',
    });
  }
  if (a.problem !== undefined) {
    throw new StrataError('FAILED_PRECONDITION', `active snapshot ${key} is unusable: ${a.problem}`, {
      hint: 'remove it (and the container using it), then pull the image again',
    });
  }
  return a;
}

/** Whether `dir` holds an active rootfs snapshot (those are packed and unpacked, never committed by rename). */
export async function isActiveRootfs(dir: string): Promise<boolean> {
  return (await readJson<ActiveState>(join(dir, STATE))) !== undefined;
}

export interface ActiveOptions {
  labels?: Record<string, string>;
  mode?: ActiveMode;
  /** Plain directories to put above the parent chain (topmost first); see ActiveState.extra. */
  extraLowers?: string[];
  /**
   * A build step's or build view's rootfs, removed by its owner when the step ends, and by Builder.repair (from the
   * owner's directory under tmp/) when the owner died: its metadata is written without fsync and its mount is not
   * recorded in mounts.json (neither is trusted after a power loss or a crash).
   */
  scratch?: boolean;
}

/**
 * Create the active snapshot `key` on top of the committed chain `parent` (undefined: an image without layers).
 * overlay: `fs/` (the upperdir), `work/`, and `l/0..n-1` symlinks to the lowers; copy: `fs/` holds the merged
 * chain. info.json (kind active, parent) is written last, so the snapshot exists only complete; garbage collection
 * keeps every active snapshot's parent chain.
 */
export async function prepareActive(
  s: Snapshotter,
  key: string,
  parent: string | undefined,
  opts: ActiveOptions = {},
): Promise<ActiveSnapshot> {
  if (key === '' || /^(extract|import)-/.test(key)) {
    throw new StrataError('INVALID_ARGUMENT', `"${key}" cannot name an active snapshot`, {
      hint: 'keys starting with extract- or import- are temporary unpack keys that garbage collection removes',
    });
  }
  let lowers: SnapshotInfo[] = [];
  if (parent !== undefined) {
    const p = await s.stat(parent);
    if (p?.kind !== 'committed') {
      throw new StrataError('NOT_FOUND', `parent snapshot ${parent} does not exist`, {
        hint: 'the image is not fully unpacked: run `strata fsck`, or pull/load the image again',
      });
    }
    lowers = await s.chain(parent);
  }
  if (await s.stat(key)) throw new StrataError('ALREADY_EXISTS', `snapshot key ${key} already exists`);
  const mode = opts.mode ?? (await activeMode(s));
  const dir = dirOf(s, key);
  const extra = opts.extraLowers ?? [];
  const lowerDirs = [...extra, ...lowers.map((l) => s.fsDir(l.name))];
  await rm(dir, { recursive: true, force: true });
  try {
    await mkdir(join(dir, 'fs'), { recursive: true, mode: 0o755 });
    if (mode === 'overlay') {
      await mkdir(join(dir, 'work'), { mode: 0o700 });
      await mkdir(join(dir, LINKS), { mode: 0o700 });
      if (lowerDirs.length === 0) await mkdir(join(dir, LINKS, '0'), { mode: 0o755 }); // overlay needs a lowerdir
      for (const [i, lower] of lowerDirs.entries()) await symlink(lower, join(dir, LINKS, String(i)));
    } else {
      await copyChain(lowerDirs, join(dir, 'fs'));
    }
    const state: ActiveState = { mode, layers: Math.max(1, lowerDirs.length), ...(extra.length ? { extra } : {}) };
    if (opts.scratch) state.scratch = true;
    const durable = { durable: !opts.scratch };
    await writeFileAtomic(join(dir, STATE), JSON.stringify(state), 0o644, durable);
    const info: SnapshotInfo = { name: key, kind: 'active', created: new Date().toISOString() };
    if (parent !== undefined) info.parent = parent;
    if (opts.labels) info.labels = opts.labels;
    await writeFileAtomic(join(dir, 'info.json'), JSON.stringify(info), 0o644, durable);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return mustGet(s, key);
}

/**
 * The mounts that make the rootfs, in containerd's vocabulary, with absolute paths: overlay (lowerdir topmost
 * first) or, for the copy snapshotter, a bind mount of the copy. `mountActive` mounts the same thing with short
 * relative lowerdirs (hundreds of layers fit in the kernel's one page of options).
 */
export async function activeMounts(s: Snapshotter, key: string): Promise<Mount[]> {
  const a = await mustGet(s, key);
  if (a.mode === 'copy') return [{ type: 'bind', source: a.upperDir, options: ['rbind', 'rw'] }];
  const lowers = a.lowerDirs.length > 0 ? a.lowerDirs : [join(a.dir, LINKS, '0')];
  return [
    {
      type: 'overlay',
      source: 'overlay',
      options: [
        `lowerdir=${lowers.join(':')}`,
        `upperdir=${a.upperDir}`,
        `workdir=${a.workDir}`,
        ...overlayFeatureOptions(),
      ],
    },
  ];
}

/** Whether the mount `m` is this active snapshot's rootfs. */
async function isOurs(a: ActiveSnapshot, m: MountInfo): Promise<boolean> {
  if (a.mode === 'overlay') {
    if (m.fsType !== 'overlay') return false;
    const upper = /(?:^|,)upperdir=([^,]*)/.exec(m.superOptions)?.[1];
    return upper === a.upperDir || upper === 'fs';
  }
  const [t, u] = await Promise.all([
    stat(m.mountPoint).catch(() => undefined),
    stat(a.upperDir).catch(() => undefined),
  ]);
  return t !== undefined && u !== undefined && t.dev === u.dev && t.ino === u.ino;
}

async function updateTargets(a: ActiveSnapshot, fn: (targets: string[]) => string[]): Promise<void> {
  const path = join(a.dir, MOUNTS);
  await withLock(path, async () => {
    const next = fn((await readJson<string[]>(path)) ?? []);
    await writeFileAtomic(path, JSON.stringify([...new Set(next)]));
  });
}

/**
 * Mount the rootfs of `key` on `target` (created if missing): overlay, spawned with its working directory in the
 * snapshot so lowerdir is `l/0:l/1:…`; or a bind mount of the copy. Mounting it again where it already is does
 * nothing; mounting an overlay snapshot at a second target bind-mounts the first; a target with something else
 * mounted on it is refused.
 */
export async function mountActive(s: Snapshotter, key: string, target: string): Promise<string> {
  const a = await mustGet(s, key);
  await mkdir(target, { recursive: true });
  const point = await canonicalPath(target);
  const dir = await canonicalPath(a.dir);
  if (point === dir || point.startsWith(`${dir}/`) || dir.startsWith(`${point}/`)) {
    throw new StrataError('INVALID_ARGUMENT', `cannot mount snapshot ${key} on ${target}: it overlaps the snapshot`);
  }
  const existing = await mountAt(point);
  if (existing) {
    if (await isOurs(a, existing)) return point;
    throw new StrataError('FAILED_PRECONDITION', `${target} already has a ${existing.fsType} file system mounted`, {
      hint: 'unmount it first, or choose another target',
    });
  }
  // One overlay mount per upper (a second one over the same upper is undefined behaviour): another target gets
  // a bind mount of the first.
  let mountedAt: string | undefined;
  if (a.mode === 'overlay') {
    for (const t of a.mountTargets) {
      const m = await mountAt(t);
      if (m && m.mountPoint === t && (await isOurs(a, m))) mountedAt = t;
    }
  }
  // A scratch snapshot's mount is found by its owner's directory (Builder.repair), not by mounts.json.
  if (!a.scratch) await updateTargets(a, (t) => [...t, point]);
  try {
    if (mountedAt !== undefined) {
      await mount({ type: 'bind', source: mountedAt, options: ['bind', 'rw'] }, point);
    } else if (a.mode === 'copy') {
      await mount({ type: 'bind', source: a.upperDir, options: ['rbind', 'rw'] }, point);
    } else {
      const state = (await readJson<ActiveState>(join(a.dir, STATE)))!;
      const lowers = Array.from({ length: state.layers }, (_, i) => `${LINKS}/${i}`);
      await mount(
        {
          type: 'overlay',
          source: 'overlay',
          options: [
            `lowerdir=${lowers.join(':')}`,
            `upperdir=${optionSafe(a.upperDir) ? a.upperDir : 'fs'}`,
            `workdir=${optionSafe(a.workDir!) ? a.workDir : 'work'}`,
            ...overlayFeatureOptions(),
          ],
        },
        point,
        { cwd: a.dir },
      );
    }
  } catch (err) {
    if (!a.scratch) await updateTargets(a, (t) => t.filter((x) => x !== point));
    throw err;
  }
  return point;
}

/**
 * Unmount `target` and forget it in the active snapshot that recorded it (`key`'s when the caller knows it, else
 * whichever lists it: a walk of every snapshot). Returns whether it was mounted.
 */
export async function unmountActive(s: Snapshotter, target: string, key?: string): Promise<boolean> {
  const point = await canonicalPath(target);
  const was = await unmount(point);
  const owners = key !== undefined ? [await getActive(s, key)] : await listActive(s);
  for (const a of owners) {
    if (a?.mountTargets.includes(point)) await updateTargets(a, (t) => t.filter((x) => x !== point));
  }
  return was;
}

/**
 * Unmount every mount of `key` (the recorded targets, any overlay using its upperdir, anything mounted inside its
 * directory) and delete it. Returns false when there was no such snapshot.
 */
export async function removeActive(s: Snapshotter, key: string): Promise<boolean> {
  const a = await getActive(s, key);
  if (!a) {
    const info = await s.stat(key);
    if (info?.kind === 'committed') {
      throw new StrataError('FAILED_PRECONDITION', `${key} is a committed snapshot, not an active one`);
    }
    if (info) await s.remove(key);
    return info !== undefined;
  }
  const targets = new Set<string>();
  for (const t of a.mountTargets) {
    const m = await mountAt(t);
    if (m && (await isOurs(a, m))) targets.add(m.mountPoint);
  }
  for (const m of await readMountInfo()) {
    if (m.fsType === 'overlay' && m.superOptions.split(',').includes(`upperdir=${a.upperDir}`)) {
      targets.add(m.mountPoint);
    }
  }
  for (const m of await mountsUnder(a.dir)) targets.add(m.mountPoint);
  // Deepest first, so nothing is unmounted from under a mount stacked inside it.
  for (const t of [...targets].sort((x, y) => y.length - x.length)) await unmount(t);
  const left = await mountsUnder(a.dir);
  if (left.length > 0) {
    throw new StrataError('FAILED_PRECONDITION', `snapshot ${key} still has ${left[0]!.mountPoint} mounted in it`);
  }
  await rm(a.dir, { recursive: true, force: true });
  return true;
}

/**
 * Freeze the upper directory of the overlay snapshot `key` as the committed snapshot `name` on `parent` (a layer's
 * chainId on its parent chain), by renaming: for a caller that made the upper hold exactly the layer it packed
 * from it (see archive's settleUpperAsLayer), so the layer need not be unpacked again. It must not be mounted.
 * Returns false (and removes `key`) when `name` exists already. Killed half-way, what is left is either the active
 * snapshot or a directory whose info.json names another id, which garbage collection removes as stray.
 */
export async function commitActiveUpper(
  s: Snapshotter,
  key: string,
  name: string,
  opts: { parent?: string; size?: number } = {},
): Promise<boolean> {
  const a = await mustGet(s, key);
  if (a.mode !== 'overlay') {
    throw new StrataError('FAILED_PRECONDITION', `${key} is a copy snapshot; only an overlay upper can be committed`, {
      hint: 'pack it with layerSource() and unpack the layer instead',
    });
  }
  // One read of the mount table: an overlay using the upper anywhere, or anything mounted inside the snapshot.
  const dir = await canonicalPath(a.dir);
  const mounted = (await readMountInfo()).some(
    (m) =>
      (m.fsType === 'overlay' && m.superOptions.split(',').includes(`upperdir=${a.upperDir}`)) ||
      m.mountPoint === dir ||
      m.mountPoint.startsWith(`${dir}/`),
  );
  if (mounted) {
    throw new StrataError('FAILED_PRECONDITION', `snapshot ${key} is still mounted and cannot be committed`);
  }
  if (opts.parent !== undefined && (await s.stat(opts.parent))?.kind !== 'committed') {
    throw new StrataError('NOT_FOUND', `parent snapshot ${opts.parent} does not exist`);
  }
  if (await s.stat(name)) {
    await rm(a.dir, { recursive: true, force: true });
    return false;
  }
  const info: SnapshotInfo = { name, kind: 'committed', created: new Date().toISOString() };
  if (opts.parent !== undefined) info.parent = opts.parent;
  if (opts.size !== undefined) info.size = opts.size;
  // info.json first: from here on the directory is nobody's until the rename makes it `name`'s.
  await writeFileAtomic(join(a.dir, 'info.json'), JSON.stringify(info));
  for (const f of ['work', LINKS, STATE, MOUNTS]) await rm(join(a.dir, f), { recursive: true, force: true });
  const to = dirOf(s, name);
  try {
    await rename(a.dir, to);
  } catch (err) {
    // A concurrent commit of the same layer won; its content is the same.
    if (errnoCode(err) === 'ENOTEMPTY' || errnoCode(err) === 'EEXIST') {
      await rm(a.dir, { recursive: true, force: true });
      return false;
    }
    throw err;
  }
  await fsyncDir(s.root);
  return true;
}

/**
 * A throwaway writable view of the directory `source` in `dir` (created; nothing in `source` ever changes): an
 * overlay with `source` as its only lower and an upper in `dir`, or a copy where overlayfs is not used. `release`
 * unmounts it and removes `dir`. For RUN --mount=type=bind,rw, whose writes are discarded after the step.
 */
export async function writableView(
  s: Snapshotter,
  source: string,
  dir: string,
): Promise<{ path: string; release: () => Promise<void> }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const merged = join(dir, 'merged');
  const release = async () => {
    await unmountUnder(dir);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    if ((await activeMode(s)) === 'overlay') {
      for (const d of ['upper', 'work', 'merged']) await mkdir(join(dir, d));
      await symlink(source, join(dir, 'lower'));
      const options = ['lowerdir=lower', 'upperdir=upper', 'workdir=work', ...overlayFeatureOptions()];
      await mount({ type: 'overlay', source: 'overlay', options }, merged, { cwd: dir });
    } else {
      await mkdir(merged);
      await copyChain([source], merged);
    }
  } catch (err) {
    await release();
    throw err;
  }
  return { path: merged, release };
}

/** Unmount everything mounted at or below `dir`, deepest first. */
export async function unmountUnder(dir: string): Promise<void> {
  const points = (await mountsUnder(dir)).map((m) => m.mountPoint);
  for (const p of points.sort((a, b) => b.length - a.length)) await unmount(p);
}

/** Active rootfs snapshots (made by prepareActive; the layer unpacker's temporary keys are not listed). */
export async function listActive(s: Snapshotter): Promise<ActiveSnapshot[]> {
  const out: ActiveSnapshot[] = [];
  for (const info of (await s.walk()).snapshots) {
    const a = await snapshotOf(s, info);
    if (a) out.push(a);
  }
  return out;
}

/**
 * `docker diff` of `key`: what was added (A), changed (C) or deleted (D) relative to its layer chain, sorted by
 * path; ancestors of changed paths are listed as C. overlay: read from the upperdir; copy: the copy and the chain
 * are walked side by side.
 */
export async function diffActive(s: Snapshotter, key: string): Promise<Change[]> {
  const a = await mustGet(s, key);
  return a.mode === 'overlay' ? overlayChanges(a.upperDir, a.lowerDirs) : treeChanges(a.upperDir, a.lowerDirs);
}

/** What a commit packs into a layer; see ActiveLayerSource. */
export async function activeLayerSource(s: Snapshotter, key: string): Promise<ActiveLayerSource> {
  const a = await mustGet(s, key);
  if (a.mode === 'overlay') return { kind: 'overlay-upper', upperDir: a.upperDir };
  return { kind: 'changes', root: a.upperDir, changes: await treeChanges(a.upperDir, a.lowerDirs) };
}

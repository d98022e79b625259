import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode, StrataError } from '../errors/index.js';
import { fsyncDir, sha256Hex, writeFileAtomic } from '../util/index.js';
import {
  type ActiveLayerSource,
  type ActiveMode,
  type ActiveOptions,
  type ActiveSnapshot,
  activeLayerSource,
  activeMode,
  activeMounts,
  commitActiveUpper,
  diffActive,
  getActive,
  isActiveRootfs,
  listActive,
  mountActive,
  prepareActive,
  removeActive,
  unmountActive,
  unmountUnder,
  writableView,
} from './active.js';
import type { Change } from './diff.js';
import type { Mount } from './mount.js';

export interface SnapshotInfo {
  /** Committed snapshots: their name (a layer's chainId). Active ones: their key. */
  name: string;
  kind: 'active' | 'committed';
  parent?: string;
  created: string;
  /** Bytes in this snapshot's own directory (the uncompressed layer), when known. */
  size?: number;
  labels?: Record<string, string>;
}

/**
 * Snapshots in containerd's vocabulary: an *active* snapshot (named by a key) is a writable directory on top of a
 * committed parent chain; `commit(name, key)` freezes it under `name`. Image layers are unpacked once each: a
 * caller prepares a key on top of the parent layer's chainId, applies the layer into `dir(key)` with overlay-form
 * whiteouts, and commits it as the layer's chainId. Committed snapshots are the lowerdirs of every container and
 * build step that uses the layer; they are never written again.
 *
 * Lifecycle and visibility: `prepare` creates `snapshots/<id>/{fs,work}` and info.json (kind active); `commit`
 * rewrites info.json and renames the directory to the committed id in one rename, so a reader sees either no
 * committed snapshot or a complete one. If another process committed the same name first, ours is discarded.
 */
export class Snapshotter {
  readonly root: string;
  /** Committed snapshots' info by name, as chain() read them. */
  readonly #committed = new Map<string, SnapshotInfo>();

  constructor(stateRoot: string) {
    this.root = join(stateRoot, 'snapshots');
  }

  #dirOf(nameOrKey: string): string {
    return join(this.root, sha256Hex(nameOrKey).slice(0, 32));
  }

  /** The directory holding the snapshot's files (the overlay lowerdir, or the upperdir of an active snapshot). */
  fsDir(nameOrKey: string): string {
    return join(this.#dirOf(nameOrKey), 'fs');
  }

  workDir(key: string): string {
    return join(this.#dirOf(key), 'work');
  }

  async stat(nameOrKey: string): Promise<SnapshotInfo | undefined> {
    try {
      const info = JSON.parse(await readFile(join(this.#dirOf(nameOrKey), 'info.json'), 'utf8')) as SnapshotInfo;
      return info.name === nameOrKey ? info : undefined;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Create an active snapshot on top of `parent` (a committed name) and return the directory to write into. */
  async prepare(key: string, parent?: string, labels?: Record<string, string>): Promise<string> {
    if (parent !== undefined) {
      const p = await this.stat(parent);
      if (p?.kind !== 'committed') {
        throw new StrataError('NOT_FOUND', `parent snapshot ${parent} does not exist`, {
          hint: 'the image is not fully unpacked: run `strata fsck`, or pull/load the image again',
        });
      }
    }
    if (await this.stat(key)) throw new StrataError('ALREADY_EXISTS', `snapshot key ${key} already exists`);
    const dir = this.#dirOf(key);
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(dir, 'fs'), { recursive: true, mode: 0o755 });
    await mkdir(join(dir, 'work'), { recursive: true, mode: 0o700 });
    const info: SnapshotInfo = { name: key, kind: 'active', created: new Date().toISOString() };
    if (parent !== undefined) info.parent = parent;
    if (labels) info.labels = labels;
    await writeFileAtomic(join(dir, 'info.json'), JSON.stringify(info));
    return join(dir, 'fs');
  }

  /**
   * Freeze the active snapshot `key` as `name`. Returns false (and removes `key`) when `name` was already
   * committed, by this or another process: the layer is unpacked once.
   */
  async commit(name: string, key: string, opts: { size?: number } = {}): Promise<boolean> {
    const active = await this.stat(key);
    if (active?.kind !== 'active') throw new StrataError('NOT_FOUND', `active snapshot ${key} not found`);
    if (await isActiveRootfs(this.#dirOf(key))) {
      throw new StrataError('FAILED_PRECONDITION', `${key} is a container rootfs snapshot and cannot be committed`, {
        hint: 'pack it with layerSource() and unpack the layer instead',
      });
    }
    if (await this.stat(name)) {
      await this.remove(key);
      return false;
    }
    const info: SnapshotInfo = { ...active, name, kind: 'committed', created: new Date().toISOString() };
    if (opts.size !== undefined) info.size = opts.size;
    const from = this.#dirOf(key);
    await rm(join(from, 'work'), { recursive: true, force: true });
    await writeFileAtomic(join(from, 'info.json'), JSON.stringify(info));
    try {
      await rename(from, this.#dirOf(name));
    } catch (err) {
      // ENOTEMPTY/EEXIST: a concurrent commit of the same name won the race; its content is the same layer.
      if (errnoCode(err) === 'ENOTEMPTY' || errnoCode(err) === 'EEXIST') {
        await rm(from, { recursive: true, force: true });
        return false;
      }
      throw err;
    }
    await fsyncDir(this.root);
    return true;
  }

  async remove(nameOrKey: string): Promise<void> {
    this.#committed.delete(nameOrKey);
    await rm(this.#dirOf(nameOrKey), { recursive: true, force: true });
  }

  /**
   * The committed chain from `name` down to the base, top first: the order overlay's lowerdir wants. A committed
   * snapshot's info never changes, so each is read once per process (a build asks for its chain a few times per
   * step, each one a layer longer); removing a snapshot through this object forgets it.
   */
  async chain(name: string): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    let cur: string | undefined = name;
    while (cur !== undefined) {
      let info = this.#committed.get(cur);
      if (!info) {
        info = await this.stat(cur);
        if (!info) throw new StrataError('NOT_FOUND', `snapshot ${cur} not found`);
        if (info.kind === 'committed') this.#committed.set(cur, info);
      }
      out.push(info);
      cur = info.parent;
    }
    return out;
  }

  /** Every snapshot, and directories that are not valid snapshots (left by a killed process) as `stray`. */
  async walk(): Promise<{ snapshots: SnapshotInfo[]; stray: string[] }> {
    const snapshots: SnapshotInfo[] = [];
    const stray: string[] = [];
    const names = await readdir(this.root).catch(() => [] as string[]);
    for (const id of names.sort()) {
      const dir = join(this.root, id);
      try {
        const info = JSON.parse(await readFile(join(dir, 'info.json'), 'utf8')) as SnapshotInfo;
        if (this.#dirOf(info.name) === dir) snapshots.push(info);
        else stray.push(dir);
      } catch {
        stray.push(dir);
      }
    }
    return { snapshots, stray };
  }

  async removeDir(dir: string): Promise<void> {
    if (!dir.startsWith(`${this.root}/`))
      throw new StrataError('INVALID_ARGUMENT', `${dir} is not a snapshot directory`);
    this.#committed.clear();
    await rm(dir, { recursive: true, force: true });
  }

  // Active rootfs snapshots (containers, build steps): see active.ts.

  /** Create a writable rootfs on the committed chain `parentChainId` (undefined: an image without layers). */
  prepareActive(key: string, parentChainId: string | undefined, opts: ActiveOptions = {}): Promise<ActiveSnapshot> {
    return prepareActive(this, key, parentChainId, opts);
  }

  getActive(key: string): Promise<ActiveSnapshot | undefined> {
    return getActive(this, key);
  }

  listActive(): Promise<ActiveSnapshot[]> {
    return listActive(this);
  }

  /** The mounts that make `key`'s rootfs (containerd's Mount), with absolute paths. */
  mounts(key: string): Promise<Mount[]> {
    return activeMounts(this, key);
  }

  /** Mount `key`'s rootfs on `target`; returns the canonical mount point. */
  mountActive(key: string, target: string): Promise<string> {
    return mountActive(this, key, target);
  }

  /**
   * Unmount `target` (whatever is mounted there); returns whether something was. `key`, the snapshot mounted
   * there, spares a walk of every snapshot to find the one that recorded the mount.
   */
  unmount(target: string, key?: string): Promise<boolean> {
    return unmountActive(this, target, key);
  }

  /** Unmount `key` wherever it is mounted and delete it; false if it did not exist. */
  removeActive(key: string): Promise<boolean> {
    return removeActive(this, key);
  }

  /** `docker diff` of `key` against its layer chain. */
  diffActive(key: string): Promise<Change[]> {
    return diffActive(this, key);
  }

  /**
   * Make the (unmounted) overlay upper of `key` the committed snapshot `name` on `parent`, by rename; for a caller
   * that made the upper equal to the layer it packed. False (and `key` removed) when `name` existed already.
   */
  commitUpper(key: string, name: string, opts: { parent?: string; size?: number } = {}): Promise<boolean> {
    return commitActiveUpper(this, key, name, opts);
  }

  /** A throwaway writable view of the directory `source`, made in `dir`; see active.ts. */
  writableView(source: string, dir: string): Promise<{ path: string; release: () => Promise<void> }> {
    return writableView(this, source, dir);
  }

  /** Unmount everything mounted at or below `dir` (what a killed process left), deepest first. */
  unmountUnder(dir: string): Promise<void> {
    return unmountUnder(dir);
  }

  /** What a commit of `key` packs into a layer. */
  layerSource(key: string): Promise<ActiveLayerSource> {
    return activeLayerSource(this, key);
  }

  /** 'overlay' or 'copy': what prepareActive uses here (STRATA_SNAPSHOTTER, else overlayfs tried once). */
  activeMode(): Promise<ActiveMode> {
    return activeMode(this);
  }
}

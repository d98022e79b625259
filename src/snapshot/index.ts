/**
 * Snapshots: layer filesystems unpacked once (named by chainId) and writable directories on top of them.
 *
 *   const dir = await snapshots.prepare('extract-1', parentChainId);
 *   await applyLayer(stream, dir, { whiteouts: 'overlay' });   // from archive/, by the caller
 *   await snapshots.commit(chainId, 'extract-1');
 *
 * A container's rootfs (overlay over the chain, or a full copy where overlayfs cannot mount):
 *
 *   await snapshots.prepareActive(containerId, topChainId);
 *   await snapshots.mountActive(containerId, rootfsDir);
 *   const changes = await snapshots.diffActive(containerId);          // docker diff
 *   const src = await snapshots.layerSource(containerId);              // commit: pack it with archive/
 *   const layer = src.kind === 'overlay-upper' ? packOverlayUpper(src.upperDir) : packChanges(src.root, src.changes);
 *   await snapshots.removeActive(containerId);                         // unmounts too
 */
export type { ActiveLayerSource, ActiveMode, ActiveOptions, ActiveSnapshot } from './active.js';
export type { Change, ChangeKind } from './diff.js';
export { isMounted, type Mount, type MountInfo, mountAt, mountsUnder, readMountInfo } from './mount.js';
export { type SnapshotInfo, Snapshotter } from './snapshotter.js';

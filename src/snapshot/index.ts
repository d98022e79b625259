/**
 * Snapshots: layer filesystems unpacked once (named by chainId) and writable directories on top of them.
 *
 *   const dir = await snapshots.prepare('extract-1', parentChainId);
 *   await applyLayer(stream, dir, { whiteouts: 'overlay' });   // from archive/, by the caller
 *   await snapshots.commit(chainId, 'extract-1');
 */
export { type SnapshotInfo, Snapshotter } from './snapshotter.js';

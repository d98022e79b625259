/**
 * Archive: layer tars. Creating them from a directory, an overlayfs upper directory or a `docker diff` change list
 * (sorted entries, PAX for long names, large files and xattrs, hardlinks, devices; gzip compressed on several
 * threads, deterministically), and applying them to a directory with OCI whiteouts turned into deletions or into
 * overlayfs whiteouts, never writing outside the target. Digests are computed while the bytes stream.
 *
 *   const layer = packDirectory('/tmp/rootfs', { sourceDateEpoch: 0 });
 *   await pipeline(layer.stream, createWriteStream('layer.tar.gz'));
 *   const { diffId, digest, size } = await layer.info;
 *
 *   const { diffId: applied } = await applyLayer(createReadStream('layer.tar.gz'), snapshotDir, { whiteouts: 'overlay' });
 */
export { type ApplyOptions, type ApplyResult, applyLayer } from './apply.js';
export { decompressStream } from './decompress.js';
export { createParallelGzip, type ParallelGzipOptions } from './gzip.js';
export { type Compression, layerMediaType } from './media-type.js';
export { changesFromOverlayUpper, settleUpperAsLayer } from './overlay.js';
export {
  type Change,
  type ChangeKind,
  type LayerInfo,
  type PackedLayer,
  type PackOptions,
  packChanges,
  packDirectory,
  packOverlayUpper,
} from './pack.js';

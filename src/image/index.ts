/**
 * Images: read-only views over manifests, configs and layers (store-backed), and the ways images come and go:
 * import of a root filesystem, save to and load from docker-archive / OCI-layout tars, unpacking layers into
 * snapshots.
 *
 *   const image = await openImage(store, descriptor);
 *   for (const layer of image.layers) console.log(layer.digest, layer.diffId);
 */
export { applyChanges } from './changes.js';
export { documentDigest, type Image, type Layer, layerPairs, type OpenImageOptions, openImage } from './image.js';
export { type ImportOptions, importRootfs } from './import.js';
export { type LoadedImage, loadArchive } from './load.js';
export { type ArchiveFormat, type SaveEntry, saveImages } from './save.js';
export { type UnpackResult, type UnpackSource, unpackLayers } from './unpack.js';
export { encodeImage, type LayerDescriptor, type ManifestFormat, writeImage } from './write.js';

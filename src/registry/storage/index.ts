export { isNotFound, type StorageDriver, type StorageStat } from './driver.js';
export { FilesystemDriver } from './filesystem.js';
export { type PathSpec, pathFor } from './paths.js';

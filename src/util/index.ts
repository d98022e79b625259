/**
 * Utilities shared by every module: hashing pass-through streams, atomic file replacement, cross-process locks,
 * bounded concurrency, extended attributes (the addon loaded at first use).
 *
 *   await writeFileAtomic('/var/lib/strata/index.json', JSON.stringify(index));
 */
export { HashingStream, sha256Hex } from './hash.js';
export { exists, fsyncDir, mapLimit, tempPathFor, writeFileAtomic } from './fs.js';
export { withLock } from './lock.js';
export { limiter } from './limit.js';
export {
  getAttribute,
  getAttributeSync,
  listAttributes,
  listAttributesSync,
  removeAttributeSync,
  setAttributeSync,
} from './xattr.js';

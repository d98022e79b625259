/**
 * The OCI image model, pure (no I/O): digests, media types, descriptors, manifests, indexes, configs, platforms,
 * chainIds, canonical JSON, and the parsers every document read from outside goes through. Parsers take bytes or
 * an already-parsed value, refuse documents over 4 MiB, keep fields they do not know, and throw an
 * InvalidDocumentError naming the document and the field (schema 1 manifests: UNIMPLEMENTED, with a hint).
 *
 *   const doc = parseDocument(bytes, { mediaType: desc.mediaType });  // manifest or index, by type or shape
 *   if (doc.kind === 'index') desc = selectManifest(doc.index, hostPlatform());
 *   const config = parseImageConfig(configBytes);    // invalid image config: field "rootfs.diff_ids[1]" ...
 *   const snapshotKeys = chainIds(config.rootfs.diff_ids);
 */
export { canonicalJson } from './canonical-json.js';
export { chainId, chainIds } from './chain-id.js';
export {
  type Digest,
  type DigestAlgorithm,
  digestAlgorithm,
  digestFromHex,
  digestHex,
  digestOf,
  digestProblem,
  isDigest,
  parseDigest,
  quoted,
  shortId,
} from './digest.js';
export { type JsonOptions, MAX_DOCUMENT_BYTES, parseJson } from './json.js';
export {
  isIndexType,
  isManifestType,
  isSchema1Type,
  type LayerCompression,
  layerCompression,
  MediaType,
  type MediaTypeName,
} from './media-types.js';
export { DEFAULT_PATH_ENV, emptyImageConfig, type NewHistoryEntry, newHistoryEntry } from './new-image.js';
export { formatPlatform, hostPlatform, parsePlatform, platformMatches, selectManifest } from './platform.js';
export {
  type DocumentInput,
  type ParsedDocument,
  type ParseOptions,
  parseDescriptor,
  parseDocument,
  parseImageConfig,
  parseIndex,
  parseManifest,
} from './schemas.js';
export {
  Annotation,
  type ContainerConfig,
  type Descriptor,
  type HealthConfig,
  type HistoryEntry,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type Platform,
} from './types.js';

/**
 * The OCI image model, pure: digests, media types, descriptors, manifests, indexes, configs, platforms, chainIds,
 * canonical JSON, and schemas that validate every document read from outside (errors name the field).
 *
 *   const manifest = parseManifest(bytes);            // throws InvalidDocumentError: field "layers[1].digest" ...
 *   const ids = chainIds(config.rootfs.diff_ids);
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
  isDigest,
  parseDigest,
  shortId,
} from './digest.js';
export {
  isIndexType,
  isManifestType,
  isSchema1Type,
  type LayerCompression,
  layerCompression,
  MediaType,
  type MediaTypeName,
} from './media-types.js';
export { formatPlatform, hostPlatform, parsePlatform, platformMatches, selectManifest } from './platform.js';
export {
  MAX_DOCUMENT_BYTES,
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

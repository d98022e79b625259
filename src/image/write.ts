import type { ContentStore } from '../content/index.js';
import {
  type Descriptor,
  type Digest,
  digestOf,
  type ImageConfig,
  type ImageManifest,
  MediaType,
} from '../oci/index.js';

export interface LayerDescriptor {
  digest: Digest;
  size: number;
  mediaType: string;
}

export type ManifestFormat = 'oci' | 'docker';

/** Serialize a config and its manifest (keys in the specs' order, no whitespace): the bytes that get digested. */
export function encodeImage(
  config: ImageConfig,
  layers: readonly LayerDescriptor[],
  format: ManifestFormat = 'oci',
  /** The config's bytes as they already exist (a loaded archive's): kept as they are, their digest is the image ID. */
  existingConfig?: Buffer,
) {
  const rawConfig = existingConfig ?? Buffer.from(JSON.stringify(config));
  const configDesc: Descriptor = {
    mediaType: format === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig,
    digest: digestOf(rawConfig),
    size: rawConfig.length,
  };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest,
    config: configDesc,
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const rawManifest = Buffer.from(JSON.stringify(manifest));
  const descriptor: Descriptor = {
    mediaType: manifest.mediaType!,
    digest: digestOf(rawManifest),
    size: rawManifest.length,
  };
  return { rawConfig, configDesc, manifest, rawManifest, descriptor };
}

/** Store config and manifest (layers must already be in the store); returns the manifest descriptor. */
export async function writeImage(
  store: ContentStore,
  config: ImageConfig,
  layers: readonly LayerDescriptor[],
  format: ManifestFormat = 'oci',
): Promise<Descriptor> {
  const enc = encodeImage(config, layers, format);
  await store.put(enc.rawConfig, { digest: enc.configDesc.digest, what: 'image config' });
  await store.put(enc.rawManifest, { digest: enc.descriptor.digest, what: 'image manifest' });
  return enc.descriptor;
}

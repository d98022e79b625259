import { MediaType } from '../oci/index.js';

export type Compression = 'gzip' | 'none';

// Docker's schema 2 has an uncompressed layer type that the shared MediaType table does not list.
const DOCKER_LAYER_UNCOMPRESSED = 'application/vnd.docker.image.rootfs.diff.tar';

/** The media type a layer descriptor carries, for OCI or Docker schema 2 manifests. */
export function layerMediaType(kind: 'oci' | 'docker', compression: Compression): string {
  if (kind === 'docker') return compression === 'gzip' ? MediaType.DockerLayer : DOCKER_LAYER_UNCOMPRESSED;
  return compression === 'gzip' ? MediaType.OciLayerGzip : MediaType.OciLayer;
}

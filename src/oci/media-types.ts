/** Media types strata reads and writes. OCI and Docker schema 2 are both read; schema 1 is refused. */
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;
export type MediaTypeName = (typeof MediaType)[keyof typeof MediaType];

export function isManifestType(mt: string | undefined): boolean {
  return mt === MediaType.OciManifest || mt === MediaType.DockerManifest;
}

export function isIndexType(mt: string | undefined): boolean {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

export function isSchema1Type(mt: string | undefined): boolean {
  return mt === MediaType.DockerSchema1 || mt === MediaType.DockerSchema1Signed;
}

export type LayerCompression = 'gzip' | 'zstd' | 'none';

/** How a layer's bytes are compressed, from its media type; undefined when the type is not a layer strata knows. */
export function layerCompression(mt: string): LayerCompression | undefined {
  switch (mt) {
    case MediaType.OciLayerGzip:
    case MediaType.OciLayerNondistributableGzip:
    case MediaType.DockerLayer:
    case MediaType.DockerForeignLayer:
      return 'gzip';
    case MediaType.OciLayerZstd:
      return 'zstd';
    case MediaType.OciLayer:
    case MediaType.OciLayerNondistributable:
      return 'none';
    default:
      return undefined;
  }
}

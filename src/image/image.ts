import type { Readable } from 'node:stream';
import { decompressStream } from '../archive/index.js';
import type { ContentStore } from '../content/index.js';
import { StrataError } from '../errors/index.js';
import {
  type Descriptor,
  type Digest,
  digestOf,
  type ImageConfig,
  type ImageManifest,
  isIndexType,
  layerCompression,
  type Platform,
  parseDocument,
  parseImageConfig,
  selectManifest,
  formatPlatform,
  hostPlatform,
} from '../oci/index.js';

/** One layer of an image: its stored (usually compressed) blob and the diffId of the tar inside. */
export interface Layer {
  readonly digest: Digest;
  readonly diffId: Digest;
  readonly size: number;
  readonly mediaType: string;
  /** The blob's bytes as stored, verified against the digest while streaming. */
  compressed(opts?: { signal?: AbortSignal }): Promise<Readable>;
  /** The layer tar, decompressed. */
  uncompressed(opts?: { signal?: AbortSignal }): Promise<Readable>;
}

/**
 * An image: a manifest, its config and its layers. Immutable; `digest` is the manifest digest (what registries and
 * RepoDigests name) and `id` the config digest (what docker prints as IMAGE ID).
 */
export interface Image {
  readonly digest: Digest;
  readonly id: Digest;
  readonly mediaType: string;
  readonly rawManifest: Buffer;
  readonly manifest: ImageManifest;
  readonly rawConfig: Buffer;
  readonly config: ImageConfig;
  readonly layers: readonly Layer[];
}

/** Layers as pairs of manifest descriptor and config diff_id; refuses images whose counts disagree. */
export function layerPairs(manifest: ImageManifest, config: ImageConfig, where: string): [Descriptor, Digest][] {
  const diffIds = config.rootfs.diff_ids;
  if (manifest.layers.length !== diffIds.length) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `${where}: the manifest lists ${manifest.layers.length} layers but the config's rootfs.diff_ids lists ${diffIds.length}`,
      { hint: 'the image is malformed; rebuild or re-export it' },
    );
  }
  for (const [i, l] of manifest.layers.entries()) {
    if (layerCompression(l.mediaType) === undefined) {
      throw new StrataError('UNIMPLEMENTED', `${where}: layer ${i} has unknown media type "${l.mediaType}"`, {
        hint: 'strata reads tar, tar+gzip and Docker schema 2 layers',
      });
    }
  }
  return manifest.layers.map((l, i) => [l, diffIds[i] as Digest]);
}

function storeLayer(store: ContentStore, desc: Descriptor, diffId: Digest): Layer {
  return {
    digest: desc.digest,
    diffId,
    size: desc.size,
    mediaType: desc.mediaType,
    compressed: (o) => store.read(desc.digest, o),
    uncompressed: async (o) => decompressStream(await store.read(desc.digest, o)),
  };
}

export interface OpenImageOptions {
  /** For an index: which platform's manifest (default: the host's). */
  platform?: Platform;
}

/**
 * Open an image from the content store by manifest (or index) descriptor or digest. Manifest and config are read
 * verified and validated; an index resolves to the manifest for the platform asked for.
 */
export async function openImage(
  store: ContentStore,
  target: Descriptor | Digest,
  opts: OpenImageOptions = {},
): Promise<Image> {
  const digest = typeof target === 'string' ? target : target.digest;
  const hint = typeof target === 'string' ? undefined : target.mediaType;
  const raw = await store.readBytes(digest);
  const doc = parseDocument(raw, hint === undefined ? {} : { mediaType: hint });
  if (doc.kind === 'index') {
    const want = opts.platform ?? hostPlatform();
    const chosen = selectManifest(doc.index, want);
    if (!chosen) {
      throw new StrataError('NOT_FOUND', `image index ${digest} has no manifest for platform ${formatPlatform(want)}`, {
        hint: 'pass --platform with one of the platforms the index lists',
      });
    }
    if (isIndexType(chosen.mediaType))
      throw new StrataError('UNIMPLEMENTED', `nested image indexes are not supported (${digest})`);
    return openImage(store, chosen, opts);
  }
  const manifest = doc.manifest;
  const rawConfig = await store.readBytes(manifest.config.digest);
  const config = parseImageConfig(rawConfig);
  const layers = layerPairs(manifest, config, `image ${digest}`).map(([d, diffId]) => storeLayer(store, d, diffId));
  return {
    digest,
    id: manifest.config.digest,
    mediaType: doc.mediaType,
    rawManifest: raw,
    manifest,
    rawConfig,
    config,
    layers,
  };
}

/** Digest of an in-memory document, for callers that build manifests and configs. */
export function documentDigest(raw: Buffer | string): Digest {
  return digestOf(raw);
}

import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { Annotation, chainIds, type Descriptor, type Digest, digestHex, MediaType } from '../oci/index.js';
import type { Snapshotter } from '../snapshot/index.js';
import type { Image, Layer } from './image.js';

export type ArchiveFormat = 'docker' | 'oci';

export interface SaveEntry {
  image: Image;
  /** Full normalized references to record for this image (may be empty). */
  references: string[];
  /** docker's short form of each reference, for docker-archive's RepoTags. */
  familiar: string[];
  /** The descriptor to list in an OCI archive's index.json (the index, for a multi-platform image). */
  descriptor?: Descriptor;
}

const EPOCH = new Date(0);

function addEntry(pack: tar.Pack, name: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry({ name, size: data.length, mode: 0o644, mtime: EPOCH }, data, (err) => (err ? reject(err) : resolve()));
  });
}

async function addStream(pack: tar.Pack, name: string, size: number, src: Readable): Promise<void> {
  const entry = pack.entry({ name, size, mode: 0o644, mtime: EPOCH });
  await pipeline(src, entry);
}

/** Byte length of a layer's uncompressed tar: recorded when the layer was unpacked, else counted. */
async function uncompressedSize(layer: Layer, chainId: Digest, snapshots: Snapshotter): Promise<number> {
  const info = await snapshots.stat(chainId);
  if (info?.size !== undefined) return info.size;
  let n = 0;
  for await (const chunk of await layer.uncompressed()) n += (chunk as Buffer).length;
  return n;
}

/**
 * Write images to a tar: `docker` (docker-archive: manifest.json, `<config>.json`, uncompressed `<diffId>.tar` layers,
 * what `docker load` and `podman load` read) or `oci` (an OCI image layout: oci-layout, index.json, blobs/).
 * Layers shared by several images are written once. Bytes stream from the store; nothing is buffered but JSON.
 */
export async function saveImages(
  entries: readonly SaveEntry[],
  out: Writable,
  format: ArchiveFormat,
  snapshots: Snapshotter,
  opts: { signal?: AbortSignal } = {},
): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, out, opts.signal ? { signal: opts.signal } : {});
  try {
    const written = new Set<string>();
    if (format === 'oci') {
      await addEntry(pack, 'oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
      const blob = async (d: Digest, size: number, open: () => Promise<Readable>) => {
        if (written.has(d)) return;
        written.add(d);
        await addStream(pack, `blobs/sha256/${digestHex(d)}`, size, await open());
      };
      const manifests: Descriptor[] = [];
      for (const { image, references, descriptor } of entries) {
        for (const l of image.layers) await blob(l.digest, l.size, () => l.compressed());
        await blob(image.id, image.rawConfig.length, async () => Readable.from([image.rawConfig]));
        await blob(image.digest, image.rawManifest.length, async () => Readable.from([image.rawManifest]));
        const desc: Descriptor = descriptor ?? {
          mediaType: image.mediaType,
          digest: image.digest,
          size: image.rawManifest.length,
        };
        if (references.length === 0) manifests.push(desc);
        for (const ref of references) {
          manifests.push({
            ...desc,
            annotations: { ...desc.annotations, [Annotation.RefName]: ref, [Annotation.ImageName]: ref },
          });
        }
      }
      const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
      await addEntry(pack, 'index.json', Buffer.from(JSON.stringify(index)));
    } else {
      const manifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
      for (const { image, familiar } of entries) {
        const ids = chainIds(image.layers.map((l) => l.diffId));
        const layerNames: string[] = [];
        for (const [i, l] of image.layers.entries()) {
          const name = `${digestHex(l.diffId)}.tar`;
          layerNames.push(name);
          if (written.has(name)) continue;
          written.add(name);
          const size = await uncompressedSize(l, ids[i] as Digest, snapshots);
          await addStream(pack, name, size, await l.uncompressed());
        }
        const configName = `${digestHex(image.id)}.json`;
        if (!written.has(configName)) {
          written.add(configName);
          await addEntry(pack, configName, image.rawConfig);
        }
        manifest.push({ Config: configName, RepoTags: familiar, Layers: layerNames });
      }
      await addEntry(pack, 'manifest.json', Buffer.from(JSON.stringify(manifest)));
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
  }
  await done;
}

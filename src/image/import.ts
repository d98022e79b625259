import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { applyLayer, layerMediaType, packDirectory } from '../archive/index.js';
import type { ContentStore } from '../content/index.js';
import { errnoCode, StrataError } from '../errors/index.js';
import { type Descriptor, hostPlatform, type ImageConfig, type Platform } from '../oci/index.js';
import type { Snapshotter } from '../snapshot/index.js';
import { applyChanges } from './changes.js';
import { unpackLayers } from './unpack.js';
import { writeImage } from './write.js';

export interface ImportOptions {
  /** Dockerfile instructions applied to the config (`--change 'CMD ["sh"]'`). */
  changes?: readonly string[];
  /** History comment; default "Imported from <source>". */
  message?: string;
  platform?: Platform;
  /** Image creation time; default now (as docker import). */
  created?: Date;
  level?: number;
  signal?: AbortSignal;
}

/**
 * `strata import`: a single-layer image from a root filesystem, given as a directory or a tar (plain or gzip).
 * A tar is first applied into a new snapshot (so every entry passes the path-safety checks) and the layer is
 * packed from that tree: the stored layer is always sorted and normalized, whatever order the input had.
 */
export async function importRootfs(
  store: ContentStore,
  snapshots: Snapshotter,
  source: string,
  opts: ImportOptions = {},
): Promise<Descriptor> {
  // Validate the cheap inputs before any byte is written.
  const containerConfig = applyChanges({}, opts.changes ?? []);
  const st = await stat(source).catch((err) => {
    if (errnoCode(err) === 'ENOENT') {
      throw new StrataError('NOT_FOUND', `import source ${source} does not exist`, {
        hint: 'give a root filesystem tar (optionally gzip-compressed) or a directory',
      });
    }
    throw err;
  });
  const signal = opts.signal;
  const packOpts = { compression: 'gzip' as const, level: opts.level ?? 6, ...(signal ? { signal } : {}) };
  let treeDir: string;
  let tempKey: string | undefined;
  if (st.isDirectory()) {
    treeDir = source;
  } else {
    tempKey = `import-${randomBytes(8).toString('hex')}`;
    treeDir = await snapshots.prepare(tempKey);
    try {
      await applyLayer(createReadStream(source), treeDir, { whiteouts: 'overlay', ...(signal ? { signal } : {}) });
    } catch (err) {
      await snapshots.remove(tempKey);
      throw err;
    }
  }
  try {
    const packed = packDirectory(treeDir, packOpts);
    const ingested = await store.ingest(packed.stream, { what: `layer of ${source}` }, signal);
    const info = await packed.info;
    try {
      if (tempKey) await snapshots.commit(info.diffId, tempKey, { size: info.uncompressedSize });
      else await unpackLayers(snapshots, [{ diffId: info.diffId, open: async () => createReadStream(ingested.path) }]);
      await ingested.commit();
    } catch (err) {
      await ingested.abort();
      throw err;
    }
    const platform = opts.platform ?? hostPlatform();
    const created = (opts.created ?? new Date()).toISOString();
    const config: ImageConfig = {
      created,
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      config: containerConfig,
      rootfs: { type: 'layers', diff_ids: [info.diffId] },
      history: [{ created, created_by: '', comment: opts.message ?? `Imported from ${source}` }],
    };
    return await writeImage(store, config, [
      { digest: ingested.digest, size: ingested.size, mediaType: layerMediaType('oci', 'gzip') },
    ]);
  } finally {
    if (tempKey && (await snapshots.stat(tempKey))) await snapshots.remove(tempKey);
  }
}

import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { applyLayer } from '../archive/index.js';
import { DigestMismatchError } from '../errors/index.js';
import { chainIds, type Digest } from '../oci/index.js';
import type { Snapshotter } from '../snapshot/index.js';

/** A layer to unpack: its diffId and a way to open its (compressed or plain) bytes. */
export interface UnpackSource {
  diffId: Digest;
  open(): Promise<Readable>;
  what?: string;
}

export interface UnpackResult {
  chainIds: Digest[];
  /** chainIds whose snapshot this call created (the rest already existed). */
  created: Digest[];
}

/**
 * Make sure every layer of a stack is unpacked into a committed snapshot named by its chainId, unpacking only the
 * ones missing. Each layer is applied with overlay-form whiteouts and its diffId verified while it streams; a
 * mismatch or a refused entry removes the half-made snapshot and throws.
 */
export async function unpackLayers(
  snapshots: Snapshotter,
  layers: readonly UnpackSource[],
  opts: { signal?: AbortSignal; onLayer?: (i: number, state: 'exists' | 'unpacked') => void } = {},
): Promise<UnpackResult> {
  const ids = chainIds(layers.map((l) => l.diffId));
  const created: Digest[] = [];
  let parent: Digest | undefined;
  for (const [i, layer] of layers.entries()) {
    const name = ids[i] as Digest;
    const existing = await snapshots.stat(name);
    if (existing?.kind === 'committed') {
      opts.onLayer?.(i, 'exists');
      parent = name;
      continue;
    }
    const key = `extract-${randomBytes(8).toString('hex')}-${name}`;
    const dir = await snapshots.prepare(key, parent);
    try {
      const applyOpts = opts.signal
        ? { whiteouts: 'overlay' as const, signal: opts.signal }
        : { whiteouts: 'overlay' as const };
      const res = await applyLayer(await layer.open(), dir, applyOpts);
      if (res.diffId !== layer.diffId) {
        throw new DigestMismatchError(layer.what ?? `layer ${i}`, layer.diffId, res.diffId, {
          hint: "the layer's content does not match the diff_id in the image config; the image is corrupt",
        });
      }
      if (await snapshots.commit(name, key, { size: res.uncompressedSize })) created.push(name);
    } catch (err) {
      await snapshots.remove(key);
      throw err;
    }
    opts.onLayer?.(i, 'unpacked');
    parent = name;
  }
  return { chainIds: ids, created };
}

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContentStore } from '../content/index.js';
import type { Descriptor } from '../oci/index.js';
import type { Snapshotter } from '../snapshot/index.js';
import { mapLimit } from '../util/index.js';
import { mark } from './gc.js';

export interface FsckProblem {
  severity: 'error' | 'warning';
  message: string;
}

export interface FsckReport {
  blobs: number;
  bytes: number;
  images: number;
  snapshots: number;
  problems: FsckProblem[];
}

/**
 * Check the whole root: re-hash every blob, follow every tag to its manifest, config and layers, check each
 * image's layer snapshots and their parent chains. Errors mean data is wrong or missing; warnings are leftovers
 * (ingest entries or half-made snapshots of killed processes) that `image prune` removes.
 */
export async function fsck(
  root: string,
  store: ContentStore,
  snapshots: Snapshotter,
  roots: readonly { descriptor: Descriptor; name: string }[],
  opts: { onProgress?: (done: number) => void } = {},
): Promise<FsckReport> {
  const problems: FsckProblem[] = [];
  const blobs = [];
  for await (const b of store.walk()) blobs.push(b);
  let done = 0;
  await mapLimit(blobs, 2, async (b) => {
    const actual = await store.verify(b.digest);
    if (actual !== b.digest)
      problems.push({ severity: 'error', message: `blob ${b.digest} is corrupt: its content hashes to ${actual}` });
    opts.onProgress?.(++done);
  });
  for (const p of await store.strayBlobNames())
    problems.push({ severity: 'error', message: `${p} is not named by a valid digest` });
  const live = await mark(store, roots);
  for (const m of live.problems) problems.push({ severity: 'error', message: m });
  const { snapshots: all, stray } = await snapshots.walk();
  const committed = new Set(all.filter((s) => s.kind === 'committed').map((s) => s.name));
  for (const c of live.chainIds) {
    if (!committed.has(c))
      problems.push({ severity: 'error', message: `layer snapshot ${c} is missing (an image needs it)` });
  }
  for (const s of all) {
    if (s.parent && !committed.has(s.parent)) {
      problems.push({ severity: 'error', message: `snapshot ${s.name} stands on missing parent ${s.parent}` });
    }
  }
  for (const d of stray) problems.push({ severity: 'warning', message: `${d} is a leftover snapshot directory` });
  for (const name of await readdir(join(root, 'ingest')).catch(() => [] as string[])) {
    problems.push({ severity: 'warning', message: `ingest/${name} is an unfinished write` });
  }
  problems.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1));
  return {
    blobs: blobs.length,
    bytes: blobs.reduce((n, b) => n + b.size, 0),
    images: roots.length,
    snapshots: all.length,
    problems,
  };
}

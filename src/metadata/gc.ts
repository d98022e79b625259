import { stat } from 'node:fs/promises';
import type { BlobInfo, ContentStore } from '../content/index.js';
import { chainIds, type Descriptor, type Digest, isIndexType, parseDocument, parseImageConfig } from '../oci/index.js';
import type { SnapshotInfo, Snapshotter } from '../snapshot/index.js';
import { oldestLiveLease } from './lease.js';

export interface MarkResult {
  /** Every blob reachable from the roots. */
  blobs: Set<Digest>;
  /** Every layer snapshot (chainId) an image reachable from the roots needs. */
  chainIds: Set<Digest>;
  /** What is referenced but missing or unreadable, as sentences naming the root. */
  problems: string[];
}

/** Walk from root descriptors through indexes, manifests and configs, collecting what they keep alive. */
export async function mark(
  store: ContentStore,
  roots: readonly { descriptor: Descriptor; name: string }[],
): Promise<MarkResult> {
  const res: MarkResult = { blobs: new Set(), chainIds: new Set(), problems: [] };
  const visit = async (d: Descriptor, name: string, optional: boolean): Promise<void> => {
    if (res.blobs.has(d.digest)) return;
    if (!(await store.has(d.digest))) {
      if (!optional) res.problems.push(`${name}: ${d.mediaType} ${d.digest} is missing`);
      return;
    }
    res.blobs.add(d.digest);
    let doc: ReturnType<typeof parseDocument>;
    try {
      doc = parseDocument(await store.readBytes(d.digest), { mediaType: d.mediaType });
    } catch (err) {
      res.problems.push(`${name}: ${d.digest}: ${(err as Error).message}`);
      return;
    }
    if (doc.kind === 'index') {
      // An index pulled for one platform holds only that platform's manifest: absent children are expected.
      for (const child of doc.index.manifests) await visit(child, name, true);
      return;
    }
    const m = doc.manifest;
    if (!(await store.has(m.config.digest))) {
      res.problems.push(`${name}: config ${m.config.digest} is missing`);
    } else {
      res.blobs.add(m.config.digest);
      try {
        const config = parseImageConfig(await store.readBytes(m.config.digest));
        for (const c of chainIds(config.rootfs.diff_ids)) res.chainIds.add(c);
      } catch (err) {
        res.problems.push(`${name}: config ${m.config.digest}: ${(err as Error).message}`);
      }
    }
    for (const [i, l] of m.layers.entries()) {
      if (await store.has(l.digest)) res.blobs.add(l.digest);
      else res.problems.push(`${name}: layer ${i} ${l.digest} is missing`);
    }
    if (m.subject && !isIndexType(m.subject.mediaType)) res.blobs.add(m.subject.digest);
  };
  for (const r of roots) await visit(r.descriptor, r.name, false);
  return res;
}

export interface GcResult {
  blobs: BlobInfo[];
  snapshots: SnapshotInfo[];
  strayDirs: string[];
  reclaimedBytes: number;
}

/**
 * Delete blobs and layer snapshots that no root reaches (`image prune`). Anything modified since the oldest live
 * lease began is spared, so an import or load running in another process keeps what it has staged.
 */
export async function collectGarbage(
  root: string,
  store: ContentStore,
  snapshots: Snapshotter,
  roots: readonly { descriptor: Descriptor; name: string }[],
  opts: { dryRun?: boolean; keepChainIds?: Iterable<string> } = {},
): Promise<GcResult> {
  const since = await oldestLiveLease(root);
  const spared = async (path: string): Promise<boolean> => {
    if (since === undefined) return false;
    const st = await stat(path).catch(() => undefined);
    return st !== undefined && st.mtimeMs >= since - 1000;
  };
  const live = await mark(store, roots);
  const keep = new Set<string>([...live.chainIds, ...(opts.keepChainIds ?? [])]);
  const out: GcResult = { blobs: [], snapshots: [], strayDirs: [], reclaimedBytes: 0 };
  for await (const b of store.walk()) {
    if (live.blobs.has(b.digest) || (await spared(store.blobPath(b.digest)))) continue;
    out.blobs.push(b);
    out.reclaimedBytes += b.size;
    if (!opts.dryRun) await store.delete(b.digest);
  }
  const { snapshots: all, stray } = await snapshots.walk();
  // A committed snapshot stays while any kept snapshot stands on it.
  const byName = new Map(all.map((s) => [s.name, s]));
  const needed = new Set<string>();
  for (const s of all) {
    // Temporary keys (extract-, import-) left by a killed process hold nothing anyone needs.
    if ((s.kind === 'active' && !/^(extract|import)-/.test(s.name)) || keep.has(s.name)) {
      for (
        let cur: SnapshotInfo | undefined = s;
        cur && !needed.has(cur.name);
        cur = cur.parent ? byName.get(cur.parent) : undefined
      ) {
        needed.add(cur.name);
      }
    }
  }
  for (const s of all) {
    if (needed.has(s.name) || (await spared(snapshots.fsDir(s.name)))) continue;
    out.snapshots.push(s);
    out.reclaimedBytes += s.size ?? 0;
    if (!opts.dryRun) await snapshots.remove(s.name);
  }
  for (const dir of stray) {
    if (await spared(dir)) continue;
    out.strayDirs.push(dir);
    if (!opts.dryRun) await snapshots.removeDir(dir);
  }
  return out;
}

import { type Digest, isDigest } from '../oci/index.js';
import { FilesystemDriver, isNotFound, pathFor, type StorageDriver } from './storage/index.js';
import { RegistryStore } from './store.js';

/**
 * Online garbage collection of registry storage: safe while pushes and pulls go on, no read-only mode.
 *
 *   plan      for every repository: tags (with their link mtimes), manifest revisions, _layers links; each
 *             manifest read once (config, layers, index children, subject).
 *   retention optional: keep the newest `keepLastTags` tags of each repository (tag link mtime) and delete the
 *             others, with the manifests only they reached; delete manifests reachable from no tag whose revision
 *             link is older than `untaggedOlderThanSeconds`. A manifest reachable from a kept one (index child, or a
 *             referrer: its subject is kept) is kept. Without rules every revision is kept, tagged or not, as
 *             distribution does.
 *   mark      every kept revision and tag target, recursively through index children: manifest, config and
 *             layer blobs.
 *   sweep     a blob under blobs/ that is not marked and was last used (the later of its data file's mtime and its
 *             `touched` marker's) longer than the grace period ago is deleted; its age is read again just before
 *             the delete. Then _layers links to blobs that are gone are removed, so no repository links a missing
 *             blob.
 *
 * Why this is safe with pushes in flight: a manifest PUT is accepted only when every blob it names is present and
 * linked (store.#validate), and everything a push can rely on is young. A blob uploaded now has a fresh data
 * file; a blob that already existed is touched (RegistryStore.touchBlob) whenever a client is told it is there: a
 * HEAD or GET through a repository, a cross-repository mount, a re-push of the same bytes, the manifest PUT
 * validating it, a manifest blob stored again. So a push that HEADs an old unreferenced layer ("Layer already
 * exists") and then PUTs its manifest finds the layer young when GC looks at it, as long as the whole push takes
 * less than the grace period (minus the store's touch interval, at most a minute). A manifest that GC did not see
 * when it marked was pushed after the plan: all its blobs were touched or written by that push, hence young.
 *
 * The windows that remain, all narrow and none reachable when grace is longer than a push:
 *  - GC reads a blob's age (old), a client touches it (HEAD) and PUTs a manifest using it, then GC deletes it: the
 *    touch, the manifest PUT and its validation must all fit between two storage calls of GC; the manifest then
 *    names a missing blob. Storage offers no compare-and-delete, so this cannot be closed without a lock shared by
 *    every registry process.
 *  - A client that learned a blob exists longer than the grace period ago and only now PUTs its manifest: the
 *    manifest PUT fails cleanly (MANIFEST_BLOB_UNKNOWN) if GC deleted the blob first; a re-push fixes it.
 *  - A blob re-uploaded between GC's delete and its _layers link cleanup keeps its link (the data is checked again
 *    first); if the re-upload lands between that check and the unlink, the client's manifest PUT fails cleanly.
 *  - Retention: a tag re-pointed, or a manifest newly tagged, between the re-check and the delete is lost. Pushing
 *    the same untagged manifest again by digest does not refresh its revision link's age.
 * grace 0 removes the protection entirely: use it only when nothing pushes (tests, offline maintenance).
 */

export interface RegistryGcOptions {
  /** Blobs written or used more recently than this are never deleted (default 3600). */
  graceSeconds?: number;
  retention?: {
    /** Keep the newest N tags of each repository (by tag link mtime); delete the older tags. */
    keepLastTags?: number | undefined;
    /** Delete manifests reachable from no tag whose revision link is older than this. */
    untaggedOlderThanSeconds?: number | undefined;
  };
  /** Report what would go, delete nothing. */
  dryRun?: boolean;
  signal?: AbortSignal;
  /** Each deletion (or would-be deletion), as it happens. */
  onProgress?: (entry: RegistryGcDeletion) => void;
  /** Something GC could not follow (an unreadable manifest): it went on without it. */
  onWarning?: (message: string) => void;
}

export type RegistryGcDeletion =
  | { type: 'blob'; digest: Digest; size: number }
  | { type: 'manifest'; repository: string; digest: Digest }
  | { type: 'tag'; repository: string; tag: string; digest: Digest };

export interface RegistryGcResult {
  /** Blobs deleted (or that would be, with dryRun). */
  blobs: number;
  /** Bytes those blobs held. */
  bytes: number;
  /** Manifests deleted by retention rules. */
  manifests: number;
  /** Tags deleted by retention rules. */
  tags: number;
  durationMs: number;
  dryRun: boolean;
  deleted: RegistryGcDeletion[];
}

interface ManifestRefs {
  /** Config, layers and other blobs the manifest names. */
  blobs: Digest[];
  /** Index children. */
  children: Digest[];
  subject: Digest | undefined;
}

interface RepoPlan {
  name: string;
  /** tag -> target and link mtime. */
  tags: Map<string, { digest: Digest; modified: number }>;
  /** revision -> link mtime (0 when not needed). */
  revisions: Map<Digest, number>;
  layerLinks: Digest[];
  pruneTags: string[];
  deleteManifests: Set<Digest>;
}

function digestsIn(list: unknown, field = 'digest'): Digest[] {
  if (!Array.isArray(list)) return [];
  const out: Digest[] = [];
  for (const item of list) {
    const d = item && typeof item === 'object' ? (item as Record<string, unknown>)[field] : undefined;
    if (isDigest(d)) out.push(d);
  }
  return out;
}

/** What a manifest document names, read leniently: GC must never miss a reference to a schema detail. */
function parseRefs(bytes: Buffer): ManifestRefs | undefined {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const doc = v as Record<string, unknown>;
  return {
    blobs: [
      ...digestsIn([doc['config']]),
      ...digestsIn(doc['layers']),
      ...digestsIn(doc['blobs']),
      ...digestsIn(doc['fsLayers'], 'blobSum'),
    ],
    children: digestsIn(doc['manifests']),
    subject: digestsIn([doc['subject']])[0],
  };
}

function toStore(storage: RegistryStore | StorageDriver | string): RegistryStore {
  if (typeof storage === 'string') return new RegistryStore(new FilesystemDriver(storage));
  if (storage instanceof RegistryStore) return storage;
  return new RegistryStore(storage);
}

/**
 * Collect garbage in registry storage (a store, a driver, or a filesystem storage directory). See the comment at
 * the top of this file for what is kept and why it is safe while the registry serves.
 */
export async function registryGc(
  storage: RegistryStore | StorageDriver | string,
  opts: RegistryGcOptions = {},
): Promise<RegistryGcResult> {
  const started = Date.now();
  const store = toStore(storage);
  const driver = store.driver;
  const graceMs = (opts.graceSeconds ?? 3600) * 1000;
  const keepLastTags = opts.retention?.keepLastTags;
  const untaggedMs =
    opts.retention?.untaggedOlderThanSeconds === undefined ? undefined : opts.retention.untaggedOlderThanSeconds * 1000;
  const dryRun = opts.dryRun === true;
  const signal = opts.signal;
  const deleted: RegistryGcDeletion[] = [];
  const record = (entry: RegistryGcDeletion): void => {
    deleted.push(entry);
    opts.onProgress?.(entry);
  };
  const warn = (message: string): void => opts.onWarning?.(message);

  // ------------------------------------------------------------------ manifests, read once per run
  const refsCache = new Map<Digest, ManifestRefs | null>();
  const refsOf = async (digest: Digest): Promise<ManifestRefs | null> => {
    const cached = refsCache.get(digest);
    if (cached !== undefined) return cached;
    let refs: ManifestRefs | null = null;
    try {
      refs = parseRefs(await driver.getContent(pathFor({ kind: 'blobData', digest }))) ?? null;
      if (!refs) warn(`manifest ${digest} is not valid JSON: its references cannot be followed`);
    } catch (err) {
      // Any other read error stops GC: marking without this manifest could delete blobs it needs.
      if (!isNotFound(err)) throw err;
      warn(`manifest ${digest} has a revision or tag but no blob`);
    }
    refsCache.set(digest, refs);
    return refs;
  };
  const mtime = async (path: string): Promise<number | undefined> => (await driver.stat(path))?.modified.getTime();

  /** Manifests reachable from `roots` through index children and referrers (subject -> referrers). */
  const reach = async (roots: Iterable<Digest>, referrers: Map<Digest, Digest[]>): Promise<Set<Digest>> => {
    const seen = new Set<Digest>();
    const queue = [...roots];
    while (queue.length > 0) {
      const d = queue.pop()!;
      if (seen.has(d)) continue;
      seen.add(d);
      const refs = await refsOf(d);
      if (refs) queue.push(...refs.children);
      queue.push(...(referrers.get(d) ?? []));
    }
    return seen;
  };
  const referrersOf = async (revisions: Iterable<Digest>): Promise<Map<Digest, Digest[]>> => {
    const out = new Map<Digest, Digest[]>();
    for (const d of revisions) {
      const subject = (await refsOf(d))?.subject;
      if (subject) out.set(subject, [...(out.get(subject) ?? []), d]);
    }
    return out;
  };
  const readTags = async (name: string): Promise<Map<string, { digest: Digest; modified: number }>> => {
    const tags = new Map<string, { digest: Digest; modified: number }>();
    for (const tag of await store.tags(name)) {
      const path = pathFor({ kind: 'tagCurrentLink', name, tag });
      const [digest, modified] = await Promise.all([store.resolveTag(name, tag), mtime(path)]);
      if (isDigest(digest) && modified !== undefined) tags.set(tag, { digest, modified });
    }
    return tags;
  };

  // ------------------------------------------------------------------ plan
  const plans: RepoPlan[] = [];
  for (const name of await store.repositories()) {
    signal?.throwIfAborted();
    const tags = await readTags(name);
    const revisions = new Map<Digest, number>();
    for (const d of await store.revisions(name)) {
      if (!isDigest(d)) continue;
      const modified = untaggedMs === undefined ? 0 : await mtime(pathFor({ kind: 'revisionLink', name, digest: d }));
      if (modified !== undefined) revisions.set(d, modified);
    }
    for (const d of revisions.keys()) await refsOf(d);
    const plan: RepoPlan = {
      name,
      tags,
      revisions,
      layerLinks: (await store.layerLinks(name)).filter((d) => isDigest(d)),
      pruneTags: [],
      deleteManifests: new Set(),
    };
    if (keepLastTags !== undefined || untaggedMs !== undefined) {
      const byAge = [...tags].sort(([ta, a], [tb, b]) => b.modified - a.modified || (ta < tb ? 1 : ta > tb ? -1 : 0));
      const kept = keepLastTags === undefined ? byAge : byAge.slice(0, keepLastTags);
      plan.pruneTags = keepLastTags === undefined ? [] : byAge.slice(keepLastTags).map(([t]) => t);
      const referrers = await referrersOf(revisions.keys());
      const keptReach = await reach(
        kept.map(([, t]) => t.digest),
        referrers,
      );
      const prunedReach = await reach(
        plan.pruneTags.map((t) => tags.get(t)!.digest),
        referrers,
      );
      const now = Date.now();
      const keep = [...revisions].filter(
        ([d, modified]) =>
          keptReach.has(d) || !(prunedReach.has(d) || (untaggedMs !== undefined && now - modified > untaggedMs)),
      );
      // A manifest reached from a kept one stays: an untagged index child, a signature of a kept image.
      const closure = await reach(
        keep.map(([d]) => d),
        referrers,
      );
      for (const d of revisions.keys()) if (!closure.has(d)) plan.deleteManifests.add(d);
    }
    plans.push(plan);
  }

  // ------------------------------------------------------------------ retention
  let tagCount = 0;
  let manifestCount = 0;
  /** Per repository: revisions and tags actually gone (with dryRun: those that would be). */
  const gone = new Map<string, { manifests: Set<Digest>; tags: Set<string> }>();
  for (const plan of plans) {
    signal?.throwIfAborted();
    const { name } = plan;
    const goneHere = { manifests: new Set<Digest>(), tags: new Set<string>() };
    gone.set(name, goneHere);
    for (const tag of plan.pruneTags) {
      const planned = plan.tags.get(tag)!;
      if (!dryRun) {
        // Re-checked just before: a tag pushed again since the plan is the newest now, not one to prune.
        const [digest, modified] = await Promise.all([
          store.resolveTag(name, tag),
          mtime(pathFor({ kind: 'tagCurrentLink', name, tag })),
        ]);
        if (digest !== planned.digest || modified !== planned.modified) continue;
        await store.deleteManifest(name, tag);
      }
      goneHere.tags.add(tag);
      tagCount++;
      record({ type: 'tag', repository: name, tag, digest: planned.digest });
    }
    if (plan.deleteManifests.size === 0) continue;
    let stillReached = new Set<Digest>();
    if (!dryRun) {
      // What the tags reach now (a manifest tagged since the plan, or a child of a newly pushed index, stays).
      const current = [...(await readTags(name)).values()].map((t) => t.digest);
      stillReached = await reach(current, await referrersOf(await store.revisions(name)));
    }
    for (const digest of [...plan.deleteManifests].sort()) {
      if (!dryRun) {
        if (stillReached.has(digest)) continue;
        const link = pathFor({ kind: 'revisionLink', name, digest });
        const modified = await mtime(link);
        if (modified === undefined) continue;
        if (untaggedMs !== undefined && plan.revisions.get(digest) !== modified) continue;
        await store.deleteManifest(name, digest);
      }
      goneHere.manifests.add(digest);
      manifestCount++;
      record({ type: 'manifest', repository: name, digest });
    }
  }

  // ------------------------------------------------------------------ mark
  const marked = new Set<Digest>();
  const mark = async (d: Digest): Promise<void> => {
    if (marked.has(d)) return;
    marked.add(d);
    const refs = await refsOf(d);
    if (!refs) return;
    for (const b of refs.blobs) marked.add(b);
    for (const c of refs.children) await mark(c);
  };
  for (const plan of plans) {
    signal?.throwIfAborted();
    const goneHere = gone.get(plan.name)!;
    for (const d of plan.revisions.keys()) if (!goneHere.manifests.has(d)) await mark(d);
    // A tag whose revision link is missing still keeps what it names; a deleted manifest's tags went with it.
    for (const [tag, t] of plan.tags) {
      if (!goneHere.tags.has(tag) && !goneHere.manifests.has(t.digest)) await mark(t.digest);
    }
  }

  // ------------------------------------------------------------------ sweep
  let blobCount = 0;
  let bytes = 0;
  const present = new Set<Digest>();
  const removed = new Set<Digest>();
  const blobsRoot = pathFor({ kind: 'blobs' });
  for (const alg of await driver.list(blobsRoot)) {
    for (const prefix of await driver.list(`${blobsRoot}/${alg}`)) {
      for (const hex of await driver.list(`${blobsRoot}/${alg}/${prefix}`)) {
        signal?.throwIfAborted();
        const digest = `${alg}:${hex}`;
        // Never touch what this code does not understand.
        if (!isDigest(digest) || !hex.startsWith(prefix)) continue;
        if (marked.has(digest)) {
          present.add(digest);
          continue;
        }
        const info = await store.blobLastUsed(digest);
        if (!info) {
          // A `touched` marker left by a touch that raced a delete: no data, nothing to count.
          const touched = await mtime(pathFor({ kind: 'blobTouched', digest }));
          if (!dryRun && touched !== undefined && Date.now() - touched >= graceMs) {
            await driver.delete(pathFor({ kind: 'blobDir', digest }));
          }
          continue;
        }
        present.add(digest);
        if (Date.now() - info.lastUsed < graceMs) continue;
        if (!dryRun) {
          // Read the age again right before deleting: a push may have touched the blob since (see above).
          const again = await store.blobLastUsed(digest);
          if (!again || Date.now() - again.lastUsed < graceMs) continue;
          await driver.delete(pathFor({ kind: 'blobDir', digest }));
          removed.add(digest);
        }
        blobCount++;
        bytes += info.size;
        record({ type: 'blob', digest, size: info.size });
      }
    }
  }

  // ------------------------------------------------------------------ _layers links to missing blobs
  if (!dryRun) {
    for (const plan of plans) {
      signal?.throwIfAborted();
      for (const digest of plan.layerLinks) {
        if (present.has(digest) && !removed.has(digest)) continue;
        // Checked again: the blob may have been pushed again since it was deleted.
        if ((await store.blobSize(digest)) !== undefined) continue;
        await store.unlinkBlob(plan.name, digest);
      }
    }
  }

  return {
    blobs: blobCount,
    bytes,
    manifests: manifestCount,
    tags: tagCount,
    durationMs: Date.now() - started,
    dryRun,
    deleted,
  };
}

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors/index.js';
import { type Digest, isDigest } from '../oci/index.js';
import { withLock, writeFileAtomic } from '../util/index.js';

/**
 * Where blobs were seen on registries: `<root>/remote/blob-sources.json`, `{ "<registry>": { "<digest>": [repo,
 * ...] } }`, newest repository first. A push asks it which repositories of the destination registry hold a blob,
 * to try a cross-repository mount (`POST ...?mount=<digest>&from=<repo>`) before uploading; pulls and pushes record
 * what they moved. It is only a hint: a stale entry costs one mount attempt that falls back to an upload.
 *
 * Writes are read-modify-write under a cross-process lock and replace the file atomically; the file stays small
 * (a few repositories per digest, the most recently used digests per registry).
 */
export const BLOB_SOURCES_FILE = join('remote', 'blob-sources.json');

/** Repositories remembered per digest, and digests per registry (oldest dropped first). */
const MAX_REPOS_PER_BLOB = 4;
const MAX_BLOBS_PER_REGISTRY = 20_000;

type Table = Record<string, Record<string, string[]>>;

function fileOf(root: string): string {
  return join(root, BLOB_SOURCES_FILE);
}

async function readTable(root: string): Promise<Table> {
  let text: string;
  try {
    text = await readFile(fileOf(root), 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return {};
    throw err;
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) return {};
    const out: Table = {};
    for (const [reg, blobs] of Object.entries(v as Record<string, unknown>)) {
      if (!blobs || typeof blobs !== 'object' || Array.isArray(blobs)) continue;
      const row: Record<string, string[]> = {};
      for (const [d, repos] of Object.entries(blobs as Record<string, unknown>)) {
        if (isDigest(d) && Array.isArray(repos)) row[d] = repos.filter((r): r is string => typeof r === 'string');
      }
      out[reg] = row;
    }
    return out;
  } catch {
    // A damaged hint file is not worth failing a push for: start over.
    return {};
  }
}

/** Repositories on `registry` known to hold `digest`, most recent first. */
export async function blobSources(root: string, registry: string, digest: Digest): Promise<string[]> {
  const table = await readTable(root);
  return [...(table[registry]?.[digest] ?? [])];
}

/** Every known source of several digests at once (one read of the file). */
export async function blobSourcesFor(
  root: string,
  registry: string,
  digests: readonly Digest[],
): Promise<Map<Digest, string[]>> {
  const row = (await readTable(root))[registry] ?? {};
  const out = new Map<Digest, string[]>();
  for (const d of digests) out.set(d, [...(row[d] ?? [])]);
  return out;
}

/**
 * Remember that `repository` on `registry` holds the blobs `digest` (one or several): after a pull from it or a
 * push to it. Safe to call from several processes at once.
 */
export async function recordBlobSource(
  root: string,
  registry: string,
  repository: string,
  digest: Digest | readonly Digest[],
): Promise<void> {
  const digests = typeof digest === 'string' ? [digest] : digest;
  if (digests.length === 0) return;
  const file = fileOf(root);
  await withLock(file, async () => {
    const table = await readTable(root);
    const row = table[registry] ?? {};
    for (const d of digests) {
      const repos = (row[d] ?? []).filter((r) => r !== repository);
      repos.unshift(repository);
      // Re-inserting moves the digest to the end: the object's key order is its recency.
      delete row[d];
      row[d] = repos.slice(0, MAX_REPOS_PER_BLOB);
    }
    const keys = Object.keys(row);
    for (const k of keys.slice(0, Math.max(0, keys.length - MAX_BLOBS_PER_REGISTRY))) delete row[k];
    table[registry] = row;
    await writeFileAtomic(file, `${JSON.stringify(table)}\n`);
  });
}

import { realpath } from 'node:fs/promises';
import { readMountInfo } from '../snapshot/index.js';

/** Mount points (of this mount namespace) at or under `prefix` (symlinks resolved, as mountinfo has them), deepest first. */
export async function mountsUnder(prefix: string): Promise<string[]> {
  const base = (await realpath(prefix).catch(() => prefix)).replace(/\/+$/, '');
  const all = await readMountInfo().catch(() => []);
  const points = new Set(all.map((m) => m.mountPoint).filter((p) => p === base || p.startsWith(`${base}/`)));
  return [...points].sort((a, b) => b.length - a.length);
}

import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import lockfile from 'proper-lockfile';
import { StrataError } from '../errors/index.js';

/**
 * Cross-process mutual exclusion on a file path (proper-lockfile: an atomic mkdir lock whose mtime is refreshed
 * while held, so a lock left by a killed process goes stale and is taken over). Used for read-modify-write of
 * shared metadata such as index.json; blob writes need no lock because they end in an atomic rename.
 */
export async function withLock<T>(path: string, fn: () => Promise<T>, opts: { staleMs?: number } = {}): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(path, {
      stale: opts.staleMs ?? 5000,
      update: 1000,
      realpath: false,
      retries: { retries: 600, factor: 1.2, minTimeout: 5, maxTimeout: 100 },
    });
  } catch (err) {
    throw new StrataError('UNAVAILABLE', `could not lock ${path}`, {
      cause: err,
      hint: 'another strata process holds this lock; retry when it has finished',
    });
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => {});
  }
}

import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Leases protect work in progress from garbage collection. A writer (import, load, pull, build) holds a lease
 * while it stages blobs and unpacks snapshots that no tag references yet; GC spares everything modified since the
 * oldest live lease began. A lease whose process died is ignored and removed.
 */
export interface Lease {
  pid: number;
  started: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function withLease<T>(root: string, fn: () => Promise<T>): Promise<T> {
  const dir = join(root, 'leases');
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${process.pid}-${randomBytes(6).toString('hex')}.json`);
  const lease: Lease = { pid: process.pid, started: Date.now() };
  await writeFile(path, JSON.stringify(lease));
  try {
    return await fn();
  } finally {
    await rm(path, { force: true });
  }
}

/** Start time of the oldest lease held by a live process (undefined: none); dead processes' leases are removed. */
export async function oldestLiveLease(root: string): Promise<number | undefined> {
  const dir = join(root, 'leases');
  let oldest: number | undefined;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const path = join(dir, name);
    try {
      const lease = JSON.parse(await readFile(path, 'utf8')) as Lease;
      if (!alive(lease.pid)) {
        await rm(path, { force: true });
        continue;
      }
      oldest = oldest === undefined ? lease.started : Math.min(oldest, lease.started);
    } catch {
      await rm(path, { force: true });
    }
  }
  return oldest;
}

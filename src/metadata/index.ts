/**
 * Metadata: what names and keeps things. Tags live in the root's index.json (an OCI image layout), leases protect
 * work in progress, and garbage collection and fsck start from these roots.
 *
 *   const names = new NameStore(root);
 *   await names.set('docker.io/library/busybox:latest', descriptor);
 */
export { collectGarbage, type GcResult, mark, type MarkResult } from './gc.js';
export { fsck, type FsckProblem, type FsckReport } from './fsck.js';
export { type Lease, oldestLiveLease, withLease } from './lease.js';
export { NameStore, type TagEntry } from './names.js';

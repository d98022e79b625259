import type { Readable, Writable } from 'node:stream';

export interface StorageStat {
  size: number;
  modified: Date;
  isDirectory: boolean;
}

/**
 * Where a registry keeps its bytes: a small path-based interface (distribution's storagedriver) so the
 * filesystem can later be swapped for object storage and several stateless server processes can share one store.
 * Paths are `/`-separated and absolute within the driver (`/docker/registry/v2/blobs/...`); only `pathFor` builds
 * them.
 *
 * Contract: `putContent` and `move` are atomic (a reader sees the old or the new object, never a part);
 * `writer(append)` continues an object; reads of a missing path throw with code 'ENOENT' (`isNotFound`);
 * `delete` removes a path and everything under it and is idempotent; `list` gives child names, sorted.
 */
export interface StorageDriver {
  readonly name: string;
  getContent(path: string): Promise<Buffer>;
  putContent(path: string, data: Uint8Array | string): Promise<void>;
  reader(path: string, offset?: number, end?: number): Promise<Readable>;
  writer(path: string, opts: { append: boolean }): Promise<Writable>;
  stat(path: string): Promise<StorageStat | undefined>;
  list(path: string): Promise<string[]>;
  move(from: string, to: string): Promise<void>;
  delete(path: string): Promise<void>;
  /** Every file (not directory) under `path`, depth first, sorted. */
  walk(path: string): AsyncGenerator<string>;
}

export function isNotFound(err: unknown): boolean {
  return !!err && typeof err === 'object' && (err as { code?: unknown }).code === 'ENOENT';
}

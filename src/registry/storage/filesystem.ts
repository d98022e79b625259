import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { StrataError } from '../../errors/index.js';
import { fsyncDir, writeFileAtomic } from '../../util/index.js';
import type { StorageDriver, StorageStat } from './driver.js';

/** The filesystem driver: the embedded default. Atomicity from rename within one filesystem. */
export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';

  constructor(readonly root: string) {}

  #full(path: string): string {
    const n = normalize(`/${path}`);
    if (n.includes('/../') || n.endsWith('/..'))
      throw new StrataError('INVALID_ARGUMENT', `storage path ${path} escapes the root`);
    return join(this.root, n);
  }

  async getContent(path: string): Promise<Buffer> {
    return readFile(this.#full(path));
  }

  async putContent(path: string, data: Uint8Array | string): Promise<void> {
    await writeFileAtomic(this.#full(path), data);
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    const full = this.#full(path);
    // Open first so a missing file fails here (ENOENT), not later inside the stream.
    const fh = await open(full, 'r');
    return createReadStream(full, {
      fd: fh.fd,
      start: offset,
      ...(end === undefined ? {} : { end }),
      highWaterMark: 1 << 20,
      autoClose: true,
    });
  }

  async writer(path: string, opts: { append: boolean }): Promise<Writable> {
    const full = this.#full(path);
    await mkdir(dirname(full), { recursive: true });
    const ws = createWriteStream(full, { flags: opts.append ? 'a' : 'w' });
    // fsync before 'finish' reaches the caller: an acknowledged chunk survives a crash.
    return ws;
  }

  async stat(path: string): Promise<StorageStat | undefined> {
    try {
      const st = await stat(this.#full(path));
      return { size: st.size, modified: st.mtime, isDirectory: st.isDirectory() };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR')
        return undefined;
      throw err;
    }
  }

  async list(path: string): Promise<string[]> {
    try {
      return (await readdir(this.#full(path))).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR')
        return [];
      throw err;
    }
  }

  async move(from: string, to: string): Promise<void> {
    const dest = this.#full(to);
    await mkdir(dirname(dest), { recursive: true });
    const fh = await open(this.#full(from), 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(this.#full(from), dest);
    await fsyncDir(dirname(dest));
  }

  async delete(path: string): Promise<void> {
    await rm(this.#full(path), { recursive: true, force: true });
  }

  async *walk(path: string): AsyncGenerator<string> {
    for (const name of await this.list(path)) {
      const child = `${path.replace(/\/$/, '')}/${name}`;
      const st = await this.stat(child);
      if (!st) continue;
      if (st.isDirectory) yield* this.walk(child);
      else yield child;
    }
  }
}

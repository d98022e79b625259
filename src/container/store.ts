import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode, StrataError } from '../errors/index.js';
import { withLock, writeFileAtomic } from '../util/index.js';
import type { ContainerRecord } from './types.js';

const ID = /^[0-9a-f]{64}$/;

/** Where a container's files are, under `<root>/containers/<id>/`. */
export class ContainerPaths {
  constructor(readonly dir: string) {}
  get record(): string {
    return join(this.dir, 'state.json');
  }
  get bundle(): string {
    return this.dir;
  }
  get spec(): string {
    return join(this.dir, 'config.json');
  }
  get rootfs(): string {
    return join(this.dir, 'rootfs');
  }
  get log(): string {
    return join(this.dir, 'container.log');
  }
  get hosts(): string {
    return join(this.dir, 'hosts');
  }
  get resolvConf(): string {
    return join(this.dir, 'resolv.conf');
  }
  get hostname(): string {
    return join(this.dir, 'hostname');
  }
}

/**
 * Container records: one directory per container with its record (`state.json`, replaced atomically, changed only
 * under the container's lock), the runtime bundle and the log. Names are unique: a new record is written under the
 * store's lock after checking every other record's name.
 */
export class ContainerStore {
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, 'containers');
  }

  paths(id: string): ContainerPaths {
    return new ContainerPaths(join(this.dir, id));
  }

  async ids(): Promise<string[]> {
    const names = await readdir(this.dir).catch((err) => {
      if (errnoCode(err) === 'ENOENT') return [] as string[];
      throw err;
    });
    return names.filter((n) => ID.test(n));
  }

  /** The record, or undefined when the container does not exist (or is half-created / half-removed). */
  async get(id: string): Promise<ContainerRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.paths(id).record, 'utf8')) as ContainerRecord;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR' || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  async list(): Promise<ContainerRecord[]> {
    const out: ContainerRecord[] = [];
    for (const id of await this.ids()) {
      const r = await this.get(id);
      if (r) out.push(r);
    }
    return out;
  }

  /** Find a container as docker does: full ID, name, or a unique ID prefix. */
  async resolve(ref: string): Promise<ContainerRecord> {
    const all = await this.list();
    const wanted = ref.replace(/^\//, '');
    const exact = all.find((r) => r.id === wanted) ?? all.find((r) => r.name === wanted);
    if (exact) return exact;
    if (/^[0-9a-f]+$/.test(wanted)) {
      const hits = all.filter((r) => r.id.startsWith(wanted));
      if (hits.length === 1) return hits[0]!;
      if (hits.length > 1) {
        throw new StrataError('INVALID_ARGUMENT', `multiple containers match "${ref}"`, {
          hint: 'give more characters of the ID, or the name',
        });
      }
    }
    throw new StrataError('NOT_FOUND', `No such container: ${ref}`, {
      hint: 'run `strata ps -a` to see the containers',
    });
  }

  /** Write a new record, refusing a name another container has. */
  async add(record: ContainerRecord): Promise<void> {
    await withLock(join(this.dir, 'names'), async () => {
      for (const other of await this.list()) {
        if (other.name === record.name) {
          throw new StrataError(
            'ALREADY_EXISTS',
            `the container name "/${record.name}" is already in use by container "${other.id}"`,
            { hint: 'remove (or rename) that container to be able to reuse that name' },
          );
        }
      }
      await writeFileAtomic(this.paths(record.id).record, JSON.stringify(record, null, 2));
    });
  }

  /** Read-modify-write of a record under its lock; returns the new record (undefined when it is gone). */
  async update(
    id: string,
    fn: (r: ContainerRecord) => ContainerRecord | undefined,
  ): Promise<ContainerRecord | undefined> {
    const path = this.paths(id).record;
    return withLock(path, async () => {
      const cur = await this.get(id);
      if (!cur) return undefined;
      const next = fn(cur);
      if (next) await writeFileAtomic(path, JSON.stringify(next, null, 2));
      return next ?? cur;
    });
  }

  /** Remove the record and the container's directory (the caller has unmounted and deleted everything else). */
  async remove(id: string): Promise<void> {
    const paths = this.paths(id);
    // The record goes first: a half-removed directory is then no container and `repair` finishes the job.
    await rm(paths.record, { force: true });
    await rm(paths.dir, { recursive: true, force: true });
  }
}

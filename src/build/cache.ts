import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors/index.js';
import { canonicalJson, type Digest } from '../oci/index.js';
import { writeFileAtomic } from '../util/index.js';

/** A layer as the build keeps it: the manifest descriptor's fields plus the diffId. */
export interface BuiltLayer {
  digest: Digest;
  size: number;
  mediaType: string;
  diffId: Digest;
}

/** What a step that changes files produced: its layer, or none when it changed nothing. */
export interface CacheRecord {
  layer?: BuiltLayer;
}

/** What a step's key was made of, by the step's place (for `--explain-cache`). */
export interface StepInputs {
  key: string;
  parent: string;
  /** The stage's first step that changes files (its parent is the base image). */
  first: boolean;
  /** Hashes of the expanded instruction and of the config it runs with. */
  instruction: string;
  config: string;
  args: Record<string, string>;
  /** Per copied path, a hash of its type, mode, size and content. */
  files: Record<string, string>;
  /** COPY --from: the key of the stage or image it copies from. */
  from?: string;
}

/**
 * A step's cache key: sha256 of the canonical JSON of its parent's key, the expanded instruction, the build
 * arguments it used (name and value) and, for COPY/ADD, the checksum of exactly the files it reads.
 */
export function cacheKey(material: {
  parent: string;
  instruction: unknown;
  args?: Record<string, string>;
  sources?: string;
  platform?: string;
  /** The parts of the image config the step runs with (RUN: env, user, workdir, shell). */
  config?: unknown;
}): string {
  return `sha256:${createHash('sha256').update(canonicalJson(material)).digest('hex')}`;
}

/**
 * Build cache records under `<root>/buildcache/<hex>.json`, one per step key, written atomically. A record only
 * names blobs; a hit is used only when its layer blob is still in the store (a pruned layer is a miss).
 */
export class BuildCache {
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, 'buildcache');
  }

  #path(key: string): string {
    return join(this.dir, `${key.replace(/^sha256:/, '')}.json`);
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.#path(key), 'utf8')) as CacheRecord;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  async put(key: string, record: CacheRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    // Not fsynced: a record a power cut empties or loses reads as a miss (above), and the step runs again.
    await writeFileAtomic(this.#path(key), JSON.stringify(record), 0o644, { durable: false });
  }

  #inputsPath(place: string): string {
    return join(this.dir, 'inputs', `${createHash('sha256').update(place).digest('hex')}.json`);
  }

  /** The inputs recorded the last time a step stood at `place` (Dockerfile, stage, position). */
  async getInputs(place: string): Promise<StepInputs | undefined> {
    try {
      return JSON.parse(await readFile(this.#inputsPath(place), 'utf8')) as StepInputs;
    } catch {
      return undefined;
    }
  }

  async putInputs(place: string, inputs: StepInputs): Promise<void> {
    const path = this.#inputsPath(place);
    // The key is made from everything recorded: a record starting with it needs no new write (nor fsync).
    const old = await readFile(path, 'utf8').catch(() => undefined);
    if (old?.startsWith(`{"key":${JSON.stringify(inputs.key)},`)) return;
    await mkdir(join(this.dir, 'inputs'), { recursive: true });
    const { key, ...rest } = inputs;
    // only --explain-cache reads it: lost in a power cut, the next miss is explained as a first build
    await writeFileAtomic(path, JSON.stringify({ key, ...rest }), 0o644, { durable: false });
  }

  /** `builder prune`: drop every record; returns how many there were. */
  async prune(): Promise<number> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    await rm(this.dir, { recursive: true, force: true });
    return names.filter((n) => n.endsWith('.json')).length;
  }
}

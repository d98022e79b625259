import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { resolveInRoot } from '../container/index.js';
import { type IgnoreMatcher, ignoreFileCandidates, parseDockerignore, readDockerignore } from '../dockerfile/index.js';
import { errnoCode, StrataError } from '../errors/index.js';
import { writeFileAtomic } from '../util/index.js';

/** A file system object a COPY selected: its path relative to the source root and its lstat. */
export interface SourceEntry {
  /** `/`-separated, relative to the source root (context or stage root), never empty. */
  rel: string;
  abs: string;
  st: Stats;
}

/** One COPY/ADD source pattern with what it matched: top-most matches only (a matched directory stands for its tree). */
export interface SourceMatch {
  pattern: string;
  entries: SourceEntry[];
}

/**
 * Go's filepath.Match for one pattern against a path with the same number of `/` elements: `*` and `?` never cross a
 * `/`, `[...]` classes (with `^`/`!` negation and ranges), `\` escapes.
 */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new StrataError('INVALID_ARGUMENT', `invalid pattern ${JSON.stringify(pattern)}: unclosed [`);
      let body = pattern.slice(i + 1, end);
      let neg = '';
      if (body.startsWith('^') || body.startsWith('!')) {
        neg = '^';
        body = body.slice(1);
      }
      re += `[${neg}${body.replace(/\\(.)/g, '\\$1').replace(/([\]^])/g, '\\$1')}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

const hasMagic = (p: string) => /[*?[\\]/.test(p);

/**
 * A tree files are copied from: the build context (with its .dockerignore applied: ignored files do not exist for
 * COPY) or another stage's / image's root file system.
 */
export class SourceTree {
  constructor(
    readonly root: string,
    readonly ignore?: IgnoreMatcher,
  ) {}

  #ignored(rel: string): boolean {
    return this.ignore?.matches(rel) ?? false;
  }

  async #lstat(rel: string): Promise<Stats | undefined> {
    try {
      return await lstat(join(this.root, rel));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  /**
   * The entries a source pattern names (relative to the tree's root, `..` cannot climb out): a plain path, or a
   * glob matched element by element. Refuses a pattern that matches nothing, with docker's wording.
   */
  async match(pattern: string, where: string): Promise<SourceMatch> {
    const clean = posix.normalize(`/${pattern}`).slice(1).replace(/\/$/, '');
    if (clean === '' || clean === '.') {
      const st = await lstat(this.root);
      return { pattern, entries: [{ rel: '.', abs: this.root, st }] };
    }
    const parts = clean.split('/');
    let candidates = [''];
    for (const part of parts) {
      const next: string[] = [];
      for (const dir of candidates) {
        if (!hasMagic(part)) {
          const rel = dir ? `${dir}/${part.replace(/\\(.)/g, '$1')}` : part.replace(/\\(.)/g, '$1');
          if (!this.#ignored(rel) && (await this.#lstat(rel))) next.push(rel);
          continue;
        }
        const re = globToRegExp(part);
        const names = await readdir(join(this.root, dir)).catch(() => [] as string[]);
        for (const name of names.sort()) {
          const rel = dir ? `${dir}/${name}` : name;
          if (re.test(name) && !this.#ignored(rel)) next.push(rel);
        }
      }
      candidates = next;
    }
    const entries: SourceEntry[] = [];
    for (const rel of candidates) {
      const st = await this.#lstat(rel);
      if (!st) continue;
      if (!st.isSymbolicLink()) {
        entries.push({ rel, abs: join(this.root, rel), st });
        continue;
      }
      // A source that is a symlink is followed (inside this tree, never out of it), as docker does; links inside a
      // copied directory stay links.
      const target = await resolveInRoot(this.root, rel);
      const tst = target ? await stat(target).catch(() => undefined) : undefined;
      if (!target || !tst) {
        throw new StrataError(
          'NOT_FOUND',
          `${where}: "/${rel}" is a symbolic link to "${await readlink(join(this.root, rel))}", which is not found in the context`,
          {
            hint: 'a link in the context may only point to a file inside the context',
          },
        );
      }
      entries.push({ rel, abs: target, st: tst });
    }
    if (entries.length === 0) {
      throw new StrataError('NOT_FOUND', `${where}: "/${clean}": not found`, {
        hint: 'the path does not exist in the build context, or .dockerignore excludes it',
      });
    }
    return { pattern, entries };
  }

  /** Every entry under `rel` (a directory), depth first, sorted, skipping ignored and `exclude`d paths. */
  async walk(rel: string, exclude?: (rel: string) => boolean, absDir?: string): Promise<SourceEntry[]> {
    // `absDir`: where `rel` really is (a followed link's target); children are named under `rel` all the same.
    const base = absDir ?? join(this.root, rel);
    const out: SourceEntry[] = [];
    const hostOf = (child: string) => join(base, child.slice(rel === '.' ? 0 : rel.length + 1));
    // Synchronous calls: each is microseconds against the dentry cache, where an awaited one costs a threadpool
    // round trip; a context of thousands of files is walked in milliseconds. The loop yields now and then.
    const lst = (host: string) => lstatSync(host, { throwIfNoEntry: false });
    const pause = yielder();
    const visit = async (dir: string): Promise<void> => {
      await pause();
      const names = readdirSync(dir === rel ? base : hostOf(dir)).sort();
      for (const name of names) {
        const child = dir === '.' ? name : `${dir}/${name}`;
        if (exclude?.(child)) continue;
        if (this.#ignored(child)) {
          if (!this.ignore?.hasExclusions) continue;
          // a `!` pattern may re-include something below an ignored directory
          const st = lst(hostOf(child));
          if (st?.isDirectory() && !this.ignore.canSkipDir(child)) await visit(child);
          continue;
        }
        const st = lst(hostOf(child));
        if (!st) continue;
        out.push({ rel: child, abs: hostOf(child), st });
        if (st.isDirectory()) await visit(child);
      }
    };
    await visit(rel);
    return out;
  }
}

/** The build context directory with its .dockerignore (`<Dockerfile>.dockerignore` next to the Dockerfile first). */
export async function openContext(dir: string, dockerfileRel?: string): Promise<SourceTree> {
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) {
    throw new StrataError('NOT_FOUND', `build context ${dir} is not a directory`, {
      hint: 'give a directory (often .), or - to read a tar from standard input',
    });
  }
  for (const name of ignoreFileCandidates(dockerfileRel ?? 'Dockerfile')) {
    const text = await readFile(join(dir, name), 'utf8').catch(() => undefined);
    if (text !== undefined) return new SourceTree(dir, parseDockerignore(readDockerignore(text)));
  }
  return new SourceTree(dir);
}

/**
 * A checksum of exactly what a COPY reads: for each entry its path (relative to the match), type, mode, size, link
 * target and content hash; owners and mtimes are left out (COPY resets owners; mtimes must not break the cache).
 */
export async function checksumEntries(
  groups: { base: string; entries: SourceEntry[] }[],
  hashes?: FileHashCache,
): Promise<{ checksum: string; files: Record<string, string> }> {
  const h = createHash('sha256');
  const files: Record<string, string> = {};
  const pause = yielder();
  for (const g of groups) {
    for (const e of g.entries) {
      await pause();
      const st = e.st;
      const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : 'o';
      // Each entry as one line of fields no path or hash can contain (\0-separated): type, mode, then a link's
      // target or a file's size and content hash. No hash per entry: the one over all of them is enough.
      let entry = `${type}\0${(st.mode & 0o7777).toString(8)}`;
      if (type === 'l') entry += `\0${readlinkSync(e.abs)}`;
      else if (type === 'f') {
        const hash = (await hashes?.hash(e.abs, st)) ?? (await sha256File(e.abs, st.size));
        entry += `\0${st.size}\0${hash}`;
      }
      files[e.rel === '.' ? g.base : e.rel] = entry;
      h.update(`${g.base}\0${e.rel}\0${entry}\0\0`);
    }
  }
  return { checksum: `sha256:${h.digest('hex')}`, files };
}

/** Files up to this size are read in one synchronous call (no stream, no threadpool round trips). */
const SMALL_FILE = 1024 * 1024;
/** Synchronous loops give the event loop a turn (progress output, other stages) at least this often. */
const YIELD_MS = 40;

/** An await to put in a long synchronous loop: gives the event loop a turn every YIELD_MS. */
export function yielder(): () => Promise<void> {
  let slice = performance.now();
  return async () => {
    if (performance.now() - slice < YIELD_MS) return;
    await new Promise((r) => setImmediate(r));
    slice = performance.now();
  };
}

async function sha256File(path: string, size: number): Promise<string> {
  const fh = createHash('sha256');
  if (size <= SMALL_FILE) return fh.update(readFileSync(path)).digest('hex');
  await pipeline(createReadStream(path), fh);
  return fh.digest('hex');
}

/**
 * Content hashes of context files remembered across builds by device, inode, size, mtime and ctime (any write or
 * metadata change moves ctime), so a rebuild reads only what changed, as BuildKit's content-hash cache does. Kept in
 * `buildcache/filehashes.json`; only the entries the last build used are kept.
 */
export class FileHashCache {
  readonly #file: string;
  #old = new Map<string, string>();
  readonly #used = new Map<string, string>();

  constructor(buildcacheDir: string) {
    this.#file = join(buildcacheDir, 'filehashes.json');
  }

  async load(): Promise<void> {
    try {
      this.#old = new Map(Object.entries(JSON.parse(await readFile(this.#file, 'utf8')) as Record<string, string>));
    } catch {
      this.#old = new Map();
    }
  }

  async hash(path: string, st: Stats): Promise<string> {
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    const known = this.#used.get(key) ?? this.#old.get(key);
    if (known) {
      this.#used.set(key, known);
      return known;
    }
    const h = await sha256File(path, st.size);
    this.#used.set(key, h);
    return h;
  }

  /** Writes the hashes this build used, unless they are exactly the ones loaded (a rebuild with no change). */
  async save(): Promise<void> {
    if (this.#used.size === this.#old.size && [...this.#used.keys()].every((k) => this.#old.has(k))) return;
    await mkdir(dirname(this.#file), { recursive: true });
    // Not fsynced: after a power cut the old list (or none: load() starts empty) only means files are hashed again.
    await writeFileAtomic(this.#file, JSON.stringify(Object.fromEntries(this.#used)), 0o644, { durable: false });
  }
}

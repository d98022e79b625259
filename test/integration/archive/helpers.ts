// Shared by the archive integration tests: temp dirs, tars built by hand with tar-stream, tree snapshots.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import type { Stats } from 'node:fs';
import {
  chmodSync,
  chownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TestContext } from 'node:test';
import { getAttributeSync, listAttributesSync, setAttributeSync } from '@napi-rs/xattr';
import tar from 'tar-stream';

export const isRoot = process.getuid?.() === 0;

export async function tempDir(t: TestContext, prefix = 'strata-archive-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function collect(stream: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    stream,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

export interface TarEntry {
  header: Partial<tar.Header> & { name: string; pax?: Record<string, string> };
  body?: string | Buffer;
}

/** A tar made with tar-stream (an independent writer), for feeding hand-made archives to applyLayer. */
export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const done = collectStreamx(pack as unknown as AsyncIterable<Buffer>);
  for (const e of entries) {
    const header = { mtime: new Date(1_600_000_000_000), mode: 0o644, ...e.header };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      // tar-stream waits for the data of a file entry given no buffer; an empty one ends it.
      const body = e.body ?? ((header.type ?? 'file') === 'file' ? '' : undefined);
      if (body !== undefined) pack.entry(header, body, cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  return done;
}

async function collectStreamx(r: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

export const streamOf = (b: Buffer): Readable => Readable.from([b], { objectMode: false });

export function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(cmd, args, { maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return String(r.stdout);
}

export function hasTool(cmd: string): boolean {
  return spawnSync(cmd, ['--version']).status === 0;
}

export interface NodeInfo {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size?: number;
  content?: string;
  target?: string;
  rdev?: number;
  nlink?: number;
  xattrs?: Record<string, string>;
}

function typeOf(st: Stats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  return 'other';
}

/** Everything a layer should preserve about a tree, keyed by relative path (for deepEqual between trees). */
export function snapshotTree(
  root: string,
  opts: { mtimes?: boolean; dirMtimes?: boolean } = {},
): Record<string, NodeInfo> {
  const out: Record<string, NodeInfo> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(rel === '' ? root : join(root, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const abs = join(root, r);
      const st = lstatSync(abs);
      const type = typeOf(st);
      const info: NodeInfo = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: 0 };
      if (opts.mtimes !== false && (type !== 'dir' || opts.dirMtimes !== false))
        info.mtime = Math.floor(st.mtimeMs / 1000);
      if (type === 'file') {
        info.content = readFileSync(abs).toString('hex').slice(0, 64) + `:${st.size}`;
        info.nlink = st.nlink;
      }
      if (type === 'symlink') info.target = readlinkSync(abs);
      if (type === 'char' || type === 'block') info.rdev = st.rdev;
      if (type !== 'symlink') {
        const xs = listAttributesSync(abs).sort();
        if (xs.length > 0)
          info.xattrs = Object.fromEntries(xs.map((n) => [n, getAttributeSync(abs, n)!.toString('hex')]));
      }
      out[r] = info;
      if (type === 'dir') walk(r);
    }
  };
  walk('');
  return out;
}

/** Entry names and types as GNU tar lists them (`tar -tv`), to check an independent reader agrees. */
export function gnuList(archive: string): string[] {
  return run('tar', ['-tf', archive]).split('\n').filter(Boolean);
}

export const LONG_DIR = 'd'.repeat(120);
export const LONG_FILE = 'f'.repeat(200);
export const OLD = 1_000_000_000; // 2001-09-09

/**
 * A tree with one of everything a layer must carry: modes with setuid/setgid/sticky, owners (one beyond the ustar
 * octal range), old mtimes, empty files and dirs, hardlinks, symlinks (long, dangling, absolute), fifo, char and
 * block devices, user/trusted/binary security xattrs, names over 100 bytes and paths over 255, non-ASCII names.
 */
export function buildFeatureTree(root: string): void {
  const file = (rel: string, content: string | Buffer, mode = 0o644, uid = 0, gid = 0): void => {
    writeFileSync(join(root, rel), content);
    chownSync(join(root, rel), uid, gid);
    chmodSync(join(root, rel), mode);
  };
  const dir = (rel: string, mode = 0o755, uid = 0, gid = 0): void => {
    mkdirSync(join(root, rel));
    chownSync(join(root, rel), uid, gid);
    chmodSync(join(root, rel), mode);
  };
  dir('bin');
  dir('etc');
  dir('tmp', 0o1777);
  dir('home', 0o755);
  dir('home/user', 0o700, 1000, 1000);
  dir('empty');
  dir('dev');
  dir(LONG_DIR);
  file('bin/su', 'setuid', 0o4755);
  file('bin/wall', 'setgid', 0o2755, 0, 5);
  file('bin/ping', Buffer.from('ping'), 0o755);
  file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  file('etc/empty-file', '');
  file('home/user/.profile', 'export A=1\n', 0o600, 1000, 1000);
  file('home/user/big-uid', 'x', 0o640, 100_000_000, 3_000_000);
  file('home/user/random.bin', Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => (i * 7919) % 251)));
  file(`${LONG_DIR}/${LONG_FILE}`, 'deep');
  file('café-ünïcode', 'utf8 name');
  linkSync(join(root, 'etc/passwd'), join(root, 'etc/passwd-hardlink'));
  linkSync(join(root, 'etc/passwd'), join(root, 'home/passwd-link2'));
  symlinkSync('passwd', join(root, 'etc/relative-link'));
  symlinkSync('/etc/passwd', join(root, 'etc/absolute-link'));
  symlinkSync('does/not/exist', join(root, 'etc/dangling'));
  symlinkSync(`/${LONG_DIR}/${LONG_FILE}`, join(root, 'long-target-link'));
  run('mknod', ['-m', '0620', join(root, 'dev/null'), 'c', '1', '3']);
  run('mknod', ['-m', '0660', join(root, 'dev/loop9'), 'b', '7', '9']);
  run('mknod', ['-m', '0640', join(root, 'dev/fifo'), 'p']);
  setAttributeSync(join(root, 'etc/passwd'), 'user.comment', 'hello');
  setAttributeSync(join(root, 'etc'), 'user.dir-attr', Buffer.from([0, 1, 2, 0xff]));
  setAttributeSync(join(root, 'etc/passwd'), 'trusted.strata', 'yes');
  // cap_net_raw+ep as setcap writes it: binary, with bytes >= 0x80 and NULs.
  setAttributeSync(
    join(root, 'bin/ping'),
    'security.capability',
    Buffer.from([1, 0, 0, 2, 0x00, 0x20, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
  );
  // Old, distinct mtimes; directories last, since creating children touched them.
  const all = Object.keys(snapshotTree(root, { mtimes: false }));
  all.forEach((rel, i) => {
    lutimesSync(join(root, rel), OLD + i * 61, OLD + i * 61);
  });
  utimesSync(join(root, 'etc'), OLD - 86_400, OLD - 86_400);
}

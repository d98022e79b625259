// Mounting: the only code in strata that mounts or unmounts. It spawns util-linux `mount`/`umount` (no syscall
// binding is needed) and reads /proc/self/mountinfo to know what is mounted where.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoCode, StrataError } from '../errors/index.js';

/**
 * A mount in containerd's vocabulary: `{ type: 'overlay', source: 'overlay', options: ['lowerdir=…', 'upperdir=…',
 * 'workdir=…'] }` or `{ type: 'bind', source: dir, options: ['rbind', 'rw'] }`.
 */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

/** One line of /proc/self/mountinfo (proc(5)), paths unescaped. */
export interface MountInfo {
  id: number;
  parentId: number;
  /** The directory of the source file system that is mounted (for a bind mount, the bound directory). */
  root: string;
  mountPoint: string;
  mountOptions: string;
  fsType: string;
  source: string;
  superOptions: string;
}

/** The kernel copies mount data into one page: longer option strings fail with EINVAL or are truncated. */
export const MOUNT_DATA_LIMIT = 4095;

const unescapeOctal = (s: string): string =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 4) continue;
    out.push({
      id: Number(f[0]),
      parentId: Number(f[1]),
      root: unescapeOctal(f[3]!),
      mountPoint: unescapeOctal(f[4]!),
      mountOptions: f[5]!,
      fsType: f[sep + 1]!,
      source: unescapeOctal(f[sep + 2]!),
      superOptions: f[sep + 3]!,
    });
  }
  return out;
}

export async function readMountInfo(): Promise<MountInfo[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** The absolute, symlink-free form of `path` as mountinfo spells mount points (the path itself if it is gone). */
export async function canonicalPath(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return resolve(path);
    throw err;
  }
}

/** The topmost mount at `target`, if anything is mounted there. */
export async function mountAt(target: string): Promise<MountInfo | undefined> {
  const point = await canonicalPath(target);
  const all = await readMountInfo();
  let top: MountInfo | undefined;
  for (const m of all) if (m.mountPoint === point) top = m; // later lines are mounted on top of earlier ones
  return top;
}

export async function isMounted(target: string): Promise<boolean> {
  return (await mountAt(target)) !== undefined;
}

/** Mounts whose mount point is `dir` or below it. */
export async function mountsUnder(dir: string): Promise<MountInfo[]> {
  const point = await canonicalPath(dir);
  return (await readMountInfo()).filter((m) => m.mountPoint === point || m.mountPoint.startsWith(`${point}/`));
}

function run(cmd: string, args: string[], cwd?: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    child.on('error', (err) =>
      reject(
        new StrataError('UNAVAILABLE', `could not run ${cmd}: ${err.message}`, {
          cause: err,
          hint: `install ${cmd} (util-linux)`,
        }),
      ),
    );
    child.on('close', (code, signal) => {
      if (code === 0) resolvePromise();
      else {
        const why = stderr.trim() || (signal ? `killed by ${signal}` : `exit status ${code}`);
        reject(new StrataError('FAILED_PRECONDITION', `${cmd} ${args.join(' ')}: ${why}`, { details: { cmd, args } }));
      }
    });
  });
}

/**
 * Mount `m` on `target` (which must exist). `cwd` is the directory relative option paths are resolved from: overlay
 * lowerdirs are given as short relative names so that hundreds of layers fit in the one page of mount data.
 */
export async function mount(m: Mount, target: string, opts: { cwd?: string } = {}): Promise<void> {
  const data = m.options.join(',');
  if (Buffer.byteLength(data) > MOUNT_DATA_LIMIT) {
    throw new StrataError('INVALID_ARGUMENT', `mount options for ${target} are ${Buffer.byteLength(data)} bytes`, {
      hint: `the kernel takes at most ${MOUNT_DATA_LIMIT} bytes of mount options; use shorter lowerdir paths`,
    });
  }
  const args = ['-t', m.type === 'bind' ? 'none' : m.type, '-o', data, m.source, target];
  try {
    await run('mount', args, opts.cwd);
  } catch (err) {
    if (err instanceof StrataError && err.code === 'FAILED_PRECONDITION') {
      throw new StrataError('FAILED_PRECONDITION', `could not mount ${m.type} on ${target}: ${err.message}`, {
        cause: err,
        hint:
          m.type === 'overlay'
            ? 'overlayfs is not usable here (no root, no overlay module, or an unsupported upper file system); ' +
              'set STRATA_SNAPSHOTTER=copy to use the copy-based snapshotter'
            : 'mounting needs root (CAP_SYS_ADMIN)',
      });
    }
    throw err;
  }
}

/**
 * Unmount everything mounted on `target` (mounts can be stacked). A busy mount is retried for about two seconds,
 * then detached lazily (MNT_DETACH, as docker does): it disappears from the tree at once and the kernel frees it
 * when its last user goes. Returns whether anything was mounted.
 */
export async function unmount(target: string, opts: { lazy?: boolean } = {}): Promise<boolean> {
  const point = await canonicalPath(target);
  let any = false;
  for (let round = 0; round < 64 && (await isMounted(point)); round++) {
    any = true;
    let lastErr: unknown;
    let done = false;
    for (let attempt = 0; attempt < 20 && !done; attempt++) {
      try {
        await run('umount', opts.lazy ? ['-l', point] : [point]);
        done = true;
      } catch (err) {
        lastErr = err;
        if (!/busy/i.test((err as Error).message)) break;
        await sleep(100);
      }
    }
    if (!done && (await isMounted(point))) {
      if (/busy/i.test((lastErr as Error | undefined)?.message ?? '')) await run('umount', ['-l', point]);
      else throw lastErr;
    }
  }
  return any;
}

/**
 * Options that keep an overlay upper directory a plain diff of the merged tree: with redirect_dir or metacopy on,
 * a renamed directory or a chmod leaves a reference to the lower file instead of a copy, which no layer can carry;
 * index=off lets the same upper be mounted again over a lower chain in another place (docker sets it too). Each is
 * passed only when the running kernel knows it.
 */
export function overlayFeatureOptions(): string[] {
  const params = '/sys/module/overlay/parameters';
  return ['index', 'redirect_dir', 'metacopy'].filter((p) => existsSync(`${params}/${p}`)).map((p) => `${p}=off`);
}

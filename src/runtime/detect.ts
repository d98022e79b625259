/**
 * Finding the OCI runtime (runc or crun) and what the host allows.
 *
 *   const info = await detectRuntime();          // runc when installed, else crun
 *   const info = await detectRuntime('crun');    // crun, or a clear error when this host cannot run it
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile, statfs } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { StrataError } from '../errors/index.js';

export type RuntimeName = 'runc' | 'crun';

export interface RuntimeInfo {
  name: RuntimeName;
  /** Absolute path of the binary. */
  path: string;
  /**
   * "1.1.5+ds1", "1.8.1"; "" when `--version` said nothing usable. Only asked for when needed (an error message),
   * since running the binary costs a process start on every command: `runtimeVersion(path)` otherwise.
   */
  version?: string;
}

/** unified: cgroup v2 only; hybrid: v1 controllers plus cgroup2 at /sys/fs/cgroup/unified; legacy: v1 only. */
export type CgroupMode = 'unified' | 'hybrid' | 'legacy';

const TMPFS_MAGIC = 0x01021994;
const CGROUP2_SUPER_MAGIC = 0x63677270;

/** The host's cgroup layout, decided as crun and runc decide it (statfs of /sys/fs/cgroup and .../unified). */
export async function cgroupMode(root = '/sys/fs/cgroup'): Promise<CgroupMode> {
  const top = await statfs(root).catch(() => undefined);
  if (top?.type === CGROUP2_SUPER_MAGIC) return 'unified';
  if (top?.type !== TMPFS_MAGIC) return 'legacy';
  const unified = await statfs(join(root, 'unified')).catch(() => undefined);
  return unified?.type === CGROUP2_SUPER_MAGIC ? 'hybrid' : 'legacy';
}

/**
 * Why crun cannot run containers here, or undefined. crun refuses a hybrid host whose cgroup2 hierarchy has any
 * controller enabled ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"), before it looks
 * at the cgroup manager, so no crun option avoids it.
 */
export async function crunHostProblem(root = '/sys/fs/cgroup'): Promise<string | undefined> {
  if ((await cgroupMode(root)) !== 'hybrid') return undefined;
  const controllers = (await readFile(join(root, 'unified', 'cgroup.controllers'), 'utf8').catch(() => '')).trim();
  if (controllers === '') return undefined;
  return `this host mounts cgroups in hybrid mode (v1 controllers, and cgroup v2 at ${root}/unified with controllers: ${controllers}), which crun does not support`;
}

/** The first executable `name` on PATH. */
export async function findOnPath(name: string, pathEnv = process.env['PATH'] ?? ''): Promise<string | undefined> {
  const dirs = [...pathEnv.split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter((d) => d.startsWith('/'));
  for (const dir of new Set(dirs)) {
    const p = join(dir, name);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** "runc version 1.1.5+ds1" / "crun version 1.8.1" -> the version. */
export function parseRuntimeVersion(output: string): string {
  return /^\S+ version (\S+)/m.exec(output)?.[1] ?? '';
}

/** What `<path> --version` says (see parseRuntimeVersion); "" when it fails. */
export function runtimeVersion(path: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(path, ['--version'], { timeout: 10_000 }, (err, stdout) =>
      resolve(err ? '' : parseRuntimeVersion(stdout)),
    );
  });
}

export interface DetectOptions {
  /** Search this PATH instead of the process's. */
  path?: string;
  /** The cgroup mount root (tests). */
  cgroupRoot?: string;
}

/**
 * The runtime to use: `prefer` when given (an error when it is missing or cannot work here), else runc, else crun.
 * crun on a host it refuses (hybrid cgroups) is a FAILED_PRECONDITION naming the reason and runc as the way out.
 */
export async function detectRuntime(prefer?: RuntimeName, opts: DetectOptions = {}): Promise<RuntimeInfo> {
  if (prefer !== undefined && prefer !== 'runc' && prefer !== 'crun') {
    throw new StrataError('INVALID_ARGUMENT', `unknown runtime "${String(prefer)}"`, { hint: 'use runc or crun' });
  }
  const [runc, crun] = await Promise.all([findOnPath('runc', opts.path), findOnPath('crun', opts.path)]);
  const name: RuntimeName | undefined = prefer ?? (runc ? 'runc' : crun ? 'crun' : undefined);
  if (name === undefined) {
    throw new StrataError('UNAVAILABLE', 'no OCI runtime found: neither runc nor crun is on PATH', {
      hint: 'install runc (apt-get install runc)',
    });
  }
  const path = name === 'runc' ? runc : crun;
  if (path === undefined) {
    throw new StrataError('UNAVAILABLE', `the ${name} runtime is not installed (not on PATH)`, {
      hint: `install it (apt-get install ${name})${name === 'crun' && runc ? ', or use --runtime runc' : ''}`,
    });
  }
  if (name === 'crun') {
    const problem = await crunHostProblem(opts.cgroupRoot);
    if (problem !== undefined) {
      const version = await runtimeVersion(path);
      throw new StrataError(
        'FAILED_PRECONDITION',
        `crun${version ? ` ${version}` : ''} cannot run containers on this host: ${problem}`,
        {
          hint: runc
            ? 'use runc (--runtime runc), which supports hybrid cgroups'
            : 'install runc (apt-get install runc) and use it, or boot with cgroup v2 only (systemd.unified_cgroup_hierarchy=1)',
          details: { runtime: 'crun', version, path },
        },
      );
    }
  }
  return { name, path };
}

export interface HostLimits {
  /** Hard RLIMIT_NOFILE of this process (what a container's limit is capped at). */
  nofile?: number;
}

/** The host's limits that `runtimeSpecFromImage` needs (`hostLimits`), from /proc/self/limits. */
export async function readHostLimits(): Promise<HostLimits> {
  const text = await readFile('/proc/self/limits', 'utf8').catch(() => '');
  return parseProcLimits(text);
}

export function parseProcLimits(text: string): HostLimits {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  const out: HostLimits = {};
  if (m && /^\d+$/.test(m[2]!)) out.nofile = Number(m[2]);
  return out;
}

/**
 * The OCI runtime spec (config.json, runtime-spec 1.0.2) a container starts with, made from an image config and the
 * `run` options the way docker makes it. PURE: no I/O; everything the host decides (the resolved user, the host's
 * file-descriptor limit, the paths of the generated /etc files) comes in through the options.
 *
 *   const spec = runtimeSpecFromImage(image.config, { id, rootfs: 'rootfs', user: resolveUser(u, passwd, group) });
 *   await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
 *
 * Not done (docker does it): the default seccomp profile and the AppArmor profile. Everything else below follows
 * moby's `oci.DefaultLinuxSpec` and its `With*` options.
 */
import { invalidArgument, StrataError } from '../errors/index.js';
import type { ImageConfig } from '../oci/index.js';
import type { ResolvedUser } from './user.js';

// ---------------------------------------------------------------------------------------------- the spec's shape

export interface SpecUser {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
}

export interface SpecCapabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface SpecRlimit {
  type: string;
  hard: number;
  soft: number;
}

export interface SpecProcess {
  terminal?: boolean;
  user: SpecUser;
  args: string[];
  env?: string[];
  cwd: string;
  capabilities?: SpecCapabilities;
  rlimits?: SpecRlimit[];
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
}

export interface SpecMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface SpecNamespace {
  type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup';
  path?: string;
}

export interface SpecDeviceCgroup {
  allow: boolean;
  type?: 'a' | 'b' | 'c';
  major?: number;
  minor?: number;
  access?: string;
}

export interface SpecResources {
  devices?: SpecDeviceCgroup[];
  memory?: { limit?: number; reservation?: number; swap?: number };
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  pids?: { limit: number };
}

export interface SpecHook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface RuntimeSpec {
  ociVersion: string;
  process: SpecProcess;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts: SpecMount[];
  hooks?: Partial<
    Record<'prestart' | 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop', SpecHook[]>
  >;
  annotations?: Record<string, string>;
  linux: {
    namespaces: SpecNamespace[];
    resources?: SpecResources;
    cgroupsPath?: string;
    sysctl?: Record<string, string>;
    maskedPaths?: string[];
    readonlyPaths?: string[];
    rootfsPropagation?: string;
  };
}

// ---------------------------------------------------------------------------------------------- docker's defaults

export const OCI_VERSION = '1.0.2';

/** The PATH a container gets when its image sets none (moby's `DefaultPathEnv` for Linux). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Docker's default capability set (moby `caps.DefaultCapabilities`), in docker's order. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Paths hidden from the container (moby `oci.DefaultLinuxSpec`). */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

/** Paths the container sees read-only (moby `oci.DefaultLinuxSpec`). */
export const DEFAULT_READONLY_PATHS: readonly string[] = [
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
];

/** RLIMIT_NOFILE docker containers get (dockerd runs with LimitNOFILE=1048576), capped at the host's hard limit. */
export const DEFAULT_NOFILE = 1048576;

/** Docker refuses memory limits below 6 MiB ("Minimum memory limit allowed is 6MB"). */
export const MIN_MEMORY = 6 * 1024 * 1024;

/** The CFS period docker uses for `--cpus`. */
export const CPU_PERIOD = 100000;

const dev = (type: 'c' | 'b', major: number | undefined, minor: number | undefined, access: string) => {
  const d: SpecDeviceCgroup = { allow: true, type };
  if (major !== undefined) d.major = major;
  if (minor !== undefined) d.minor = minor;
  d.access = access;
  return d;
};

/** The device cgroup: deny everything, then docker's allow list (mknod of anything; use of the standard nodes). */
export const DEFAULT_DEVICE_RULES: readonly SpecDeviceCgroup[] = [
  { allow: false, access: 'rwm' },
  dev('c', undefined, undefined, 'm'), // mknod any char device (use is still denied)
  dev('b', undefined, undefined, 'm'), // mknod any block device
  dev('c', 1, 3, 'rwm'), // /dev/null
  dev('c', 1, 5, 'rwm'), // /dev/zero
  dev('c', 1, 7, 'rwm'), // /dev/full
  dev('c', 1, 8, 'rwm'), // /dev/random
  dev('c', 1, 9, 'rwm'), // /dev/urandom
  dev('c', 5, 0, 'rwm'), // /dev/tty
  dev('c', 5, 1, 'rwm'), // /dev/console
  dev('c', 5, 2, 'rwm'), // /dev/ptmx
  dev('c', 136, undefined, 'rwm'), // /dev/pts/*
];

/** The filesystems every container gets (moby `oci.DefaultLinuxSpec`, same options and order). */
export const DEFAULT_MOUNTS: readonly SpecMount[] = [
  { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
  {
    destination: '/dev',
    type: 'tmpfs',
    source: 'tmpfs',
    options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
  },
  {
    destination: '/dev/pts',
    type: 'devpts',
    source: 'devpts',
    options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
  },
  { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
  { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  {
    destination: '/dev/shm',
    type: 'tmpfs',
    source: 'shm',
    options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
  },
];

/** Network-namespaced sysctls docker sets when the container has its own network namespace. */
export const NETNS_SYSCTLS: Readonly<Record<string, string>> = {
  'net.ipv4.ip_unprivileged_port_start': '0',
  'net.ipv4.ping_group_range': '0 2147483647',
};

// ---------------------------------------------------------------------------------------------- options

export interface BindMount {
  /** Absolute host path. */
  source: string;
  /** Absolute path in the container. */
  destination: string;
  readonly?: boolean;
}

export interface RunSpecOptions {
  /** Container id: names the cgroup and (first 12 characters) the default hostname. */
  id: string;
  /** root.path: the rootfs directory, absolute or relative to the bundle (usually "rootfs"). */
  rootfs: string;
  /** `--read-only`: the rootfs (and the /etc/hosts, /etc/resolv.conf, /etc/hostname binds) read-only. */
  readonlyRootfs?: boolean;
  /** The user, already resolved against the rootfs's /etc/passwd and /etc/group (see `resolveUser`). */
  user: ResolvedUser;
  /** `run IMAGE ARGS...`: replaces the image's CMD. Undefined or [] means "not given". */
  cmd?: string[];
  /** `--entrypoint`: replaces the image's ENTRYPOINT and clears its CMD. [] (or [""]) clears the ENTRYPOINT. */
  entrypoint?: string[];
  /** `-e KEY=VALUE` in order (later wins); a bare `KEY` removes the variable. */
  env?: string[];
  /** `-w`: must be absolute; default the image's WorkingDir, else "/". */
  workdir?: string;
  /** `-t`: allocate a terminal; adds TERM=xterm. */
  tty?: boolean;
  /** Default: the first 12 characters of the id (docker). */
  hostname?: string;
  /** `none` (default): a private network namespace with only loopback, which runc brings up. `host`: the host's. */
  network?: 'none' | 'host';
  /** Host files bind-mounted over the rootfs's /etc files (skipped when absent or when a bind covers them). */
  etcFiles?: { hosts?: string; resolvConf?: string; hostname?: string };
  /** `-v SRC:DST[:ro]`. */
  binds?: BindMount[];
  resources?: {
    /** `--memory` in bytes (at least 6 MiB). */
    memory?: number;
    /** `--memory-swap` in bytes (memory + swap; -1 unlimited). Docker defaults it to 2x memory where the host
     * accounts swap; that is the caller's decision (it needs I/O), so nothing is set unless given. */
    memorySwap?: number;
    /** `--cpus` (may be fractional): CFS quota over a 100 ms period. */
    cpus?: number;
    /** `--pids-limit`; 0 or negative means unlimited (docker). */
    pidsLimit?: number;
  };
  /** The host's limits the spec must stay under: `nofile` is the hard RLIMIT_NOFILE (see `readHostLimits`). */
  hostLimits?: { nofile?: number };
  /** Parent of the container's cgroup (cgroupfs style): default "/strata", giving "/strata/<id>". */
  cgroupParent?: string;
  /** Default true (docker's default is false: `--security-opt no-new-privileges`). */
  noNewPrivileges?: boolean;
  /** Docker's --cap-add / --cap-drop, with or without the CAP_ prefix; "ALL" is accepted in both. */
  capAdd?: string[];
  capDrop?: string[];
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;

export function validateContainerId(id: string): void {
  if (!ID_RE.test(id) || id.length > 1024) {
    throw invalidArgument(
      `invalid container id "${id}"`,
      'ids are letters, digits and _ . + - and start with a letter or digit',
    );
  }
}

// ---------------------------------------------------------------------------------------------- the pieces

/**
 * process.args by docker's rules: ENTRYPOINT + CMD; a given `cmd` replaces CMD; a given `entrypoint` replaces
 * ENTRYPOINT and drops the image's CMD (only the given `cmd` follows it). Nothing left: "no command specified".
 */
export function commandFromImage(
  image: { Entrypoint?: string[] | null; Cmd?: string[] | null } | undefined,
  opts: { cmd?: string[]; entrypoint?: string[] },
): string[] {
  const cmdGiven = opts.cmd !== undefined && opts.cmd.length > 0;
  let entrypoint = image?.Entrypoint ?? [];
  let cmd = cmdGiven ? opts.cmd! : (image?.Cmd ?? []);
  if (opts.entrypoint !== undefined) {
    entrypoint = opts.entrypoint.length === 1 && opts.entrypoint[0] === '' ? [] : opts.entrypoint;
    if (!cmdGiven) cmd = [];
  }
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) {
    throw new StrataError('INVALID_ARGUMENT', 'no command specified', {
      hint: 'the image has no ENTRYPOINT or CMD: give a command after the image name, or --entrypoint',
    });
  }
  return args;
}

const envKey = (entry: string) => {
  const i = entry.indexOf('=');
  return i < 0 ? entry : entry.slice(0, i);
};

/** moby's `ReplaceOrAppendEnvValues`: replace by key in place, append new keys, a bare `KEY` removes it. */
function replaceOrAppend(defaults: string[], overrides: string[]): string[] {
  const out: (string | undefined)[] = [...defaults];
  const index = new Map<string, number>();
  out.forEach((e, i) => {
    if (e !== undefined) index.set(envKey(e), i);
  });
  for (const v of overrides) {
    const key = envKey(v);
    const at = index.get(key);
    if (!v.includes('=')) {
      if (at !== undefined) out[at] = undefined;
      continue;
    }
    if (at !== undefined && out[at] !== undefined) out[at] = v;
    else {
      index.set(key, out.length);
      out.push(v);
    }
  }
  return out.filter((e): e is string => e !== undefined);
}

/**
 * The container's environment as docker builds it: PATH (default), HOSTNAME, TERM=xterm (tty), then the `-e`
 * values followed by the image's variables that no `-e` overrides; a later value for a key replaces an earlier one
 * in place; a bare `KEY` in `-e` removes it.
 */
export function environment(
  imageEnv: string[] | undefined,
  userEnv: string[] | undefined,
  hostname: string,
  tty: boolean,
): string[] {
  const user = (userEnv ?? []).filter((e) => e !== '');
  // docker's `merge(userConf, imageConf)`: the user's entries, then image entries whose key the user did not set.
  const userKeys = new Set(user.map(envKey));
  const config = [...user, ...(imageEnv ?? []).filter((e) => !userKeys.has(envKey(e)))];
  const base = [`PATH=${DEFAULT_PATH}`, `HOSTNAME=${hostname}`];
  if (tty) base.push('TERM=xterm');
  return replaceOrAppend(base, config);
}

function capName(c: string): string {
  const up = c.trim().toUpperCase();
  return up === 'ALL' || up.startsWith('CAP_') ? up : `CAP_${up}`;
}

/** Docker's `TweakCapabilities` without --privileged: defaults, minus drops, plus adds ("ALL" allowed). */
export function capabilitySet(add: string[] = [], drop: string[] = []): string[] {
  const adds = add.map(capName);
  const drops = drop.map(capName);
  if (adds.includes('ALL')) {
    throw invalidArgument('--cap-add ALL is not supported', 'name the capabilities the container needs');
  }
  let caps = drops.includes('ALL') ? [] : DEFAULT_CAPABILITIES.filter((c) => !drops.includes(c));
  for (const c of adds) {
    if (!/^CAP_[A-Z_]+$/.test(c)) throw invalidArgument(`unknown capability: "${c}"`);
    if (!caps.includes(c)) caps = [...caps, c];
  }
  return caps;
}

function isAbsolute(p: string): boolean {
  return p.startsWith('/');
}

function cleanPath(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  return `/${parts.join('/')}`;
}

const depth = (p: string) => (p === '/' ? 0 : p.split('/').length - 1);

function mountsFor(opts: RunSpecOptions): SpecMount[] {
  const user: SpecMount[] = (opts.binds ?? []).map((b) => {
    if (!isAbsolute(b.source)) throw invalidArgument(`invalid bind mount source "${b.source}": not an absolute path`);
    if (!isAbsolute(b.destination)) {
      throw invalidArgument(`invalid bind mount destination "${b.destination}": not an absolute path`);
    }
    const destination = cleanPath(b.destination);
    if (destination === '/') throw invalidArgument('invalid bind mount destination "/": cannot mount over the root');
    return { destination, type: 'bind', source: b.source, options: ['rbind', 'rprivate', b.readonly ? 'ro' : 'rw'] };
  });
  const seen = new Set<string>();
  for (const m of user) {
    if (seen.has(m.destination)) throw invalidArgument(`duplicate mount point: ${m.destination}`);
    seen.add(m.destination);
  }
  const etcOptions = opts.readonlyRootfs ? ['rbind', 'rprivate', 'ro'] : ['rbind', 'rprivate'];
  const etc: SpecMount[] = [];
  const etcFile = (destination: string, source: string | undefined) => {
    if (source !== undefined && !seen.has(destination)) {
      etc.push({ destination, type: 'bind', source, options: [...etcOptions] });
    }
  };
  etcFile('/etc/resolv.conf', opts.etcFiles?.resolvConf);
  etcFile('/etc/hostname', opts.etcFiles?.hostname);
  etcFile('/etc/hosts', opts.etcFiles?.hosts);
  const defaults = DEFAULT_MOUNTS.filter((m) => !seen.has(m.destination)).map((m) => ({
    ...m,
    options: [...(m.options ?? [])],
  }));
  // Parents before children (docker sorts the user's mounts by depth), stable within a depth.
  const sortedUser = user
    .map((m, i) => ({ m, i }))
    .sort((a, b) => depth(a.m.destination) - depth(b.m.destination) || a.i - b.i);
  return [...defaults, ...etc, ...sortedUser.map((x) => x.m)];
}

function resourcesFor(opts: RunSpecOptions): SpecResources {
  const r = opts.resources ?? {};
  const out: SpecResources = { devices: DEFAULT_DEVICE_RULES.map((d) => ({ ...d })) };
  if (r.memory !== undefined || r.memorySwap !== undefined) {
    const memory: NonNullable<SpecResources['memory']> = {};
    if (r.memory !== undefined) {
      if (!Number.isSafeInteger(r.memory) || r.memory < MIN_MEMORY) {
        throw invalidArgument(`invalid memory limit ${r.memory}: minimum memory limit allowed is 6MB`);
      }
      memory.limit = r.memory;
    }
    if (r.memorySwap !== undefined) {
      if (r.memorySwap !== -1) {
        if (r.memory === undefined) {
          throw invalidArgument('you should always set the memory limit when using the memory-swap limit');
        }
        if (!Number.isSafeInteger(r.memorySwap) || r.memorySwap < r.memory) {
          throw invalidArgument('minimum memory-swap limit should be larger than memory limit');
        }
      }
      memory.swap = r.memorySwap;
    }
    out.memory = memory;
  }
  if (r.cpus !== undefined) {
    if (!Number.isFinite(r.cpus) || r.cpus <= 0)
      throw invalidArgument(`invalid --cpus value ${r.cpus}: must be above 0`);
    const quota = Math.round(r.cpus * CPU_PERIOD);
    if (quota < 1000) throw invalidArgument(`invalid --cpus value ${r.cpus}: the minimum is 0.01`);
    out.cpu = { quota, period: CPU_PERIOD };
  }
  if (r.pidsLimit !== undefined && r.pidsLimit > 0) {
    if (!Number.isSafeInteger(r.pidsLimit)) throw invalidArgument(`invalid --pids-limit ${r.pidsLimit}`);
    out.pids = { limit: r.pidsLimit };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- the spec

/** The OCI runtime spec for a container of this image with these `run` options. Pure. */
export function runtimeSpecFromImage(config: ImageConfig, opts: RunSpecOptions): RuntimeSpec {
  validateContainerId(opts.id);
  const image = config.config;
  const args = commandFromImage(image, opts);
  const hostname = opts.hostname ?? opts.id.slice(0, 12);
  const tty = opts.tty ?? false;

  let cwd = opts.workdir ?? (image?.WorkingDir || '/');
  if (opts.workdir !== undefined && !isAbsolute(opts.workdir)) {
    throw invalidArgument(`the working directory '${opts.workdir}' is invalid, it needs to be an absolute path`);
  }
  cwd = cleanPath(isAbsolute(cwd) ? cwd : `/${cwd}`);

  const { uid, gid, additionalGids } = opts.user;
  for (const id of [uid, gid, ...additionalGids]) {
    if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff) throw invalidArgument(`invalid uid/gid ${id}`);
  }
  const user: SpecUser = { uid, gid };
  if (additionalGids.length > 0) user.additionalGids = [...new Set(additionalGids)];

  const caps = capabilitySet(opts.capAdd, opts.capDrop);
  // moby `oci.SetCapabilities`: root gets bounding/effective/permitted; other users only the bounding set, which
  // is what execve leaves a non-root process with. Never inheritable or ambient.
  const capabilities: SpecCapabilities =
    uid === 0 ? { bounding: [...caps], effective: [...caps], permitted: [...caps] } : { bounding: [...caps] };

  const hostNofile = opts.hostLimits?.nofile;
  const nofile = hostNofile !== undefined && hostNofile > 0 ? Math.min(DEFAULT_NOFILE, hostNofile) : DEFAULT_NOFILE;

  const network = opts.network ?? 'none';
  if (network !== 'none' && network !== 'host') {
    throw invalidArgument(
      `unsupported network "${String(network)}"`,
      'strata supports --network none and --network host',
    );
  }
  const namespaces: SpecNamespace[] = [{ type: 'pid' }];
  if (network === 'none') namespaces.push({ type: 'network' });
  namespaces.push({ type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' });

  const parent = (opts.cgroupParent ?? '/strata').replace(/\/+$/, '');

  const spec: RuntimeSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: tty,
      user,
      args,
      env: environment(image?.Env, opts.env, hostname, tty),
      cwd,
      capabilities,
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: nofile, soft: nofile }],
      noNewPrivileges: opts.noNewPrivileges ?? true,
    },
    root: { path: opts.rootfs, readonly: opts.readonlyRootfs ?? false },
    hostname,
    mounts: mountsFor(opts),
    linux: {
      namespaces,
      resources: resourcesFor(opts),
      cgroupsPath: `${parent}/${opts.id}`,
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
    },
  };
  if (network === 'none') spec.linux.sysctl = { ...NETNS_SYSCTLS };
  return spec;
}

import { type ChildProcess, spawn, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { layerMediaType, packChanges, packDirectory, packOverlayUpper } from '../archive/index.js';
import type { ContentStore } from '../content/index.js';
import { errnoCode, StrataError } from '../errors/index.js';
import { applyChanges, type Image, openImage, unpackLayers, writeImage } from '../image/index.js';
import { type NameStore, withLease } from '../metadata/index.js';
import {
  chainIds,
  type ContainerConfig,
  DEFAULT_PATH_ENV,
  type Descriptor,
  type Digest,
  MediaType,
} from '../oci/index.js';
import {
  commandFromImage,
  ContainerExecError,
  environment,
  OciRuntime,
  type RunSpecOptions,
  type RuntimeSpec,
  type SpecProcess,
  type ResolvedUser,
  readHostLimits,
  resolveUser,
  type RuntimeName,
  runtimeSpecFromImage,
} from '../runtime/index.js';
import type { Snapshotter } from '../snapshot/index.js';
import { writeFileAtomic } from '../util/index.js';
import { defaultHostname, hostsFile, readFileInRoot, readHostFile, resolvConfFile, writeInitLayer } from './files.js';
import { LogWriter, type ReadLogOptions, readLog } from './logs.js';
import { mountsUnder } from './mountinfo.js';
import { OutputRelay, safeWrite, waitForPid } from './relay.js';
import { randomName, VALID_NAME } from './names.js';
import { mergeEnv, validateSignal } from './options.js';
import { processAlive, processStartTime } from './proc.js';
import { type ContainerPaths, ContainerStore } from './store.js';
import type {
  BindMount,
  ContainerChange,
  ContainerRecord,
  ContainerSummary,
  HostConfig,
  LogEntry,
  ProcessConfig,
} from './types.js';

export interface ContainerManagerOptions {
  root: string;
  content: ContentStore;
  snapshots: Snapshotter;
  names: NameStore;
  /** Find a local image by reference or ID (the facade's `resolve`). */
  resolveImage(ref: string): Promise<{ image: Image; descriptor: Descriptor; references: string[] }>;
  /**
   * The command that runs `monitor(id)` in a process of its own (the container's ID is appended); it is spawned
   * detached with an IPC channel, over which it reports the start.
   */
  monitorCommand: string[];
}

export interface CreateContainerOptions {
  image: string;
  name?: string;
  /** The command after the image: replaces the image's CMD when not empty. */
  cmd?: string[];
  /** `--entrypoint`: replaces the image's ENTRYPOINT (and drops its CMD); [''] clears it. */
  entrypoint?: string[];
  /** KEY=VALUE (a bare KEY removes the variable), in order; later ones win. */
  env?: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  binds?: BindMount[];
  network?: 'none' | 'host';
  readOnly?: boolean;
  /** Bytes. */
  memory?: number;
  cpus?: number;
  pidsLimit?: number;
  runtime?: string;
  /** `--rm`: remove the container when it exits. */
  autoRemove?: boolean;
  interactive?: boolean;
  tty?: boolean;
  labels?: Record<string, string>;
  signal?: AbortSignal;
}

/** Where an attached container's output goes; stdin 'inherit' hands this process's stdin to the container. */
export interface AttachIO {
  stdin?: 'inherit' | 'ignore';
  stdout?: Writable;
  stderr?: Writable;
}

export interface RunHooks {
  /** Called once the container's process runs, with its host pid. */
  onStarted?: (pid: number) => void;
}

/** What the monitor process reports over its IPC channel. */
export type MonitorMessage =
  | { type: 'started'; pid: number }
  | { type: 'failed'; exitCode: number; code: string; message: string; hint?: string };

export interface ExecContainerOptions {
  /** The command and its arguments (no shell). */
  cmd: string[];
  /** KEY=VALUE entries added to (or replacing those of) the container's environment. */
  env?: string[];
  workdir?: string;
  /** USER[:GROUP] looked up in the container's /etc/passwd and /etc/group; default the container's user. */
  user?: string;
  interactive?: boolean;
  tty?: boolean;
  detach?: boolean;
  /** Called once the process runs, with its host pid and the runtime child (signals sent to it reach the process). */
  onStarted?: (pid: number, runtime: ChildProcess) => void;
}

export interface CommitOptions {
  /** REPO[:TAG] to tag the new image with; untagged (dangling) without. */
  reference?: string;
  message?: string;
  author?: string;
  /** Dockerfile instructions applied to the new image's config (`-c 'CMD ["sh"]'`). */
  changes?: string[];
  signal?: AbortSignal;
}

const KEY_PREFIX = 'container-';
const STRAY_GRACE_MS = 30_000;

function isRunning(r: ContainerRecord): boolean {
  return r.state.status === 'running';
}

function monitorAlive(r: ContainerRecord): boolean {
  return processAlive(r.state.monitorPid, r.state.monitorStart);
}

function notRunning(r: ContainerRecord): StrataError {
  return new StrataError('FAILED_PRECONDITION', `container ${r.id.slice(0, 12)} (${r.name}) is not running`, {
    hint: `start it first: strata start ${r.name}`,
  });
}

/**
 * Containers: records under `<root>/containers/<id>/`, a writable snapshot over the image's layers, and the OCI
 * runtime (runc/crun) that runs them.
 *
 * Lifecycle: `create` resolves the image (unpacking missing layer snapshots), prepares the container's snapshot and
 * writes the record and its /etc files. `start` (detached) mounts the rootfs, writes the runtime bundle and spawns
 * a monitor process that runs `runc run` with the container's output going to the JSON-lines log; `runAttached`
 * does the same in this process and also passes the output through. Whoever supervises records the exit (code and
 * time), deletes the runtime container, unmounts the rootfs and, with `autoRemove`, removes everything.
 *
 * Every entry point first `repair`s: a record whose supervisor died (strata killed) is brought back in line with
 * what the runtime says, leaked mounts are unmounted, and runtime containers without a record are deleted.
 */
export class ContainerManager {
  readonly store: ContainerStore;
  readonly #o: ContainerManagerOptions;
  readonly #runtimes = new Map<string, Promise<OciRuntime>>();

  constructor(opts: ContainerManagerOptions) {
    this.#o = opts;
    this.store = new ContainerStore(opts.root);
  }

  #runtime(name?: string): Promise<OciRuntime> {
    const key = name ?? '';
    let p = this.#runtimes.get(key);
    if (!p) {
      p = OciRuntime.open(this.#o.root, name as RuntimeName | undefined);
      p.catch(() => this.#runtimes.delete(key));
      this.#runtimes.set(key, p);
    }
    return p;
  }

  // ------------------------------------------------------------------------------------------------ create

  async create(opts: CreateContainerOptions): Promise<ContainerRecord> {
    await this.repair();
    if (opts.name !== undefined && !VALID_NAME.test(opts.name)) {
      throw new StrataError('INVALID_ARGUMENT', `invalid container name "${opts.name}"`, {
        hint: 'names are [a-zA-Z0-9][a-zA-Z0-9_.-]+ (at least two characters)',
      });
    }
    const network = opts.network ?? 'none';
    if (network !== 'none' && network !== 'host') {
      throw new StrataError('INVALID_ARGUMENT', `network "${String(network)}" is not supported`, {
        hint: 'strata has no bridges: use --network none (loopback only, the default) or --network host',
      });
    }
    if (opts.workdir !== undefined && !opts.workdir.startsWith('/')) {
      throw new StrataError(
        'INVALID_ARGUMENT',
        `the working directory "${opts.workdir}" is invalid: it needs to be an absolute path`,
        { hint: 'give -w an absolute path such as /app' },
      );
    }
    const runtime = await this.#runtime(opts.runtime);
    const { image, descriptor } = await this.#o.resolveImage(opts.image);
    const id = randomBytes(32).toString('hex');
    const hostname = opts.hostname ?? defaultHostname(id, network);
    const hostConfig: HostConfig = {
      binds: opts.binds ?? [],
      network,
      readOnlyRootfs: !!opts.readOnly,
      memory: opts.memory ?? 0,
      cpus: opts.cpus ?? 0,
      pidsLimit: opts.pidsLimit ?? 0,
      autoRemove: !!opts.autoRemove,
      runtime: runtime.name,
      interactive: !!opts.interactive,
      tty: !!opts.tty,
    };
    const config: ProcessConfig = {
      hostname,
      user: opts.user ?? '',
      env: opts.env ?? [],
      cmd: opts.cmd && opts.cmd.length > 0 ? opts.cmd : null,
      entrypoint: opts.entrypoint ?? null,
      workingDir: opts.workdir ?? '',
      labels: opts.labels ?? {},
      stopSignal: image.config.config?.StopSignal ?? 'SIGTERM',
    };
    // The command and every option are checked before anything is written (a placeholder user: the real one is
    // looked up in the rootfs at start).
    const args = commandFromImage(image.config.config, specCommand(config));
    runtimeSpecFromImage(
      image.config,
      specOptions(id, config, hostConfig, { uid: 0, gid: 0, additionalGids: [], home: '/' }),
    );
    const ids = chainIds(image.config.rootfs.diff_ids);
    const record: ContainerRecord = {
      id,
      name: opts.name ?? '',
      created: new Date().toISOString(),
      image: opts.image,
      imageId: image.id,
      imageDigest: descriptor.digest,
      chainId: ids.at(-1) ?? '',
      snapshotKey: `${KEY_PREFIX}${id}`,
      path: args[0]!,
      args: args.slice(1),
      config,
      hostConfig,
      state: { status: 'created', pid: 0, exitCode: 0 },
    };
    return withLease(this.#o.root, async () => {
      await unpackLayers(
        this.#o.snapshots,
        image.layers.map((l, i) => ({
          diffId: l.diffId,
          open: () => l.compressed(opts.signal ? { signal: opts.signal } : {}),
          what: `layer ${i} (${l.digest})`,
        })),
        opts.signal ? { signal: opts.signal } : {},
      );
      await this.#addRecord(record, opts.name === undefined);
      const paths = this.store.paths(id);
      try {
        const init = initName(id);
        const initDir = await this.#o.snapshots.prepare(`${init}-prep`, record.chainId || undefined);
        const lowers = record.chainId ? (await this.#o.snapshots.chain(record.chainId)).map((c) => c.name) : [];
        await writeInitLayer(
          initDir,
          lowers.map((n) => this.#o.snapshots.fsDir(n)),
        );
        await this.#o.snapshots.commit(init, `${init}-prep`);
        await this.#o.snapshots.prepareActive(record.snapshotKey, init, { labels: { 'strata.container': id } });
        await mkdir(paths.rootfs, { recursive: true, mode: 0o755 });
        const resolv = await readHostFile('/etc/resolv.conf');
        const hosts = await readHostFile('/etc/hosts');
        await writeFile(paths.hosts, hostsFile(hostname, network, hosts, osHostname()), { mode: 0o644 });
        await writeFile(paths.resolvConf, resolvConfFile(resolv, network), { mode: 0o644 });
        await writeFile(paths.hostname, `${hostname}\n`, { mode: 0o644 });
        await writeFile(paths.log, '', { mode: 0o640 });
      } catch (err) {
        await this.#destroy(record).catch(() => {});
        throw err;
      }
      return (await this.store.get(id)) ?? record;
    });
  }

  async #addRecord(record: ContainerRecord, generated: boolean): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (generated) record.name = randomName(attempt > 2 ? attempt : 0);
      try {
        await this.store.add(record);
        return;
      } catch (err) {
        if (!generated || attempt > 20 || !(err instanceof StrataError) || err.code !== 'ALREADY_EXISTS') throw err;
      }
    }
  }

  // ------------------------------------------------------------------------------------------------ start

  /** Mark the container as being started by this process; refuses one that runs or that another process starts. */
  async #claim(ref: string): Promise<ContainerRecord> {
    await this.repair();
    const rec = await this.store.resolve(ref);
    const claimed = await this.store.update(rec.id, (r) => {
      if (isRunning(r)) {
        throw new StrataError('FAILED_PRECONDITION', `container ${r.name} is already running`, {
          hint: `stop it first: strata stop ${r.name}`,
        });
      }
      if (monitorAlive(r)) {
        throw new StrataError('FAILED_PRECONDITION', `container ${r.name} is being started or cleaned up`, {
          hint: 'wait a moment and try again',
        });
      }
      const pid = process.pid;
      const start = processStartTime(pid);
      r.state = { ...r.state, monitorPid: pid, ...(start ? { monitorStart: start } : {}) };
      return r;
    });
    if (!claimed) throw new StrataError('NOT_FOUND', `No such container: ${ref}`);
    return claimed;
  }

  async #unclaim(id: string): Promise<void> {
    await this.store.update(id, (r) => {
      if (r.state.monitorPid !== process.pid) return undefined;
      const { monitorPid: _p, monitorStart: _s, ...rest } = r.state;
      r.state = rest;
      return r;
    });
  }

  /** The container's image; a clear error when it was removed and pruned since (`then`: what to do instead). */
  async #image(rec: ContainerRecord, then: string): Promise<Image> {
    try {
      return await openImage(this.#o.content, rec.imageDigest);
    } catch (err) {
      throw new StrataError('NOT_FOUND', `the image of container ${rec.name} (${rec.imageId}) is gone`, {
        cause: err,
        hint: `the image was removed and pruned; ${then}`,
      });
    }
  }

  /** Mount the rootfs, look the user up in it and write the runtime bundle. */
  async #prepare(rec: ContainerRecord): Promise<void> {
    const paths = this.store.paths(rec.id);
    if (rec.hostConfig.tty) {
      // The runtime relays the container's terminal through this process's controlling terminal.
      const tty = await open('/dev/tty', 'r').catch(() => undefined);
      if (!tty) {
        throw new StrataError('FAILED_PRECONDITION', 'the input device is not a TTY', {
          hint: '-t needs a terminal: run from one, or leave -t out',
        });
      }
      await tty.close();
    }
    const rt = await this.#runtime(rec.hostConfig.runtime);
    // A runtime container left by a killed supervisor would make `run` fail with "already exists".
    await rt.delete(rec.id, { force: true }).catch(() => {});
    const image = await this.#image(rec, 'remove the container');
    for (const b of rec.hostConfig.binds) {
      // docker creates a missing bind source as a directory
      await stat(b.source).catch(async (err) => {
        if (errnoCode(err) !== 'ENOENT') throw err;
        await mkdir(b.source, { recursive: true, mode: 0o755 });
      });
    }
    const rootfs = await this.#o.snapshots.mountActive(rec.snapshotKey, paths.rootfs);
    try {
      const passwd = (await readFileInRoot(rootfs, '/etc/passwd')) ?? '';
      const group = (await readFileInRoot(rootfs, '/etc/group')) ?? '';
      const user = resolveUser(rec.config.user || image.config.config?.User || '', passwd, group);
      const spec = runtimeSpecFromImage(image.config, {
        ...specOptions(rec.id, rec.config, rec.hostConfig, user, paths),
        hostLimits: await readHostLimits(),
      });
      await writeFileAtomic(paths.spec, JSON.stringify(spec, null, 2));
    } catch (err) {
      await this.#o.snapshots.unmount(paths.rootfs, rec.snapshotKey).catch(() => {});
      throw err;
    }
  }

  /**
   * Start a container in the background: a detached monitor process supervises it (log, exit status, cleanup) and
   * outlives this one. Resolves once the container's process runs; a command that cannot be executed is an error
   * whose `details.exitCode` is 127 or 126.
   */
  async start(ref: string): Promise<ContainerRecord> {
    const found = await this.get(ref);
    if (found.hostConfig.tty) {
      throw new StrataError('UNIMPLEMENTED', `container ${found.name} has a terminal (-t): it cannot run detached`, {
        hint: `start it attached from a terminal: strata start -a -i ${found.name}`,
      });
    }
    const rec = await this.#claim(found.id);
    const paths = this.store.paths(rec.id);
    try {
      await this.#prepare(rec);
    } catch (err) {
      await this.#unclaim(rec.id);
      throw err;
    }
    const [cmd, ...args] = this.#o.monitorCommand;
    if (!cmd) throw new StrataError('INTERNAL', 'no monitor command configured');
    const monitorLog = await open(join(paths.dir, 'monitor.log'), 'a', 0o640);
    let child: ChildProcess;
    try {
      child = spawn(cmd, [...args, rec.id], {
        detached: true,
        stdio: ['ignore', 'ignore', monitorLog.fd, 'ipc'],
        cwd: '/',
      });
    } finally {
      await monitorLog.close();
    }
    const msg = await new Promise<MonitorMessage | undefined>((resolve) => {
      child.once('message', (m) => resolve(m as MonitorMessage));
      child.once('exit', () => resolve(undefined));
      child.once('error', () => resolve(undefined));
    });
    if (child.connected) child.disconnect();
    child.unref();
    if (!msg) {
      // The monitor died before it reported: nobody supervises the container, so clean up here.
      await this.#finish(rec.id, { exitCode: 125, error: 'the container monitor exited before the container started' });
      throw new StrataError('INTERNAL', `the monitor of container ${rec.name} exited before the container started`, {
        hint: `see ${join(paths.dir, 'monitor.log')}`,
      });
    }
    if (msg.type === 'failed') {
      throw new StrataError(msg.code as StrataError['code'], msg.message, {
        ...(msg.hint ? { hint: msg.hint } : {}),
        details: { exitCode: msg.exitCode },
      });
    }
    return (await this.store.get(rec.id)) ?? rec;
  }

  /**
   * The monitor process's work (see `start`): run the prepared container, report the start over `notify`, write
   * the log, record the exit and clean up. Resolves with the exit code.
   */
  async monitor(id: string, notify: (m: MonitorMessage) => void): Promise<number> {
    const rec = await this.store.get(id);
    if (!rec) throw new StrataError('NOT_FOUND', `No such container: ${id}`);
    const pid = process.pid;
    const start = processStartTime(pid);
    await this.store.update(id, (r) => {
      r.state = { ...r.state, monitorPid: pid, ...(start ? { monitorStart: start } : {}) };
      return r;
    });
    const res = await this.#supervise(rec, {}, (p) => notify({ type: 'started', pid: p }));
    if (res.startError) {
      const e = res.startError;
      notify({
        type: 'failed',
        exitCode: res.exitCode,
        code: e.code,
        message: e.message,
        ...(e.hint ? { hint: e.hint } : {}),
      });
    }
    return res.exitCode;
  }

  /**
   * Run a created (or stopped) container in this process: its output goes to `io` and to the log, and the promise
   * resolves with its exit code once it has exited and was cleaned up (removed with `autoRemove`). A command that
   * cannot be executed is an error whose `details.exitCode` is 127 or 126.
   */
  async runAttached(ref: string, io: AttachIO, hooks: RunHooks = {}): Promise<number> {
    const rec = await this.#claim(ref);
    try {
      await this.#prepare(rec);
    } catch (err) {
      await this.#unclaim(rec.id);
      if (rec.hostConfig.autoRemove) await this.remove(rec.id, { force: true }).catch(() => {});
      throw err;
    }
    const res = await this.#supervise(rec, io, (pid) => hooks.onStarted?.(pid));
    if (res.startError) throw res.startError;
    return res.exitCode;
  }

  async #supervise(
    rec: ContainerRecord,
    io: AttachIO,
    onStarted: (pid: number) => void,
  ): Promise<{ exitCode: number; startError?: StrataError }> {
    const id = rec.id;
    const paths = this.store.paths(id);
    const pidFile = join(paths.dir, 'init.pid');
    await rm(pidFile, { force: true });
    const log = new LogWriter(paths.log);
    const stdio: StdioOptions = [
      io.stdin === 'inherit' && rec.hostConfig.interactive ? 'inherit' : 'ignore',
      'pipe',
      'pipe',
    ];
    let pid = 0;
    let exitCode = 125;
    let startError: StrataError | undefined;
    try {
      const rt = await this.#runtime(rec.hostConfig.runtime);
      const proc = await rt.run(id, paths.bundle, { stdio, pidFile });
      const relay = new OutputRelay(proc, (stream, d) => {
        const out = stream === 'stdout' ? io.stdout : io.stderr;
        const full: Writable[] = [];
        if (!log.write(stream, d)) full.push(log.stream);
        if (!safeWrite(out, d) && out) full.push(out);
        return full;
      });
      const done = proc.wait();
      done.catch(() => {});
      pid = await waitForPid(pidFile, done);
      if (pid > 0) {
        const startedAt = new Date().toISOString();
        await this.store.update(id, (r) => {
          const { error: _e, finishedAt: _f, ...rest } = r.state;
          r.state = { ...rest, status: 'running', pid, exitCode: 0, startedAt };
          return r;
        });
        relay.release();
        onStarted(pid);
      }
      try {
        const st = await done;
        exitCode = st.exitCode;
        if (st.error) {
          startError = st.error;
          if (!(st.error instanceof ContainerExecError)) exitCode = 125;
        }
        if (startError) relay.discard();
        else relay.release();
      } catch (err) {
        startError =
          err instanceof StrataError ? err : new StrataError('INTERNAL', String((err as Error)?.message ?? err));
        exitCode = 125;
      }
    } catch (err) {
      startError =
        err instanceof StrataError ? err : new StrataError('INTERNAL', String((err as Error)?.message ?? err));
      exitCode = 125;
    } finally {
      await log.close();
    }
    await this.#finish(id, {
      exitCode,
      ...(startError ? { error: startError.message } : {}),
      started: pid > 0 && !startError,
    });
    return startError ? { exitCode, startError } : { exitCode };
  }

  /**
   * After the container's process is gone: delete the runtime container, unmount the rootfs, record the exit and,
   * with autoRemove, remove the container.
   */
  async #finish(id: string, res: { exitCode: number; error?: string; started?: boolean }): Promise<void> {
    const rec = await this.store.get(id);
    if (!rec) return;
    const paths = this.store.paths(id);
    const rt = await this.#runtime(rec.hostConfig.runtime).catch(() => undefined);
    await rt?.delete(id, { force: true }).catch(() => {});
    await this.#o.snapshots.unmount(paths.rootfs, rec.snapshotKey).catch(() => {});
    const finishedAt = new Date().toISOString();
    const next = await this.store.update(id, (r) => {
      const { monitorPid: _p, monitorStart: _s, error: _e, ...rest } = r.state;
      const wasStarted = res.started || r.state.status === 'running';
      r.state = {
        ...rest,
        status: wasStarted || r.state.status === 'exited' ? 'exited' : 'created',
        pid: 0,
        exitCode: res.exitCode,
        ...(wasStarted ? { finishedAt } : {}),
        ...(res.error ? { error: res.error } : {}),
      };
      return r;
    });
    if (next?.hostConfig.autoRemove) await this.#destroy(next).catch(() => {});
  }

  // ------------------------------------------------------------------------------------------------ stop, kill, rm

  /** Wait until the container is not running and nobody supervises it; false on timeout. */
  async #waitStopped(
    id: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<ContainerRecord | undefined | false> {
    const until = Date.now() + timeoutMs;
    let repaired = false;
    for (;;) {
      const r = await this.store.get(id);
      if (!r) return undefined;
      if (!monitorAlive(r)) {
        if (!isRunning(r) && r.state.monitorPid === undefined) return r;
        if (!repaired) {
          await this.repair(id);
          repaired = true;
          continue;
        }
        if (!isRunning(r)) return r;
      }
      if (Date.now() >= until || signal?.aborted) return false;
      await sleep(50);
    }
  }

  /** `stop`: the stop signal (the image's STOPSIGNAL, else SIGTERM), then SIGKILL after `timeout` seconds. */
  async stop(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<ContainerRecord> {
    await this.repair();
    const rec = await this.store.resolve(ref);
    if (!isRunning(rec)) return rec;
    const rt = await this.#runtime(rec.hostConfig.runtime);
    const sig = validateSignal(opts.signal ?? rec.config.stopSignal ?? 'SIGTERM');
    await rt.kill(rec.id, toSignal(sig)).catch(() => {});
    const timeout = (opts.timeout ?? 10) * 1000;
    let r = timeout > 0 ? await this.#waitStopped(rec.id, timeout) : false;
    if (r === false) {
      await rt.kill(rec.id, 'SIGKILL', { all: true }).catch(() => {});
      r = await this.#waitStopped(rec.id, 30_000);
      if (r === false) {
        throw new StrataError('UNAVAILABLE', `container ${rec.name} did not stop after SIGKILL`, {
          hint: 'it may be stuck in the kernel (D state); try again later',
        });
      }
    }
    return r ?? rec;
  }

  /** `kill`: send a signal (default SIGKILL) to the container's main process. */
  async kill(ref: string, signal = 'SIGKILL'): Promise<ContainerRecord> {
    await this.repair();
    const rec = await this.store.resolve(ref);
    const sig = validateSignal(signal);
    if (!isRunning(rec)) throw notRunning(rec);
    const rt = await this.#runtime(rec.hostConfig.runtime);
    try {
      await rt.kill(rec.id, toSignal(sig));
    } catch (err) {
      await this.repair(rec.id);
      const now = await this.store.get(rec.id);
      if (!now || !isRunning(now)) throw notRunning(rec);
      throw err;
    }
    return rec;
  }

  /** `rm`: remove a container that is not running (`force`: kill it first). */
  async remove(ref: string, opts: { force?: boolean } = {}): Promise<ContainerRecord> {
    await this.repair();
    const rec = await this.store.resolve(ref);
    if (isRunning(rec) || monitorAlive(rec)) {
      if (!opts.force) {
        throw new StrataError(
          'FAILED_PRECONDITION',
          `cannot remove container "/${rec.name}": container is ${isRunning(rec) ? 'running' : 'starting'}`,
          { hint: 'stop the container before removing it, or remove it with --force' },
        );
      }
      const rt = await this.#runtime(rec.hostConfig.runtime);
      await rt.kill(rec.id, 'SIGKILL', { all: true }).catch(() => {});
      const r = await this.#waitStopped(rec.id, 30_000);
      if (r === false) throw new StrataError('UNAVAILABLE', `container ${rec.name} did not stop after SIGKILL`);
      if (r === undefined) return rec; // auto-removed by its monitor
    }
    const now = await this.store.get(rec.id);
    if (now) await this.#destroy(now);
    return rec;
  }

  /** Delete the runtime container, unmount and delete the snapshot, then the directory (record first). */
  async #destroy(rec: ContainerRecord): Promise<void> {
    const paths = this.store.paths(rec.id);
    const rt = await this.#runtime(rec.hostConfig.runtime).catch(() => undefined);
    await rt?.delete(rec.id, { force: true }).catch(() => {});
    await this.#unmountAll(paths);
    await this.#o.snapshots.removeActive(rec.snapshotKey);
    await this.#o.snapshots.remove(`${initName(rec.id)}-prep`);
    await this.#o.snapshots.remove(initName(rec.id));
    await this.#unmountAll(paths);
    const left = await mountsUnder(paths.dir);
    if (left.length > 0) {
      throw new StrataError('FAILED_PRECONDITION', `${left[0]} is still mounted; container ${rec.name} not removed`, {
        hint: `unmount it (umount ${left[0]}) and remove the container again`,
      });
    }
    await this.store.remove(rec.id);
  }

  async #unmountAll(paths: ContainerPaths): Promise<void> {
    for (const m of await mountsUnder(paths.dir)) await this.#o.snapshots.unmount(m).catch(() => {});
  }

  // ------------------------------------------------------------------------------------------------ queries

  async get(ref: string): Promise<ContainerRecord> {
    await this.repair();
    return this.store.resolve(ref);
  }

  async list(opts: { all?: boolean } = {}): Promise<ContainerSummary[]> {
    await this.repair();
    const recs = (await this.store.list())
      .filter((r) => opts.all || isRunning(r))
      .sort((a, b) => b.created.localeCompare(a.created));
    return recs.map(summary);
  }

  /** Containers (IDs) whose image is this manifest digest or image ID. */
  async usersOf(image: { digest?: string; id?: string }): Promise<ContainerRecord[]> {
    return (await this.store.list()).filter(
      (r) => (image.digest && r.imageDigest === image.digest) || (image.id && r.imageId === image.id),
    );
  }

  /**
   * `exec`: run another process in a running container, with the container's environment, user and working
   * directory unless `opts` says otherwise. Attached, its output goes to `io` (not to the container's log, as with
   * docker) and the promise gives its exit code; with `detach` it resolves with 0 once the process runs. A command
   * that cannot be executed is an error whose `details.exitCode` is 127 or 126.
   */
  async exec(ref: string, opts: ExecContainerOptions, io: AttachIO = {}): Promise<number> {
    await this.repair();
    const rec = await this.store.resolve(ref);
    if (!isRunning(rec)) throw notRunning(rec);
    if (opts.cmd.length === 0 || opts.cmd[0] === '') {
      throw new StrataError('INVALID_ARGUMENT', 'exec needs a command to run', {
        hint: `give one after the container: strata exec ${rec.name} sh`,
      });
    }
    if (opts.workdir !== undefined && !opts.workdir.startsWith('/')) {
      throw new StrataError('INVALID_ARGUMENT', `the working directory "${opts.workdir}" is not an absolute path`, {
        hint: 'give -w an absolute path such as /app',
      });
    }
    if (opts.tty && opts.detach) {
      throw new StrataError('UNIMPLEMENTED', 'a terminal (-t) cannot be combined with -d', {
        hint: 'run the command attached, or without -t',
      });
    }
    const paths = this.store.paths(rec.id);
    const spec = JSON.parse(await readFile(paths.spec, 'utf8')) as RuntimeSpec;
    let user = spec.process.user;
    if (opts.user !== undefined && opts.user !== '') {
      const passwd = (await readFileInRoot(paths.rootfs, '/etc/passwd')) ?? '';
      const group = (await readFileInRoot(paths.rootfs, '/etc/group')) ?? '';
      const u = resolveUser(opts.user, passwd, group);
      user = { uid: u.uid, gid: u.gid, ...(u.additionalGids.length > 0 ? { additionalGids: u.additionalGids } : {}) };
    }
    let env = mergeEnv(spec.process.env ?? [], opts.env ?? []).filter((e) => e.includes('='));
    if (opts.tty && !env.some((e) => e.startsWith('TERM='))) env = [...env, 'TERM=xterm'];
    const process: SpecProcess = {
      ...spec.process,
      terminal: !!opts.tty,
      user,
      args: opts.cmd,
      env,
      cwd: opts.workdir ?? spec.process.cwd,
    };
    const rt = await this.#runtime(rec.hostConfig.runtime);
    const pidFile = join(paths.dir, `exec-${randomBytes(6).toString('hex')}.pid`);
    const stdin = io.stdin === 'inherit' && opts.interactive ? 'inherit' : 'ignore';
    // With a terminal the runtime relays it through this process's own; otherwise output is passed through here.
    const stdio: StdioOptions = opts.detach ? 'ignore' : opts.tty ? 'inherit' : [stdin, 'pipe', 'pipe'];
    try {
      const proc = await rt.exec(rec.id, paths.bundle, process, { stdio, pidFile, detach: !!opts.detach });
      const relay = new OutputRelay(proc, (stream, d) => {
        const out = stream === 'stdout' ? io.stdout : io.stderr;
        return safeWrite(out, d) || !out ? [] : [out];
      });
      const done = proc.wait();
      done.catch(() => {});
      const pid = await waitForPid(pidFile, done);
      if (pid > 0) {
        relay.release();
        opts.onStarted?.(pid, proc.child);
      }
      const st = await done;
      if (st.error) {
        relay.discard();
        throw st.error;
      }
      if (pid === 0 && !opts.detach) relay.release();
      return st.exitCode;
    } finally {
      await rm(pidFile, { force: true });
    }
  }

  /** `wait`: block until the container stops; its exit code. */
  async wait(ref: string, opts: { signal?: AbortSignal } = {}): Promise<number> {
    await this.repair();
    const rec = await this.store.resolve(ref);
    let last = rec;
    for (;;) {
      const r = await this.#waitStopped(rec.id, 1000, opts.signal);
      if (r === undefined) {
        if (last.state.status === 'exited') return last.state.exitCode;
        throw new StrataError('NOT_FOUND', `container ${rec.name} was removed before its exit status was seen`);
      }
      if (r !== false) return r.state.exitCode;
      if (opts.signal?.aborted) throw new StrataError('CANCELLED', 'wait cancelled');
      last = (await this.store.get(rec.id)) ?? last;
    }
  }

  /** `logs`: the log entries, oldest first; with `follow` new ones until the container stops. */
  async *logs(ref: string, opts: Omit<ReadLogOptions, 'done'> = {}): AsyncGenerator<LogEntry> {
    const rec = await this.get(ref);
    const paths = this.store.paths(rec.id);
    const done = async () => {
      const r = await this.store.get(rec.id);
      if (!r) return true;
      if (isRunning(r) && !monitorAlive(r)) await this.repair(rec.id);
      const now = await this.store.get(rec.id);
      return !now || (!isRunning(now) && !monitorAlive(now));
    };
    yield* readLog(paths.log, { ...opts, done });
  }

  /** docker container inspect's object. */
  async inspect(ref: string): Promise<Record<string, unknown>> {
    const rec = await this.get(ref);
    const paths = this.store.paths(rec.id);
    let imageConfig: ContainerConfig | undefined;
    try {
      imageConfig = (await openImage(this.#o.content, rec.imageDigest)).config.config;
    } catch {
      imageConfig = undefined;
    }
    const active = await this.#o.snapshots.getActive(rec.snapshotKey).catch(() => undefined);
    const never = '0001-01-01T00:00:00Z';
    return {
      Id: rec.id,
      Created: rec.created,
      Path: rec.path,
      Args: rec.args,
      State: {
        Status: rec.state.status,
        Running: isRunning(rec),
        Paused: false,
        Restarting: false,
        OOMKilled: false,
        Dead: false,
        Pid: rec.state.pid,
        ExitCode: rec.state.exitCode,
        Error: rec.state.error ?? '',
        StartedAt: rec.state.startedAt ?? never,
        FinishedAt: rec.state.finishedAt ?? never,
      },
      Image: rec.imageId,
      ResolvConfPath: paths.resolvConf,
      HostnamePath: paths.hostname,
      HostsPath: paths.hosts,
      LogPath: paths.log,
      Name: `/${rec.name}`,
      RestartCount: 0,
      Driver: active?.mode ?? 'overlay',
      Platform: 'linux',
      HostConfig: {
        Binds: rec.hostConfig.binds.map((b) => `${b.source}:${b.destination}${b.readOnly ? ':ro' : ''}`),
        NetworkMode: rec.hostConfig.network,
        AutoRemove: rec.hostConfig.autoRemove,
        ReadonlyRootfs: rec.hostConfig.readOnlyRootfs,
        Memory: rec.hostConfig.memory,
        NanoCpus: Math.round(rec.hostConfig.cpus * 1e9),
        PidsLimit: rec.hostConfig.pidsLimit || null,
        Runtime: rec.hostConfig.runtime,
      },
      GraphDriver: {
        Name: active?.mode ?? 'overlay',
        Data: active
          ? {
              LowerDir: active.lowerDirs.join(':'),
              UpperDir: active.upperDir,
              WorkDir: active.workDir ?? '',
              MergedDir: paths.rootfs,
            }
          : {},
      },
      Mounts: rec.hostConfig.binds.map((b) => ({
        Type: 'bind',
        Source: b.source,
        Destination: b.destination,
        Mode: b.readOnly ? 'ro' : '',
        RW: !b.readOnly,
        Propagation: 'rprivate',
      })),
      Config: {
        Hostname: rec.config.hostname,
        User: rec.config.user || imageConfig?.User || '',
        AttachStdin: rec.hostConfig.interactive,
        Tty: rec.hostConfig.tty,
        OpenStdin: rec.hostConfig.interactive,
        Env: environment(imageConfig?.Env, rec.config.env, rec.config.hostname, rec.hostConfig.tty).filter(
          (e) => !e.startsWith('HOSTNAME='),
        ),
        Cmd: effectiveConfig(rec, imageConfig).Cmd ?? null,
        Image: rec.image,
        WorkingDir: rec.config.workingDir || imageConfig?.WorkingDir || '',
        Entrypoint: effectiveConfig(rec, imageConfig).Entrypoint ?? null,
        Labels: { ...imageConfig?.Labels, ...rec.config.labels },
        StopSignal: rec.config.stopSignal,
      },
    };
  }

  /** `diff`: what the container changed relative to its image (A added, C changed, D deleted), sorted by path. */
  async diff(ref: string): Promise<ContainerChange[]> {
    const rec = await this.get(ref);
    return this.#o.snapshots.diffActive(rec.snapshotKey);
  }

  /** `export`: a tar of the container's merged root filesystem. */
  async export(ref: string, out: Writable, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const rec = await this.get(ref);
    const paths = this.store.paths(rec.id);
    let root = paths.rootfs;
    let temp: string | undefined;
    if (!isRunning(rec)) {
      temp = join(paths.dir, `export-${process.pid}-${randomBytes(4).toString('hex')}`);
      root = await this.#o.snapshots.mountActive(rec.snapshotKey, temp);
    }
    try {
      const packed = packDirectory(root, { compression: 'none', ...(opts.signal ? { signal: opts.signal } : {}) });
      await pipeline(packed.stream, out);
      await packed.info;
    } finally {
      if (temp) {
        await this.#o.snapshots.unmount(temp, rec.snapshotKey).catch(() => {});
        await rm(temp, { recursive: true, force: true }).catch(() => {});
      }
    }
  }

  /**
   * `commit`: a new image from the container's changes: the image's layers plus one layer packed from the writable
   * snapshot (OCI whiteouts for deletions), its config being the container's (entrypoint, command, env, workdir,
   * user) with `changes` applied, and a history entry. The layer is unpacked into its snapshot so the image runs at
   * once. The container is not paused: a running container should not be writing meanwhile.
   */
  async commit(
    ref: string,
    opts: CommitOptions = {},
  ): Promise<{ id: Digest; descriptor: Descriptor; reference?: string }> {
    const rec = await this.get(ref);
    const image = await this.#image(rec, 'export the container instead (strata export)');
    const newConfig = applyChanges(effectiveConfig(rec, image.config.config), opts.changes ?? []);
    return withLease(this.#o.root, async () => {
      const src = await this.#o.snapshots.layerSource(rec.snapshotKey);
      const format: 'oci' | 'docker' = image.manifest.mediaType === MediaType.DockerManifest ? 'docker' : 'oci';
      const packOpts = {
        compression: 'gzip' as const,
        mediaType: format,
        ...(opts.signal ? { signal: opts.signal } : {}),
      };
      const packed =
        src.kind === 'overlay-upper'
          ? packOverlayUpper(src.upperDir, packOpts)
          : packChanges(src.root, src.changes, packOpts);
      const ingested = await this.#o.content.ingest(
        packed.stream,
        { what: `layer of container ${rec.name}` },
        opts.signal,
      );
      let info: Awaited<typeof packed.info>;
      try {
        info = await packed.info;
        await ingested.commit();
      } catch (err) {
        await ingested.abort();
        throw err;
      }
      const created = new Date().toISOString();
      const config = structuredClone(image.config);
      config.created = created;
      if (opts.author) config.author = opts.author;
      else delete config.author;
      config.config = newConfig;
      config.rootfs = { type: 'layers', diff_ids: [...image.config.rootfs.diff_ids, info.diffId] };
      config.history = [
        ...(image.config.history ?? []),
        {
          created,
          created_by: [rec.path, ...rec.args].join(' '),
          ...(opts.author ? { author: opts.author } : {}),
          ...(opts.message ? { comment: opts.message } : {}),
        },
      ];
      const layers = [
        ...image.manifest.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
        { digest: ingested.digest, size: ingested.size, mediaType: layerMediaType(format, 'gzip') },
      ];
      const descriptor = await writeImage(this.#o.content, config, layers, format);
      const made = await openImage(this.#o.content, descriptor);
      await unpackLayers(
        this.#o.snapshots,
        made.layers.map((l) => ({ diffId: l.diffId, open: () => l.compressed(), what: `layer ${l.digest}` })),
      );
      if (opts.reference) await this.#o.names.set(opts.reference, descriptor);
      else await this.#o.names.addUntagged(descriptor);
      return { id: made.id, descriptor, ...(opts.reference ? { reference: opts.reference } : {}) };
    });
  }

  // ------------------------------------------------------------------------------------------------ repair

  /**
   * Bring records in line with reality after a supervisor died (strata killed): a "running" container whose
   * monitor is gone and whose runtime says stopped (or knows nothing) is recorded as exited (status unknown: 255),
   * its runtime container deleted and its rootfs unmounted (removed with autoRemove); a start that died half-way is
   * undone; mounts under a container that nobody runs are unmounted; runtime containers with no record and
   * directories with no record (a removal that died half-way) are deleted. With `only`, just that container.
   */
  async repair(only?: string): Promise<void> {
    const ids = only ? [only] : await this.store.ids();
    for (const id of ids) {
      const r = await this.store.get(id);
      if (!r) {
        if (!only) await this.#repairStray(id);
        continue;
      }
      if (monitorAlive(r)) continue;
      const paths = this.store.paths(id);
      if (isRunning(r)) {
        const rt = await this.#runtime(r.hostConfig.runtime).catch(() => undefined);
        const st = await rt?.state(id).catch(() => undefined);
        if (st && (st.status === 'running' || st.status === 'paused' || st.status === 'created') && st.pid > 0) {
          // Still running without a monitor: leave it running (stop and kill still work); drop the dead monitor.
          if (r.state.monitorPid !== undefined) {
            await this.store.update(id, (x) => {
              if (monitorAlive(x)) return undefined;
              const { monitorPid: _p, monitorStart: _s, ...rest } = x.state;
              x.state = rest;
              return x;
            });
          }
          continue;
        }
        await this.#finish(id, {
          exitCode: 255,
          error: "strata's monitor died; the exit status is unknown",
          started: true,
        });
        continue;
      }
      const leaked = await mountsUnder(paths.dir);
      if (r.state.monitorPid !== undefined || leaked.length > 0) {
        const rt = await this.#runtime(r.hostConfig.runtime).catch(() => undefined);
        await rt?.delete(id, { force: true }).catch(() => {});
        await this.#unmountAll(paths);
        await this.store.update(id, (x) => {
          if (monitorAlive(x) || x.state.monitorPid === undefined) return undefined;
          const { monitorPid: _p, monitorStart: _s, ...rest } = x.state;
          x.state = rest;
          return x;
        });
      }
      if (r.hostConfig.autoRemove && r.state.status === 'exited') {
        const now = await this.store.get(id);
        if (now && !monitorAlive(now) && !isRunning(now)) await this.#destroy(now).catch(() => {});
      }
    }
    if (!only) await this.#repairRuntime();
  }

  /** A container directory without a record: a removal (or creation) that died half-way. */
  async #repairStray(id: string): Promise<void> {
    const paths = this.store.paths(id);
    const st = await stat(paths.dir).catch(() => undefined);
    if (!st || Date.now() - st.mtimeMs < STRAY_GRACE_MS) return;
    for (const name of ['runc', 'crun'] as const) {
      const rt = await this.#runtime(name).catch(() => undefined);
      await rt?.delete(id, { force: true }).catch(() => {});
    }
    await this.#unmountAll(paths);
    await this.#o.snapshots.removeActive(`${KEY_PREFIX}${id}`).catch(() => {});
    await this.#o.snapshots.remove(`${initName(id)}-prep`).catch(() => {});
    await this.#o.snapshots.remove(initName(id)).catch(() => {});
    if ((await mountsUnder(paths.dir)).length === 0) await rm(paths.dir, { recursive: true, force: true });
  }

  /** Runtime containers (in strata's runtime roots) with no container record. */
  async #repairRuntime(): Promise<void> {
    const known = new Set(await this.store.ids());
    for (const name of ['runc', 'crun'] as const) {
      const dir = join(this.#o.root, 'runtime', name);
      if (!(await stat(dir).catch(() => undefined))) continue;
      const rt = await this.#runtime(name).catch(() => undefined);
      if (!rt) continue;
      // The runtime's state directories tell which containers it has; it is run only for strays.
      for (const id of await rt.ids()) {
        // Only container IDs (64 hex): build steps run runtime containers of their own (strata-build-...).
        if (known.has(id) || !/^[0-9a-f]{64}$/.test(id)) continue;
        await rt.kill(id, 'SIGKILL', { all: true }).catch(() => {});
        await rt.delete(id, { force: true }).catch(() => {});
      }
    }
  }
}

/** The committed snapshot holding a container's init layer (mount points), under its writable one. */
function initName(id: string): string {
  return `${KEY_PREFIX}init-${id}`;
}

function toSignal(sig: string): NodeJS.Signals | number {
  return /^\d+$/.test(sig) ? Number(sig) : (sig as NodeJS.Signals);
}

function specCommand(config: ProcessConfig): { cmd?: string[]; entrypoint?: string[] } {
  return {
    ...(config.cmd ? { cmd: config.cmd } : {}),
    ...(config.entrypoint ? { entrypoint: config.entrypoint } : {}),
  };
}

function specOptions(
  id: string,
  config: ProcessConfig,
  host: HostConfig,
  user: ResolvedUser,
  paths?: ContainerPaths,
): RunSpecOptions {
  const resources: NonNullable<RunSpecOptions['resources']> = {};
  if (host.memory > 0) resources.memory = host.memory;
  if (host.cpus > 0) resources.cpus = host.cpus;
  if (host.pidsLimit > 0) resources.pidsLimit = host.pidsLimit;
  return {
    id,
    rootfs: 'rootfs',
    readonlyRootfs: host.readOnlyRootfs,
    user,
    ...specCommand(config),
    env: config.env,
    ...(config.workingDir ? { workdir: config.workingDir } : {}),
    tty: host.tty,
    hostname: config.hostname,
    network: host.network,
    ...(paths ? { etcFiles: { hosts: paths.hosts, resolvConf: paths.resolvConf, hostname: paths.hostname } } : {}),
    binds: host.binds.map((b) => ({ source: b.source, destination: b.destination, readonly: b.readOnly })),
    resources,
  };
}

/** The container's config as an image config (what `commit` stores): docker's container Config. */
function effectiveConfig(rec: ContainerRecord, image: ContainerConfig | undefined): ContainerConfig {
  const base: ContainerConfig = structuredClone(image ?? {});
  if (rec.config.entrypoint) {
    const ep = rec.config.entrypoint.length === 1 && rec.config.entrypoint[0] === '' ? [] : rec.config.entrypoint;
    base.Entrypoint = ep.length > 0 ? ep : null;
    base.Cmd = rec.config.cmd ?? null;
  } else if (rec.config.cmd) {
    base.Cmd = rec.config.cmd;
  }
  const env = mergeEnv(image?.Env ?? [DEFAULT_PATH_ENV], rec.config.env).filter((e) => e.includes('='));
  const removed = new Set(rec.config.env.filter((e) => !e.includes('=')));
  base.Env = env.filter((e) => !removed.has(e.slice(0, e.indexOf('='))));
  if (rec.config.user) base.User = rec.config.user;
  if (rec.config.workingDir) base.WorkingDir = rec.config.workingDir;
  if (Object.keys(rec.config.labels).length > 0) base.Labels = { ...base.Labels, ...rec.config.labels };
  return base;
}

function summary(r: ContainerRecord): ContainerSummary {
  return {
    id: r.id,
    name: r.name,
    image: r.image,
    imageId: r.imageId,
    command: [r.path, ...r.args].join(' '),
    created: r.created,
    state: r.state.status,
    exitCode: r.state.exitCode,
    startedAt: r.state.startedAt,
    finishedAt: r.state.finishedAt,
    pid: r.state.pid,
  };
}

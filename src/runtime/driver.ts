/**
 * The runc/crun driver: the only code in strata that spawns an OCI runtime. Every call passes
 * `--root <stateRoot>/runtime/<name>`, so strata's containers never mix with the system's (`runc list` shows
 * none of them, and strata's list shows none of the system's).
 *
 *   const rt = await OciRuntime.open(stateRoot);                  // runc, or crun when asked / the only one
 *   const proc = rt.run(id, bundle, { stdio: 'inherit' });        // foreground: runc run
 *   const { exitCode } = await proc.wait();                       // the container's code; 126/127 exec errors
 *
 *   await rt.create(id, bundle, { pidFile });  await rt.start(id); // detached
 *   await rt.kill(id, 'SIGTERM', { all: true });  await rt.delete(id, { force: true });
 *
 * Errors carry the runtime's own message (from its JSON log) in the message and `details.stderr`.
 */
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { StrataError } from '../errors/index.js';
import { detectRuntime, type RuntimeInfo, type RuntimeName, runtimeVersion } from './detect.js';
import { type SpecProcess, validateContainerId } from './spec.js';

export type ContainerStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

/** `runc state` / `runc list --format json` (the OCI state plus the runtime's extras). */
export interface ContainerState {
  ociVersion?: string;
  id: string;
  /** 0 once stopped. */
  pid: number;
  status: ContainerStatus;
  bundle: string;
  rootfs?: string;
  created?: string;
  annotations?: Record<string, string>;
}

export interface ExitStatus {
  /** The container process's exit code (128+n when killed by signal n); 126/127 when it could not be executed. */
  exitCode: number;
  /** Set when the process could not be executed (exitCode 126 or 127): the runtime's message. */
  error?: ContainerExecError;
}

/** A foreground container (`runc run`): the runtime's child process, whose stdio is the container's. */
export interface ContainerProcess {
  readonly id: string;
  readonly child: ChildProcess;
  /**
   * Resolves when the runtime has exited and the child's stdio closed. Rejects with a RuntimeError when the
   * runtime failed to start the container for another reason than an exec failure.
   */
  wait(): Promise<ExitStatus>;
}

export interface RunOptions {
  /** The container's stdin, stdout, stderr (default ['ignore', 'pipe', 'pipe']). */
  stdio?: StdioOptions;
  pidFile?: string;
  /** Aborting kills the container (SIGKILL to all its processes); wait() then gives 137. */
  signal?: AbortSignal;
}

export interface CreateOptions {
  /** Handed to the container process (runc create passes its own stdio on). Default: all 'ignore'. */
  stdio?: StdioOptions;
  pidFile?: string;
  /** For a terminal (process.terminal): the unix socket the runtime sends the pty master to. */
  consoleSocket?: string;
  signal?: AbortSignal;
}

export interface ExecOptions {
  /** The process's stdin, stdout, stderr (default ['ignore', 'pipe', 'pipe']). */
  stdio?: StdioOptions;
  /** Where the runtime writes the new process's host pid once it runs (absent when it could not be executed). */
  pidFile?: string;
  /** `--detach`: the runtime returns once the process runs, leaving it in the container. */
  detach?: boolean;
  /** Aborting sends SIGKILL to the runtime, which passes it on to the process. */
  signal?: AbortSignal;
}

/** The runtime failed (not the container's process): what it said is in the message and `details.stderr`. */
export class RuntimeError extends StrataError {
  constructor(
    code: ConstructorParameters<typeof StrataError>[0],
    message: string,
    details: Record<string, unknown>,
    hint?: string,
  ) {
    super(code, message, hint === undefined ? { details } : { details, hint });
    this.name = 'RuntimeError';
  }
}

/** The container's command could not be executed: not found (127) or not executable (126), as docker reports. */
export class ContainerExecError extends StrataError {
  readonly exitCode: 126 | 127;
  constructor(exitCode: 126 | 127, message: string, details: Record<string, unknown>) {
    super(exitCode === 127 ? 'NOT_FOUND' : 'PERMISSION_DENIED', message, {
      details: { ...details, exitCode },
      hint:
        exitCode === 127
          ? 'the command does not exist in the image: check its name and the PATH'
          : 'the command is not executable: check its mode (chmod +x) and that it is not a directory',
    });
    this.name = 'ContainerExecError';
    this.exitCode = exitCode;
  }
}

/**
 * Docker's mapping of a runtime's start error to an exit status: the command not found -> 127; permission denied
 * or a directory -> 126; anything else is not an exec error (undefined).
 */
export function execErrorExitCode(message: string): 126 | 127 | undefined {
  if (!/exec/i.test(message)) return undefined;
  if (/executable file not found|no such file or directory|not found in \$PATH/i.test(message)) return 127;
  if (/permission denied|is a directory/i.test(message)) return 126;
  return undefined;
}

/** The error messages in a runtime's output: JSON log lines (`{"level":"error","msg":...}`), logfmt, or plain. */
export function runtimeErrorMessages(output: string): string[] {
  const out: string[] = [];
  for (const line of output.split('\n')) {
    const t = line.trim();
    if (t === '') continue;
    if (t.startsWith('{')) {
      try {
        const entry = JSON.parse(t) as { level?: unknown; msg?: unknown };
        if ((entry.level === 'error' || entry.level === 'fatal') && typeof entry.msg === 'string') out.push(entry.msg);
        continue;
      } catch {
        // not JSON: fall through
      }
    }
    const logfmt = /level=(\w+)\s+msg="((?:[^"\\]|\\.)*)"/.exec(t);
    if (logfmt) {
      if (logfmt[1] === 'error' || logfmt[1] === 'fatal') out.push(logfmt[2]!.replace(/\\(.)/g, '$1'));
      continue;
    }
    out.push(t.replace(/^(crun|runc): /, ''));
  }
  return out;
}

function signalNumber(sig: NodeJS.Signals | number): number {
  return typeof sig === 'number' ? sig : ((constants.signals as Record<string, number>)[sig] ?? 0);
}

interface Captured {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export class OciRuntime {
  readonly name: RuntimeName;
  readonly path: string;
  #version: Promise<string> | undefined;
  /** The runtime's state directory: `<stateRoot>/runtime/<name>`. */
  readonly root: string;

  constructor(info: RuntimeInfo, stateRoot: string) {
    this.name = info.name;
    this.path = info.path;
    if (info.version !== undefined) this.#version = Promise.resolve(info.version);
    this.root = join(stateRoot, 'runtime', info.name);
  }

  /** The runtime's version ("1.1.5+ds1"; "" when it says nothing usable), asked once. */
  version(): Promise<string> {
    this.#version ??= runtimeVersion(this.path);
    return this.#version;
  }

  /** Detect the runtime (see `detectRuntime`) and drive it with its state under `<stateRoot>/runtime/<name>`. */
  static async open(stateRoot: string, prefer?: RuntimeName): Promise<OciRuntime> {
    return new OciRuntime(await detectRuntime(prefer), stateRoot);
  }

  private globalArgs(log?: string): string[] {
    const args = ['--root', this.root, '--log-format', 'json'];
    if (log !== undefined) args.push('--log', log);
    return args;
  }

  /** Run a management command with captured output; a non-zero exit is a RuntimeError. */
  private async command(args: string[], what: string, id?: string): Promise<Captured> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const r = await new Promise<Captured>((resolve, reject) => {
      const child = spawn(this.path, [...this.globalArgs(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.on('error', (e) =>
        reject(new RuntimeError('UNAVAILABLE', `cannot run ${this.path}: ${e.message}`, { runtime: this.name })),
      );
      child.on('close', (code, signal) =>
        resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
      );
    });
    if (r.code !== 0) throw this.failure(what, r.stderr, id, r.code, r.signal);
    return r;
  }

  private failure(
    what: string,
    output: string,
    id: string | undefined,
    code: number | null,
    signal: NodeJS.Signals | null,
  ) {
    const messages = runtimeErrorMessages(output).map((m) => m.replace(/^(runc|crun) [a-z]+ failed: /, ''));
    const said = messages.join('; ') || (signal ? `killed by ${signal}` : `exit status ${code}`);
    const details = { runtime: this.name, id, stderr: output, exitCode: code };
    // runc: "container does not exist"; crun: "error opening file `<root>/<id>/status`: No such file or directory".
    const missing =
      /container does not exist/i.test(said) ||
      (said.includes(join(this.root, id ?? '')) && /no such file or directory/i.test(said));
    if (missing && id !== undefined) {
      return new RuntimeError('NOT_FOUND', `container ${id} not found by ${this.name}: ${said}`, details);
    }
    if (/already exists/i.test(said)) {
      return new RuntimeError('ALREADY_EXISTS', `${this.name} ${what} ${id ?? ''}: ${said}`, details);
    }
    if (/cgroups in hybrid mode not supported/.test(said)) {
      return new RuntimeError(
        'FAILED_PRECONDITION',
        `${this.name} ${what} failed: ${said}`,
        details,
        'use runc (--runtime runc)',
      );
    }
    return new RuntimeError('INTERNAL', `${this.name} ${what}${id ? ` ${id}` : ''} failed: ${said}`, details);
  }

  /** The error for a failed create/run, from the runtime's log file: an exec error or a RuntimeError. */
  private async startFailure(
    what: string,
    log: string,
    id: string,
    code: number | null,
    signal: NodeJS.Signals | null,
  ) {
    const text = await readFile(log, 'utf8').catch(() => '');
    const messages = runtimeErrorMessages(text).map((m) => m.replace(/^(runc|crun) [a-z]+ failed: /, ''));
    const exec = messages.map((m) => ({ m, code: execErrorExitCode(m) })).find((x) => x.code !== undefined);
    if (exec) return new ContainerExecError(exec.code!, exec.m, { runtime: this.name, id, stderr: text });
    return this.failure(what, text, id, code, signal);
  }

  private async prepareLog(bundle: string): Promise<string> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const log = join(bundle, 'log.json');
    try {
      await writeFile(log, '');
    } catch (err) {
      throw new StrataError('NOT_FOUND', `bundle directory ${bundle} is not usable: ${(err as Error).message}`, {
        cause: err,
        hint: 'the bundle must be a directory holding config.json',
      });
    }
    return log;
  }

  /**
   * Foreground run (`runc run`): the runtime's child process has the container's stdio (and forwards signals to
   * it); the runtime deletes the container when it exits. The runtime's own log goes to `<bundle>/log.json`.
   */
  async run(id: string, bundle: string, opts: RunOptions = {}): Promise<ContainerProcess> {
    validateContainerId(id);
    opts.signal?.throwIfAborted();
    const log = await this.prepareLog(bundle);
    const args = [...this.globalArgs(log), 'run', '--bundle', bundle];
    if (opts.pidFile !== undefined) args.push('--pid-file', opts.pidFile);
    args.push(id);
    const child = spawn(this.path, args, { stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'] });
    const onAbort = () => {
      this.kill(id, 'SIGKILL', { all: true }).catch(() => {});
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const done = new Promise<ExitStatus>((resolve, reject) => {
      child.on('error', (e) => {
        opts.signal?.removeEventListener('abort', onAbort);
        reject(new RuntimeError('UNAVAILABLE', `cannot run ${this.path}: ${e.message}`, { runtime: this.name, id }));
      });
      child.on('close', (code, signal) => {
        opts.signal?.removeEventListener('abort', onAbort);
        this.exitStatus(log, id, code, signal).then(resolve, reject);
      });
    });
    // Attach a handler now so an unobserved failure is not an unhandled rejection; wait() re-exposes it.
    done.catch(() => {});
    return { id, child, wait: () => done };
  }

  private async exitStatus(
    log: string,
    id: string,
    code: number | null,
    signal: NodeJS.Signals | null,
    what: 'run' | 'exec' = 'run',
  ): Promise<ExitStatus> {
    // The runtime itself died by a signal (it forwards catchable ones, so this is mostly SIGKILL).
    if (code === null) return { exitCode: 128 + signalNumber(signal ?? 'SIGKILL') };
    // runc/crun exit with the process's status; their own failures are status 1 (run) or 255 (runc exec) with an
    // error in the log.
    if (code === 1 || code === 255) {
      const text = await readFile(log, 'utf8').catch(() => '');
      if (runtimeErrorMessages(text).length > 0) {
        const err = await this.startFailure(what, log, id, code, signal);
        if (err instanceof ContainerExecError) return { exitCode: err.exitCode, error: err };
        throw err;
      }
    }
    return { exitCode: code };
  }

  /**
   * `create`: set the container up (namespaces, mounts, cgroup) with its process waiting to exec; `start` runs it.
   * An exec failure (127/126) already shows here, as a ContainerExecError.
   */
  async create(id: string, bundle: string, opts: CreateOptions = {}): Promise<void> {
    validateContainerId(id);
    opts.signal?.throwIfAborted();
    const log = await this.prepareLog(bundle);
    const args = [...this.globalArgs(log), 'create', '--bundle', bundle];
    if (opts.pidFile !== undefined) args.push('--pid-file', opts.pidFile);
    if (opts.consoleSocket !== undefined) args.push('--console-socket', opts.consoleSocket);
    args.push(id);
    const child = spawn(this.path, args, { stdio: opts.stdio ?? 'ignore', signal: opts.signal });
    // 'exit', not 'close': the container process keeps the stdio it was handed.
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.on('error', (e) => {
          if (e.name !== 'AbortError') {
            reject(
              new RuntimeError('UNAVAILABLE', `cannot run ${this.path}: ${e.message}`, { runtime: this.name, id }),
            );
          }
        });
        child.on('exit', (c, s) => resolve({ code: c, signal: s }));
      },
    );
    if (opts.signal?.aborted) {
      await this.delete(id, { force: true }).catch(() => {});
      throw new StrataError('CANCELLED', `create of container ${id} cancelled`);
    }
    if (code !== 0) {
      const err = await this.startFailure('create', log, id, code, signal);
      // A create cut short (signal) may leave a half-made container behind.
      if (signal !== null) await this.delete(id, { force: true }).catch(() => {});
      throw err;
    }
  }

  /**
   * `exec`: start another process in a running container (`runc exec --process`), with the spec's process shape
   * (args, env, cwd, user, terminal, capabilities...). Like `run`, the child's stdio is the process's and its exit
   * status is the process's; a command that cannot be executed gives a ContainerExecError status (126/127).
   * The process file and the runtime's log are written in `bundle` and removed when the runtime exits.
   */
  async exec(id: string, bundle: string, process: SpecProcess, opts: ExecOptions = {}): Promise<ContainerProcess> {
    validateContainerId(id);
    opts.signal?.throwIfAborted();
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const tag = randomBytes(6).toString('hex');
    const processFile = join(bundle, `exec-${tag}.json`);
    const log = join(bundle, `exec-${tag}.log`);
    try {
      await writeFile(processFile, JSON.stringify(process), { mode: 0o600 });
      await writeFile(log, '');
    } catch (err) {
      await rm(processFile, { force: true });
      throw new StrataError('NOT_FOUND', `bundle directory ${bundle} is not usable: ${(err as Error).message}`, {
        cause: err,
        hint: 'the bundle must be the directory the container was created from',
      });
    }
    const args = [...this.globalArgs(log), 'exec', '--process', processFile];
    if (opts.detach) args.push('--detach');
    if (opts.pidFile !== undefined) args.push('--pid-file', opts.pidFile);
    args.push(id);
    const child = spawn(this.path, args, { stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'] });
    const onAbort = () => {
      child.kill('SIGKILL');
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => Promise.all([rm(processFile, { force: true }), rm(log, { force: true })]);
    const done = new Promise<ExitStatus>((resolve, reject) => {
      child.on('error', (e) => {
        opts.signal?.removeEventListener('abort', onAbort);
        cleanup().finally(() =>
          reject(new RuntimeError('UNAVAILABLE', `cannot run ${this.path}: ${e.message}`, { runtime: this.name, id })),
        );
      });
      child.on('close', (code, signal) => {
        opts.signal?.removeEventListener('abort', onAbort);
        this.exitStatus(log, id, code, signal, 'exec')
          .then(resolve, reject)
          .finally(() => cleanup());
      });
    });
    done.catch(() => {});
    return { id, child, wait: () => done };
  }

  /** Run the created container's process. */
  async start(id: string): Promise<void> {
    validateContainerId(id);
    await this.command(['start', id], 'start', id);
  }

  async state(id: string): Promise<ContainerState> {
    validateContainerId(id);
    const r = await this.command(['state', id], 'state', id);
    return JSON.parse(r.stdout) as ContainerState;
  }

  /** Send a signal to the container's init process, or with `all` to every process in it. */
  async kill(id: string, signal: NodeJS.Signals | number = 'SIGTERM', opts: { all?: boolean } = {}): Promise<void> {
    validateContainerId(id);
    const args = ['kill'];
    if (opts.all) args.push('--all');
    args.push(id, String(typeof signal === 'number' ? signal : signalNumber(signal) || signal));
    await this.command(args, 'kill', id);
  }

  /**
   * Remove a stopped container (its state and cgroup); `force` kills a running one first. A container the runtime
   * has no state directory for is NOT_FOUND without running the runtime (callers delete "just in case" often).
   */
  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    validateContainerId(id);
    if (!(await this.exists(id))) {
      throw new RuntimeError('NOT_FOUND', `container ${id} not found by ${this.name}`, { runtime: this.name, id });
    }
    const args = ['delete'];
    if (opts.force) args.push('--force');
    args.push(id);
    await this.command(args, 'delete', id);
  }

  /** Whether the runtime keeps state for `id` (its directory under the runtime root), without running it. */
  async exists(id: string): Promise<boolean> {
    return (await stat(join(this.root, id)).catch(() => undefined))?.isDirectory() ?? false;
  }

  /** The IDs the runtime keeps state for (directories under its root), without running it. */
  async ids(): Promise<string[]> {
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  }

  /** The containers in strata's runtime root. */
  async list(): Promise<ContainerState[]> {
    const r = await this.command(['list', '--format', 'json'], 'list');
    const parsed = JSON.parse(r.stdout.trim() || 'null') as ContainerState[] | null;
    return parsed ?? [];
  }
}

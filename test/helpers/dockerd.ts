import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Debian's docker client (20.10, from docker.io): it talks to any daemon through DOCKER_HOST. */
export const DOCKER_CLIENT = '/usr/bin/docker';

export interface Dockerd {
  /**
   * Run the docker client against this daemon; resolves with stdout+stderr, rejects on a non-zero exit. `env` adds
   * variables for this call only (e.g. `DOCKER_BUILDKIT: '1'`).
   */
  docker(args: string[], opts?: { env?: Record<string, string> }): Promise<string>;
  /** Run containerd's ctr against the containerd this daemon started, in a namespace of our own. */
  ctr(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A private Docker Engine for interop tests: own data root, exec root and socket under `dir`, no bridge and no
 * iptables rules (this machine must never get a docker0 network). It starts its own containerd, which `ctr` reaches.
 * Stopped by its PID, with SIGTERM, so it unmounts its overlays.
 */
export async function startDockerd(dir: string): Promise<Dockerd> {
  await mkdir(dir, { recursive: true });
  const sock = join(dir, 'docker.sock');
  const execRoot = join(dir, 'exec');
  const child: ChildProcess = spawn(
    'dockerd',
    [
      '--bridge=none',
      '--iptables=false',
      '--ip6tables=false',
      '--ip-masq=false',
      '--data-root',
      join(dir, 'root'),
      '--exec-root',
      execRoot,
      '--pidfile',
      join(dir, 'docker.pid'),
      '-H',
      `unix://${sock}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-20_000);
  });
  const env = { ...process.env, DOCKER_HOST: `unix://${sock}` };
  const docker = async (args: string[], opts: { env?: Record<string, string> } = {}): Promise<string> => {
    const r = await run(DOCKER_CLIENT, args, { env: { ...env, ...opts.env }, maxBuffer: 64 << 20 });
    return r.stdout + r.stderr;
  };
  const containerdSock = join(execRoot, 'containerd', 'containerd.sock');
  const ctr = async (args: string[]): Promise<string> => {
    const r = await run('ctr', ['-a', containerdSock, '-n', 'strata-test', ...args], { maxBuffer: 64 << 20 });
    return r.stdout + r.stderr;
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`dockerd exited with ${child.exitCode}:\n${log}`);
    try {
      await docker(['version', '--format', '{{.Server.Version}}']);
      await readFile(join(dir, 'docker.pid'));
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`dockerd did not come up within 60 s:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return {
    docker,
    ctr,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

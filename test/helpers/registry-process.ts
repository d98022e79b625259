import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { cliPath } from './env.js';

/**
 * Registry servers as separate processes, for interop tests and benchmarks: strata's (`strata registry serve`) and
 * Debian's CNCF distribution (`docker-registry`, package docker-registry) as the reference. Each gets its own
 * storage directory and a free 127.0.0.1 port; the distro's systemd service (if any) is never used.
 */
export interface RegistryProcess {
  /** `strata` or `docker-registry`. */
  name: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** `127.0.0.1:PORT`, as a reference's registry part. */
  host: string;
  port: number;
  pid: number;
  /** Storage directory. */
  root: string;
  /** Peak resident set size so far (VmHWM), bytes. */
  peakRss(): number;
  /** Current resident set size (VmRSS), bytes. */
  rss(): number;
  /** SIGTERM, then SIGKILL after 10 s; resolves once the process is gone. */
  stop(): Promise<void>;
}

/** A port nobody listens on right now (the kernel's pick for port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function procStatus(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

async function waitReady(child: ChildProcess, url: string, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`registry exited (${child.exitCode ?? child.signalCode}) before answering: ${log()}`);
    }
    try {
      const r = await fetch(`${url}/v2/`);
      await r.arrayBuffer();
      // 401: up and asking for credentials (a registry with auth configured).
      if (r.status === 200 || r.status === 401) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`registry at ${url} did not answer within 15 s: ${log()}`);
}

async function launch(
  name: string,
  root: string,
  command: (port: number) => { file: string; args: string[] },
): Promise<RegistryProcess> {
  // A port picked here may be taken before the server binds it: try a few.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const { file, args } = command(port);
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    const keep = (d: Buffer): void => {
      if (output.length < 200) output.push(d.toString());
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitReady(child, url, () => output.join('').slice(-2000));
    } catch (err) {
      if (attempt < 3 && /address already in use|EADDRINUSE/i.test(output.join(''))) continue;
      throw err;
    }
    const pid = child.pid!;
    return {
      name,
      url,
      host: `127.0.0.1:${port}`,
      port,
      pid,
      root,
      peakRss: () => procStatus(pid, 'VmHWM'),
      rss: () => procStatus(pid, 'VmRSS'),
      stop: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      },
    };
  }
}

/**
 * `strata registry serve` from dist/ on a free port. `nodeArgs` go to node (e.g. `--cpu-prof`); logs at `logLevel`
 * (default warn: no line per request) go to the process's stdout, kept only for error messages.
 */
export async function startStrataRegistryProcess(
  root: string,
  opts: { logLevel?: string; nodeArgs?: string[] } = {},
): Promise<RegistryProcess> {
  await mkdir(root, { recursive: true });
  return launch('strata', root, (port) => ({
    file: process.execPath,
    args: [
      ...(opts.nodeArgs ?? []),
      cliPath,
      'registry',
      'serve',
      '--addr',
      `127.0.0.1:${port}`,
      '--root',
      root,
      '--log-level',
      opts.logLevel ?? 'warn',
    ],
  }));
}

export const DOCKER_REGISTRY = '/usr/bin/docker-registry';

/**
 * Debian's CNCF distribution (`docker-registry serve CONFIG`) with its own config: filesystem storage in `root`,
 * deletes enabled, the in-memory blob descriptor cache of the packaged config, access log off and level warn (as
 * strata's warn level: no line per request).
 */
export async function startDockerRegistry(
  root: string,
  opts: { accessLog?: boolean /** bcrypt htpasswd file: Basic auth on every request. */; htpasswd?: string } = {},
): Promise<RegistryProcess> {
  await mkdir(join(root, 'storage'), { recursive: true });
  return launch('docker-registry', root, (port) => {
    const config = join(root, `config-${port}.yml`);
    writeFileSync(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        '  accesslog:',
        `    disabled: ${opts.accessLog ? 'false' : 'true'}`,
        'storage:',
        '  cache:',
        '    blobdescriptor: inmemory',
        '  filesystem:',
        `    rootdirectory: ${join(root, 'storage')}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        // A fixed secret silences the "no HTTP secret" warning; uploads never cross instances here.
        '  secret: strata-interop-tests',
        ...(opts.htpasswd ? ['auth:', '  htpasswd:', '    realm: docker-registry', `    path: ${opts.htpasswd}`] : []),
        '',
      ].join('\n'),
    );
    return { file: DOCKER_REGISTRY, args: ['serve', config] };
  });
}

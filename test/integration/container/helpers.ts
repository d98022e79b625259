import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { importBusybox, strata } from '../../helpers/cli.js';
import { cliPath, hasTool, inCI, needRoot, tempDir } from '../../helpers/env.js';

/** What these tests need: root, runc, overlayfs and busybox-static (for the base image). */
export function ready(t: TestContext): boolean {
  if (!needRoot(t)) return false;
  const missing = ['runc', 'busybox'].filter((n) => !hasTool(n));
  if (missing.length > 0) {
    if (inCI) throw new Error(`required tools missing in CI: ${missing.join(', ')}`);
    t.skip(`${missing.join(', ')} not installed`);
    return false;
  }
  return true;
}

export const canRun = process.getuid?.() === 0 && hasTool('runc') && hasTool('busybox');
export const skipReason = canRun ? false : 'needs root, runc and busybox-static';

export interface Env {
  work: string;
  root: string;
  imageId: string;
  cleanup: () => Promise<void>;
}

/** A fresh root with busybox:latest imported; cleanup removes every container first and never follows a mount. */
export async function setup(): Promise<Env> {
  const dir = await tempDir('strata-ct-');
  const root = join(dir.path, 'root');
  const imageId = await importBusybox(root, dir.path);
  return {
    work: dir.path,
    root,
    imageId,
    cleanup: async () => {
      const ids = (await strata(root, ['ps', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await strata(root, ['rm', '-f', ...ids]);
      for (const m of mountsUnder(dir.path)) spawnSync('umount', ['-l', m]);
      if (mountsUnder(dir.path).length === 0) await dir.cleanup();
    },
  };
}

export function mountsUnder(prefix: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const p = line
      .split(' ')[4]
      ?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    if (p && (p === prefix || p.startsWith(`${prefix}/`))) out.push(p);
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Container directories, runtime containers and active container snapshots in a root. */
export function leftovers(root: string): {
  containers: string[];
  runtime: string[];
  snapshots: string[];
  mounts: string[];
} {
  const ls = (d: string) => {
    try {
      return readdirSync(d);
    } catch {
      return [];
    }
  };
  const containers = ls(join(root, 'containers')).filter((n) => /^[0-9a-f]{64}$/.test(n));
  const runtime: string[] = [];
  for (const rt of ['runc', 'crun']) {
    const state = join(root, 'runtime', rt);
    runtime.push(...ls(state).filter((n) => /^[0-9a-f]{64}$/.test(n)));
  }
  const snapshots: string[] = [];
  for (const id of ls(join(root, 'snapshots'))) {
    try {
      const info = JSON.parse(readFileSync(join(root, 'snapshots', id, 'info.json'), 'utf8')) as {
        name: string;
        kind: string;
      };
      if (info.kind === 'active' && info.name.startsWith('container-')) snapshots.push(info.name);
    } catch {
      // not a snapshot
    }
  }
  return { containers, runtime, snapshots, mounts: mountsUnder(root) };
}

export function nothingLeft(root: string): void {
  const l = leftovers(root);
  const empty = { containers: [], runtime: [], snapshots: [], mounts: [] };
  if (JSON.stringify(l) !== JSON.stringify(empty)) throw new Error(`leftovers: ${JSON.stringify(l)}`);
}

/** The CLI as a child process (for signals and kill -9). */
export function spawnStrata(
  root: string,
  args: string[],
): ChildProcess & { output: () => { stdout: string; stderr: string } } {
  const child = spawn(cliPath, [...args], {
    env: { ...process.env, STRATA_ROOT: root },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return Object.assign(child, { output: () => ({ stdout, stderr }) });
}

export function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null)
      resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

export async function waitFor(what: string, fn: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export { strata };

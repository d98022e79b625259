import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { cliPath, repoRoot } from './env.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the built `strata` command (`dist/bin/strata.mjs`, executed as npm links it) against a root, as a user would; never throws on a non-zero exit. */
export function strata(
  root: string,
  args: string[],
  /** `viaNode`: `node dist/bin/strata.mjs ...` (Node itself, not the file's sh line, sees the environment first). */
  opts: { input?: Buffer | string; env?: Record<string, string>; viaNode?: boolean } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const [file, argv] = opts.viaNode ? [process.execPath, [cliPath, ...args]] : [cliPath, args];
    const child = spawn(file, argv, {
      env: { ...process.env, STRATA_ROOT: root, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Build the busybox root filesystem (scripts/busybox-rootfs.sh) in `dir`. */
export async function busyboxRootfs(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync('bash', [join(repoRoot, 'scripts/busybox-rootfs.sh'), dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`busybox-rootfs.sh failed: ${r.stderr}`);
  return dir;
}

/** Import the busybox base image into `root` as busybox:latest; returns the image ID. */
export async function importBusybox(root: string, work: string, name = 'busybox:latest'): Promise<string> {
  const dir = await busyboxRootfs(join(work, 'busybox-rootfs'));
  const r = await strata(root, ['import', '--change', 'CMD ["sh"]', dir, name]);
  if (r.code !== 0) throw new Error(`strata import failed: ${r.stderr}`);
  return r.stdout.trim();
}

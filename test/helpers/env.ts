import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export const inCI = process.env['CI'] === 'true';
export const repoRoot = new URL('../../../', import.meta.url).pathname;
/** The CLI as installed (`bin` in package.json): the bundle `npm run build` makes from `dist/src/cli/main.js`. */
export const cliPath = join(repoRoot, 'dist/bin/strata.mjs');

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Skip (locally) or fail (in CI, where .ci/run installs every tool) when a tool the test needs is missing, so a
 * missing tool never turns into a silently green run in CI.
 */
export function needTool(t: TestContext, ...names: string[]): boolean {
  const missing = names.filter((n) => !hasTool(n));
  if (missing.length === 0) return true;
  const why = `${missing.join(', ')} not installed (apt-get install ${missing.join(' ')}, or run .ci/run)`;
  if (inCI) throw new Error(`required tool missing in CI: ${why}`);
  t.skip(why);
  return false;
}

export function needRoot(t: TestContext): boolean {
  if (process.getuid?.() === 0) return true;
  if (inCI) throw new Error('these tests need root in CI');
  t.skip('needs root');
  return false;
}

export async function tempDir(prefix = 'strata-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importBusybox, strata } from '../../helpers/cli.js';
import { cliPath, hasTool, inCI, tempDir } from '../../helpers/env.js';

/** Start the CLI and SIGKILL it after `ms`; resolves when it is gone. */
function killAfter(root: string, args: string[], ms: number): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(cliPath, [...args], {
      env: { ...process.env, STRATA_ROOT: root },
      stdio: 'ignore',
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const ready = hasTool('busybox') || inCI;

describe('kill -9 at any moment leaves a consistent store', { skip: ready ? false : 'busybox-static missing' }, () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let archive: string;
  let rootfs: string;

  before(async () => {
    work = await tempDir();
    const src = join(work.path, 'src-root');
    await importBusybox(src, work.path);
    // A bigger second layer so the kills land in the middle of the work.
    const big = join(work.path, 'big');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(big, { recursive: true });
    for (let i = 0; i < 40; i++) await writeFile(join(big, `f${i}`), Buffer.alloc(1 << 20, i));
    rootfs = big;
    assert.equal((await strata(src, ['import', big, 'big:1'])).code, 0);
    archive = join(work.path, 'all.tar');
    assert.equal((await strata(src, ['save', '--format', 'oci', '-o', archive, 'busybox', 'big:1'])).code, 0);
  });
  after(async () => work?.cleanup());

  for (const ms of [60, 150, 250, 400, 700]) {
    it(`load and import killed after ${ms} ms: fsck finds no error, a retry succeeds, prune clears leftovers`, async () => {
      const root = join(work.path, `root-${ms}`);
      await killAfter(root, ['load', '-i', archive], ms);
      await killAfter(root, ['import', rootfs, 'again:1'], ms);
      const f = await strata(root, ['fsck']);
      assert.equal(f.code, 0, `fsck after kill: ${f.stdout}${f.stderr}`);
      const l = await strata(root, ['load', '-i', archive]);
      assert.equal(l.code, 0, l.stderr);
      assert.equal((await strata(root, ['image', 'prune'])).code, 0);
      const after = await strata(root, ['fsck']);
      assert.equal(after.code, 0, after.stdout);
      assert.doesNotMatch(after.stdout, /error:|warning:/, 'prune removed what the killed processes left');
      assert.equal((await strata(root, ['inspect', 'big:1'])).code, 0);
    });
  }
});

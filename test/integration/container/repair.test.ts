import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Strata } from '../../../src/index.js';
import {
  type Env,
  exitOf,
  leftovers,
  mountsUnder,
  nothingLeft,
  setup,
  skipReason,
  spawnStrata,
  strata,
  waitFor,
} from './helpers.js';

const runcState = (root: string, id: string) =>
  spawnSync('runc', ['--root', join(root, 'runtime', 'runc'), 'state', id], { encoding: 'utf8' });

const stateOf = async (root: string, id: string) =>
  JSON.parse(await readFile(join(root, 'containers', id, 'state.json'), 'utf8')) as {
    state: { status: string; exitCode: number; monitorPid?: number; pid: number; error?: string };
  };

describe('repair after strata is killed', { skip: skipReason }, () => {
  let env: Env;
  let root: string;

  before(async () => {
    env = await setup();
    root = env.root;
  });
  after(async () => env?.cleanup());

  it('a foreground run whose CLI was killed -9: the next command records the exit and unmounts', async () => {
    const child = spawnStrata(root, ['run', '--name', 'orphan', 'busybox', 'sh', '-c', 'sleep 1.5']);
    await waitFor('the container to run', async () => {
      const ps = await strata(root, ['ps', '-q', '--no-trunc']);
      return ps.stdout.trim().length === 64;
    });
    const id = (await strata(root, ['ps', '-q', '--no-trunc'])).stdout.trim();
    child.kill('SIGKILL');
    await exitOf(child);
    // The container goes on without strata; once it is gone, any strata command notices.
    await waitFor('the container to end', () => runcState(root, id).status !== 0, 15_000);
    const ps = await strata(root, ['ps', '-a', '--format', '{{.Names}} {{.State}} {{.Status}}']);
    assert.match(ps.stdout, /^orphan exited Exited \(255\) /);
    const rec = await stateOf(root, id);
    assert.equal(rec.state.monitorPid, undefined);
    assert.match(rec.state.error ?? '', /monitor died/);
    assert.deepEqual(mountsUnder(root), []);
    assert.deepEqual(leftovers(root).runtime, []);
    // The container can run again and be removed.
    const again = await strata(root, ['start', '-a', 'orphan']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await strata(root, ['rm', 'orphan'])).code, 0);
    nothingLeft(root);
  });

  it('with --rm, a killed foreground run is removed once it is over', async () => {
    const child = spawnStrata(root, ['run', '--rm', 'busybox', 'sh', '-c', 'sleep 1']);
    await waitFor('the container to run', async () => (await strata(root, ['ps', '-q'])).stdout.trim() !== '');
    const id = (await strata(root, ['ps', '-q', '--no-trunc'])).stdout.trim();
    child.kill('SIGKILL');
    await exitOf(child);
    await waitFor('the container to end', () => runcState(root, id).status !== 0, 15_000);
    assert.equal((await strata(root, ['ps', '-aq'])).stdout, '');
    nothingLeft(root);
  });

  it('a detached container whose monitor was killed keeps running; stop and rm still work', async () => {
    const id = (await strata(root, ['run', '-d', 'busybox', 'sleep', '300'])).stdout.trim();
    const monitor = (await stateOf(root, id)).state.monitorPid!;
    assert.ok(monitor > 0);
    process.kill(monitor, 'SIGKILL');
    await waitFor('the monitor to die', () => spawnSync('kill', ['-0', String(monitor)]).status !== 0);
    const ps = await strata(root, ['ps', '--format', '{{.State}}']);
    assert.equal(ps.stdout, 'running\n');
    assert.equal((await stateOf(root, id)).state.monitorPid, undefined);
    const stop = await strata(root, ['stop', '-t', '1', id]);
    assert.equal(stop.code, 0, stop.stderr);
    const after = await stateOf(root, id);
    assert.equal(after.state.status, 'exited');
    assert.deepEqual(mountsUnder(root), []);
    assert.equal((await strata(root, ['rm', id])).code, 0);
    nothingLeft(root);
  });

  it('a leaked rootfs mount and a runtime container without a record are cleaned up', async () => {
    const id = (await strata(root, ['create', '--name', 'leaky', 'busybox'])).stdout.trim();
    // Mount the rootfs as a killed `start` would have left it.
    const s = await Strata.open({ root });
    await s.snapshots.mountActive(`container-${id}`, join(root, 'containers', id, 'rootfs'));
    assert.equal(mountsUnder(root).length, 1);
    // A runtime container nobody knows: a bundle on the busybox tree, started detached in strata's runtime root.
    const bundle = join(env.work, 'orphan-bundle');
    spawnSync('mkdir', ['-p', bundle]);
    spawnSync('runc', ['spec', '--bundle', bundle]);
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8'));
    spec.process.terminal = false;
    spec.process.args = ['sleep', '300'];
    spec.root = { path: join(env.work, 'busybox-rootfs'), readonly: true };
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
    const orphan = 'f'.repeat(64);
    const started = spawnSync(
      'runc',
      ['--root', join(root, 'runtime', 'runc'), 'run', '-d', '--bundle', bundle, orphan],
      {
        stdio: 'ignore',
      },
    );
    assert.equal(started.status, 0);
    assert.equal(runcState(root, orphan).status, 0);
    const ps = await strata(root, ['ps', '-a', '--format', '{{.Names}} {{.State}}']);
    assert.equal(ps.stdout, 'leaky created\n');
    assert.deepEqual(mountsUnder(root), []);
    assert.notEqual(runcState(root, orphan).status, 0, 'the orphaned runtime container is gone');
    assert.equal((await strata(root, ['rm', 'leaky'])).code, 0);
    nothingLeft(root);
  });

  it('a container directory whose removal died half-way is finished off', async () => {
    const id = (await strata(root, ['create', 'busybox'])).stdout.trim();
    const dir = join(root, 'containers', id);
    // A removal that deleted the record and died: the directory and the snapshot remain.
    spawnSync('rm', ['-f', join(dir, 'state.json')]);
    const old = new Date(Date.now() - 120_000);
    spawnSync('touch', ['-d', old.toISOString(), dir]);
    assert.equal((await strata(root, ['ps', '-aq'])).stdout, '');
    nothingLeft(root);
  });
});

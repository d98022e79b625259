import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type Env,
  exitOf,
  leftovers,
  nothingLeft,
  setup,
  skipReason,
  spawnStrata,
  strata,
  waitFor,
} from './helpers.js';

const psJson = async (root: string, all = true) =>
  (await strata(root, ['ps', ...(all ? ['-a'] : []), '--format', 'json'])).stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, string>);

describe('container lifecycle: run -d, ps, logs, stop, kill, rm, create, start, wait', { skip: skipReason }, () => {
  let env: Env;
  let root: string;

  before(async () => {
    env = await setup();
    root = env.root;
  });
  after(async () => env?.cleanup());

  it('run -d prints the ID and the container outlives the CLI; ps, logs, stop, rm', async () => {
    const r = await strata(root, [
      'run',
      '-d',
      '--name',
      'ticker',
      'busybox',
      'sh',
      '-c',
      'trap "echo bye; exit 7" TERM; echo started; echo warn >&2; while true; do sleep 0.1; done',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    // The CLI has exited; the container still runs.
    const ps = await strata(root, ['ps']);
    const [header, row] = ps.stdout.trim().split('\n');
    assert.match(header!, /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
    assert.match(row!, new RegExp(`^${id.slice(0, 12)}\\s+busybox\\s+"sh -c trap .*…"\\s+.* ago\\s+Up .*\\s+ticker$`));
    const inspect = JSON.parse((await strata(root, ['container', 'inspect', 'ticker'])).stdout)[0];
    assert.equal(inspect.State.Status, 'running');
    assert.ok(inspect.State.Pid > 0);
    assert.ok(spawnSync('kill', ['-0', String(inspect.State.Pid)]).status === 0, 'the container process runs');
    await waitFor('output in the log', async () => (await strata(root, ['logs', 'ticker'])).stdout.includes('started'));
    const logs = await strata(root, ['logs', 'ticker']);
    assert.equal(logs.stdout, 'started\n');
    assert.equal(logs.stderr, 'warn\n');
    // The log is docker's json-file format (stdout and stderr are two pipes: their relative order is not kept).
    const lines = (await readFile(inspect.LogPath, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const line = lines.find((l) => l.stream === 'stdout');
    assert.equal(line.log, 'started\n');
    assert.ok(!Number.isNaN(Date.parse(line.time)));
    assert.deepEqual(lines.find((l) => l.stream === 'stderr')?.log, 'warn\n');
    // rm of a running container is refused.
    const refused = await strata(root, ['rm', 'ticker']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /container is running/);
    const stop = await strata(root, ['stop', 'ticker']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.stdout, 'ticker\n');
    const [rec] = await psJson(root);
    assert.equal(rec!.State, 'exited');
    assert.match(rec!.Status, /^Exited \(7\) .* ago$/);
    assert.match((await strata(root, ['logs', 'ticker'])).stdout, /bye/);
    // Stopped: no mount, no runtime state; the record and the snapshot stay for diff/commit/start.
    const l = leftovers(root);
    assert.deepEqual(l.mounts, []);
    assert.deepEqual(l.runtime, []);
    assert.equal(l.containers.length, 1);
    assert.equal((await strata(root, ['rm', 'ticker'])).code, 0);
    nothingLeft(root);
  });

  it('stop -t sends SIGKILL when the stop signal is ignored', async () => {
    const id = (
      await strata(root, ['run', '-d', 'busybox', 'sh', '-c', 'trap "" TERM; while true; do sleep 0.1; done'])
    ).stdout.trim();
    const t0 = Date.now();
    assert.equal((await strata(root, ['stop', '-t', '1', id])).code, 0);
    assert.ok(Date.now() - t0 < 8000);
    assert.equal((await strata(root, ['wait', id])).stdout, '137\n');
    assert.equal((await strata(root, ['rm', id])).code, 0);
  });

  it('kill -s sends a signal; rm -f removes a running container', async () => {
    const id = (
      await strata(root, ['run', '-d', 'busybox', 'sh', '-c', 'trap "exit 10" USR1; while true; do sleep 0.1; done'])
    ).stdout.trim();
    assert.equal((await strata(root, ['kill', '-s', 'USR1', id.slice(0, 8)])).code, 0);
    assert.equal((await strata(root, ['wait', id])).stdout, '10\n');
    const bad = await strata(root, ['kill', id]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /is not running/);
    assert.equal((await strata(root, ['rm', id])).code, 0);
    const id2 = (await strata(root, ['run', '-d', 'busybox', 'sleep', '100'])).stdout.trim();
    const rm = await strata(root, ['rm', '-f', id2]);
    assert.equal(rm.code, 0, rm.stderr);
    nothingLeft(root);
  });

  it('logs -f follows until the container exits', async () => {
    const id = (
      await strata(root, ['run', '-d', 'busybox', 'sh', '-c', 'for i in 1 2 3; do echo line $i; sleep 0.3; done'])
    ).stdout.trim();
    const r = await strata(root, ['logs', '-f', id]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'line 1\nline 2\nline 3\n');
    const tail = await strata(root, ['logs', '--tail', '1', '-t', id]);
    assert.match(tail.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z line 3\n$/);
    assert.equal((await strata(root, ['rm', id])).code, 0);
  });

  it('create, start, wait, start again (the log grows), start -a', async () => {
    const c = await strata(root, ['create', '--name', 'job', 'busybox', 'sh', '-c', 'echo run; exit 4']);
    assert.equal(c.code, 0, c.stderr);
    let [rec] = await psJson(root);
    assert.equal(rec!.State, 'created');
    assert.equal(rec!.Status, 'Created');
    assert.deepEqual(leftovers(root).mounts, []);
    assert.equal((await strata(root, ['start', 'job'])).stdout, 'job\n');
    assert.equal((await strata(root, ['wait', 'job'])).stdout, '4\n');
    [rec] = await psJson(root);
    assert.match(rec!.Status, /^Exited \(4\)/);
    const again = await strata(root, ['start', '-a', 'job']);
    assert.equal(again.code, 4);
    assert.equal(again.stdout, 'run\n');
    assert.equal((await strata(root, ['logs', 'job'])).stdout, 'run\nrun\n');
    assert.equal((await strata(root, ['rm', 'job'])).code, 0);
    nothingLeft(root);
  });

  it('run --rm -d removes the container when it exits', async () => {
    const id = (await strata(root, ['run', '--rm', '-d', 'busybox', 'sh', '-c', 'sleep 0.3'])).stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    await waitFor('auto-removal', () => leftovers(root).containers.length === 0);
    await waitFor('everything gone', () => {
      try {
        nothingLeft(root);
        return true;
      } catch {
        return false;
      }
    });
  });

  it('run -d of a missing command fails with 127 and leaves the created container', async () => {
    const r = await strata(root, ['run', '-d', '--name', 'broken', 'busybox', 'no-such']);
    assert.equal(r.code, 127);
    assert.match(r.stderr, /no-such/);
    const [rec] = await psJson(root);
    assert.equal(rec!.State, 'created');
    assert.deepEqual(leftovers(root).mounts, []);
    assert.equal((await strata(root, ['rm', 'broken'])).code, 0);
    nothingLeft(root);
  });

  it('a foreground run shows in ps while it runs; SIGINT to the CLI reaches the container', async () => {
    const child = spawnStrata(root, [
      'run',
      '--name',
      'fg',
      'busybox',
      'sh',
      '-c',
      'trap "exit 9" INT; echo up; while true; do sleep 0.1; done',
    ]);
    await waitFor('the container', () => child.output().stdout.includes('up'));
    const [rec] = await psJson(root, false);
    assert.equal(rec!.Names, 'fg');
    child.kill('SIGINT');
    assert.equal((await exitOf(child)).code, 9);
    assert.equal((await strata(root, ['rm', 'fg'])).code, 0);
  });

  it('rmi refuses the last name of an image a container uses, unless -f; prune keeps the image', async () => {
    // An image of its own (a commit of busybox), named only solo:1.
    const base = (await strata(root, ['create', 'busybox'])).stdout.trim();
    assert.equal((await strata(root, ['commit', '-c', 'CMD ["echo", "solo"]', base, 'solo:1'])).code, 0);
    assert.equal((await strata(root, ['rm', base])).code, 0);
    assert.equal((await strata(root, ['create', '--name', 'user', 'solo:1'])).code, 0);
    const refused = await strata(root, ['rmi', 'solo:1']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /container [0-9a-f]{12} is using it/);
    // Another name for the same image can go.
    assert.equal((await strata(root, ['tag', 'solo:1', 'alias:1'])).code, 0);
    assert.equal((await strata(root, ['rmi', 'alias:1'])).code, 0);
    const forced = await strata(root, ['rmi', '-f', 'solo:1']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal((await strata(root, ['image', 'prune'])).code, 0);
    const run = await strata(root, ['start', '-a', 'user']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'solo\n');
    assert.equal((await strata(root, ['rm', 'user'])).code, 0);
  });

  it('export writes a tar of the root filesystem', async () => {
    const id = (
      await strata(root, ['run', '-d', 'busybox', 'sh', '-c', 'echo hi > /exported; sleep 0.1'])
    ).stdout.trim();
    await strata(root, ['wait', id]);
    const out = join(env.work, 'export.tar');
    const r = await strata(root, ['export', '-o', out, id]);
    assert.equal(r.code, 0, r.stderr);
    const list = spawnSync('tar', ['-tf', out], { encoding: 'utf8' }).stdout.split('\n');
    assert.ok(list.includes('exported'), list.slice(0, 5).join(','));
    assert.ok(list.includes('bin/busybox'));
    assert.deepEqual(leftovers(root).mounts, []);
    assert.equal((await strata(root, ['rm', id])).code, 0);
    nothingLeft(root);
  });
});

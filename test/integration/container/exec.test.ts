import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Env, exitOf, nothingLeft, setup, skipReason, spawnStrata, strata, waitFor } from './helpers.js';

describe('exec: another process in a running container', { skip: skipReason }, () => {
  let env: Env;
  let root: string;
  let id: string;

  before(async () => {
    env = await setup();
    root = env.root;
    const r = await strata(root, [
      'run',
      '-d',
      '--name',
      'host1',
      '-e',
      'FROM_RUN=one',
      '-w',
      '/tmp',
      '--hostname',
      'boxy',
      'busybox',
      'sh',
      '-c',
      'echo hello > /tmp/made-by-run; exec sleep 1000',
    ]);
    assert.equal(r.code, 0, r.stderr);
    id = r.stdout.trim();
    await waitFor('the file the container writes', async () => {
      const c = await strata(root, ['exec', 'host1', 'cat', '/tmp/made-by-run']);
      return c.code === 0;
    });
  });
  after(async () => env?.cleanup());

  it("runs in the container's namespaces, filesystem, environment and working directory", async () => {
    const r = await strata(root, [
      'exec',
      '-e',
      'FROM_EXEC=two',
      'host1',
      'sh',
      '-c',
      'cat /tmp/made-by-run; hostname; pwd; echo "$FROM_RUN $FROM_EXEC"; id -u; ps -o pid,args | grep -c "^ *1 sleep 1000"; echo err >&2',
    ]);
    assert.equal(r.code, 0, r.stderr);
    // The sleeping init is PID 1 of the namespace the exec'd shell sees.
    assert.equal(r.stdout, 'hello\nboxy\n/tmp\none two\n0\n1\n');
    assert.equal(r.stderr, 'err\n');
    const pid1 = await strata(root, ['exec', 'host1', 'cat', '/proc/1/cmdline']);
    assert.equal(pid1.stdout.replaceAll('\0', ' ').trim(), 'sleep 1000');
  });

  it('-u and -w override the user and working directory; files it writes are in the container', async () => {
    const r = await strata(root, ['exec', '-u', 'nobody', '-w', '/', 'host1', 'sh', '-c', 'id -u; id -g; pwd']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '65534\n65534\n/\n');
    const w = await strata(root, ['exec', 'host1', 'sh', '-c', 'echo from-exec > /exec-file']);
    assert.equal(w.code, 0, w.stderr);
    const diff = await strata(root, ['diff', 'host1']);
    assert.match(diff.stdout, /^A \/exec-file$/m);
  });

  it("exit codes are the command's; 127 for a command that does not exist, 126 for one not executable", async () => {
    assert.equal((await strata(root, ['exec', 'host1', 'sh', '-c', 'exit 42'])).code, 42);
    const missing = await strata(root, ['exec', 'host1', 'no-such-command']);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /no-such-command/);
    assert.match(missing.stderr, /Hint: /);
    // The runtime's own complaint is reported once, as strata's error, not passed through as the command's output.
    assert.equal(missing.stderr.match(/executable file not found/g)?.length, 1, missing.stderr);
    const notExec = await strata(root, ['exec', 'host1', '/etc/passwd']);
    assert.equal(notExec.code, 126, notExec.stderr);
  });

  it('-i passes stdin through', async () => {
    const r = await strata(root, ['exec', '-i', 'host1', 'sh', '-c', 'tr a-z A-Z'], { input: 'shout\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'SHOUT\n');
    const closed = await strata(root, ['exec', 'host1', 'sh', '-c', 'cat; echo done'], { input: 'ignored\n' });
    assert.equal(closed.stdout, 'done\n', 'without -i the command gets no stdin');
  });

  it('-d leaves the command running in the container', async () => {
    const r = await strata(root, ['exec', '-d', 'host1', 'sh', '-c', 'sleep 0.2; echo later > /tmp/detached']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    await waitFor('the detached command to write', async () => {
      const c = await strata(root, ['exec', 'host1', 'cat', '/tmp/detached']);
      return c.stdout === 'later\n';
    });
  });

  it('a signal to strata reaches the command', async () => {
    const child = spawnStrata(root, [
      'exec',
      'host1',
      'sh',
      '-c',
      'trap "echo got-term; exit 3" TERM; echo ready; while true; do sleep 0.05; done',
    ]);
    await waitFor('the command to run', () => child.output().stdout.includes('ready'));
    child.kill('SIGTERM');
    const { code } = await exitOf(child);
    assert.equal(code, 3, child.output().stderr);
    assert.match(child.output().stdout, /got-term/);
  });

  it('exec leaves no process files behind, and the container keeps running', async () => {
    const files = await readdir(join(root, 'containers', id));
    assert.deepEqual(
      files.filter((f) => f.startsWith('exec-')),
      [],
    );
    const ps = JSON.parse((await strata(root, ['container', 'inspect', 'host1'])).stdout)[0];
    assert.equal(ps.State.Status, 'running');
  });

  it('bad input: a stopped or unknown container, no command, a relative -w, an unknown user', async () => {
    const unknown = await strata(root, ['exec', 'nope', 'true']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /No such container: nope/);
    const noCmd = await strata(root, ['exec', 'host1']);
    assert.equal(noCmd.code, 125);
    const rel = await strata(root, ['exec', '-w', 'tmp', 'host1', 'true']);
    assert.equal(rel.code, 125);
    assert.match(rel.stderr, /not an absolute path/);
    const user = await strata(root, ['exec', '-u', 'ghost', 'host1', 'true']);
    assert.equal(user.code, 125);
    assert.match(user.stderr, /ghost/);
    const created = await strata(root, ['create', '--name', 'idle', 'busybox', 'true']);
    assert.equal(created.code, 0, created.stderr);
    const stopped = await strata(root, ['exec', 'idle', 'true']);
    assert.equal(stopped.code, 125);
    assert.match(stopped.stderr, /is not running/);
    await strata(root, ['rm', 'idle']);
  });

  it('after rm -f nothing is left', async () => {
    const r = await strata(root, ['rm', '-f', 'host1']);
    assert.equal(r.code, 0, r.stderr);
    nothingLeft(root);
  });
});

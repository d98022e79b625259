import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
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

describe('strata run (runc, overlay, busybox)', { skip: skipReason }, () => {
  let env: Env;
  let root: string;
  const run = (...args: string[]) => strata(root, ['run', '--rm', ...args]);

  before(async () => {
    env = await setup();
    root = env.root;
  });
  after(async () => env?.cleanup());

  it('runs echo: output passed through, exit 0, nothing left with --rm', async () => {
    const r = await run('busybox', 'echo', 'hello', 'world');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello world\n');
    assert.equal(r.stderr, '');
    nothingLeft(root);
  });

  it('stdout and stderr stay apart', async () => {
    const r = await run('busybox', 'sh', '-c', 'echo out; echo err >&2');
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
  });

  it("the command is PID 1 and sees none of the host's processes", async () => {
    const r = await run(
      'busybox',
      'sh',
      '-c',
      'echo $$; ps -o pid,comm | tail -n +2 | wc -l; ls /proc | grep -c "^[0-9]"',
    );
    assert.equal(r.code, 0, r.stderr);
    const [pid, psCount, procCount] = r.stdout.trim().split('\n').map(Number);
    assert.equal(pid, 1);
    assert.ok(psCount! <= 4, `ps sees ${psCount} processes`);
    assert.ok(procCount! <= 4, `/proc lists ${procCount} processes`);
  });

  it('hostname: the short ID by default, --hostname, and /etc/hostname and /etc/hosts agree', async () => {
    const r = await strata(root, ['run', '--name', 'hn', 'busybox', 'sh', '-c', 'hostname; cat /etc/hostname']);
    assert.equal(r.code, 0, r.stderr);
    const inspect = JSON.parse((await strata(root, ['container', 'inspect', 'hn'])).stdout)[0];
    const [h1, h2] = r.stdout.trim().split('\n');
    assert.equal(h1, inspect.Id.slice(0, 12));
    assert.equal(h2, h1);
    await strata(root, ['rm', 'hn']);
    const named = await run('--hostname', 'box1', 'busybox', 'sh', '-c', 'hostname; grep -c box1 /etc/hosts');
    assert.equal(named.stdout, 'box1\n1\n');
  });

  it('exit codes propagate; 127 for a missing command, 126 for a non-executable one', async () => {
    assert.equal((await run('busybox', 'sh', '-c', 'exit 3')).code, 3);
    assert.equal((await run('busybox', 'sh', '-c', 'exit 255')).code, 255);
    assert.equal((await run('busybox', 'false')).code, 1);
    const missing = await run('busybox', 'no-such-command');
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /no-such-command.*not found/);
    assert.doesNotMatch(missing.stderr, /runc run failed/);
    const notExec = await run('busybox', '/etc/passwd');
    assert.equal(notExec.code, 126, notExec.stderr);
    // A signal that kills the process gives 128+n (PID 1 cannot be killed from inside: a child of it here).
    const killed = await run('--entrypoint', 'sh', 'busybox', '-c', "sh -c 'kill -9 $$'; exit $?");
    assert.equal(killed.code, 137);
    nothingLeft(root);
  });

  it('files written in one container are invisible to another and to the image', async () => {
    const a = await strata(root, [
      'run',
      '--name',
      'writer',
      'busybox',
      'sh',
      '-c',
      'echo secret > /etc/mine; rm /etc/group',
    ]);
    assert.equal(a.code, 0, a.stderr);
    const b = await run('busybox', 'sh', '-c', 'ls /etc/mine 2>&1; cat /etc/group | head -1');
    assert.match(b.stdout, /No such file/);
    assert.match(b.stdout, /^root:x:0:/m);
    // The image's layer snapshot is untouched.
    const exported = await strata(root, ['diff', 'writer']);
    assert.match(exported.stdout, /^A \/etc\/mine$/m);
    assert.match(exported.stdout, /^D \/etc\/group$/m);
    const snaps = join(root, 'snapshots');
    const { readdirSync, existsSync } = await import('node:fs');
    for (const d of readdirSync(snaps)) {
      const info = JSON.parse(await readFile(join(snaps, d, 'info.json'), 'utf8'));
      if (info.kind !== 'committed' || !info.name.startsWith('sha256:')) continue; // image layers only
      assert.ok(!existsSync(join(snaps, d, 'fs', 'etc', 'mine')), 'a layer snapshot was written');
      assert.ok(existsSync(join(snaps, d, 'fs', 'etc', 'group')), 'a layer snapshot lost a file');
    }
    assert.equal((await strata(root, ['rm', 'writer'])).code, 0);
  });

  it('-e, --env-file, -w and -u', async () => {
    const envFile = join(env.work, 'env.list');
    await writeFile(envFile, '# comment\nFROM_FILE=1\nBOTH=file\n');
    const r = await run(
      '-e',
      'A=b c',
      '--env-file',
      envFile,
      '-e',
      'BOTH=flag',
      '-w',
      '/tmp',
      '-u',
      'daemon',
      'busybox',
      'sh',
      '-c',
      'echo "$A|$FROM_FILE|$BOTH|$(pwd)|$(id -u):$(id -g)|$HOME"',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'b c|1|flag|/tmp|1:1|/usr/sbin\n');
    const numeric = await run('-u', '1234:5678', 'busybox', 'sh', '-c', 'echo $(id -u):$(id -g)');
    assert.equal(numeric.stdout, '1234:5678\n');
    const bad = await run('-u', 'nobody-here', 'busybox', 'true');
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /unable to find user nobody-here/);
    nothingLeft(root);
  });

  it('--entrypoint replaces the entrypoint and drops the image CMD', async () => {
    const r = await run('--entrypoint', 'echo', 'busybox', 'a', 'b');
    assert.equal(r.stdout, 'a b\n');
    const none = await run('--entrypoint', 'pwd', 'busybox');
    assert.equal(none.stdout, '/\n');
  });

  it('-v binds a host directory read-write and read-only', async () => {
    const data = join(env.work, 'data');
    await mkdir(data, { recursive: true });
    await writeFile(join(data, 'in.txt'), 'from host\n');
    const rw = await run('-v', `${data}:/data`, 'busybox', 'sh', '-c', 'cat /data/in.txt; echo back > /data/out.txt');
    assert.equal(rw.code, 0, rw.stderr);
    assert.equal(rw.stdout, 'from host\n');
    assert.equal(await readFile(join(data, 'out.txt'), 'utf8'), 'back\n');
    const ro = await run('-v', `${data}:/data:ro`, 'busybox', 'sh', '-c', 'cat /data/in.txt; echo x > /data/no.txt');
    assert.notEqual(ro.code, 0);
    assert.match(ro.stderr, /Read-only file system/);
    const fresh = join(env.work, 'created-by-run');
    const mk = await run('-v', `${fresh}:/new`, 'busybox', 'sh', '-c', 'touch /new/f');
    assert.equal(mk.code, 0, mk.stderr);
    nothingLeft(root);
    assert.equal(await readFile(join(data, 'in.txt'), 'utf8'), 'from host\n', 'the bind source survived --rm');
  });

  it('--read-only, --pids-limit and --memory', async () => {
    const ro = await run('--read-only', 'busybox', 'sh', '-c', 'touch /x');
    assert.notEqual(ro.code, 0);
    assert.match(ro.stderr, /Read-only file system/);
    const pids = await run(
      '--pids-limit',
      '5',
      'busybox',
      'sh',
      '-c',
      'for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo spawned',
    );
    assert.match(pids.stdout + pids.stderr, /(fork|Resource temporarily unavailable|can't fork)/i);
    const mem = await run('--memory', '64m', 'busybox', 'cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes');
    assert.equal(mem.code, 0, mem.stderr);
    assert.equal(mem.stdout.trim(), String(64 * 1024 * 1024));
    nothingLeft(root);
  });

  it('network none has only loopback and a loopback-only resolv.conf; host shares the host network', async () => {
    const none = await run(
      'busybox',
      'sh',
      '-c',
      'ls /sys/class/net; grep -v "^nameserver 127\\." /etc/resolv.conf | grep -c nameserver || true',
    );
    assert.equal(none.stdout, 'lo\n0\n');
    const { readdirSync } = await import('node:fs');
    const host = await run('--network', 'host', 'busybox', 'ls', '/sys/class/net');
    assert.deepEqual(host.stdout.trim().split('\n').sort(), readdirSync('/sys/class/net').sort());
  });

  it('forwards SIGTERM to the container', async () => {
    const child = spawnStrata(root, [
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      'trap "echo got-term; exit 42" TERM; echo ready; while true; do sleep 0.1; done',
    ]);
    await waitFor('the container to start', () => child.output().stdout.includes('ready'));
    child.kill('SIGTERM');
    const { code } = await exitOf(child);
    assert.equal(code, 42, child.output().stderr);
    assert.match(child.output().stdout, /got-term/);
    nothingLeft(root);
  });

  it('passes stdin with -i', async () => {
    const r = await strata(root, ['run', '--rm', '-i', 'busybox', 'sh', '-c', 'tr a-z A-Z'], { input: 'shout\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'SHOUT\n');
  });

  it('-t gives the container a terminal when strata has one; a clear error when it has none', async () => {
    const { spawnSync } = await import('node:child_process');
    const { cliPath, hasTool } = await import('../../helpers/env.js');
    const noTty = await run('-t', 'busybox', 'tty');
    assert.equal(noTty.code, 125);
    assert.match(noTty.stderr, /not a TTY/);
    nothingLeft(root);
    if (!hasTool('script')) return;
    // script(1) gives strata a controlling terminal.
    const r = spawnSync('script', ['-qec', `${cliPath} run --rm -t busybox sh -c 'tty; echo $TERM'`, '/dev/null'], {
      env: { ...process.env, STRATA_ROOT: root },
      encoding: 'utf8',
      input: '',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\/dev\/pts\/\d+\r\nxterm\r\n/);
    nothingLeft(root);
  });

  it('unknown image, bad flags and bad values: exit 125, a clear error, nothing created', async () => {
    const cases: [string[], RegExp][] = [
      [['run', 'no-such-image'], /no such image: no-such-image/],
      [['run', '--bogus', 'busybox'], /unknown option '--bogus'/],
      [['run', '--network', 'bridge', 'busybox', 'true'], /network "bridge" is not supported/],
      [['run', '--memory', 'lots', 'busybox', 'true'], /invalid argument "lots" for "--memory"/],
      [['run', '--memory', '1k', 'busybox', 'true'], /minimum memory limit/],
      [['run', '--cpus', 'x', 'busybox', 'true'], /--cpus/],
      [['run', '-v', 'relative:/x', 'busybox', 'true'], /not an absolute path/],
      [['run', '-w', 'relative', 'busybox', 'true'], /working directory/],
      [['run', '--name', '-bad name', 'busybox', 'true'], /invalid container name/],
      // (A bad --env-file is not tested: Node 20 itself reads --env-file from a script's arguments and exits 9
      // before strata runs, nodejs/node#54232; a good one works, and node loads it into strata's own env too.)
      [['run', '--runtime', 'nosuch', 'busybox', 'true'], /unknown runtime/],
      [['run'], /missing required argument/],
    ];
    for (const [args, re] of cases) {
      const r = await strata(root, args);
      assert.equal(r.code, 125, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
    }
    const ps = await strata(root, ['ps', '-aq']);
    assert.equal(ps.stdout, '');
    nothingLeft(root);
  });

  it('an image whose config names a missing user: a clear error, nothing leaked', async () => {
    const c = await strata(root, ['create', '--name', 'mkghost', 'busybox', 'true']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal((await strata(root, ['commit', '-c', 'USER ghost', 'mkghost', 'ghost:1'])).code, 0);
    assert.equal((await strata(root, ['rm', 'mkghost'])).code, 0);
    const r = await strata(root, ['run', '--rm', 'ghost:1', 'true']);
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, /ghost/);
    assert.match(r.stderr, /passwd/);
    nothingLeft(root);
    // -u overrides the image's user; without --rm the container stays, created, as docker leaves it.
    const ok = await strata(root, ['run', '--rm', '-u', '0', 'ghost:1', 'id', '-u']);
    assert.equal(ok.stdout, '0\n', ok.stderr);
    const kept = await strata(root, ['run', '--name', 'ghostly', 'ghost:1', 'true']);
    assert.equal(kept.code, 125);
    const ps = JSON.parse((await strata(root, ['ps', '-a', '--format', 'json'])).stdout.trim().split('\n')[0]!);
    assert.equal(ps.Names, 'ghostly');
    assert.equal(ps.State, 'created');
    assert.equal((await strata(root, ['rm', 'ghostly'])).code, 0);
    assert.equal((await strata(root, ['rmi', 'ghost:1'])).code, 0);
    nothingLeft(root);
  });

  it('a name in use is refused', async () => {
    assert.equal((await strata(root, ['create', '--name', 'dup', 'busybox'])).code, 0);
    const r = await strata(root, ['create', '--name', 'dup', 'busybox']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /"\/dup" is already in use/);
    assert.equal((await strata(root, ['rm', 'dup'])).code, 0);
    assert.deepEqual(leftovers(root).containers, []);
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ImageConfig } from '../../../src/oci/index.js';
import {
  ContainerExecError,
  crunHostProblem,
  detectRuntime,
  findOnPath,
  OciRuntime,
  type RunSpecOptions,
  readHostLimits,
  resolveUser,
  runtimeSpecFromImage,
} from '../../../src/runtime/index.js';
import { busyboxRootfs } from '../../helpers/cli.js';
import { hasTool, inCI, tempDir } from '../../helpers/env.js';

const isRoot = process.getuid?.() === 0;
const missing = !isRoot ? 'needs root' : !hasTool('runc') ? 'runc not installed (apt-get install runc)' : undefined;
if (missing && inCI) throw new Error(`runtime integration tests cannot run in CI: ${missing}`);

let work: { path: string; cleanup: () => Promise<void> };
let rootfs: string;
let stateRoot: string;
let rt: OciRuntime;
let hostNofile: number | undefined;
let seq = 0;
const used: string[] = [];

function image(cmd: string[]): ImageConfig {
  return {
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: cmd, Env: ['IMAGE=1'] },
    rootfs: { type: 'layers', diff_ids: [] },
  };
}

/** A bundle (config.json from runtimeSpecFromImage) over the shared busybox rootfs. */
async function bundle(cmd: string[], extra: Partial<RunSpecOptions> = {}): Promise<{ id: string; dir: string }> {
  const id = `strata-test-${process.pid}-${++seq}`;
  used.push(id);
  const dir = join(work.path, 'bundles', id);
  await mkdir(dir, { recursive: true });
  const passwd = await readFile(join(rootfs, 'etc/passwd'), 'utf8');
  const group = await readFile(join(rootfs, 'etc/group'), 'utf8');
  const spec = runtimeSpecFromImage(image(cmd), {
    id,
    rootfs,
    user: resolveUser(undefined, passwd, group),
    hostLimits: { nofile: hostNofile },
    ...extra,
  });
  await writeFile(join(dir, 'config.json'), JSON.stringify(spec, null, 2));
  return { id, dir };
}

async function run(
  script: string,
  extra: Partial<RunSpecOptions> = {},
): Promise<{ code: number; stdout: string; stderr: string; id: string; error?: ContainerExecError }> {
  const b = await bundle(['sh', '-c', script], extra);
  return runBundle(b);
}

async function runBundle(b: { id: string; dir: string }, signal?: AbortSignal) {
  const p = await rt.run(b.id, b.dir, { stdio: ['ignore', 'pipe', 'pipe'], signal });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  p.child.stdout!.on('data', (d: Buffer) => out.push(d));
  p.child.stderr!.on('data', (d: Buffer) => err.push(d));
  const status = await p.wait();
  return {
    id: b.id,
    code: status.exitCode,
    error: status.error,
    stdout: Buffer.concat(out).toString(),
    stderr: Buffer.concat(err).toString(),
  };
}

/** The container's cgroup directories that exist, in every hierarchy (v1 controllers or v2). */
async function cgroupDirs(id: string): Promise<string[]> {
  const base = '/sys/fs/cgroup';
  const candidates = [join(base, 'strata', id)];
  for (const c of await readdir(base).catch(() => [] as string[])) candidates.push(join(base, c, 'strata', id));
  return candidates.filter((p) => existsSync(p));
}

async function until(what: string, check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('runtime: runc on a busybox bundle', { skip: missing }, () => {
  before(async () => {
    work = await tempDir('strata-runtime-');
    rootfs = await busyboxRootfs(join(work.path, 'rootfs'));
    stateRoot = join(work.path, 'state');
    rt = new OciRuntime(await detectRuntime('runc'), stateRoot);
    hostNofile = (await readHostLimits()).nofile;
  });

  after(async () => {
    if (rt) for (const id of used) await rt.delete(id, { force: true }).catch(() => {});
    await work?.cleanup();
  });

  it('detects runc and keeps its state under <root>/runtime/runc', async () => {
    assert.equal(rt.name, 'runc');
    assert.match(await rt.version(), /^\d+\.\d+/);
    assert.equal(rt.root, join(stateRoot, 'runtime', 'runc'));
    assert.deepEqual(await rt.list(), []);
  });

  it('the process is PID 1 and sees no host process', async () => {
    const r = await run('echo $$; ls /proc | grep -c "^[0-9]"; ps -o pid,comm');
    assert.equal(r.code, 0, r.stderr);
    const [pid, count, ...ps] = r.stdout.trim().split('\n');
    assert.equal(pid, '1');
    // sh, ls and grep (ls may have exited already).
    assert.ok(Number(count) <= 3, `processes in /proc: ${count}`);
    // sh execs its last command, so ps is PID 1 and alone.
    assert.deepEqual(
      ps.map((l) => l.trim().split(/\s+/)),
      [
        ['PID', 'COMMAND'],
        ['1', 'ps'],
      ],
    );
  });

  it('hostname, environment, user, cwd and capabilities are the spec ones', async () => {
    const r = await run(
      'hostname; echo "$HOSTNAME $IMAGE $X $HOME"; id; pwd; grep CapEff /proc/self/status; ulimit -n',
      {
        hostname: 'boxy',
        env: ['X=y'],
        workdir: '/tmp',
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'boxy',
      'boxy 1 y /root',
      'uid=0(root) gid=0(root)', // root is in no other group in this /etc/group
      '/tmp',
      'CapEff:\t00000000a80425fb', // docker's default set
      String(Math.min(1048576, hostNofile ?? 1048576)),
    ]);
    const u = await run('id', { user: { uid: 65534, gid: 65534, additionalGids: [1], home: '/' } });
    assert.equal(u.stdout.trim(), 'uid=65534(nobody) gid=65534(nogroup) groups=1(daemon)');
  });

  it('the exit code propagates', async () => {
    const r = await run('echo out; echo err >&2; exit 3');
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.equal((await run('sh -c "kill -9 \\$\\$"; exit $?')).code, 137);
  });

  it('a missing command gives 127, a non-executable file 126 (ContainerExecError with the runtime message)', async () => {
    const missingCmd = await runBundle(await bundle(['no-such-command']));
    assert.equal(missingCmd.code, 127);
    assert.ok(missingCmd.error instanceof ContainerExecError);
    assert.match(missingCmd.error.message, /no-such-command.*executable file not found/);
    assert.equal((await runBundle(await bundle(['/no/such/path']))).code, 127);
    const notExec = await runBundle(await bundle(['/etc/passwd']));
    assert.equal(notExec.code, 126);
    assert.match(notExec.error!.message, /permission denied/);
    assert.equal((await runBundle(await bundle(['/bin']))).code, 126);
    // An exit status of 1 from the process itself is not mistaken for a runtime failure.
    const one = await run('exit 1');
    assert.deepEqual([one.code, one.error], [1, undefined]);
  });

  it("network none: only lo, and it is UP (runc brings loopback up in a new netns); host shares the host's", async () => {
    const r = await run('ip -o link; ip -o addr show lo; ls /sys/class/net');
    assert.equal(r.code, 0, r.stderr);
    const links = r.stdout.split('\n').filter((l) => /^\d+: /.test(l) && /link\//.test(l));
    assert.equal(links.length, 1, r.stdout);
    assert.match(links[0]!, /^1: lo: <LOOPBACK,UP,LOWER_UP>/);
    assert.match(r.stdout, /inet 127\.0\.0\.1\/8/);
    assert.equal(r.stdout.trim().split('\n').at(-1), 'lo');
    const hostLinks = (await readdir('/sys/class/net')).sort();
    const h = await run('ls /sys/class/net', { network: 'host' });
    assert.deepEqual(h.stdout.trim().split(/\s+/).sort(), hostLinks);
  });

  it('--pids-limit stops a fork bomb: with pids.max 20, the 20th fork fails', async () => {
    const r = await run(
      'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; n=0; while [ $n -lt 100 ]; do sleep 30 & n=$((n+1)); echo $n; done',
      {
        resources: { pidsLimit: 20 },
      },
    );
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], '20');
    // sh is one process: 19 sleeps fit, the next fork fails and sh gives up (busybox exits 2).
    assert.equal(lines.at(-1), '19');
    assert.match(r.stderr, /can't fork: Resource temporarily unavailable/);
    assert.equal(r.code, 2);
    assert.deepEqual(await cgroupDirs(r.id), [], 'the cgroup is gone after the run');
  });

  it('the memory limit and cpu quota are in the cgroup', async () => {
    const r = await run(
      'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max',
      { resources: { memory: 64 * 1024 * 1024, cpus: 0.5 } },
    );
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout.trim().split('\n');
    assert.ok(
      JSON.stringify(out) === JSON.stringify(['67108864', '50000', '100000']) ||
        JSON.stringify(out) === JSON.stringify(['67108864', '50000 100000']),
      out.join(' | '),
    );
  });

  it('a read-only bind refuses writes; a read-write bind writes through to the host', async () => {
    const ro = join(work.path, 'ro');
    const rw = join(work.path, 'rw');
    await mkdir(ro);
    await mkdir(rw);
    await writeFile(join(ro, 'f'), 'host data\n');
    const r = await run('cat /ro/f; touch /ro/x; echo touch=$?; echo hi > /rw/g; echo write=$?', {
      binds: [
        { source: ro, destination: '/ro', readonly: true },
        { source: rw, destination: '/rw' },
      ],
    });
    assert.equal(r.stdout, 'host data\ntouch=1\nwrite=0\n');
    assert.match(r.stderr, /Read-only file system/);
    assert.equal(existsSync(join(ro, 'x')), false);
    assert.equal(await readFile(join(rw, 'g'), 'utf8'), 'hi\n');
  });

  it('/etc/hosts, resolv.conf and hostname are the given files; masked and read-only paths hold', async () => {
    const etc = join(work.path, 'etc');
    await mkdir(etc, { recursive: true });
    await writeFile(join(etc, 'hosts'), '127.0.0.1 localhost\n');
    await writeFile(join(etc, 'resolv.conf'), 'nameserver 192.0.2.53\n');
    await writeFile(join(etc, 'hostname'), 'boxy\n');
    const r = await run(
      'cat /etc/hosts /etc/resolv.conf /etc/hostname; wc -c < /proc/timer_list; ls -A /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname; echo sys=$?',
      {
        etcFiles: { hosts: join(etc, 'hosts'), resolvConf: join(etc, 'resolv.conf'), hostname: join(etc, 'hostname') },
      },
    );
    assert.equal(r.stdout, '127.0.0.1 localhost\nnameserver 192.0.2.53\nboxy\n0\n0\nsys=1\n', r.stderr);
  });

  it('a read-only rootfs refuses writes outside the tmpfs mounts', async () => {
    const r = await run('touch /newfile; echo root=$?; touch /dev/shm/ok; echo shm=$?', { readonlyRootfs: true });
    assert.equal(r.stdout, 'root=1\nshm=0\n');
    assert.equal(existsSync(join(rootfs, 'newfile')), false);
  });

  it('aborting a run kills the container (137) and leaves nothing behind', async () => {
    const b = await bundle(['sleep', '30']);
    const ac = new AbortController();
    const pending = runBundle(b, ac.signal);
    await until('the container to run', async () =>
      (await rt.list()).some((c) => c.id === b.id && c.status === 'running'),
    );
    ac.abort();
    const r = await pending;
    // killed (128 + SIGKILL), not the 30 s sleep ending by itself (status 0)
    assert.equal(r.code, 137);
    assert.deepEqual(await rt.list(), []);
    assert.deepEqual(await cgroupDirs(b.id), []);
  });

  it('create / state / start / kill / delete leave nothing in the list and no cgroup', async () => {
    const b = await bundle(['sleep', '30']);
    const pidFile = join(b.dir, 'pid');
    await rt.create(b.id, b.dir, { pidFile });
    const created = await rt.state(b.id);
    assert.equal(created.status, 'created');
    assert.equal(created.id, b.id);
    assert.equal(Number(await readFile(pidFile, 'utf8')), created.pid);
    assert.ok((await cgroupDirs(b.id)).length > 0, 'the cgroup exists while the container does');
    await assert.rejects(rt.create(b.id, b.dir), { code: 'ALREADY_EXISTS' });
    await rt.start(b.id);
    assert.equal((await rt.state(b.id)).status, 'running');
    assert.deepEqual(
      (await rt.list()).map((c) => [c.id, c.status]),
      [[b.id, 'running']],
    );
    await rt.kill(b.id, 'SIGKILL', { all: true });
    await until('the container to stop', async () => (await rt.state(b.id)).status === 'stopped');
    await rt.delete(b.id);
    assert.deepEqual(await rt.list(), []);
    await assert.rejects(rt.state(b.id), { code: 'NOT_FOUND', message: /container does not exist/ });
    await assert.rejects(rt.kill(b.id), { code: 'NOT_FOUND' });
    assert.deepEqual(await cgroupDirs(b.id), []);
  });

  it('delete --force removes a running container', async () => {
    const b = await bundle(['sleep', '30']);
    await rt.create(b.id, b.dir);
    await rt.start(b.id);
    await rt.delete(b.id, { force: true });
    assert.deepEqual(await rt.list(), []);
    assert.deepEqual(await cgroupDirs(b.id), []);
  });

  it('create reports exec errors as ContainerExecError (127) and leaves no container', async () => {
    const b = await bundle(['no-such-command']);
    await assert.rejects(rt.create(b.id, b.dir), (e: unknown) => {
      assert.ok(e instanceof ContainerExecError);
      assert.equal(e.exitCode, 127);
      assert.match(String(e.details?.['stderr']), /executable file not found/);
      return true;
    });
    assert.deepEqual(await rt.list(), []);
  });

  it("strata's containers do not show in the system's runc list, nor the system's in strata's", async () => {
    const b = await bundle(['sleep', '30']);
    await rt.create(b.id, b.dir);
    const system = await new Promise<string>((resolve) => {
      const c = spawn('runc', ['list', '-q'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let s = '';
      c.stdout.on('data', (d: Buffer) => {
        s += d.toString();
      });
      c.on('close', () => resolve(s));
    });
    assert.ok(!system.split('\n').includes(b.id));
    assert.deepEqual(
      (await rt.list()).map((c) => c.id),
      [b.id],
    );
    await rt.delete(b.id, { force: true });
  });
});

describe('runtime: crun', { skip: missing }, () => {
  it('runs, or on a hybrid-cgroup host is refused by detectRuntime with a clear error', async (t) => {
    const crun = await findOnPath('crun');
    if (!crun) {
      if (inCI) throw new Error('crun missing in CI (apt-get install crun)');
      t.skip('crun not installed (apt-get install crun)');
      return;
    }
    const dir = await tempDir('strata-crun-');
    try {
      const fs = await busyboxRootfs(join(dir.path, 'rootfs'));
      const id = `strata-crun-${process.pid}`;
      const spec = runtimeSpecFromImage(image(['echo', 'hello']), {
        id,
        rootfs: fs,
        user: resolveUser('', '', ''),
        hostLimits: await readHostLimits(),
      });
      await writeFile(join(dir.path, 'config.json'), JSON.stringify(spec));
      const problem = await crunHostProblem();
      // Try crun itself once, bypassing detection, to see what it does on this host.
      const direct = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const c = spawn(crun, ['--root', join(dir.path, 'state'), 'run', '--bundle', dir.path, id], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        c.stdout.on('data', (d: Buffer) => {
          out += d.toString();
        });
        c.stderr.on('data', (d: Buffer) => {
          out += d.toString();
        });
        c.on('close', (code) => resolve({ code, out }));
      });
      if (problem) {
        assert.notEqual(direct.code, 0);
        assert.match(direct.out, /cgroups in hybrid mode not supported/);
        await assert.rejects(detectRuntime('crun'), (e: unknown) => {
          const err = e as { code: string; message: string; hint: string };
          assert.equal(err.code, 'FAILED_PRECONDITION');
          assert.match(err.message, /^crun [\d.]+ cannot run containers on this host: .*hybrid mode/);
          assert.match(err.hint, /runc/);
          return true;
        });
      } else {
        assert.equal(direct.code, 0, direct.out);
        assert.equal(direct.out, 'hello\n');
        const crt = new OciRuntime(await detectRuntime('crun'), join(dir.path, 'strata'));
        const p = await crt.run(`${id}-2`, dir.path, { stdio: ['ignore', 'pipe', 'pipe'] });
        assert.equal((await p.wait()).exitCode, 0);
      }
    } finally {
      await dir.cleanup();
    }
  });

  it('detectRuntime prefers runc, searches the sbin directories, names a missing runtime', async () => {
    assert.equal((await detectRuntime()).name, 'runc');
    const runcPath = await findOnPath('runc');
    if (runcPath?.startsWith('/usr/sbin/')) {
      assert.equal((await detectRuntime(undefined, { path: '/nonexistent' })).path, runcPath);
    }
    if (!existsSync('/usr/sbin/crun') && !existsSync('/sbin/crun') && !existsSync('/usr/local/sbin/crun')) {
      await assert.rejects(detectRuntime('crun', { path: '/nonexistent' }), {
        code: 'UNAVAILABLE',
        message: 'the crun runtime is not installed (not on PATH)',
      });
    }
  });
});

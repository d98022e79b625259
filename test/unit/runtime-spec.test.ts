import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StrataError } from '../../src/errors/index.js';
import type { ImageConfig } from '../../src/oci/index.js';
import {
  capabilitySet,
  commandFromImage,
  DEFAULT_CAPABILITIES,
  environment,
  execErrorExitCode,
  parseProcLimits,
  parseRuntimeVersion,
  type ResolvedUser,
  type RunSpecOptions,
  resolveUser,
  runtimeErrorMessages,
  runtimeSpecFromImage,
} from '../../src/runtime/index.js';

const PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const root: ResolvedUser = { uid: 0, gid: 0, additionalGids: [], home: '/root', name: 'root' };

function image(config: ImageConfig['config'] = {}): ImageConfig {
  return { architecture: 'amd64', os: 'linux', config, rootfs: { type: 'layers', diff_ids: [] } };
}

function opts(extra: Partial<RunSpecOptions> = {}): RunSpecOptions {
  return { id: '0123456789abcdef0123', rootfs: 'rootfs', user: root, ...extra };
}

const isError = (message: string | RegExp) => (e: unknown) => {
  assert.ok(e instanceof StrataError, `not a StrataError: ${String(e)}`);
  if (typeof message === 'string') assert.equal(e.message, message);
  else assert.match(e.message, message);
  return true;
};

describe('runtime spec: process.args (docker override rules)', () => {
  const cases: [string, ImageConfig['config'], { cmd?: string[]; entrypoint?: string[] }, string[]][] = [
    ['CMD only', { Cmd: ['sh'] }, {}, ['sh']],
    ['ENTRYPOINT + CMD', { Entrypoint: ['/init'], Cmd: ['--serve'] }, {}, ['/init', '--serve']],
    ['cmd replaces CMD', { Entrypoint: ['/init'], Cmd: ['--serve'] }, { cmd: ['--help'] }, ['/init', '--help']],
    ['cmd replaces CMD (no ENTRYPOINT)', { Cmd: ['sh'] }, { cmd: ['echo', 'hi'] }, ['echo', 'hi']],
    ['empty cmd is "not given"', { Cmd: ['sh'] }, { cmd: [] }, ['sh']],
    [
      'entrypoint replaces ENTRYPOINT, clears CMD',
      { Entrypoint: ['/init'], Cmd: ['--serve'] },
      { entrypoint: ['/bin/sh'] },
      ['/bin/sh'],
    ],
    [
      'entrypoint + cmd',
      { Entrypoint: ['/init'], Cmd: ['--serve'] },
      { entrypoint: ['/bin/sh'], cmd: ['-c', 'id'] },
      ['/bin/sh', '-c', 'id'],
    ],
    [
      '--entrypoint "" clears it, cmd runs',
      { Entrypoint: ['/init'], Cmd: ['x'] },
      { entrypoint: [''], cmd: ['id'] },
      ['id'],
    ],
    ['entrypoint [] clears it too', { Entrypoint: ['/init'] }, { entrypoint: [], cmd: ['id'] }, ['id']],
    ['null Entrypoint and Cmd', { Entrypoint: null, Cmd: ['ls'] }, {}, ['ls']],
  ];
  for (const [name, config, o, want] of cases) {
    it(name, () => {
      assert.deepEqual(commandFromImage(config, o), want);
      assert.deepEqual(runtimeSpecFromImage(image(config), opts(o)).process.args, want);
    });
  }

  it('nothing to run: "no command specified"', () => {
    assert.throws(() => runtimeSpecFromImage(image({}), opts()), isError('no command specified'));
    assert.throws(
      () => runtimeSpecFromImage(image({ Cmd: null, Entrypoint: null }), opts()),
      isError('no command specified'),
    );
    assert.throws(
      () => runtimeSpecFromImage(image({ Entrypoint: ['/init'], Cmd: ['x'] }), opts({ entrypoint: [''] })),
      isError('no command specified'),
    );
  });
});

describe('runtime spec: environment', () => {
  it('PATH default, HOSTNAME, then image env', () => {
    assert.deepEqual(environment(['A=1', 'B=2'], [], 'h1', false), [PATH, 'HOSTNAME=h1', 'A=1', 'B=2']);
  });

  it('the image PATH replaces the default in place; TERM with a tty', () => {
    assert.deepEqual(environment(['PATH=/bin', 'A=1'], undefined, 'h', true), [
      'PATH=/bin',
      'HOSTNAME=h',
      'TERM=xterm',
      'A=1',
    ]);
  });

  it('-e overrides the image by key; -e entries come before the image ones (docker merge order)', () => {
    assert.deepEqual(environment(['A=1', 'B=2', 'C=3'], ['B=x', 'D=4'], 'h', false), [
      PATH,
      'HOSTNAME=h',
      'B=x',
      'D=4',
      'A=1',
      'C=3',
    ]);
  });

  it('later -e wins; -e can override PATH, HOSTNAME and TERM; bare KEY unsets', () => {
    assert.deepEqual(
      environment(['A=1', 'GONE=1'], ['X=1', 'X=2', 'PATH=/p', 'HOSTNAME=other', 'TERM=dumb', 'GONE'], 'h', true),
      ['PATH=/p', 'HOSTNAME=other', 'TERM=dumb', 'X=2', 'A=1'],
    );
  });

  it('values may contain "="', () => {
    assert.deepEqual(environment(['OPTS=a=b'], ['Q=x=y'], 'h', false), [PATH, 'HOSTNAME=h', 'Q=x=y', 'OPTS=a=b']);
  });

  it('in the spec: HOSTNAME is the given or default hostname', () => {
    const s = runtimeSpecFromImage(image({ Cmd: ['sh'], Env: ['A=1'] }), opts({ env: ['B=2'] }));
    assert.deepEqual(s.process.env, [PATH, 'HOSTNAME=0123456789ab', 'B=2', 'A=1']);
    assert.equal(s.hostname, '0123456789ab');
    const t = runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts({ hostname: 'box', tty: true }));
    assert.deepEqual(t.process.env, [PATH, 'HOSTNAME=box', 'TERM=xterm']);
    assert.equal(t.hostname, 'box');
    assert.equal(t.process.terminal, true);
  });
});

describe('runtime spec: cwd, user, root', () => {
  it('workdir: -w, else the image WorkingDir, else /', () => {
    assert.equal(runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts()).process.cwd, '/');
    assert.equal(runtimeSpecFromImage(image({ Cmd: ['sh'], WorkingDir: '/app' }), opts()).process.cwd, '/app');
    assert.equal(
      runtimeSpecFromImage(image({ Cmd: ['sh'], WorkingDir: '/app' }), opts({ workdir: '/srv/' })).process.cwd,
      '/srv',
    );
    assert.throws(
      () => runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts({ workdir: 'rel' })),
      isError("the working directory 'rel' is invalid, it needs to be an absolute path"),
    );
  });

  it('user: uid, gid, additionalGids (only when there are any)', () => {
    const s = runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts());
    assert.deepEqual(s.process.user, { uid: 0, gid: 0 });
    const u = runtimeSpecFromImage(
      image({ Cmd: ['sh'] }),
      opts({ user: { uid: 1000, gid: 100, additionalGids: [10, 20, 10], home: '/' } }),
    );
    assert.deepEqual(u.process.user, { uid: 1000, gid: 100, additionalGids: [10, 20] });
  });

  it('root path and readonly', () => {
    assert.deepEqual(runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts()).root, { path: 'rootfs', readonly: false });
    assert.deepEqual(runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts({ rootfs: '/r', readonlyRootfs: true })).root, {
      path: '/r',
      readonly: true,
    });
  });

  it('ociVersion 1.0.2; invalid ids are refused', () => {
    assert.equal(runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts()).ociVersion, '1.0.2');
    assert.throws(
      () => runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts({ id: '../x' })),
      isError(/invalid container id/),
    );
  });
});

describe('runtime spec: resolveUser (docker/runc GetExecUser)', () => {
  const passwd = [
    'root:x:0:0:root:/root:/bin/sh',
    'daemon:x:1:1:daemon:/usr/sbin:/bin/false',
    'app:x:1000:1000:app:/home/app:/bin/sh',
    'nobody:x:65534:65534:nobody:/home:/bin/false',
    '',
  ].join('\n');
  const group = [
    'root:x:0:',
    'daemon:x:1:',
    'wheel:x:10:root,app',
    'app:x:1000:',
    'audio:x:29:app',
    'nogroup:x:65534:',
  ].join('\n');

  const table: [string | undefined, Omit<ResolvedUser, 'home' | 'name'> & { home?: string; name?: string }][] = [
    [undefined, { uid: 0, gid: 0, additionalGids: [10], home: '/root', name: 'root' }],
    ['', { uid: 0, gid: 0, additionalGids: [10], home: '/root', name: 'root' }],
    ['root', { uid: 0, gid: 0, additionalGids: [10], home: '/root', name: 'root' }],
    ['app', { uid: 1000, gid: 1000, additionalGids: [10, 29], home: '/home/app', name: 'app' }],
    ['1000', { uid: 1000, gid: 1000, additionalGids: [10, 29], home: '/home/app', name: 'app' }],
    ['daemon', { uid: 1, gid: 1, additionalGids: [], home: '/usr/sbin', name: 'daemon' }],
    ['app:audio', { uid: 1000, gid: 29, additionalGids: [], home: '/home/app', name: 'app' }],
    ['app:0', { uid: 1000, gid: 0, additionalGids: [], home: '/home/app', name: 'app' }],
    ['1000:1000', { uid: 1000, gid: 1000, additionalGids: [], home: '/home/app', name: 'app' }],
    ['4242', { uid: 4242, gid: 0, additionalGids: [], home: '/' }],
    ['4242:4343', { uid: 4242, gid: 4343, additionalGids: [], home: '/' }],
    ['4242:wheel', { uid: 4242, gid: 10, additionalGids: [], home: '/' }],
    ['nobody', { uid: 65534, gid: 65534, additionalGids: [], home: '/home', name: 'nobody' }],
  ];
  for (const [spec, want] of table) {
    it(`${JSON.stringify(spec)}`, () => assert.deepEqual(resolveUser(spec, passwd, group), want));
  }

  it("an unknown name is docker's error; numeric ids need no entry, even without passwd/group files", () => {
    assert.throws(
      () => resolveUser('ghost', passwd, group),
      isError('unable to find user ghost: no matching entries in passwd file'),
    );
    assert.throws(
      () => resolveUser('ghost', '', ''),
      isError('unable to find user ghost: no matching entries in passwd file'),
    );
    assert.throws(
      () => resolveUser('app:ghosts', passwd, group),
      isError('unable to find group ghosts: no matching entries in group file'),
    );
    assert.deepEqual(resolveUser('123:456', '', ''), { uid: 123, gid: 456, additionalGids: [], home: '/' });
    assert.deepEqual(resolveUser('', '', ''), { uid: 0, gid: 0, additionalGids: [], home: '/' });
    assert.throws(() => resolveUser('2147483648', '', ''), isError('uids and gids must be in range 0-2147483647'));
    const e = (() => {
      try {
        resolveUser('ghost', passwd, group);
      } catch (err) {
        return err as StrataError;
      }
      return undefined;
    })();
    assert.equal(e?.code, 'NOT_FOUND');
  });
});

describe('runtime spec: mounts', () => {
  it("docker's default filesystems, exactly", () => {
    const s = runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts());
    assert.deepEqual(s.mounts, [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
      },
    ]);
  });

  it('/etc files, then -v binds sorted parents first; binds win over defaults and /etc files', () => {
    const s = runtimeSpecFromImage(
      image({ Cmd: ['sh'] }),
      opts({
        etcFiles: { hosts: '/c/hosts', resolvConf: '/c/resolv.conf', hostname: '/c/hostname' },
        binds: [
          { source: '/h/b', destination: '/data/sub' },
          { source: '/h/a', destination: '/data/', readonly: true },
          { source: '/h/shm', destination: '/dev/shm' },
          { source: '/h/hosts', destination: '/etc/hosts', readonly: true },
        ],
      }),
    );
    const tail = s.mounts.slice(5);
    assert.deepEqual(tail, [
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/etc/resolv.conf', type: 'bind', source: '/c/resolv.conf', options: ['rbind', 'rprivate'] },
      { destination: '/etc/hostname', type: 'bind', source: '/c/hostname', options: ['rbind', 'rprivate'] },
      { destination: '/data', type: 'bind', source: '/h/a', options: ['rbind', 'rprivate', 'ro'] },
      { destination: '/data/sub', type: 'bind', source: '/h/b', options: ['rbind', 'rprivate', 'rw'] },
      { destination: '/dev/shm', type: 'bind', source: '/h/shm', options: ['rbind', 'rprivate', 'rw'] },
      { destination: '/etc/hosts', type: 'bind', source: '/h/hosts', options: ['rbind', 'rprivate', 'ro'] },
    ]);
    assert.ok(!s.mounts.some((m) => m.source === 'shm'), 'the default /dev/shm is replaced');
  });

  it('read-only rootfs makes the /etc binds read-only', () => {
    const s = runtimeSpecFromImage(
      image({ Cmd: ['sh'] }),
      opts({ readonlyRootfs: true, etcFiles: { hosts: '/c/hosts' } }),
    );
    assert.deepEqual(s.mounts.at(-1), {
      destination: '/etc/hosts',
      type: 'bind',
      source: '/c/hosts',
      options: ['rbind', 'rprivate', 'ro'],
    });
  });

  it('bad binds are refused', () => {
    const bad = (b: { source: string; destination: string }) => () =>
      runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts({ binds: [b] }));
    assert.throws(bad({ source: 'rel', destination: '/x' }), isError(/source "rel": not an absolute path/));
    assert.throws(bad({ source: '/a', destination: 'x' }), isError(/destination "x": not an absolute path/));
    assert.throws(bad({ source: '/a', destination: '/..' }), isError(/cannot mount over the root/));
    assert.throws(
      () =>
        runtimeSpecFromImage(
          image({ Cmd: ['sh'] }),
          opts({
            binds: [
              { source: '/a', destination: '/x' },
              { source: '/b', destination: '/x/' },
            ],
          }),
        ),
      isError('duplicate mount point: /x'),
    );
  });
});

describe('runtime spec: linux', () => {
  const s = runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts());

  it("masked and read-only paths are docker's", () => {
    assert.deepEqual(s.linux.maskedPaths, [
      '/proc/asound',
      '/proc/acpi',
      '/proc/kcore',
      '/proc/keys',
      '/proc/latency_stats',
      '/proc/timer_list',
      '/proc/timer_stats',
      '/proc/sched_debug',
      '/proc/scsi',
      '/sys/firmware',
      '/sys/devices/virtual/powercap',
    ]);
    assert.deepEqual(s.linux.readonlyPaths, ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']);
  });

  it('namespaces: network none has its own netns (and docker sysctls), host has none', () => {
    assert.deepEqual(s.linux.namespaces, [
      { type: 'pid' },
      { type: 'network' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
      { type: 'cgroup' },
    ]);
    assert.deepEqual(s.linux.sysctl, {
      'net.ipv4.ip_unprivileged_port_start': '0',
      'net.ipv4.ping_group_range': '0 2147483647',
    });
    const h = runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts({ network: 'host' }));
    assert.deepEqual(
      h.linux.namespaces.map((n) => n.type),
      ['pid', 'ipc', 'uts', 'mount', 'cgroup'],
    );
    assert.equal(h.linux.sysctl, undefined);
    assert.throws(
      () => runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts({ network: 'bridge' as 'none' })),
      isError('unsupported network "bridge"'),
    );
  });

  it("capabilities: docker's 14 for root (bounding/effective/permitted), bounding only for other users", () => {
    const caps = [
      'CAP_CHOWN',
      'CAP_DAC_OVERRIDE',
      'CAP_FSETID',
      'CAP_FOWNER',
      'CAP_MKNOD',
      'CAP_NET_RAW',
      'CAP_SETGID',
      'CAP_SETUID',
      'CAP_SETFCAP',
      'CAP_SETPCAP',
      'CAP_NET_BIND_SERVICE',
      'CAP_SYS_CHROOT',
      'CAP_KILL',
      'CAP_AUDIT_WRITE',
    ];
    assert.deepEqual([...DEFAULT_CAPABILITIES], caps);
    assert.deepEqual(s.process.capabilities, { bounding: caps, effective: caps, permitted: caps });
    const u = runtimeSpecFromImage(
      image({ Cmd: ['sh'] }),
      opts({ user: { uid: 1, gid: 1, additionalGids: [], home: '/' } }),
    );
    assert.deepEqual(u.process.capabilities, { bounding: caps });
    assert.equal(s.process.noNewPrivileges, true);
  });

  it('cap-add / cap-drop', () => {
    assert.deepEqual(capabilitySet(['sys_admin'], ['NET_RAW', 'cap_mknod']), [
      ...DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_NET_RAW' && c !== 'CAP_MKNOD'),
      'CAP_SYS_ADMIN',
    ]);
    assert.deepEqual(capabilitySet(['CHOWN'], ['ALL']), ['CAP_CHOWN']);
  });

  it('rlimits: RLIMIT_NOFILE 1048576, capped at the host hard limit', () => {
    assert.deepEqual(s.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }]);
    const c = runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts({ hostLimits: { nofile: 20000 } }));
    assert.deepEqual(c.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 20000, soft: 20000 }]);
    const big = runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts({ hostLimits: { nofile: 4194304 } }));
    assert.deepEqual(big.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }]);
  });

  it('resources: memory, cpus, pids; cgroupsPath', () => {
    const r = runtimeSpecFromImage(
      image({ Cmd: ['sh'] }),
      opts({ resources: { memory: 64 * 1024 * 1024, memorySwap: 128 * 1024 * 1024, cpus: 1.5, pidsLimit: 20 } }),
    );
    assert.deepEqual(r.linux.resources?.memory, { limit: 67108864, swap: 134217728 });
    assert.deepEqual(r.linux.resources?.cpu, { quota: 150000, period: 100000 });
    assert.deepEqual(r.linux.resources?.pids, { limit: 20 });
    assert.equal(r.linux.cgroupsPath, '/strata/0123456789abcdef0123');
    assert.equal(s.linux.resources?.memory, undefined);
    assert.equal(s.linux.resources?.cpu, undefined);
    assert.equal(s.linux.resources?.pids, undefined);
    const unlimited = runtimeSpecFromImage(
      image({ Cmd: ['sh'] }),
      opts({ resources: { pidsLimit: -1 }, cgroupParent: 'p/' }),
    );
    assert.equal(unlimited.linux.resources?.pids, undefined);
    assert.equal(unlimited.linux.cgroupsPath, 'p/0123456789abcdef0123');
    const half = runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts({ resources: { cpus: 0.5 } }));
    assert.deepEqual(half.linux.resources?.cpu, { quota: 50000, period: 100000 });
    assert.throws(
      () => runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts({ resources: { memory: 1024 } })),
      isError(/minimum memory limit allowed is 6MB/),
    );
    assert.throws(
      () => runtimeSpecFromImage(image({ Cmd: ['sh'] }), opts({ resources: { cpus: 0 } })),
      isError(/must be above 0/),
    );
  });

  it("devices: deny all, then docker's allow list", () => {
    assert.deepEqual(s.linux.resources?.devices, [
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', access: 'm' },
      { allow: true, type: 'b', access: 'm' },
      { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' },
      { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' },
      { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' },
      { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' },
      { allow: true, type: 'c', major: 136, access: 'rwm' },
    ]);
  });

  it('the spec is plain JSON (round-trips unchanged)', () => {
    assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
  });
});

describe('runtime driver helpers', () => {
  it('exec errors map to 127 / 126 as docker does', () => {
    const m = (s: string) => execErrorExitCode(s);
    assert.equal(
      m('runc run failed: unable to start container process: exec: "nope": executable file not found in $PATH'),
      127,
    );
    assert.equal(m('unable to start container process: exec: "/x/y": stat /x/y: no such file or directory'), 127);
    assert.equal(m('unable to start container process: exec: "/etc/passwd": permission denied'), 126);
    assert.equal(m('unable to start container process: exec: "/bin": is a directory'), 126);
    assert.equal(m('executable file `nope` not found in $PATH: No such file or directory'), 127);
    assert.equal(m('runc create failed: unable to apply cgroup configuration: permission denied'), undefined);
    assert.equal(m('mount /x: no such file or directory'), undefined);
  });

  it('runtime output: JSON log lines, logfmt and plain lines', () => {
    assert.deepEqual(
      runtimeErrorMessages(
        [
          '{"level":"warning","msg":"ignored","time":"t"}',
          '{"level":"error","msg":"container does not exist","time":"t"}',
          'time="t" level=error msg="a \\"quoted\\" thing"',
          'crun: cgroups in hybrid mode not supported',
          '',
        ].join('\n'),
      ),
      ['container does not exist', 'a "quoted" thing', 'cgroups in hybrid mode not supported'],
    );
  });

  it('versions and host limits', () => {
    assert.equal(parseRuntimeVersion('runc version 1.1.5+ds1\ncommit: x\nspec: 1.0.2-dev\n'), '1.1.5+ds1');
    assert.equal(parseRuntimeVersion('crun version 1.8.1\ncommit: f8a0\n'), '1.8.1');
    assert.deepEqual(
      parseProcLimits(
        'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 20000                files\n',
      ),
      { nofile: 20000 },
    );
    assert.deepEqual(parseProcLimits('Max open files            unlimited unlimited files\n'), {});
  });
});

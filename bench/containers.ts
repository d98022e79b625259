// Container start-to-exit time: `strata run --rm busybox true` against `docker run --rm --network none` (a private
// dockerd started with --bridge=none --iptables=false), `podman run --rm --network none` (own storage, runc) and a bare
// `runc run` of a prepared bundle, in the same run, interleaved so that load affects each tool alike. Also the CLI's
// own start-up (`strata --version`) and Node's (`node -e 0`), which bound what `strata run` can reach.
// Run: `npm run bench -- containers` or `node dist/bench/containers.js`. Needs root, runc, busybox-static; docker.io
// and podman are measured when installed.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Dockerd, DOCKER_CLIENT, startDockerd } from '../test/helpers/dockerd.js';
import { hasTool, median } from './util.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 15);
const cli = new URL('../bin/strata.mjs', import.meta.url).pathname;
const repo = new URL('../../', import.meta.url).pathname;

/** Run to completion and return the wall time in ms; a non-zero exit is an error (the bench measures successes). */
function timedRun(file: string, args: string[], env: Record<string, string> = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, args, { env: { ...process.env, ...env }, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return ms;
}

const PODMAN_FLAGS = (work: string) => [
  '--root',
  join(work, 'podman', 'root'),
  '--runroot',
  join(work, 'podman', 'run'),
  '--runtime',
  'runc',
  '--cgroup-manager',
  'cgroupfs',
  '--events-backend',
  'none',
];

async function bench(): Promise<string> {
  if (process.getuid?.() !== 0) return '### Containers\n\nskipped: needs root\n';
  for (const tool of ['runc', 'busybox']) {
    if (!hasTool(tool))
      return `### Containers\n\nskipped: ${tool} is not installed (apt-get install runc busybox-static)\n`;
  }
  const work = await mkdtemp(join(tmpdir(), 'strata-bench-containers-'));
  let dockerd: Dockerd | undefined;
  const notes: string[] = [];
  try {
    const rootfs = join(work, 'rootfs');
    execFileSync('bash', [join(repo, 'scripts/busybox-rootfs.sh'), rootfs], { stdio: 'ignore' });
    const root = join(work, 'strata-root');
    const env = { STRATA_ROOT: root };
    timedRun(cli, ['import', '--change', 'CMD ["sh"]', rootfs, 'busybox:latest'], env);
    const archive = join(work, 'busybox.tar');
    timedRun(cli, ['save', '-o', archive, 'busybox:latest'], env);

    // The bare runtime: runc's default spec (its own namespaces, no network) over a plain copy of the rootfs.
    const bundle = join(work, 'bundle');
    mkdirSync(bundle);
    execFileSync('cp', ['-a', rootfs, join(bundle, 'rootfs')]);
    execFileSync('runc', ['spec'], { cwd: bundle });
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    spec.process.terminal = false;
    spec.process.args = ['true'];
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
    const runcRoot = join(work, 'runc-state');

    const tools: Array<{ name: string; label: string; run: (i: number) => number }> = [
      {
        name: 'strata',
        label: '`strata run --rm busybox true`',
        run: () => timedRun(cli, ['run', '--rm', 'busybox', 'true'], env),
      },
      {
        name: 'runc',
        label: 'bare `runc run` of a prepared bundle',
        run: (i) => timedRun('runc', ['--root', runcRoot, 'run', '--bundle', bundle, `bench-${i}`]),
      },
    ];
    if (hasTool('dockerd') && hasTool(DOCKER_CLIENT)) {
      dockerd = await startDockerd(join(work, 'docker'));
      await dockerd.docker(['load', '-i', archive]);
      const host = `unix://${join(work, 'docker', 'docker.sock')}`;
      tools.push({
        name: 'docker',
        label: '`docker run --rm --network none busybox true`',
        run: () =>
          timedRun(DOCKER_CLIENT, ['run', '--rm', '--network', 'none', 'busybox', 'true'], { DOCKER_HOST: host }),
      });
    } else notes.push('docker: not measured (dockerd or /usr/bin/docker missing: apt-get install docker.io)');
    if (hasTool('podman')) {
      const flags = PODMAN_FLAGS(work);
      const load = spawnSync('podman', [...flags, 'load', '-q', '-i', archive], { encoding: 'utf8' });
      // podman names the archive's short tag itself (localhost/...): run what it says it loaded, never pulling.
      const loaded = /Loaded image(?:\(s\))?: *(\S+)/.exec(load.stdout)?.[1] ?? 'localhost/busybox:latest';
      const podmanRun = [
        ...flags,
        'run',
        '--pull',
        'never',
        '--rm',
        '--network',
        'none',
        '--ulimit',
        'nofile=1024:1024',
        '--ulimit',
        'nproc=4096:4096',
        loaded,
        'true',
      ];
      const probe = load.status === 0 ? spawnSync('podman', podmanRun, { encoding: 'utf8' }) : load;
      if (probe.status === 0) {
        tools.push({
          name: 'podman',
          label: '`podman run --rm --network none busybox true`',
          run: () => timedRun('podman', podmanRun),
        });
      } else
        notes.push(`podman: not measured, it does not start here: ${(probe.stderr || '').trim().split('\n').at(-1)}`);
    } else notes.push('podman: not measured (not installed)');

    const startup = {
      strata: [] as number[],
      node: [] as number[],
    };
    const times = new Map<string, number[]>(tools.map((t) => [t.name, []]));
    for (const t of tools) t.run(-1 - tools.indexOf(t)); // warm caches once
    for (let i = 0; i < RUNS; i++) {
      for (const t of tools) times.get(t.name)!.push(t.run(i));
      startup.strata.push(timedRun(cli, ['--version']));
      startup.node.push(timedRun(process.execPath, ['-e', '0']));
    }
    const strataMs = median(times.get('strata')!);
    const rows = tools
      .filter((t) => t.name !== 'strata')
      .map((t) => {
        const ms = median(times.get(t.name)!);
        return `| ${t.label} | ${ms.toFixed(0)} | ${(strataMs / ms).toFixed(2)} | ${(strataMs - ms).toFixed(0)} |`;
      });
    return [
      `### Containers: start to exit (median of ${RUNS}, ${availableParallelism()} CPUs, Node ${process.version})`,
      '',
      `\`strata run --rm busybox true\`: **${strataMs.toFixed(0)} ms** (create, mount, runc run, unmount, remove).`,
      '',
      '| reference | reference (ms) | strata / reference | strata - reference (ms) |',
      '| --- | ---: | ---: | ---: |',
      ...rows,
      `| \`strata --version\` (CLI start-up alone) | ${median(startup.strata).toFixed(0)} | ${(strataMs / median(startup.strata)).toFixed(2)} | ${(strataMs - median(startup.strata)).toFixed(0)} |`,
      `| \`node -e 0\` (Node start-up alone) | ${median(startup.node).toFixed(0)} | ${(strataMs / median(startup.node)).toFixed(2)} | ${(strataMs - median(startup.node)).toFixed(0)} |`,
      '',
      ...notes.map((n) => `- ${n}`),
      `- Load average (1 min) at the end: ${loadavg()[0]!.toFixed(1)}.`,
      '',
    ].join('\n');
  } finally {
    await dockerd?.stop();
    spawnSync('umount', ['-R', join(work, 'podman', 'root', 'overlay')], { stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true });
  }
}

export { bench as run };

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${await bench()}\n`);
}

// Image builds: `strata build` against `docker build` (BuildKit, a private dockerd started with --bridge=none
// --iptables=false) and `buildah bud --layers` (runc, own storage), in the same run, for four workloads: many small
// files, one large file, a multi-stage build and a Debian base made with debootstrap. Each tool has its own state and
// is measured cold (empty build cache, base image present), rebuilt with no change, and rebuilt after one file of the
// context changed. Every RUN uses the host network (no bridge is ever created) and needs no network.
// Run: `npm run bench -- build` or `node dist/bench/build.js`. Needs root, runc, busybox-static; docker.io, buildah
// and debootstrap are used when installed (the Debian workload needs debootstrap and Debian's archive).
// BENCH_RUNS (default 3) sets the repetitions, BENCH_BUILD_WORKLOADS=small,large,multistage,debian picks workloads; STRATA_BENCH_DEBIAN_CACHE=1 keeps the Debian rootfs in
// /var/tmp/strata-bench-debian for later runs (a valid one there is always reused). BENCH_VERBOSE=1 prints every
// build's time on stderr as it finishes: on a VM whose disk slows down with file churn, the spread matters as much as
// the median.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Dockerd, DOCKER_CLIENT, startDockerd } from '../test/helpers/dockerd.js';
import { hasTool, median } from './util.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const MiB = 1024 * 1024;
const distBin = new URL('../bin/', import.meta.url).pathname;
/** The CLI the bench runs: a copy of dist/bin made at the start (see snapshotCli). */
let cli = join(distBin, 'strata.mjs');
const repo = new URL('../../', import.meta.url).pathname;
const DEBIAN_CACHE = '/var/tmp/strata-bench-debian';
const DEBIAN_MARKER = '.strata-bench-complete';

interface Proc {
  status: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Per command; a hung build counts as a failure instead of stopping the bench. */
const TIMEOUT_MS = 20 * 60_000;

/**
 * Run to completion. Asynchronous on purpose: the private dockerd's log is a pipe that this process drains, which a
 * synchronous spawn would block until dockerd stalls on a full pipe.
 */
function exec(file: string, args: string[], env: Record<string, string> = {}): Promise<Proc> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${TIMEOUT_MS / 1000} s)`;
      child.kill('SIGKILL');
    }, TIMEOUT_MS);
    child.once('error', (err) => {
      stderr += String(err);
    });
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
    });
  });
}

async function must(file: string, args: string[], env: Record<string, string> = {}): Promise<Proc> {
  const r = await exec(file, args, env);
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** The line that says what went wrong: the last one mentioning an error, else the last one. */
function errorLine(s: string): string {
  const lines = s.split('\n').filter((l) => /error|failed/i.test(l) && !/^hint:/i.test(l.trim()));
  return (lines.at(-1) ?? lastLine(s)).trim().slice(0, 200);
}

function lastLine(s: string): string {
  return (
    s
      .trim()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .at(-1) ?? ''
  ).slice(0, 200);
}

/** Unmount whatever is still mounted below `dir` (deepest first): overlays of buildah or dockerd, debootstrap's /proc. */
function unmountUnder(dir: string): void {
  let info: string;
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return;
  }
  const points = info
    .split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((p): p is string => !!p && p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of points) {
    if (spawnSync('umount', [p], { stdio: 'ignore' }).status !== 0) spawnSync('umount', ['-l', p], { stdio: 'ignore' });
  }
}

/**
 * Copy dist/bin into `work` and run strata from there, so that every build of the run uses the same strata even when
 * someone rebuilds dist/ meanwhile; bare imports still resolve through a node_modules link to the repository's.
 */
async function snapshotCli(work: string): Promise<string> {
  const dir = join(work, 'strata-cli');
  cpSync(distBin, join(dir, 'bin'), { recursive: true });
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
  const copy = join(dir, 'bin', 'strata.mjs');
  await must(copy, ['--version']);
  return copy;
}

// ---------------------------------------------------------------------------------------------------------------
// Workloads

interface Workload {
  name: string;
  label: string;
  base: string;
  /** Write the context (Dockerfile included) into `dir`. */
  make(dir: string): void;
  /** Change one file of the context; `n` makes every change different. */
  change(dir: string, n: number): void;
  /** Which file `change` touches (for the notes). */
  changed: string;
}

function writeRandom(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  for (let off = 0; off < bytes; off += 16 * MiB) writeSync(fd, randomBytes(Math.min(16 * MiB, bytes - off)));
  closeSync(fd);
}

const SMALL_FILES = 2000;
const SMALL_SIZE = 10 * 1024;
const LARGE_SIZE = 256 * MiB;

const workloads: Workload[] = [
  {
    name: 'small',
    label: `many small files (${SMALL_FILES} x ${SMALL_SIZE / 1024} KB)`,
    base: 'busybox',
    changed: 'files/d00/f0000.bin',
    make(dir) {
      for (let i = 0; i < SMALL_FILES; i++) {
        const sub = join(dir, 'files', `d${String(Math.floor(i / 100)).padStart(2, '0')}`);
        if (i % 100 === 0) mkdirSync(sub, { recursive: true });
        writeFileSync(join(sub, `f${String(i).padStart(4, '0')}.bin`), randomBytes(SMALL_SIZE));
      }
      writeFileSync(
        join(dir, 'Dockerfile'),
        ['FROM busybox:latest', 'COPY files/ /data/', 'RUN ls -lR /data | wc -l', ''].join('\n'),
      );
    },
    change(dir) {
      writeFileSync(join(dir, this.changed), randomBytes(SMALL_SIZE));
    },
  },
  {
    name: 'large',
    label: `one large file (${LARGE_SIZE / MiB} MiB random)`,
    base: 'busybox',
    changed: 'big.bin (first 4 KiB rewritten in place)',
    make(dir) {
      writeRandom(join(dir, 'big.bin'), LARGE_SIZE);
      writeFileSync(join(dir, 'Dockerfile'), ['FROM busybox:latest', 'COPY big.bin /big.bin', ''].join('\n'));
    },
    change(dir) {
      const fd = openSync(join(dir, 'big.bin'), 'r+');
      writeSync(fd, randomBytes(4096), 0, 4096, 0);
      closeSync(fd);
    },
  },
  {
    name: 'multistage',
    label: 'multi-stage (RUN makes 2,000 files, COPY --from)',
    base: 'busybox',
    changed: 'src/s00.txt',
    make(dir) {
      mkdirSync(join(dir, 'src'));
      for (let i = 0; i < 20; i++) writeFileSync(join(dir, 'src', `s${String(i).padStart(2, '0')}.txt`), textLines(i));
      writeFileSync(
        join(dir, 'Dockerfile'),
        [
          'FROM busybox:latest AS builder',
          'COPY src/ /src/',
          // 400 lines per source file, 4 per output file: 100 outputs per source, 2,000 in all.
          'RUN mkdir /out && for f in /src/*; do \\',
          '      awk -v b="/out/$(basename "$f")" \'{ o = b "." int((NR - 1) / 4); print >> o; close(o) }\' "$f"; \\',
          '    done && md5sum /out/* > /SUMS && mv /SUMS /out/SUMS',
          '',
          'FROM busybox:latest',
          'COPY --from=builder /out/ /app/',
          'RUN wc -l /app/SUMS && ls /app | wc -l',
          '',
        ].join('\n'),
      );
    },
    change(dir, n) {
      writeFileSync(join(dir, 'src', 's00.txt'), textLines(1000 + n));
    },
  },
  {
    name: 'debian',
    label: 'Debian 12 minbase (debootstrap) + RUN steps',
    base: 'debian',
    changed: 'app/config.txt',
    make(dir) {
      mkdirSync(join(dir, 'app'));
      writeFileSync(join(dir, 'app', 'config.txt'), 'mode=bench\n');
      writeFileSync(join(dir, 'app', 'main.sh'), '#!/bin/sh\necho hello from the bench\n', { mode: 0o755 });
      writeFileSync(
        join(dir, 'Dockerfile'),
        [
          'FROM bench-debian:bookworm',
          'RUN echo bench > /etc/bench-marker && mkdir -p /opt/app',
          'COPY app/ /opt/app/',
          'RUN dpkg -l | wc -l > /opt/app/packages.count',
          'RUN find /usr -type f | wc -l > /opt/app/usr-files.count && cat /opt/app/*.count',
          'RUN /opt/app/main.sh > /opt/app/out.txt && sha256sum /opt/app/* > /opt/app/SUMS',
          '',
        ].join('\n'),
      );
    },
    change(dir, n) {
      writeFileSync(join(dir, 'app', 'config.txt'), `mode=bench\nchange=${n}\n`);
    },
  },
];

function textLines(seed: number): string {
  const lines: string[] = [];
  for (let i = 0; i < 400; i++) lines.push(`line ${i} of source ${seed}: ${randomBytes(24).toString('hex')}`);
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// Tools

interface Tool {
  name: 'strata' | 'docker' | 'buildah';
  build(ctx: string, tag: string): Promise<Proc>;
  /** Forget the build cache and the built image; keep the base images. */
  reset(tag: string): Promise<void>;
}

function strataTool(root: string): Tool {
  const env = { STRATA_ROOT: root };
  return {
    name: 'strata',
    build: (ctx, tag) => exec(cli, ['build', '--network', 'host', '-t', tag, ctx], env),
    reset: async (tag) => {
      await exec(cli, ['rmi', tag], env);
      await must(cli, ['builder', 'prune', '-f'], env);
      await must(cli, ['image', 'prune', '-f'], env);
    },
  };
}

function dockerTool(sock: string): Tool {
  const env = { DOCKER_HOST: `unix://${sock}`, DOCKER_BUILDKIT: '1' };
  return {
    name: 'docker',
    build: (ctx, tag) =>
      exec(DOCKER_CLIENT, ['build', '--network', 'host', '--progress', 'plain', '-t', tag, ctx], env),
    reset: async (tag) => {
      await exec(DOCKER_CLIENT, ['rmi', '-f', tag], env);
      await must(DOCKER_CLIENT, ['builder', 'prune', '-af'], env);
      await must(DOCKER_CLIENT, ['image', 'prune', '-f'], env);
    },
  };
}

function buildahFlags(work: string): string[] {
  return [
    '--root',
    join(work, 'buildah', 'root'),
    '--runroot',
    join(work, 'buildah', 'run'),
    '--storage-driver',
    'overlay',
  ];
}

function buildahTool(work: string): Tool {
  const flags = buildahFlags(work);
  return {
    name: 'buildah',
    build: (ctx, tag) =>
      exec('buildah', [
        ...flags,
        'bud',
        '--layers',
        '--pull-never',
        '--runtime',
        'runc',
        '--ulimit',
        'nofile=1024:1024',
        '--ulimit',
        'nproc=4096:4096',
        '--network',
        'host',
        '-t',
        tag,
        ctx,
      ]),
    reset: async (tag) => {
      await exec('buildah', [...flags, 'rm', '--all']);
      await exec('buildah', [...flags, 'rmi', '-f', tag]);
      await must('buildah', [...flags, 'rmi', '--prune']);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The Debian base

/** The Debian mirror apt uses here (sources.list or deb822 .sources), else deb.debian.org. */
function debianMirror(): string {
  const candidates: string[] = [];
  const collect = (text: string, deb822: boolean): void => {
    if (deb822) {
      for (const para of text.split(/\n\s*\n/)) {
        const uri = /^URIs:\s*(\S+)/m.exec(para)?.[1];
        const suites = /^Suites:\s*(.+)$/m.exec(para)?.[1] ?? '';
        if (uri && /^Types:.*\bdeb\b/m.test(para) && /\bbookworm\b/.test(suites)) candidates.push(uri);
      }
    } else {
      for (const m of text.matchAll(/^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/gm)) candidates.push(m[1]!);
    }
  };
  try {
    collect(readFileSync('/etc/apt/sources.list', 'utf8'), false);
  } catch {}
  try {
    for (const f of readdirSync('/etc/apt/sources.list.d').sort()) {
      const path = join('/etc/apt/sources.list.d', f);
      if (f.endsWith('.sources')) collect(readFileSync(path, 'utf8'), true);
      else if (f.endsWith('.list')) collect(readFileSync(path, 'utf8'), false);
    }
  } catch {}
  return candidates.find((u) => !/security/.test(u)) ?? 'http://deb.debian.org/debian';
}

function validDebianRootfs(dir: string): boolean {
  try {
    return (
      existsSync(join(dir, DEBIAN_MARKER)) &&
      readFileSync(join(dir, 'etc', 'debian_version'), 'utf8').startsWith('12.') &&
      existsSync(join(dir, 'usr', 'bin', 'dpkg'))
    );
  } catch {
    return false;
  }
}

/** A bookworm minbase rootfs: the cache if valid, else debootstrap into `work` (or into the cache if asked to). */
async function debianRootfs(work: string, notes: string[]): Promise<string | undefined> {
  if (validDebianRootfs(DEBIAN_CACHE)) {
    notes.push(`Debian base: reused the debootstrap rootfs cached in ${DEBIAN_CACHE}.`);
    return DEBIAN_CACHE;
  }
  if (!hasTool('debootstrap')) {
    notes.push('debian workload: skipped, debootstrap is not installed (apt-get install debootstrap).');
    return undefined;
  }
  const cache = process.env['STRATA_BENCH_DEBIAN_CACHE'] === '1';
  const dir = cache ? DEBIAN_CACHE : join(work, 'debian-rootfs');
  if (cache) rmSync(dir, { recursive: true, force: true });
  const mirror = debianMirror();
  const r = await exec('debootstrap', ['--variant=minbase', 'bookworm', dir, mirror]);
  unmountUnder(dir);
  if (r.status !== 0) {
    notes.push(`debian workload: skipped, debootstrap from ${mirror} failed: ${lastLine(r.stdout + r.stderr)}`);
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  // apt's downloaded .debs are not part of a base image.
  rmSync(join(dir, 'var', 'cache', 'apt', 'archives'), { recursive: true, force: true });
  mkdirSync(join(dir, 'var', 'cache', 'apt', 'archives', 'partial'), { recursive: true });
  writeFileSync(join(dir, DEBIAN_MARKER), `bookworm minbase from ${mirror}\n`);
  notes.push(
    `Debian base: \`debootstrap --variant=minbase bookworm\` from ${mirror} took ${r.seconds.toFixed(0)} s, ` +
      (cache ? `cached in ${DEBIAN_CACHE}.` : 'made once for this run in its temp dir (not timed in the table).'),
  );
  return dir;
}

// ---------------------------------------------------------------------------------------------------------------

const SCENARIOS = ['cold', 'no change', 'one file changed'] as const;
type Scenario = (typeof SCENARIOS)[number];

/** strata's steps from its plain progress: `#N [stage i/n] TEXT`, `#N DONE 1.2s`. */
function strataSteps(stderr: string): Array<{ text: string; seconds: number; cached: boolean }> {
  const steps = new Map<string, { text: string; seconds: number; cached: boolean }>();
  for (const line of stderr.split('\n')) {
    let m = /^#(\d+) \[[^\]]+\] (.*)$/.exec(line);
    if (m) {
      steps.set(m[1]!, { text: m[2]!, seconds: 0, cached: false });
      continue;
    }
    m = /^#(\d+) DONE ([\d.]+)s$/.exec(line);
    if (m && steps.has(m[1]!)) steps.get(m[1]!)!.seconds = Number(m[2]);
    m = /^#(\d+) CACHED$/.exec(line);
    if (m && steps.has(m[1]!)) steps.get(m[1]!)!.cached = true;
  }
  return [...steps.values()];
}

function breakdown(p: Proc): string {
  const steps = strataSteps(p.stderr);
  const sum = steps.reduce((a, s) => a + s.seconds, 0);
  const top = steps
    .filter((s) => s.seconds >= 0.05)
    .sort((a, b) => b.seconds - a.seconds)
    .slice(0, 2)
    .map((s) => `\`${s.text.length > 40 ? `${s.text.slice(0, 37)}...` : s.text}\` ${s.seconds.toFixed(1)}`);
  const cached = steps.filter((s) => s.cached).length;
  return [
    top.length > 0 ? top.join(', ') : 'no step >= 0.05 s',
    `${cached}/${steps.length} cached`,
    `outside steps ${(p.seconds - sum).toFixed(2)}`,
  ].join('; ');
}

async function bench(): Promise<string> {
  const title = `### Build: strata build vs docker build (BuildKit) and buildah bud (median of ${RUNS}, ${availableParallelism()} CPUs, Node ${process.version})`;
  if (process.getuid?.() !== 0) return `${title}\n\nskipped: needs root\n`;
  for (const tool of ['runc', 'busybox']) {
    if (!hasTool(tool)) return `${title}\n\nskipped: ${tool} is not installed (apt-get install runc busybox-static)\n`;
  }
  const work = await mkdtemp(join(tmpdir(), 'strata-bench-build-'));
  let dockerd: Dockerd | undefined;
  const notes: string[] = [];
  const log = (s: string): void => {
    if (process.env['BENCH_VERBOSE']) process.stderr.write(`${s}\n`);
  };
  try {
    // Base images: busybox from Debian's busybox-static, Debian from debootstrap; strata imports them, the others
    // load what `strata save` writes.
    cli = await snapshotCli(work);
    const rootfs = join(work, 'busybox-rootfs');
    await must('bash', [join(repo, 'scripts/busybox-rootfs.sh'), rootfs]);
    const strataRoot = join(work, 'strata-root');
    const senv = { STRATA_ROOT: strataRoot };
    await must(cli, ['import', '--change', 'CMD ["sh"]', rootfs, 'busybox:latest'], senv);
    const archives: Record<string, string> = { busybox: join(work, 'busybox.tar') };
    await must(cli, ['save', '-o', archives['busybox']!, 'busybox:latest'], senv);
    const wantDebian = !process.env['BENCH_BUILD_WORKLOADS'] || process.env['BENCH_BUILD_WORKLOADS'].includes('debian');
    const debian = wantDebian ? await debianRootfs(work, notes) : undefined;
    if (debian) {
      const imp = await must(cli, ['import', '--change', 'CMD ["bash"]', debian, 'bench-debian:bookworm'], senv);
      archives['debian'] = join(work, 'debian.tar');
      await must(cli, ['save', '-o', archives['debian'], 'bench-debian:bookworm'], senv);
      notes.push(
        `Debian base: \`strata import\` of the rootfs took ${imp.seconds.toFixed(1)} s (not timed in the table).`,
      );
      if (debian !== DEBIAN_CACHE) rmSync(debian, { recursive: true, force: true });
    }
    const only = process.env['BENCH_BUILD_WORKLOADS']?.split(',');
    const active = workloads.filter((w) => archives[w.base] !== undefined && (!only || only.includes(w.name)));

    const tools: Tool[] = [strataTool(strataRoot)];
    const skipped: Record<string, string> = {};
    const probeDir = join(work, 'probe');
    mkdirSync(probeDir);
    writeFileSync(join(probeDir, 'Dockerfile'), 'FROM busybox:latest\nRUN true\n');

    if (!hasTool('dockerd') || !existsSync(DOCKER_CLIENT)) {
      skipped['docker'] = 'dockerd or /usr/bin/docker is not installed (apt-get install docker.io)';
    } else {
      try {
        dockerd = await startDockerd(join(work, 'docker'));
        for (const a of Object.values(archives)) await dockerd.docker(['load', '-i', a]);
        const tool = dockerTool(join(work, 'docker', 'docker.sock'));
        const probe = await tool.build(probeDir, 'bench-probe');
        if (probe.status !== 0) throw new Error(`docker build (BuildKit) fails: ${errorLine(probe.stderr)}`);
        await tool.reset('bench-probe');
        tools.push(tool);
      } catch (err) {
        skipped['docker'] = `does not start here: ${lastLine((err as Error).message)}`;
      }
    }
    if (!hasTool('buildah')) {
      skipped['buildah'] = 'not installed (apt-get install buildah)';
    } else {
      try {
        const flags = buildahFlags(work);
        for (const a of Object.values(archives)) await must('buildah', [...flags, 'pull', '-q', `docker-archive:${a}`]);
        const tool = buildahTool(work);
        const probe = await tool.build(probeDir, 'bench-probe');
        if (probe.status !== 0) throw new Error(`buildah bud fails: ${errorLine(probe.stderr)}`);
        await tool.reset('bench-probe');
        tools.push(tool);
      } catch (err) {
        skipped['buildah'] = `does not start here: ${lastLine((err as Error).message)}`;
      }
    }

    // results[workload][scenario][tool] = runs
    const results = new Map<string, Map<Scenario, Map<string, Proc[]>>>();
    const failures: string[] = [];
    for (const w of active) {
      const ctx = join(work, `ctx-${w.name}`);
      mkdirSync(ctx);
      w.make(ctx);
      const byScenario = new Map<Scenario, Map<string, Proc[]>>(
        SCENARIOS.map((s) => [s, new Map(tools.map((t) => [t.name, [] as Proc[]]))]),
      );
      results.set(w.name, byScenario);
      let changes = 0;
      const tag = `bench-${w.name}:latest`;
      for (let i = 0; i < RUNS; i++) {
        // Interleaved: each tool does its three builds in turn, so that load affects every tool alike.
        for (const t of tools) {
          try {
            await t.reset(tag);
          } catch (err) {
            failures.push(`${t.name}, ${w.name}: reset before run ${i + 1}: ${errorLine((err as Error).message)}`);
            continue;
          }
          await exec('sync', []);
          for (const s of SCENARIOS) {
            if (s === 'one file changed') w.change(ctx, changes++);
            const p = await t.build(ctx, tag);
            log(`${w.name} ${s} ${t.name} #${i}: ${p.seconds.toFixed(2)} s (exit ${p.status})`);
            if (p.status !== 0) {
              failures.push(`${t.name}, ${w.name}, ${s}: exit ${p.status}: ${errorLine(p.stderr)}`);
              break;
            }
            byScenario.get(s)!.get(t.name)!.push(p);
          }
        }
      }
      for (const t of tools) {
        await t.reset(tag).catch((err: Error) => {
          failures.push(`${t.name}, ${w.name}: final clean-up: ${errorLine(err.message)}`);
        });
      }
      rmSync(ctx, { recursive: true, force: true });
    }

    const cell = (runs: Proc[] | undefined): number | undefined =>
      runs && runs.length > 0 ? median(runs.map((r) => r.seconds)) : undefined;
    const fmt = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(2));
    const ratio = (a: number | undefined, b: number | undefined): string =>
      a === undefined || b === undefined ? '-' : (a / b).toFixed(2);
    const rows: string[] = [];
    const phases: string[] = [];
    for (const w of active) {
      for (const s of SCENARIOS) {
        const m = results.get(w.name)!.get(s)!;
        const st = cell(m.get('strata'));
        const dk = cell(m.get('docker'));
        const bh = cell(m.get('buildah'));
        rows.push(`| ${w.label} | ${s} | ${fmt(st)} | ${fmt(dk)} | ${ratio(st, dk)} | ${fmt(bh)} | ${ratio(st, bh)} |`);
        const sr = m.get('strata') ?? [];
        if (sr.length > 0) {
          const mid = [...sr].sort((a, b) => a.seconds - b.seconds)[Math.floor(sr.length / 2)]!;
          phases.push(`| ${w.name} | ${s} | ${mid.seconds.toFixed(2)} | ${breakdown(mid)} |`);
        }
      }
    }
    const version = async (file: string, args: string[], env: Record<string, string> = {}): Promise<string> =>
      lastLine((await exec(file, args, env)).stdout) || '?';
    const dockerEnv = { DOCKER_HOST: `unix://${join(work, 'docker', 'docker.sock')}` };
    const versions = [`strata ${await version(cli, ['--version'])}`];
    if (tools.some((t) => t.name === 'docker')) {
      const client = await version(DOCKER_CLIENT, ['version', '--format', '{{.Client.Version}}'], dockerEnv);
      const server = await version(DOCKER_CLIENT, ['version', '--format', '{{.Server.Version}}'], dockerEnv);
      versions.push(`docker client ${client}, dockerd ${server}`);
    }
    if (tools.some((t) => t.name === 'buildah')) versions.push(await version('buildah', ['--version']));
    return [
      title,
      '',
      '| workload | scenario | strata (s) | docker (s) | strata/docker | buildah (s) | strata/buildah |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
      'strata, the median run of each row: its slowest steps (`#N DONE` seconds), how many steps were cached, and the',
      'wall time outside the steps (CLI start-up, context checksums, image export, tagging):',
      '',
      '| workload | scenario | strata (s) | breakdown |',
      '| --- | --- | ---: | --- |',
      ...phases,
      '',
      '- cold: build cache and built image removed (`strata builder prune` + `image prune`, `docker builder prune -af` +',
      '  `image prune`, `buildah rmi --prune`), base image present and unpacked; then a rebuild with no change; then',
      `  a rebuild after one file changed (${active.map((w) => `${w.name}: ${w.changed}`).join('; ')}).`,
      '- strata: `strata build --network host` (runc). docker: `DOCKER_BUILDKIT=1 /usr/bin/docker build --network host`',
      '  against a private dockerd (--bridge=none --iptables=false); FROM resolves to the `docker load`ed image, no pull.',
      '  buildah: `buildah bud --layers --pull-never --runtime runc --network host`, own --root/--runroot, overlay driver.',
      '- Base images: `strata import` of a busybox-static rootfs and of the Debian rootfs; docker and buildah load the',
      '  archives `strata save` writes (`docker load -i`, `buildah pull docker-archive:`).',
      ...notes.map((n) => `- ${n}`),
      ...Object.entries(skipped).map(([t, why]) => `- ${t}: not measured, ${why}.`),
      ...failures.map((f) => `- failed: ${f}`),
      `- ${versions.join('; ')}.`,
      `- Load average (1, 5, 15 min) at the end: ${loadavg()
        .map((x) => x.toFixed(1))
        .join(', ')}; ${availableParallelism()} CPUs; Node ${process.version}.`,
      '',
    ].join('\n');
  } finally {
    await dockerd?.stop();
    if (hasTool('buildah') && existsSync(join(work, 'buildah'))) {
      await exec('buildah', [...buildahFlags(work), 'rm', '--all']);
      await exec('buildah', [...buildahFlags(work), 'rmi', '--all', '--force']);
    }
    unmountUnder(work);
    rmSync(work, { recursive: true, force: true });
  }
}

export { bench as run };

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${await bench()}\n`);
}

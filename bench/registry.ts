// The registry server: strata's (`strata registry serve`, a separate process) against Debian's CNCF distribution
// (`docker-registry`, package docker-registry) in the same run, on the same data, with the same clients: wrk for GET
// loads, a small Node client for pushes. Run: `npm run bench` (all benches), `node dist/bench/run.js registry`, or
// `node dist/bench/registry.js`. Needs wrk and docker-registry on PATH (`.ci/run` installs both).
//
// STRATA_BENCH_PROFILE=DIR runs strata's server under `node --cpu-prof --cpu-prof-dir=DIR` (open the .cpuprofile in
// Chrome DevTools or speedscope) to find where its time goes.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { request } from 'node:http';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  DOCKER_REGISTRY,
  type RegistryProcess,
  startDockerRegistry,
  startStrataRegistryProcess,
} from '../test/helpers/registry-process.js';
import { hasTool, median } from './util.js';

const RUNS = 3;
const SECONDS = 5;
const CONNECTIONS = 32;
const THREADS = 2;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MiB = 1024 * 1024;

interface Blob {
  path: string;
  digest: string;
  size: number;
}

/** A file of `size` random bytes (written 16 MiB at a time) and its sha256. */
function randomBlob(dir: string, name: string, size: number): Blob {
  const path = join(dir, name);
  const hash = createHash('sha256');
  writeFileSync(path, '');
  for (let off = 0; off < size; off += 16 * MiB) {
    const chunk = randomBytes(Math.min(16 * MiB, size - off));
    hash.update(chunk);
    writeFileSync(path, chunk, { flag: 'a' });
  }
  return { path, digest: `sha256:${hash.digest('hex')}`, size };
}

function bytesBlob(dir: string, name: string, data: Buffer): Blob {
  const path = join(dir, name);
  writeFileSync(path, data);
  return { path, digest: `sha256:${createHash('sha256').update(data).digest('hex')}`, size: data.length };
}

/**
 * Push one blob the way clients do a monolithic upload: POST to open an upload, then one PUT ?digest= streaming the
 * whole file. The same client code for both registries.
 */
async function pushBlob(base: string, repo: string, blob: Blob): Promise<void> {
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await post.arrayBuffer();
  if (post.status !== 202) throw new Error(`POST upload to ${base}: ${post.status}`);
  const location = new URL(post.headers.get('location')!, base);
  location.searchParams.set('digest', blob.digest);
  await new Promise<void>((resolve, reject) => {
    const req = request(
      location,
      {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': blob.size },
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 201 ? resolve() : reject(new Error(`PUT upload to ${base}: ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    const file = createReadStream(blob.path, { highWaterMark: MiB });
    file.on('error', reject);
    file.pipe(req);
  });
}

async function pushManifest(base: string, repo: string, tag: string, manifest: Buffer): Promise<void> {
  const r = await fetch(`${base}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': OCI_MANIFEST },
    body: new Uint8Array(manifest),
  });
  await r.arrayBuffer();
  if (r.status !== 201) throw new Error(`PUT manifest to ${base}: ${r.status}`);
}

interface WrkResult {
  requestsPerSecond: number;
  bytesPerSecond: number;
  /** Non-2xx answers, socket errors and timeouts: any of these invalidates the run. */
  errors: string[];
}

const UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

function wrk(url: string, seconds: number, headers: string[] = []): WrkResult {
  const args = [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '30s'];
  for (const h of headers) args.push('-H', h);
  const r = spawnSync('wrk', [...args, url], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wrk ${url}: exit ${r.status}: ${r.stderr}`);
  const out = r.stdout;
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const tps = /Transfer\/sec:\s+([\d.]+)([KMGT]?B)/.exec(out);
  if (!rps || !tps) throw new Error(`cannot parse wrk output:\n${out}`);
  const errors: string[] = [];
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) errors.push(`${non2xx[1]} non-2xx answers`);
  const sock = /Socket errors: (.*)/.exec(out);
  if (sock) errors.push(`socket errors: ${sock[1]}`);
  return { requestsPerSecond: Number(rps[1]), bytesPerSecond: Number(tps[1]) * UNITS[tps[2]!]!, errors };
}

interface Metric {
  label: string;
  unit: string;
  higherIsBetter: boolean;
  values: number[];
  digits: number;
}

/** Runs the registry benchmarks and returns a markdown report. */
export async function run(): Promise<string> {
  for (const tool of ['wrk', DOCKER_REGISTRY]) {
    if (!hasTool(tool)) return `registry: skipped, ${tool} is not installed (apt-get install wrk docker-registry)\n`;
  }
  const work = await mkdtemp(join(tmpdir(), 'strata-bench-registry-'));
  const servers: RegistryProcess[] = [];
  try {
    const data = join(work, 'data');
    mkdirSync(data);
    const small = randomBlob(data, 'small', MiB);
    const big = randomBlob(data, 'big', 100 * MiB);
    const huge = randomBlob(data, 'huge', 512 * MiB);
    const config = bytesBlob(
      data,
      'config',
      Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })),
    );
    const layer = (b: Blob): object => ({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: b.digest,
      size: b.size,
    });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
        layers: [layer(small), layer(big)],
      }),
    );

    const loadBefore = loadavg()[0]!;
    const profileDir = process.env['STRATA_BENCH_PROFILE'];
    const strata = await startStrataRegistryProcess(join(work, 'strata'), {
      ...(profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] } : {}),
    });
    servers.push(strata);
    const cncf = await startDockerRegistry(join(work, 'cncf'));
    servers.push(cncf);
    const idleRss = servers.map((s) => s.rss());

    for (const s of servers) {
      for (const b of [config, small, big]) await pushBlob(s.url, 'bench/app', b);
      await pushManifest(s.url, 'bench/app', 'v1', manifest);
    }

    const urls = {
      manifest: '/v2/bench/app/manifests/v1',
      small: `/v2/bench/app/blobs/${small.digest}`,
      big: `/v2/bench/app/blobs/${big.digest}`,
    };
    const accept = [`Accept: ${OCI_MANIFEST}`];
    // Warm-up: first connections, caches, JIT; nothing measured.
    for (const s of servers) {
      for (const path of Object.values(urls)) wrk(`${s.url}${path}`, 1, accept);
    }

    const metrics: Metric[] = [
      { label: 'manifest GET by tag', unit: 'req/s', higherIsBetter: true, values: [], digits: 0 },
      { label: 'blob GET, 1 MiB', unit: 'MB/s', higherIsBetter: true, values: [], digits: 0 },
      { label: 'blob GET, 100 MiB', unit: 'MB/s', higherIsBetter: true, values: [], digits: 0 },
      {
        label: 'push one 512 MiB layer (POST + streamed PUT)',
        unit: 's',
        higherIsBetter: false,
        values: [],
        digits: 2,
      },
    ];
    const samples = servers.map(() => metrics.map(() => [] as number[]));
    const problems: string[] = [];
    const check = (s: RegistryProcess, what: string, r: WrkResult): WrkResult => {
      if (r.errors.length > 0) problems.push(`${s.name}, ${what}: ${r.errors.join('; ')}`);
      return r;
    };
    // Rounds interleave the servers, so a noisy neighbour slows both alike instead of skewing one.
    for (let round = 0; round < RUNS; round++) {
      for (const [i, s] of servers.entries()) {
        const m = check(s, 'manifest GET', wrk(`${s.url}${urls.manifest}`, SECONDS, accept));
        samples[i]![0]!.push(m.requestsPerSecond);
        samples[i]![1]!.push(check(s, '1 MiB GET', wrk(`${s.url}${urls.small}`, SECONDS)).bytesPerSecond / 1e6);
        samples[i]![2]!.push(check(s, '100 MiB GET', wrk(`${s.url}${urls.big}`, SECONDS)).bytesPerSecond / 1e6);
        // Dirty pages from earlier writes must not be flushed on this push's clock.
        spawnSync('sync');
        const start = process.hrtime.bigint();
        await pushBlob(s.url, `bench/push${round}`, huge);
        samples[i]![3]!.push(Number(process.hrtime.bigint() - start) / 1e9);
      }
    }
    const peak = servers.map((s) => s.peakRss());

    const fmt = (v: number, digits: number): string =>
      v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
    const lines = [
      `### Registry: strata vs CNCF distribution (${versionOf()}) (median of ${RUNS}, ${availableParallelism()} CPUs, Node ${process.version})`,
      '',
      '| metric | strata | docker-registry | strata / docker-registry |',
      '| --- | ---: | ---: | ---: |',
    ];
    for (const [k, m] of metrics.entries()) {
      const [sv, cv] = [median(samples[0]![k]!), median(samples[1]![k]!)];
      lines.push(
        `| ${m.label} (${m.unit}, ${m.higherIsBetter ? 'higher' : 'lower'} is better) | ${fmt(sv, m.digits)} | ${fmt(cv, m.digits)} | ${(sv / cv).toFixed(2)} |`,
      );
    }
    lines.push(
      `| peak RSS of the server process (MB, VmHWM, lower is better) | ${fmt(peak[0]! / 1e6, 0)} | ${fmt(peak[1]! / 1e6, 0)} | ${(peak[0]! / peak[1]!).toFixed(2)} |`,
      `| RSS at start, idle (MB, lower is better) | ${fmt(idleRss[0]! / 1e6, 0)} | ${fmt(idleRss[1]! / 1e6, 0)} | ${(idleRss[0]! / idleRss[1]!).toFixed(2)} |`,
    );
    const notes = [
      '',
      `- GET loads: \`wrk -t${THREADS} -c${CONNECTIONS} -d${SECONDS}s\` on the same machine as the servers; MB/s is wrk's Transfer/sec in 10^6 bytes. Manifest GETs send \`Accept: ${OCI_MANIFEST}\`.`,
      '- Push: one POST, then one PUT ?digest= streaming a 512 MiB random file from a Node client (node:http), the same code for both; a new repository each round, `sync` before each.',
      '- strata: `strata registry serve --log-level warn` (no line per request); docker-registry: access log off, log level warn, in-memory blob descriptor cache (as the Debian package configures it), filesystem storage on the same disk.',
      `- Load average (1 min) ${loadBefore.toFixed(1)} before the loads, ${loadavg()[0]!.toFixed(1)} after: anything above the bench's own load (wrk and one server) means other work shared the CPUs.`,
      `- Peak RSS covers the whole run (all loads and pushes); ${profileDir ? `strata ran under --cpu-prof (profiles in ${profileDir}): its numbers are slower than without.` : 'no profiler attached.'}`,
    ];
    if (problems.length > 0)
      notes.push(`- **errors during the loads** (the numbers above are not valid): ${problems.join('; ')}`);
    return `${[...lines, ...notes].join('\n')}\n`;
  } finally {
    for (const s of servers) await s.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

function versionOf(): string {
  const r = spawnSync(DOCKER_REGISTRY, ['--version'], { encoding: 'utf8' });
  return /(\d+\.\d+\.\d+\S*)/.exec(r.stdout ?? '')?.[1] ?? 'unknown version';
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(await run());
}

// The registry client: `strata push` / `strata pull` of a 1 GiB two-layer image against `skopeo copy` in the same
// run, both talking to Debian's CNCF `docker-registry` on 127.0.0.1 (a fresh instance per measurement, so neither
// client finds the other's blobs), plus the time of a second push (every blob already there).
// Run: `npm run bench -- remote` or `node dist/bench/remote.js`. Needs skopeo, docker-registry, pigz, tar.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DOCKER_REGISTRY, startDockerRegistry } from '../test/helpers/registry-process.js';
import { hasTool, median } from './util.js';

const RUNS = 3;
const MiB = 1024 * 1024;
const LAYER_BYTES = 512 * MiB;
const cli = new URL('../bin/strata.mjs', import.meta.url).pathname;

function sha256File(path: string): string {
  const out = execFileSync('sha256sum', [path], { encoding: 'utf8' });
  return `sha256:${out.split(' ')[0]}`;
}

function timed(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function run(file: string, args: string[], env: Record<string, string> = {}): void {
  const r = spawnSync(file, args, { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
}

/** Write an OCI layout with two gzip layers, each a tar holding one file of random bytes. */
function makeLayout(work: string): string {
  const dir = join(work, 'layout');
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const layers: Array<{ digest: string; size: number; diffId: string }> = [];
  for (const n of [1, 2]) {
    const src = join(work, `src${n}`);
    mkdirSync(src, { recursive: true });
    const fd = openSync(join(src, `data${n}.bin`), 'w');
    for (let off = 0; off < LAYER_BYTES; off += 16 * MiB) writeSync(fd, randomBytes(16 * MiB));
    closeSync(fd);
    const tar = join(work, `layer${n}.tar`);
    run('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '-C', src, '-cf', tar, '.']);
    const diffId = sha256File(tar);
    run('sh', ['-c', `pigz -p2 -1 -n -c '${tar}' > '${tar}.gz'`]);
    const digest = sha256File(`${tar}.gz`);
    run('mv', [`${tar}.gz`, join(blobs, digest.slice(7))]);
    rmSync(tar);
    rmSync(src, { recursive: true });
    layers.push({ digest, size: statSync(join(blobs, digest.slice(7))).size, diffId });
  }
  const put = (data: string): { digest: string; size: number } => {
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    writeFileSync(join(blobs, digest.slice(7)), data);
    return { digest, size: Buffer.byteLength(data) };
  };
  const config = put(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: [{ created_by: 'bench layer 1' }, { created_by: 'bench layer 2' }],
    }),
  );
  const manifest = put(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: layers.map((l) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: l.digest,
        size: l.size,
      })),
    }),
  );
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: {
            'org.opencontainers.image.ref.name': 'bench',
            'io.containerd.image.name': 'docker.io/library/bench:1',
          },
        },
      ],
    }),
  );
  return dir;
}

async function bench(): Promise<string> {
  for (const tool of ['skopeo', 'pigz', 'tar', DOCKER_REGISTRY]) {
    if (!hasTool(tool))
      return `### Registry client\n\nskipped: ${tool} is not installed (apt-get install skopeo pigz docker-registry)\n`;
  }
  const work = await mkdtemp(join(tmpdir(), 'strata-bench-remote-'));
  try {
    const layout = makeLayout(work);
    const root = join(work, 'strata-root');
    const strata = (args: string[]): void => run(cli, [...args], { STRATA_ROOT: root });
    run('tar', ['-C', layout, '-cf', join(work, 'layout.tar'), '.']);
    strata(['load', '-q', '-i', join(work, 'layout.tar')]);
    rmSync(join(work, 'layout.tar'));
    const localName = 'bench:1';

    const results = {
      strataPush: [] as number[],
      skopeoPush: [] as number[],
      strataPull: [] as number[],
      skopeoPull: [] as number[],
      secondPush: [] as number[],
      skopeoSecond: [] as number[],
    };
    for (let i = 0; i < RUNS; i++) {
      for (const who of ['strata', 'skopeo'] as const) {
        const reg = await startDockerRegistry(join(work, `reg-${who}-${i}`));
        try {
          const ref = `${reg.host}/bench/${who}:1`;
          run('sync', []);
          if (who === 'strata') {
            strata(['tag', localName, ref]);
            results.strataPush.push(timed(() => strata(['push', '-q', ref])));
            results.secondPush.push(timed(() => strata(['push', '-q', ref])));
            const pullRoot = join(work, `pull-${i}`);
            run('sync', []);
            results.strataPull.push(timed(() => run(cli, ['pull', '-q', ref], { STRATA_ROOT: pullRoot })));
            rmSync(pullRoot, { recursive: true, force: true });
            strata(['rmi', ref]);
          } else {
            const src = `oci:${layout}:bench`;
            const dst = `docker://${ref}`;
            const copy = (a: string, b: string): void =>
              run('skopeo', [
                '--insecure-policy',
                'copy',
                '-q',
                '--src-tls-verify=false',
                '--dest-tls-verify=false',
                a,
                b,
              ]);
            results.skopeoPush.push(timed(() => copy(src, dst)));
            results.skopeoSecond.push(timed(() => copy(src, dst)));
            const out = join(work, `skopeo-pull-${i}`);
            run('sync', []);
            results.skopeoPull.push(timed(() => copy(dst, `oci:${out}:x`)));
            rmSync(out, { recursive: true, force: true });
          }
        } finally {
          await reg.stop();
          rmSync(join(work, `reg-${who}-${i}`), { recursive: true, force: true });
        }
      }
    }
    const row = (what: string, s: number[], r: number[], ref: string): string =>
      `| ${what} | ${median(s).toFixed(2)} | ${ref} | ${median(r).toFixed(2)} | ${(median(s) / median(r)).toFixed(2)} |`;
    return [
      `### Registry client: strata vs skopeo copy, 1 GiB two-layer image, docker-registry on 127.0.0.1 (median of ${RUNS}, ${availableParallelism()} CPUs, Node ${process.version})`,
      '',
      '| operation | strata (s) | reference | reference (s) | strata / reference |',
      '| --- | ---: | --- | ---: | ---: |',
      row('push (empty registry)', results.strataPush, results.skopeoPush, '`skopeo copy oci: docker://`'),
      row('second push (every blob present)', results.secondPush, results.skopeoSecond, 'second `skopeo copy`'),
      row('pull into an empty store', results.strataPull, results.skopeoPull, '`skopeo copy docker:// oci:`'),
      '',
      '- strata pushes from its store and pulls into a fresh root, unpacking both layers into snapshots (skopeo only',
      '  writes the compressed blobs to an OCI layout: strata does more work on pull).',
      `- Layers: 2 x ${LAYER_BYTES / MiB} MiB random data, gzip -1 (pigz), so the bytes are incompressible and move as is.`,
      `- Load average (1 min) at the end: ${loadavg()[0]!.toFixed(1)}.`,
      '',
    ].join('\n');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export { bench as run };

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${await bench()}\n`);
}

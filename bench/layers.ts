// Layer creation and extraction: strata's archive module against GNU tar, gzip and pigz on the same data.
// Run: `npm run bench` (all benches) or `node dist/bench/layers.js`. Needs GNU tar, gzip and pigz on PATH.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { applyLayer, type Compression, packDirectory } from '../src/archive/index.js';
import { hasTool, median } from './util.js';

const RUNS = 3;

function sh(script: string): void {
  const r = spawnSync('sh', ['-c', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${script}: exit ${r.status}: ${r.stderr}`);
}

interface Contender {
  name: string;
  fn: () => Promise<void> | void;
}

/**
 * Median wall time of each contender over RUNS rounds. Rounds interleave the contenders, so a noisy neighbour on a
 * shared machine slows them alike instead of skewing one; `prepare` runs untimed before each run (fresh dirs).
 */
async function race(contenders: Contender[], prepare?: () => void): Promise<number[]> {
  const times = contenders.map(() => [] as number[]);
  for (let round = 0; round < RUNS; round++) {
    for (const [i, c] of contenders.entries()) {
      prepare?.();
      // Dirty pages from the previous run must not be written back on this one's clock.
      sh('sync');
      const start = process.hrtime.bigint();
      await c.fn();
      times[i]!.push(Number(process.hrtime.bigint() - start) / 1e9);
    }
  }
  return times.map(median);
}

/** Text-like content: compresses about 3-4x with gzip -6, like source trees and package metadata. */
function textLike(size: number, seed: number): Buffer {
  const words = ['import', 'export', 'function', 'return', 'const', 'layer', 'digest', '{', '}', '\n', '  ', 'if'];
  const out = Buffer.alloc(size);
  let s = seed;
  for (let i = 0; i < size; ) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    i += out.write(words[s % words.length]!, i);
    if (s % 7 === 0 && i < size) out[i++] = 0x30 + (s % 10);
  }
  return out;
}

/** 2,000 files in 40 directories, about 20 MB: half text-like, half random, sizes 1-19 KiB. */
function makeSmallFiles(root: string): number {
  let total = 0;
  for (let d = 0; d < 40; d++) mkdirSync(join(root, `dir-${d}`, 'sub'), { recursive: true });
  for (let i = 0; i < 2000; i++) {
    const size = 1024 + ((i * 7919) % 18) * 1024 + (i % 13);
    const data = i % 2 === 0 ? textLike(size, i) : randomBytes(size);
    writeFileSync(join(root, `dir-${i % 40}`, i % 3 === 0 ? 'sub' : '', `file-${i}.dat`), data);
    total += size;
  }
  return total;
}

function makeBigFile(root: string): number {
  const size = 512 * 1024 * 1024;
  const chunk = 16 * 1024 * 1024;
  const path = join(root, 'random.bin');
  writeFileSync(path, '');
  for (let off = 0; off < size; off += chunk) writeFileSync(path, randomBytes(chunk), { flag: 'a' });
  return size;
}

async function strataPack(src: string, out: string, compression: Compression): Promise<void> {
  const layer = packDirectory(src, { compression, level: 6 });
  await pipeline(layer.stream, createWriteStream(out));
  await layer.info;
}

async function strataApply(archive: string, target: string): Promise<void> {
  await applyLayer(createReadStream(archive, { highWaterMark: 1024 * 1024 }), target, { whiteouts: 'delete' });
}

interface Row {
  operation: string;
  strata: number;
  reference: string;
  ref: number;
  note?: string;
}

async function benchDataset(work: string, name: string, src: string): Promise<Row[]> {
  const rows: Row[] = [];
  const out = (f: string): string => join(work, `${name}-${f}`);
  const target = join(work, `${name}-extract`);
  const fresh = (): void => {
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target);
  };
  const size = (f: string): string => `${(statSync(f).size / 1e6).toFixed(1)} MB`;

  const create: Contender[] = [
    { name: 'strata', fn: () => strataPack(src, out('strata.tar.gz'), 'gzip') },
    { name: 'tar -c | gzip -6', fn: () => sh(`tar -cf - -C ${src} . | gzip -6 > ${out('gzip.tar.gz')}`) },
  ];
  if (hasTool('pigz')) {
    create.push({
      name: 'tar -c | pigz -p2 -6',
      fn: () => sh(`tar -cf - -C ${src} . | pigz -p2 -6 > ${out('pigz.tar.gz')}`),
    });
  }
  const [sGz, ...refs] = await race(create);
  for (const [i, ref] of create.slice(1).entries()) {
    rows.push({ operation: 'create, gzip -6', strata: sGz!, reference: ref.name, ref: refs[i]! });
  }
  const sizes = [
    ['strata', 'strata.tar.gz'],
    ['gzip', 'gzip.tar.gz'],
    ['pigz', 'pigz.tar.gz'],
  ]
    .filter(([, f]) => hasTool('pigz') || f !== 'pigz.tar.gz')
    .map(([who, f]) => `${who} ${size(out(f!))}`);
  rows[rows.length - 1]!.note = `compressed sizes: ${sizes.join(', ')}`;

  const [sTar, tarC] = await race([
    { name: 'strata', fn: () => strataPack(src, out('strata.tar'), 'none') },
    { name: 'tar -c', fn: () => sh(`tar -cf ${out('gnu.tar')} -C ${src} .`) },
  ]);
  rows.push({ operation: 'create, uncompressed', strata: sTar!, reference: 'tar -c', ref: tarC! });

  const [sXz, xz] = await race(
    [
      { name: 'strata', fn: () => strataApply(out('strata.tar.gz'), target) },
      { name: 'tar -xzf', fn: () => sh(`tar -xzf ${out('strata.tar.gz')} -C ${target}`) },
    ],
    fresh,
  );
  rows.push({ operation: 'extract, gzip', strata: sXz!, reference: 'tar -xzf', ref: xz! });
  const [sX, x] = await race(
    [
      { name: 'strata', fn: () => strataApply(out('strata.tar'), target) },
      { name: 'tar -xf', fn: () => sh(`tar -xf ${out('strata.tar')} -C ${target}`) },
    ],
    fresh,
  );
  rows.push({ operation: 'extract, uncompressed', strata: sX!, reference: 'tar -xf', ref: x! });
  return rows;
}

/** Runs the layer benchmarks and returns a markdown report. */
export async function run(): Promise<string> {
  for (const tool of ['tar', 'gzip']) {
    if (!hasTool(tool)) return `layers: skipped, ${tool} is not installed\n`;
  }
  const work = await mkdtemp(join(tmpdir(), 'strata-bench-layers-'));
  try {
    const small = join(work, 'small');
    const big = join(work, 'big');
    mkdirSync(small);
    mkdirSync(big);
    const smallBytes = makeSmallFiles(small);
    const bigBytes = makeBigFile(big);
    const datasets: Array<[string, string, string]> = [
      [`(a) 2,000 small files, ${(smallBytes / 1e6).toFixed(1)} MB, half random`, 'small', small],
      [`(b) one ${bigBytes / 1024 ** 2} MiB random file`, 'big', big],
    ];
    const lines = [
      `### Layers: strata vs GNU tar / gzip / pigz (median of ${RUNS}, ${availableParallelism()} CPUs, Node ${process.version})`,
      '',
      '| data | operation | strata (s) | reference | reference (s) | strata / reference |',
      '| --- | --- | ---: | --- | ---: | ---: |',
    ];
    const notes: string[] = [];
    for (const [label, name, dir] of datasets) {
      for (const r of await benchDataset(work, name, dir)) {
        lines.push(
          `| ${label} | ${r.operation} | ${r.strata.toFixed(2)} | \`${r.reference}\` | ${r.ref.toFixed(2)} | ${(r.strata / r.ref).toFixed(2)} |`,
        );
        if (r.note) notes.push(`- ${label}: ${r.note}`);
      }
    }
    return `${[...lines, '', ...notes].join('\n')}\n`;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(await run());
}

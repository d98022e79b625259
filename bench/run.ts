// Runs every benchmark and prints their markdown tables (`npm run bench`). A bench module exports
// `run(): Promise<string>`; add new ones to the list below.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run as build } from './build.js';
import { run as containers } from './containers.js';
import { run as layers } from './layers.js';
import { run as registry } from './registry.js';
import { run as remote } from './remote.js';

const benches: Array<[string, () => Promise<string>]> = [
  ['layers', layers],
  ['registry', registry],
  ['remote', remote],
  ['containers', containers],
  ['build', build],
];

const wanted = process.argv.slice(2);
const resultsDir = new URL('../../bench/results/', import.meta.url).pathname;
for (const [name, bench] of benches) {
  if (wanted.length > 0 && !wanted.includes(name)) continue;
  const report = await bench();
  process.stdout.write(`${report}\n`);
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${name}.md`), report);
}

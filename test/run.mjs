// Runs the compiled test files (dist/test/**/*.test.js) with node:test. `node test/run.mjs unit security` runs only
// those folders. Integration and interop files run one at a time: they mount, start servers and use shared tools.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../dist/test/', import.meta.url).pathname;
const wanted = process.argv.slice(2);
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
})(root);
const selected = files.filter((f) => wanted.length === 0 || wanted.some((w) => f.slice(root.length).startsWith(w)));
if (selected.length === 0) {
  console.error(`no test files match ${wanted.join(' ')}`);
  process.exit(1);
}
const isolated = (f) => /\/(unit|security)\//.test(f);
let failed = false;
for (const [group, concurrency] of [
  [selected.filter(isolated), 2],
  [selected.filter((f) => !isolated(f)), 1],
]) {
  if (group.length === 0) continue;
  const r = spawnSync(
    process.execPath,
    ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...group],
    {
      stdio: 'inherit',
    },
  );
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);

// Bundles the CLI (after `tsc`) into dist/bin/strata.cjs, one CommonJS file, and copies the `strata` command
// (scripts/strata-loader.mjs) to dist/bin/strata.mjs, which runs the bundle through V8's code cache. Node's ES module
// loader spent most of a command's start-up resolving and reading a few hundred small files (one bundle cut
// `strata --version` from 0.5 to 0.2 s), and compiling the bundle most of the rest (the code cache cuts it to about
// 0.12 s; Node 20 keeps no code cache for ES modules, hence CommonJS). The registry client and server are imported
// lazily, so their code is in the file but runs only for the commands that use them.
// Every file is written next to its place and renamed over it, so a strata process starting meanwhile (a container's
// monitor, a test) reads the old bundle or the new one, never half of one. @napi-rs/xattr stays external: it loads a
// native addon from node_modules.
import { chmodSync, copyFileSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { build } from 'esbuild';

const out = 'dist/bin';
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: ['dist/src/cli/main.js'],
  outfile: join(out, 'strata.cjs'),
  write: false,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['@napi-rs/xattr'],
  sourcemap: 'linked',
  legalComments: 'linked',
  // Whitespace and syntax only: names stay readable in stack traces.
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  // index.ts falls back to process.argv[1] where import.meta.url is empty (this bundle).
  logOverride: { 'empty-import-meta': 'silent' },
  logLevel: 'warning',
});
const keep = new Set(['strata.mjs', 'strata.cjs.cache']);
for (const f of result.outputFiles) {
  const tmp = `${f.path}.${process.pid}.tmp`;
  writeFileSync(tmp, f.contents);
  renameSync(tmp, f.path);
  keep.add(basename(f.path));
}
const loaderTmp = join(out, `strata.mjs.${process.pid}.tmp`);
copyFileSync('scripts/strata-loader.mjs', loaderTmp);
chmodSync(loaderTmp, 0o755);
renameSync(loaderTmp, join(out, 'strata.mjs'));
// Left by older builds (ES module chunks); the code cache of an older bundle is rejected by V8 and rewritten.
for (const name of readdirSync(out))
  if (!keep.has(name) && !name.endsWith('.tmp')) rmSync(join(out, name), { force: true });

// Bundles the CLI (after `tsc`) into dist/bin/: one entry file plus lazily loaded chunks (the registry client and
// server are only loaded by the commands that use them). Node's ES module loader spends most of a command's start-up
// resolving and reading a few hundred small files; one bundle cuts `strata --version` to about a third.
// @napi-rs/xattr stays external: it loads a native addon from node_modules.
import { build } from 'esbuild';

await build({
  entryPoints: { strata: 'dist/src/cli/main.js' },
  outdir: 'dist/bin',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['@napi-rs/xattr'],
  // CommonJS dependencies bundled into an ES module still call require() for Node's built-ins.
  banner: { js: "import { createRequire as __strataRequire } from 'node:module'; const require = __strataRequire(import.meta.url);" },
  sourcemap: 'linked',
  legalComments: 'linked',
  // Whitespace and syntax only: names stay readable in stack traces.
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  logLevel: 'warning',
});

#!/bin/sh
//usr/bin/true; [ -n "$NODE_EXTRA_CA_CERTS" ] && { STRATA_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS; export STRATA_EXTRA_CA_CERTS; unset NODE_EXTRA_CA_CERTS; }; exec node "$0" "$@"
// The `strata` command. The line above is for sh, which runs this file when it is executed (`strata ...`): a command
// (//usr/bin/true) and a script; for Node it is a comment. Node reads the file named by NODE_EXTRA_CA_CERTS, and
// builds its root store with it, when it starts: 50 ms of every command's 120 (0.07 s instead of 0.02 s for
// `node -e 0` on a machine where it names the system bundle), paid by commands that never open a TLS connection. sh
// moves the variable to STRATA_EXTRA_CA_CERTS, which the registry client and ADD <url> read when they first connect
// over TLS (src/remote/agent.ts); `node strata.mjs` also works, and then Node loads the file itself.
//
// It runs the CommonJS bundle (strata.cjs, next to this file) through V8's code cache, kept in
// strata.cjs.cache beside it. Node 20 caches no compiled code for ES modules, and compiling the bundle was a third of
// a command's start-up; with the cache a command starts in about two thirds of the time. The cache is written once
// (after the first command, so it holds the functions that command compiled) and again whenever V8 rejects it (another
// Node version or flags); when the directory is not writable, commands just run without it.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, Script } from 'node:vm';

const dir = dirname(fileURLToPath(import.meta.url));
const file = join(dir, 'strata.cjs');
const cacheFile = `${file}.cache`;
let cachedData;
try {
  cachedData = readFileSync(cacheFile);
} catch {
  cachedData = undefined;
}
// (a #! line is kept as a comment: the wrapper makes it the middle of a line)
const source = readFileSync(file, 'utf8').replace(/^#!/, '//');
// Dynamic import() in the bundle (lazily loaded modules) goes to Node's own loader.
const script = new Script(Module.wrap(source), {
  filename: file,
  cachedData,
  importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
});
if (cachedData === undefined || script.cachedDataRejected) {
  process.once('exit', () => {
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, script.createCachedData());
      renameSync(tmp, cacheFile);
    } catch {
      // a read-only install: no cache
    }
  });
}
const module = { exports: {} };
script.runInThisContext()(module.exports, createRequire(file), module, file, dir);

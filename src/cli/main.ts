#!/usr/bin/env node
import { CommanderError } from 'commander';
import { isStrataError } from '../index.js';
import { buildProgram } from './program.js';

/** Exit statuses: 0 success, 1 a command failed (as docker's image commands), 2 usage error. */
async function main(): Promise<void> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (isStrataError(err)) {
      if (!err.details?.['reported']) {
        process.stderr.write(`Error: ${err.message}\n`);
        if (err.hint) process.stderr.write(`Hint: ${err.hint}\n`);
      }
      if (process.env['STRATA_DEBUG'] && err.cause)
        process.stderr.write(`Cause: ${String((err.cause as Error).stack ?? err.cause)}\n`);
    } else if (err instanceof Error && 'syscall' in err) {
      // A system error (ENOENT on -i FILE, EACCES...): its message already names the call and the path.
      process.stderr.write(`Error: ${err.message}\n`);
    } else {
      process.stderr.write(`Error: ${(err as Error)?.stack ?? String(err)}\n`);
    }
    process.exitCode = 1;
  }
}

// A reader that went away (`strata history | head`) ends the output, as it ends docker's: not an error.
// Commands that must clean up first (a container run) install their own handler and are left to it.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (process.stdout.listenerCount('error') > 1) return;
  if (err.code === 'EPIPE') process.exit(Number(process.exitCode ?? 0));
  throw err;
});

// Not a top-level await: the CLI is also bundled as CommonJS (see scripts/bundle.mjs).
void main();

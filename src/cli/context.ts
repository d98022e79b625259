import { resolve } from 'node:path';
import type { Command } from 'commander';
import { defaultRoot, Strata } from '../index.js';

/** The opened root for a command, from the global --root option or $STRATA_ROOT. */
export async function openStrata(cmd: Command): Promise<Strata> {
  const given = cmd.optsWithGlobals()['root'] as string | undefined;
  const root = resolve(given ?? defaultRoot());
  // A detached container's monitor is this same CLI: the bundle (dist/bin/strata.mjs), or tsc's main.js.
  const script = process.argv[1];
  return Strata.open({
    root,
    ...(script ? { monitorCommand: [process.execPath, script, '--root', root, 'container', 'monitor'] } : {}),
  });
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

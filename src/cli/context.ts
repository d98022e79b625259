import type { Command } from 'commander';
import { Strata } from '../index.js';

/** The opened root for a command, from the global --root option or $STRATA_ROOT. */
export async function openStrata(cmd: Command): Promise<Strata> {
  const root = cmd.optsWithGlobals()['root'] as string | undefined;
  return Strata.open(root ? { root } : {});
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

import { problem } from './errors.js';
import { withSuggestion } from './text.js';

/** How a flag takes its value: `--name=value`, `--name` / `--name=true|false`, or repeatable `--name=value`. */
export type FlagType = 'string' | 'bool' | 'strings';

export interface ParsedFlags {
  string(name: string): string | undefined;
  bool(name: string): boolean;
  strings(name: string): string[];
}

/**
 * Check an instruction's flags against the ones it accepts, as BuildKit's BFlags does: unknown flags (with a
 * suggestion), a repeated single flag, a missing value and a non-boolean boolean are errors.
 */
export function parseFlags(raw: readonly string[], spec: Readonly<Record<string, FlagType>>): ParsedFlags {
  const strings = new Map<string, string>();
  const bools = new Map<string, boolean>();
  const lists = new Map<string, string[]>();
  const seen = new Set<string>();
  for (const arg of raw) {
    if (!arg.startsWith('--')) throw problem(`arg should start with -- : ${arg}`);
    const body = arg.slice(2);
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    const value = eq < 0 ? '' : body.slice(eq + 1);
    const type = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (type === undefined) {
      const known = Object.keys(spec);
      throw problem(
        withSuggestion(`unknown flag: ${name}`, name, known, true),
        known.length === 0
          ? 'this instruction takes no flags'
          : `this instruction accepts ${known.map((k) => `--${k}`).join(', ')}`,
      );
    }
    if (seen.has(name) && type !== 'strings') throw problem(`duplicate flag specified: ${name}`);
    seen.add(name);
    if (type === 'bool') {
      if (eq >= 0 && value === '') throw problem(`missing a value on flag: ${name}`);
      const v = value.toLowerCase();
      if (v === 'true' || v === '') bools.set(name, true);
      else if (v === 'false') bools.set(name, false);
      else throw problem(`expecting boolean value for flag ${name}, not: ${value}`);
    } else {
      if (eq < 0) throw problem(`missing a value on flag: ${name}`);
      if (type === 'string') strings.set(name, value);
      else lists.set(name, [...(lists.get(name) ?? []), value]);
    }
  }
  return {
    string: (name) => strings.get(name),
    bool: (name) => bools.get(name) ?? false,
    strings: (name) => lists.get(name) ?? [],
  };
}

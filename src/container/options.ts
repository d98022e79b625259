import { posix } from 'node:path';
import { StrataError } from '../errors/index.js';
import type { BindMount } from './types.js';

function invalid(flag: string, value: string, what: string): StrataError {
  return new StrataError('INVALID_ARGUMENT', `invalid argument "${value}" for "${flag}" flag: ${what}`, {
    hint: `see \`strata run --help\` for the format of ${flag}`,
  });
}

/** docker's RAMInBytes: "512m", "1g", "1.5G", "100k", "4096" (bytes); units are binary. */
export function parseMemory(value: string, flag = '--memory'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgtp]?)i?b?$/i.exec(value.trim());
  if (!m) throw invalid(flag, value, 'expected a size such as 512m or 1g');
  const unit = ({ '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 } as const)[
    m[2]!.toLowerCase() as '' | 'b' | 'k' | 'm' | 'g' | 't' | 'p'
  ];
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes > 0 && bytes < 6 * 1024 * 1024) {
    throw new StrataError('INVALID_ARGUMENT', `minimum memory limit allowed is 6MB (got ${value})`, {
      hint: 'give at least --memory 6m',
    });
  }
  return bytes;
}

export function parseCpus(value: string, flag = '--cpus'): number {
  const n = Number(value);
  if (!/^\d*\.?\d+$/.test(value.trim()) || !Number.isFinite(n) || n < 0) {
    throw invalid(flag, value, 'expected a number of CPUs such as 0.5 or 2');
  }
  return n;
}

export function parsePidsLimit(value: string, flag = '--pids-limit'): number {
  if (!/^-?\d+$/.test(value.trim())) throw invalid(flag, value, 'expected an integer (-1 or 0: no limit)');
  const n = Number(value);
  return n < 0 ? 0 : n;
}

/** -v SRC:DST[:ro|rw]; SRC must be an absolute host path (named volumes do not exist in strata). */
export function parseVolume(spec: string): BindMount {
  const parts = spec.split(':');
  if (parts.length < 2 || parts.length > 3) {
    throw new StrataError('INVALID_ARGUMENT', `invalid volume specification: "${spec}"`, {
      hint: 'give -v /host/path:/container/path[:ro]',
    });
  }
  const [source, destination, mode = 'rw'] = parts as [string, string, string?];
  if (!source.startsWith('/')) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `invalid volume specification: "${spec}": "${source}" is not an absolute path`,
      {
        hint: 'strata has no named volumes: give an absolute host directory or file, e.g. -v "$PWD/data:/data"',
      },
    );
  }
  if (!destination.startsWith('/')) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `invalid volume specification: "${spec}": the destination must be an absolute path`,
      {
        hint: 'give -v /host/path:/container/path[:ro]',
      },
    );
  }
  if (posix.normalize(destination) === '/') {
    throw new StrataError('INVALID_ARGUMENT', `invalid volume specification: "${spec}": destination can't be '/'`);
  }
  const opts = mode.split(',');
  if (!opts.every((o) => o === 'ro' || o === 'rw' || o === 'z' || o === 'Z')) {
    throw new StrataError('INVALID_ARGUMENT', `invalid volume specification: "${spec}": unknown mode "${mode}"`, {
      hint: 'the mode is ro or rw',
    });
  }
  const clean = (p: string) => posix.normalize(p).replace(/(.)\/+$/, '$1');
  return { source: clean(source), destination: clean(destination), readOnly: opts.includes('ro') };
}

/**
 * -e K=V / -e K (taken from `environ`, skipped when unset) and --env-file lines (K=V, K, comments and blank lines
 * ignored), as docker reads them.
 */
export function parseEnv(entries: readonly string[], environ: Record<string, string | undefined>): string[] {
  const out: string[] = [];
  for (const e of entries) {
    const eq = e.indexOf('=');
    const key = eq < 0 ? e : e.slice(0, eq);
    if (key === '' || /\s/.test(key)) {
      throw new StrataError('INVALID_ARGUMENT', `invalid environment variable: "${e}"`, { hint: 'give KEY=VALUE' });
    }
    if (eq >= 0) out.push(e);
    else if (environ[key] !== undefined) out.push(`${key}=${environ[key]}`);
  }
  return out;
}

export function parseEnvFile(text: string, file: string): string[] {
  const out: string[] = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) continue;
    const key = line.split('=')[0]!;
    if (/\s/.test(key)) {
      throw new StrataError('INVALID_ARGUMENT', `${file}:${i + 1}: variable '${key}' contains whitespaces`, {
        hint: 'each line of an env file is KEY=VALUE or KEY',
      });
    }
    out.push(line);
  }
  return out;
}

/** Merge KEY=VALUE lists: later entries replace earlier ones with the same key, order of first appearance kept. */
export function mergeEnv(...lists: readonly (readonly string[])[]): string[] {
  const map = new Map<string, string>();
  for (const list of lists) {
    for (const e of list) {
      const eq = e.indexOf('=');
      map.set(eq < 0 ? e : e.slice(0, eq), e);
    }
  }
  return [...map.values()];
}

export function validateSignal(sig: string): string {
  const s = sig.toUpperCase().replace(/^SIG/, '');
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n < 1 || n > 64) throw new StrataError('INVALID_ARGUMENT', `invalid signal: ${sig}`);
    return String(n);
  }
  if (
    !/^(HUP|INT|QUIT|ILL|TRAP|ABRT|BUS|FPE|KILL|USR1|SEGV|USR2|PIPE|ALRM|TERM|STKFLT|CHLD|CONT|STOP|TSTP|TTIN|TTOU|URG|XCPU|XFSZ|VTALRM|PROF|WINCH|IO|PWR|SYS|RTMIN(\+\d+)?|RTMAX(-\d+)?)$/.test(
      s,
    )
  ) {
    throw new StrataError('INVALID_ARGUMENT', `invalid signal: ${sig}`, {
      hint: 'give a name such as SIGTERM or a number',
    });
  }
  return `SIG${s}`;
}

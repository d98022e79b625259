import { StrataError } from '../errors/index.js';
import type { ContainerConfig } from '../oci/index.js';

const SUPPORTED = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR'];

function changeError(line: string, problem: string): StrataError {
  return new StrataError('INVALID_ARGUMENT', `invalid --change "${line}": ${problem}`, {
    hint: `--change takes one Dockerfile instruction: ${SUPPORTED.join(', ')}`,
  });
}

/** Split words the way a Dockerfile does for ENV/LABEL: quotes group, backslash escapes. */
function splitWords(s: string, line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw changeError(line, `unterminated ${quote} quote`);
  if (inWord) words.push(cur);
  return words;
}

/** KEY=VALUE pairs, or the legacy "KEY VALUE" form with a single pair. */
function pairs(rest: string, line: string): [string, string][] {
  const words = splitWords(rest, line);
  if (words.length === 0) throw changeError(line, 'needs at least one KEY=VALUE');
  if (!words[0]!.includes('=')) {
    if (words.length < 2) throw changeError(line, 'needs a value');
    const t = rest.trim();
    const sp = t.search(/\s/);
    return [[t.slice(0, sp), t.slice(sp).trim()]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw changeError(line, `"${w}" is not KEY=VALUE`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

/** JSON exec form when the argument is a JSON array of strings, else shell form through /bin/sh -c. */
function commandForm(rest: string, line: string): string[] {
  const t = rest.trim();
  if (t.startsWith('[')) {
    try {
      const v: unknown = JSON.parse(t);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
    } catch {
      // not JSON: docker falls back to the shell form
    }
  }
  if (t === '') throw changeError(line, 'needs a command');
  return ['/bin/sh', '-c', t];
}

/**
 * Apply `--change` instructions (as `docker import --change` / `docker commit --change` take them) to a container
 * config, returning a new config.
 */
export function applyChanges(base: ContainerConfig, changes: readonly string[]): ContainerConfig {
  const c: ContainerConfig = structuredClone(base);
  for (const line of changes) {
    const m = /^\s*([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(line);
    if (!m) throw changeError(line, 'expected an instruction such as CMD ["sh"]');
    const op = (m[1] as string).toUpperCase();
    const rest = m[2] ?? '';
    switch (op) {
      case 'CMD':
        c.Cmd = commandForm(rest, line);
        break;
      case 'ENTRYPOINT':
        c.Entrypoint = commandForm(rest, line);
        break;
      case 'ENV': {
        const env = [...(c.Env ?? [])];
        for (const [k, v] of pairs(rest, line)) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        c.Env = env;
        break;
      }
      case 'LABEL':
        c.Labels = { ...c.Labels, ...Object.fromEntries(pairs(rest, line)) };
        break;
      case 'EXPOSE': {
        const ports = { ...c.ExposedPorts };
        for (const p of splitWords(rest, line)) {
          if (!/^\d{1,5}(-\d{1,5})?(\/(tcp|udp|sctp))?$/i.test(p)) throw changeError(line, `"${p}" is not a port`);
          ports[p.includes('/') ? p.toLowerCase() : `${p}/tcp`] = {};
        }
        c.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const t = rest.trim();
        const vols = t.startsWith('[') ? commandForm(t, line) : splitWords(t, line);
        if (vols.length === 0 || vols[0] === '/bin/sh') throw changeError(line, 'needs a path');
        c.Volumes = { ...c.Volumes, ...Object.fromEntries(vols.map((v) => [v, {}])) };
        break;
      }
      case 'USER':
      case 'WORKDIR':
      case 'STOPSIGNAL': {
        const v = rest.trim();
        if (!v) throw changeError(line, `${op} needs a value`);
        if (op === 'USER') c.User = v;
        else if (op === 'WORKDIR')
          c.WorkingDir = v.startsWith('/') ? v : `${c.WorkingDir ?? '/'}/${v}`.replace(/\/+/g, '/');
        else c.StopSignal = v;
        break;
      }
      case 'ONBUILD':
        if (!rest.trim()) throw changeError(line, 'ONBUILD needs an instruction');
        c.OnBuild = [...(c.OnBuild ?? []), rest.trim()];
        break;
      default:
        throw changeError(line, `${op} is not supported here`);
    }
  }
  return c;
}

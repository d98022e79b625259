import { problem } from './errors.js';
import type { MountSpec, MountType } from './instructions.js';
import { goQuote, parseGoBool, withSuggestion } from './text.js';

/**
 * A `RUN --mount`, typed and with BuildKit's defaults filled in. Which fields apply depends on `type`:
 * - bind: target, source (default: the root of `from`), from (default: the build context), readOnly (default true).
 * - cache: target, id (default: the target as written), sharing (default shared), from, source, readOnly (default
 *   false), mode/uid/gid (defaults 0755, 0, 0).
 * - tmpfs: target, size (bytes; absent: no limit).
 * - secret: id (default: source, else the base name of target), target (default /run/secrets/<id>, none when only
 *   `env` is asked for), env, required, mode/uid/gid (defaults 0400, 0, 0).
 * - ssh: id (default "default"), target (absent: the builder picks /run/buildkit/ssh_agent.<n>), required,
 *   mode/uid/gid (defaults 0600, 0, 0).
 * A relative target is relative to the working directory, as in BuildKit; the build applies that.
 */
export interface Mount {
  readonly type: MountType;
  readonly target: string;
  readonly source?: string;
  readonly from?: string;
  readonly readOnly: boolean;
  readonly id?: string;
  readonly sharing?: 'shared' | 'private' | 'locked';
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly size?: number;
  readonly required?: boolean;
  readonly env?: string;
}

export const MOUNT_TYPES: readonly MountType[] = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'];
const MOUNT_KEYS = [
  'type',
  'from',
  'source',
  'target',
  'readonly',
  'id',
  'sharing',
  'required',
  'size',
  'mode',
  'uid',
  'gid',
  'src',
  'dst',
  'destination',
  'ro',
  'rw',
  'readwrite',
  'env',
];

/** One CSV record, as Go's encoding/csv reads it (quoted fields, "" for a quote inside one). */
export function parseCsvRecord(s: string): string[] {
  const fail = (col: number, what: string) =>
    problem(
      `failed to parse csv mounts: parse error on line 1, column ${col}: ${what}`,
      'write --mount=type=TYPE,key=value,...',
    );
  if (s === '') throw problem('failed to parse csv mounts: EOF', 'write --mount=type=TYPE,key=value,...');
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= s.length) throw fail(i + 1, 'extraneous or missing " in quoted-field');
        if (s[i] === '"') {
          if (s[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += s[i++];
      }
      if (i < s.length && s[i] !== ',') throw fail(i + 1, 'extraneous or missing " in quoted-field');
    } else {
      while (i < s.length && s[i] !== ',') {
        if (s[i] === '"') throw fail(i + 1, 'bare " in non-quoted-field');
        field += s[i++];
      }
    }
    fields.push(field);
    if (i >= s.length) return fields;
    i++; // the comma
  }
}

function cut(field: string): [string, string, boolean] {
  const eq = field.indexOf('=');
  return eq < 0 ? [field, '', false] : [field.slice(0, eq), field.slice(eq + 1), true];
}

function mountType(fields: string[]): MountType {
  let type: MountType = 'bind';
  for (const field of fields) {
    const [key, value, ok] = cut(field);
    if (!ok || key.toLowerCase() !== 'type') continue;
    const t = value.toLowerCase();
    if (!(MOUNT_TYPES as readonly string[]).includes(t)) {
      throw problem(
        withSuggestion(`unsupported mount type ${goQuote(value)}`, value, MOUNT_TYPES, true),
        `use one of ${MOUNT_TYPES.join(', ')}`,
      );
    }
    type = t as MountType;
  }
  return type;
}

/** The parse-time check of a --mount value (BuildKit defers the values, which may hold variables, to the stage). */
export function parseMountSpec(raw: string): MountSpec {
  const fields = parseCsvRecord(raw);
  const type = mountType(fields);
  let from: string | undefined;
  for (const field of fields) {
    const [k, value, ok] = cut(field);
    const key = k.toLowerCase();
    if (!ok) {
      flagOnlyKey(key, field, type);
      continue;
    }
    if (key === 'from') {
      const dollar = value.indexOf('$');
      if (dollar !== -1 && dollar !== value.length - 1) {
        throw problem(
          "'from' doesn't support variable expansion, define alias stage instead",
          'add `FROM <image> AS <name>` and use from=<name>',
        );
      }
      from = value;
    }
  }
  return from === undefined ? { raw, type } : { raw, type, from };
}

function flagOnlyKey(key: string, field: string, type: MountType): 'ro' | 'rw' | 'required' {
  if (key === 'readonly' || key === 'ro') return 'ro';
  if (key === 'readwrite' || key === 'rw') return 'rw';
  if (key === 'required') {
    if (type === 'secret' || type === 'ssh') return 'required';
    throw problem(`unexpected key 'required' for mount type '${type}'`);
  }
  throw problem(`invalid field '${field}' must be a key=value pair`);
}

function parseBoolValue(value: string): boolean {
  const b = parseGoBool(value);
  if (b === undefined) throw problem(`strconv.ParseBool: parsing ${goQuote(value)}: invalid syntax`);
  return b;
}

function parseUint(value: string, base: 8 | 10): number {
  const ok = base === 8 ? /^[0-7]+$/.test(value) : /^\d+$/.test(value);
  const n = ok ? Number.parseInt(value, base) : Number.NaN;
  if (!ok) throw problem(`strconv.ParseUint: parsing ${goQuote(value)}: invalid syntax`);
  if (n > 0xffffffff) throw problem(`strconv.ParseUint: parsing ${goQuote(value)}: value out of range`);
  return n;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** docker/go-units RAMInBytes: "64m", "1g", "512k", "1.5GiB" (binary multiples). */
export function parseRamSize(value: string): number {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(value);
  const n = m ? Number(m[1]) : Number.NaN;
  if (!m || Number.isNaN(n)) throw problem(`invalid size: '${value}'`);
  return Math.trunc(n * SIZE_UNITS[(m[2] ?? '').toLowerCase()]!);
}

const basename = (p: string) => {
  const parts = p.split('/').filter((x) => x !== '');
  return parts.length === 0 ? (p.startsWith('/') ? '/' : '.') : parts[parts.length - 1]!;
};

/**
 * Parse a --mount value fully, each value (not `type`) passed through `expand` first, as BuildKit does when it
 * dispatches the RUN. Throws StrataError INVALID_ARGUMENT worded as BuildKit.
 */
export function parseMount(raw: string, expand: (word: string) => string = (w) => w): Mount {
  const fields = parseCsvRecord(raw);
  const type = mountType(fields);
  let target = '';
  let source: string | undefined;
  let from: string | undefined;
  let readOnly: boolean | undefined;
  let id: string | undefined;
  let sharing: Mount['sharing'];
  let mode: number | undefined;
  let uid: number | undefined;
  let gid: number | undefined;
  let size: number | undefined;
  let required: boolean | undefined;
  let env: string | undefined;
  for (const field of fields) {
    const [k, rawValue, ok] = cut(field);
    const key = k.toLowerCase();
    if (!ok) {
      const which = flagOnlyKey(key, field, type);
      if (which === 'ro') readOnly = true;
      else if (which === 'rw') readOnly = false;
      else required = true;
      continue;
    }
    const value = key === 'type' ? rawValue : expand(rawValue);
    switch (key) {
      case 'type':
        break;
      case 'from':
        from = value;
        break;
      case 'source':
      case 'src':
        source = value;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        target = value;
        break;
      case 'readonly':
      case 'ro':
        readOnly = parseBoolValue(value);
        break;
      case 'readwrite':
      case 'rw':
        readOnly = !parseBoolValue(value);
        break;
      case 'required':
        if (type !== 'secret' && type !== 'ssh') throw problem(`unexpected key 'required' for mount type '${type}'`);
        required = parseBoolValue(value);
        break;
      case 'size':
        if (type !== 'tmpfs') throw problem(`unexpected key 'size' for mount type '${type}'`);
        size = parseRamSize(value);
        break;
      case 'id':
        id = value;
        break;
      case 'sharing':
        if (type !== 'cache') throw problem(`invalid cache sharing set for ${type} mount`);
        if (!['shared', 'private', 'locked'].includes(value.toLowerCase())) {
          throw problem(`unsupported sharing value ${goQuote(value)}`, 'use sharing=shared, private or locked');
        }
        sharing = value.toLowerCase() as Mount['sharing'];
        break;
      case 'mode':
        mode = parseUint(value, 8);
        break;
      case 'uid':
        uid = parseUint(value, 10);
        break;
      case 'gid':
        gid = parseUint(value, 10);
        break;
      case 'env':
        if (type !== 'secret') throw problem(`unexpected key 'env' for mount type '${type}'`);
        env = value;
        break;
      default:
        throw problem(withSuggestion(`unexpected key '${key}' in '${field}'`, key, MOUNT_KEYS, true));
    }
  }
  if (type !== 'cache' && type !== 'secret' && type !== 'ssh') {
    if (mode !== undefined) throw problem(`mode not allowed for ${goQuote(type)} type mounts`);
    if (uid !== undefined) throw problem(`uid not allowed for ${goQuote(type)} type mounts`);
    if (gid !== undefined) throw problem(`gid not allowed for ${goQuote(type)} type mounts`);
  }
  const opt = <K extends string, V>(k: K, v: V | undefined) => (v === undefined ? {} : ({ [k]: v } as Record<K, V>));
  switch (type) {
    case 'bind':
      return { type, target, ...opt('source', source), ...opt('from', from), readOnly: readOnly ?? true };
    case 'cache':
      return {
        type,
        target,
        ...opt('source', source),
        ...opt('from', from),
        readOnly: readOnly ?? false,
        id: id || target,
        sharing: sharing ?? 'shared',
        mode: mode ?? 0o755,
        uid: uid ?? 0,
        gid: gid ?? 0,
      };
    case 'tmpfs':
      return { type, target, readOnly: readOnly ?? false, ...opt('size', size) };
    case 'secret': {
      if (from !== undefined) throw problem('secret mount should not have a from');
      if (!source && !target && !id) throw problem('invalid secret mount. one of source, target required');
      if (source && id) throw problem("both source and id can't be set");
      const secretId = source || id || basename(target);
      return {
        type,
        target: target || (env === undefined ? `/run/secrets/${basename(secretId)}` : ''),
        readOnly: readOnly ?? true,
        id: secretId,
        ...opt('env', env),
        required: required ?? false,
        mode: mode ?? 0o400,
        uid: uid ?? 0,
        gid: gid ?? 0,
      };
    }
    case 'ssh':
      if (from !== undefined) throw problem('ssh mount should not have a from');
      if (source) throw problem('ssh does not support source');
      return {
        type,
        target,
        readOnly: readOnly ?? true,
        id: id || 'default',
        required: required ?? false,
        mode: mode ?? 0o600,
        uid: uid ?? 0,
        gid: gid ?? 0,
      };
  }
}

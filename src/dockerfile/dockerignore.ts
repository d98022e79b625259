import { StrataError } from '../errors/index.js';
import { goQuote, trimSpace } from './text.js';

// .dockerignore as docker's CLI reads it (cli/build: ignorefile.ReadAll) and moby/patternmatcher matches it:
// patterns are cleaned paths relative to the context root, `!` re-includes, the last matching pattern wins, and a
// pattern that matches a parent directory matches everything under it.

/** One cleaned pattern. */
export interface IgnorePattern {
  /** The cleaned pattern, without its `!`. */
  readonly pattern: string;
  /** A `!` pattern: re-includes what earlier patterns excluded. */
  readonly exclusion: boolean;
}

export interface IgnoreMatcher {
  readonly patterns: readonly IgnorePattern[];
  /** Whether any `!` pattern exists. */
  readonly hasExclusions: boolean;
  /**
   * Is this context path (relative, `/`-separated, e.g. `src/app.ts`) excluded? A pattern matching the path or any
   * of its parent directories counts; the last pattern that matches decides.
   */
  matches(path: string): boolean;
  /**
   * May a context walk skip directory `dir` without looking inside? True only when `dir` is excluded and no `!`
   * pattern could re-include it or anything under it.
   */
  canSkipDir(dir: string): boolean;
}

function badPattern(pattern: string, why = 'syntax error in pattern'): StrataError {
  return new StrataError('INVALID_ARGUMENT', `invalid .dockerignore pattern ${goQuote(pattern)}: ${why}`, {
    hint: 'escape a literal [ or \\ with \\; character classes look like [a-z]',
  });
}

/** Go's path.Clean: collapse slashes, drop `.` elements, resolve `..` where it can; '' becomes '.'. */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(part);
  }
  const joined = out.join('/');
  return rooted ? `/${joined}` : joined === '' ? '.' : joined;
}

/**
 * Read a .dockerignore into patterns as docker's CLI does: a leading BOM dropped, lines starting with `#` skipped
 * (only in the first column), blanks skipped, each pattern trimmed and cleaned, a leading `/` removed.
 */
export function readDockerignore(text: string): string[] {
  const out: string[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (i === 0 && line.startsWith('\uFEFF')) line = line.slice(1);
    if (line.startsWith('#')) return;
    let pattern = trimSpace(line);
    if (pattern === '') return;
    const invert = pattern.startsWith('!');
    if (invert) pattern = trimSpace(pattern.slice(1));
    if (pattern.length > 0) {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    }
    out.push(invert ? `!${pattern}` : pattern);
  });
  return out;
}

// Characters a unicode-mode regular expression needs escaped (and, inside a class, also `-`).
const REGEX_SYNTAX = new Set(['^', '$', '\\', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '/']);
const escapeChar = (ch: string, inClass = false) => (REGEX_SYNTAX.has(ch) || (inClass && ch === '-') ? `\\${ch}` : ch);

/**
 * Parse a character class at `chars[start]` (the `[`) as Go's filepath.Match validates it; returns the JavaScript
 * class and the index after the closing `]`. Throws on a malformed class.
 */
function parseClass(chars: string[], start: number, pattern: string): [string, number] {
  let i = start + 1;
  let out = '[';
  if (chars[i] === '^') {
    out += '^';
    i++;
  }
  const esc = (): string => {
    const c = chars[i];
    if (c === undefined || c === '-' || c === ']') throw badPattern(pattern);
    if (c === '\\') {
      i++;
      if (chars[i] === undefined) throw badPattern(pattern);
    }
    const r = chars[i++]!;
    if (chars[i] === undefined) throw badPattern(pattern);
    return r;
  };
  let ranges = 0;
  for (;;) {
    if (chars[i] === ']' && ranges > 0) return [`${out}]`, i + 1];
    const lo = esc();
    let hi = lo;
    if (chars[i] === '-') {
      i++;
      hi = esc();
      if (hi.codePointAt(0)! < lo.codePointAt(0)!) throw badPattern(pattern, 'invalid character class range');
    }
    out += lo === hi ? escapeChar(lo, true) : `${escapeChar(lo, true)}-${escapeChar(hi, true)}`;
    ranges++;
  }
}

type MatchType = 'exact' | 'prefix' | 'suffix' | 'regexp';

class Pattern implements IgnorePattern {
  readonly matchType: MatchType;
  readonly regexp: RegExp | undefined;

  constructor(
    readonly pattern: string,
    readonly exclusion: boolean,
  ) {
    // patternmatcher's compile: pick the cheapest way to match, and build a regular expression when needed.
    const chars = Array.from(pattern);
    let re = '^';
    let type: MatchType = 'exact';
    for (let i = 0; i < chars.length; i++) {
      const ch = chars[i]!;
      if (ch === '*') {
        if (chars[i + 1] === '*') {
          const first = i === 0;
          i++;
          if (chars[i + 1] === '/') i++; // "**/" is "**"
          if (i + 1 >= chars.length) {
            // "**" at the end accepts everything below, as .gitignore does
            if (type === 'exact') type = 'prefix';
            else {
              re += '.*';
              type = 'regexp';
            }
          } else {
            re += '(.*/)?';
            type = 'regexp';
          }
          if (first) type = 'suffix';
        } else {
          re += '[^/]*';
          type = 'regexp';
        }
      } else if (ch === '?') {
        re += '[^/]';
        type = 'regexp';
      } else if (ch === '\\') {
        const next = chars[i + 1];
        if (next === undefined) throw badPattern(pattern);
        re += escapeChar(next);
        i++;
        type = 'regexp';
      } else if (ch === '[') {
        const [cls, end] = parseClass(chars, i, pattern);
        re += cls;
        i = end - 1;
        type = 'regexp';
      } else if (ch === ']') {
        re += '\\]';
        type = 'regexp';
      } else {
        re += escapeChar(ch);
      }
    }
    this.matchType = type;
    this.regexp = type === 'regexp' ? new RegExp(`${re}$`, 'u') : undefined;
  }

  match(path: string): boolean {
    switch (this.matchType) {
      case 'exact':
        return path === this.pattern;
      case 'prefix':
        return path.startsWith(this.pattern.slice(0, -2));
      case 'suffix': {
        const suffix = this.pattern.slice(2);
        if (path.endsWith(suffix)) return true;
        return suffix.startsWith('/') && path === suffix.slice(1);
      }
      case 'regexp':
        return this.regexp!.test(path);
    }
  }

  /** Could this pattern match `dir`, an ancestor of it, or something below it? Conservative: true when unsure. */
  mayReach(dirParts: string[]): boolean {
    const parts = this.pattern.split('/');
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i >= dirParts.length) return true; // the rest of the pattern may match below dir
      if (part.includes('**')) return true;
      if (!componentMatches(part, dirParts[i]!)) return false;
    }
    return true; // it matches dir or one of its parents, which re-includes what is below
  }
}

function componentMatches(part: string, name: string): boolean {
  try {
    return new Pattern(part, false).match(name);
  } catch {
    return true;
  }
}

/**
 * Build a matcher from .dockerignore text (see readDockerignore) or from patterns already read. Throws StrataError
 * INVALID_ARGUMENT for a malformed pattern or a lone `!`.
 */
export function parseDockerignore(input: string | readonly string[]): IgnoreMatcher {
  const lines = typeof input === 'string' ? readDockerignore(input) : input;
  const patterns: Pattern[] = [];
  for (const line of lines) {
    let p = trimSpace(line);
    if (p === '') continue;
    p = cleanPath(p);
    let exclusion = false;
    if (p.startsWith('!')) {
      if (p.length === 1)
        throw new StrataError('INVALID_ARGUMENT', 'illegal exclusion pattern: "!"', {
          hint: 'write !<pattern> to re-include paths',
        });
      exclusion = true;
      p = p.slice(1);
    }
    patterns.push(new Pattern(p, exclusion));
  }
  const hasExclusions = patterns.some((p) => p.exclusion);

  const matches = (path: string): boolean => {
    const file = cleanPath(path);
    const slash = file.lastIndexOf('/');
    const parentDirs = slash < 0 ? [] : file.slice(0, slash).split('/');
    let matched = false;
    for (const pattern of patterns) {
      // an exclusion only matters once something matched, an inclusion only until then
      if (pattern.exclusion !== matched) continue;
      let match = pattern.match(file);
      for (let i = 0; !match && i < parentDirs.length; i++) match = pattern.match(parentDirs.slice(0, i + 1).join('/'));
      if (match) matched = !pattern.exclusion;
    }
    return matched;
  };

  return {
    patterns,
    hasExclusions,
    matches,
    canSkipDir(dir: string): boolean {
      if (!matches(dir)) return false;
      if (!hasExclusions) return true;
      const dirParts = cleanPath(dir).split('/');
      return !patterns.some((p) => p.exclusion && p.mayReach(dirParts));
    },
  };
}

/**
 * The ignore files that may apply to a build, in precedence order (BuildKit reads the first that exists):
 * `<Dockerfile path>.dockerignore` next to the Dockerfile, then `.dockerignore` at the context root. Paths are
 * relative to the context, `/`-separated.
 *
 *   ignoreFileCandidates('docker/app.Dockerfile')   // ['docker/app.Dockerfile.dockerignore', '.dockerignore']
 */
export function ignoreFileCandidates(dockerfilePath = 'Dockerfile'): string[] {
  let p = cleanPath(dockerfilePath.replaceAll('\\', '/'));
  if (p.startsWith('/')) p = p.slice(1);
  const own = `${p}.dockerignore`;
  return own === '.dockerignore' ? [own] : [own, '.dockerignore'];
}

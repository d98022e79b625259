import { StrataError } from '../errors/index.js';
import { problem } from './errors.js';
import { goQuote, isSpace } from './text.js';

// Word expansion as BuildKit's frontend/dockerfile/shell lexer does it: not a shell, but the subset of POSIX word
// rules the Dockerfile reference documents ($v, ${v}, ${v:-w} ... ${v/p/r}, quotes, the escape token), plus the
// lexer modes the parser itself uses (raw quotes and escapes to find heredoc words, unset variables kept).

/** The Dockerfile escape token: `\` by default, or a backtick after `# escape=\``. */
export type EscapeToken = '\\' | '`';

/** How a variable name resolves: its value, or undefined when it is not set (set-but-empty is ''). */
export type VariableLookup = (name: string) => string | undefined;

export interface ExpandOptions {
  /** The escape token (default `\`). */
  escape?: EscapeToken;
  /** Keep quote characters in the result (the parser's heredoc detection). */
  rawQuotes?: boolean;
  /** Keep escape tokens in the result (the parser's heredoc detection). */
  rawEscapes?: boolean;
  /** Treat quotes as ordinary characters (expanding COPY/ADD heredoc bodies). */
  skipProcessQuotes?: boolean;
  /** Leave references to unset variables as written instead of expanding them to ''. */
  skipUnsetEnv?: boolean;
}

export interface ExpandResult {
  value: string;
  /** Names that were looked up and set. */
  matched: Set<string>;
  /** Names that were looked up without a default (`$v`, `${v}`, `${v#p}` ...) and were not set. */
  unmatched: Set<string>;
}

export interface ExpandWordsResult {
  words: string[];
  matched: Set<string>;
  unmatched: Set<string>;
}

/** Accumulates the word-split result next to the plain one, as BuildKit's wordsStruct does. */
class Words {
  word = '';
  words: string[] = [];
  inWord = false;

  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.inWord && this.word.length !== 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else {
      this.addRawChar(ch);
    }
  }
  addRawChar(ch: string): void {
    this.word += ch;
    this.inWord = true;
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }
  addRawString(s: string): void {
    this.word += s;
    this.inWord = true;
  }
  getWords(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

function isLetterOrDigit(ch: string): boolean {
  return /^[\p{L}\p{Nd}]$/u.test(ch);
}

function isDigit(ch: string | undefined): boolean {
  return ch !== undefined && /^\p{Nd}$/u.test(ch);
}

const SPECIAL_PARAMS = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);

class ShellWord {
  private pos = 0;
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();
  private rawEscapes: boolean;
  private readonly escape: string;

  constructor(
    private readonly chars: string[],
    private readonly lookup: VariableLookup,
    private readonly opts: ExpandOptions,
  ) {
    this.rawEscapes = opts.rawEscapes ?? false;
    this.escape = opts.escape ?? '\\';
  }

  private peek(): string | undefined {
    return this.chars[this.pos];
  }
  private next(): string | undefined {
    const ch = this.chars[this.pos];
    if (ch !== undefined) this.pos++;
    return ch;
  }

  process(source: string): [string, string[]] {
    try {
      return this.processStopOn(undefined, this.rawEscapes);
    } catch (err) {
      if (err instanceof StrataError) throw problem(`failed to process ${goQuote(source)}: ${err.message}`, err.hint);
      throw err;
    }
  }

  /** Read up to `stop` (consumed) or the end; the result and its word split. */
  private processStopOn(stop: string | undefined, rawEscapes: boolean): [string, string[]] {
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      let result = '';
      const words = new Words();
      while (this.peek() !== undefined) {
        const ch = this.peek()!;
        if (stop !== undefined && ch === stop) {
          this.next();
          return [result, words.getWords()];
        }
        if (ch === '$') {
          const tmp = this.processDollar();
          result += tmp;
          words.addString(tmp);
        } else if (!this.opts.skipProcessQuotes && (ch === "'" || ch === '"')) {
          const tmp = ch === "'" ? this.processSingleQuote() : this.processDoubleQuote();
          result += tmp;
          words.addRawString(tmp);
        } else {
          let c = this.next()!;
          if (c === this.escape) {
            if (this.rawEscapes) {
              words.addRawChar(c);
              result += c;
            }
            const escaped = this.next();
            if (escaped === undefined) break; // an escape at the very end is dropped
            c = escaped;
            words.addRawChar(c);
          } else {
            words.addChar(c);
          }
          result += c;
        }
      }
      if (stop !== undefined) throw problem(`unexpected end of statement while looking for matching ${stop}`);
      return [result, words.getWords()];
    } finally {
      this.rawEscapes = saved;
    }
  }

  private processSingleQuote(): string {
    // Everything up to the next ' is literal; a ' cannot be escaped inside.
    let result = '';
    const open = this.next()!;
    if (this.opts.rawQuotes) result += open;
    for (;;) {
      const ch = this.next();
      if (ch === undefined) throw problem('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") {
        if (this.opts.rawQuotes) result += ch;
        return result;
      }
      result += ch;
    }
  }

  private processDoubleQuote(): string {
    // Literal except $ (expanded) and the escape token, which escapes only " $ and itself.
    let result = '';
    const open = this.next()!;
    if (this.opts.rawQuotes) result += open;
    for (;;) {
      const peek = this.peek();
      if (peek === undefined) throw problem('unexpected end of statement while looking for matching double-quote');
      if (peek === '"') {
        this.next();
        if (this.opts.rawQuotes) result += peek;
        return result;
      }
      if (peek === '$') {
        result += this.processDollar();
        continue;
      }
      let ch = this.next()!;
      if (ch === this.escape) {
        if (this.rawEscapes) result += ch;
        const after = this.peek();
        if (after === undefined) continue; // an escape at the end of the word is ignored
        if (after === '"' || after === '$' || after === this.escape) ch = this.next()!;
      }
      result += ch;
    }
  }

  private getEnv(name: string, guarded: boolean): [string, boolean] {
    const v = this.lookup(name);
    if (v !== undefined) {
      this.matched.add(name);
      return [v, true];
    }
    if (!guarded) this.unmatched.add(name);
    return ['', false];
  }

  private processName(): string {
    let name = '';
    while (this.peek() !== undefined) {
      const ch = this.peek()!;
      if (name.length === 0 && isDigit(ch)) {
        while (isDigit(this.peek())) name += this.next()!;
        return name;
      }
      if (name.length === 0 && SPECIAL_PARAMS.has(ch)) return this.next()!;
      if (!isLetterOrDigit(ch) && ch !== '_') break;
      name += this.next()!;
    }
    return name;
  }

  private processDollar(): string {
    this.next(); // the $
    if (this.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      const [value, set] = this.getEnv(name, false);
      if (!set && this.opts.skipUnsetEnv) return `$${name}`;
      return value;
    }
    this.next(); // the {
    const first = this.peek();
    if (first === undefined) throw problem("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw problem('syntax error: bad substitution');
    const name = this.processName();
    let ch = this.next();
    if (ch === undefined) throw problem("syntax error: missing '}'");
    let chs: string = ch;
    if (ch === '}') {
      const [value, set] = this.getEnv(name, false);
      if (!set && this.opts.skipUnsetEnv) return `\${${name}}`;
      return value;
    }
    if (ch === '/') return this.processReplace(name);
    let nullIsUnset = false;
    if (ch === ':') {
      nullIsUnset = true;
      ch = this.next();
      chs += ch ?? '\uFFFD';
    } else if (ch !== '+' && ch !== '-' && ch !== '?' && ch !== '#' && ch !== '%') {
      throw problem(`unsupported modifier (${chs}) in substitution`);
    }
    const trims = ch === '#' || ch === '%';
    if (nullIsUnset && trims) throw problem(`unsupported modifier (${chs}) in substitution`);
    let word: string;
    try {
      [word] = this.processStopOn('}', trims);
    } catch (err) {
      if (this.peek() === undefined) throw problem("syntax error: missing '}'");
      throw err;
    }
    const [value, set] = this.getEnv(name, ch === '-' || ch === '+' || ch === '?');
    if (this.opts.skipUnsetEnv && !set) return `\${${name}${chs}${word}}`;
    switch (ch) {
      case '-':
        return !set || (nullIsUnset && value === '') ? word : value;
      case '+':
        return !set || (nullIsUnset && value === '') ? '' : word;
      case '?':
        if (!set) throw problem(`${name}: ${word !== '' ? word : 'is not allowed to be unset'}`);
        if (nullIsUnset && value === '') throw problem(`${name}: ${word !== '' ? word : 'is not allowed to be empty'}`);
        return value;
      case '#':
      case '%': {
        // # and % remove the shortest match, ## and %% the longest
        const greedy = word.startsWith(ch);
        const pattern = greedy ? word.slice(1) : word;
        return ch === '%' ? trimSuffix(pattern, value, greedy) : trimPrefix(pattern, value, greedy);
      }
      default:
        throw problem(`unsupported modifier (${chs}) in substitution`);
    }
  }

  private processReplace(name: string): string {
    const all = this.peek() === '/';
    if (all) this.next();
    let pattern: string;
    let replacement: string;
    try {
      [pattern] = this.processStopOn('/', true);
    } catch (err) {
      if (this.peek() === undefined) throw problem("syntax error: missing '/' in $" + '{}');
      throw err;
    }
    try {
      [replacement] = this.processStopOn('}', true);
    } catch (err) {
      if (this.peek() === undefined) throw problem("syntax error: missing '}'");
      throw err;
    }
    const [value, set] = this.getEnv(name, false);
    if (this.opts.skipUnsetEnv && !set) return `\${${name}/${pattern}/${replacement}}`;
    const re = shellPatternToRegExp(pattern, true, false, all);
    return value.replace(re, () => replacement);
  }
}

/**
 * A shell pattern (`*`, `?`, `\` escapes) as a regular expression: `*` is lazy unless `greedy`, `anchored` pins it
 * to the start. Other regular-expression characters are literal.
 */
function shellPatternToRegExp(pattern: string, greedy: boolean, anchored: boolean, global = false): RegExp {
  const chars = Array.from(pattern);
  let out = anchored ? '^' : '';
  for (let i = 0; i < chars.length; i++) {
    const tok = chars[i]!;
    if (tok === '*') out += greedy ? '.*' : '.*?';
    else if (tok === '?') out += '.';
    else if (tok === '\\') {
      // "\}" inside ${} only protected the brace; it is not part of the pattern
      if (chars[i + 1] === '}') continue;
      const escaped = chars[++i];
      if (escaped !== '*' && escaped !== '?' && escaped !== '\\') {
        throw problem(`invalid pattern (${pattern}) in substitution: invalid escape '\\${escaped ?? ''}'`);
      }
      out += `\\${escaped}`;
    } else if ('[]{}.+()|^$/'.includes(tok)) out += `\\${tok}`;
    else out += tok;
  }
  return new RegExp(out, global ? 'gu' : 'u');
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const m = shellPatternToRegExp(pattern, greedy, true).exec(value);
  return m ? value.slice(m.index + m[0].length) : value;
}

/** Reverse a pattern keeping each escape before the character it escapes (a\*b -> b\*a). */
function reversePattern(pattern: string): string {
  const chars = Array.from(pattern);
  const out: string[] = new Array(chars.length);
  const last = chars.length - 1;
  for (let i = 0; i <= last; ) {
    const tok = chars[i]!;
    const at = last - i;
    if (tok === '\\' && i !== last) {
      out[at - 1] = tok;
      out[at] = chars[i + 1]!;
      i += 2;
    } else {
      out[at] = tok;
      i++;
    }
  }
  return out.join('');
}

const reverse = (s: string) => Array.from(s).reverse().join('');

function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  // Regular expressions find leftmost matches; reversing both turns "shortest suffix" into "shortest prefix".
  return reverse(trimPrefix(reversePattern(pattern), reverse(value), greedy));
}

function run(word: string, lookup: VariableLookup, opts: ExpandOptions): [string, string[], ShellWord] {
  const sw = new ShellWord(Array.from(word), lookup, opts);
  const [value, words] = sw.process(word);
  return [value, words, sw];
}

/**
 * Expand one word (quotes removed, variables substituted) as BuildKit's ProcessWord does. Throws StrataError
 * INVALID_ARGUMENT (`failed to process "${x:?}": x: is not allowed to be unset`) on a syntax error or a `?` modifier.
 *
 *   expandWord('${GREETING:-hi} "$USER"', lookupFrom({ USER: 'root' })).value   // hi root
 */
export function expandWord(word: string, lookup: VariableLookup, opts: ExpandOptions = {}): ExpandResult {
  const [value, , sw] = run(word, lookup, opts);
  return { value, matched: sw.matched, unmatched: sw.unmatched };
}

/**
 * Expand and split into words as BuildKit's ProcessWords does: unquoted whitespace and whitespace that comes from a
 * variable's value separate words; quoted whitespace does not; empty words are dropped.
 */
export function expandWords(word: string, lookup: VariableLookup, opts: ExpandOptions = {}): ExpandWordsResult {
  const [, words, sw] = run(word, lookup, opts);
  return { words, matched: sw.matched, unmatched: sw.unmatched };
}

/** A lookup over a record, a map or `KEY=VALUE` entries (the last entry for a key wins). */
export function lookupFrom(
  vars: Readonly<Record<string, string>> | ReadonlyMap<string, string> | readonly string[],
): VariableLookup {
  if (Array.isArray(vars)) {
    const map = new Map<string, string>();
    for (const entry of vars as readonly string[]) {
      const eq = entry.indexOf('=');
      if (eq < 0) map.set(entry, '');
      else map.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
    return (name) => map.get(name);
  }
  if (vars instanceof Map) return (name) => vars.get(name);
  const record = vars as Readonly<Record<string, string>>;
  return (name) => (Object.hasOwn(record, name) ? record[name] : undefined);
}

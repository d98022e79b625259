import { DockerfileSyntaxError, located, problem, type SourceLocation } from './errors.js';
import { chompHeredocContent, type Heredoc, heredocsFromLine } from './heredoc.js';
import type { EscapeToken } from './shell-lex.js';
import { goQuote, isSpace, parseGoBool, trimLeftSpace, trimSpace } from './text.js';

// Stage 1 of reading a Dockerfile, as BuildKit's frontend/dockerfile/parser does it: bytes to logical lines
// (directives, comments, continuations, heredoc bodies) and each line to a Node: keyword, flags, argument text.

/** `# check=skip=A,B;error=true`: which lint rules to skip, and whether warnings fail the build. */
export interface CheckDirective {
  readonly skip: readonly string[] | 'all';
  readonly error: boolean;
  readonly experimental: readonly string[];
}

/** Parser directives from the top of the file. */
export interface Directives {
  readonly syntax?: string;
  readonly escape: EscapeToken;
  readonly check?: CheckDirective;
}

/** One logical line: an instruction before its arguments are typed. */
export interface Node {
  /** The keyword as written (`copy`, `COPY`). */
  readonly keyword: string;
  /** The keyword in lower case. */
  readonly command: string;
  /** Leading `--name[=value]` words, quotes removed. */
  readonly flags: string[];
  /** The text after the keyword and flags, trimmed. */
  readonly rest: string;
  /** The logical line: continuation lines joined, comment lines inside dropped. */
  readonly original: string;
  readonly heredocs: Heredoc[];
  /** The raw heredoc bodies (before `<<-` tab stripping), which ONBUILD keeps in its expression. */
  readonly rawHeredocBodies: string[];
  readonly location: SourceLocation;
  /** For ONBUILD: the trigger instruction's node. */
  readonly child?: Node;
}

/** A finding of the lexical pass that becomes a lint warning. */
export interface LexicalNote {
  rule: 'NoEmptyContinuation';
  location: SourceLocation;
}

export interface ParsedLines {
  directives: Directives;
  nodes: Node[];
  notes: LexicalNote[];
}

const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const KNOWN_DIRECTIVES = new Set(['syntax', 'escape', 'check']);
const HEREDOC_COMMANDS = new Set(['run', 'copy', 'add']);

class DirectiveState {
  escape: EscapeToken = '\\';
  done = false;
  readonly values = new Map<string, string>();
  readonly lines = new Map<string, number>();

  /** Directives are read only until the first line that is not one (an instruction, a comment, a blank line). */
  parseLine(line: string, lineNo: number): void {
    if (this.done) return;
    const m = DIRECTIVE.exec(line);
    if (!m) {
      this.done = true;
      return;
    }
    const key = m[1]!.toLowerCase();
    if (!KNOWN_DIRECTIVES.has(key)) {
      this.done = true;
      return;
    }
    if (this.values.has(key)) throw problem(`only one ${key} parser directive can be used`);
    const value = m[2]!;
    if (key === 'escape') {
      if (value !== '\\' && value !== '`') throw problem(`invalid escape token '${value}' does not match \` or \\`);
      this.escape = value;
    }
    this.values.set(key, value);
    this.lines.set(key, lineNo);
  }
}

export function parseCheckDirective(value: string): CheckDirective {
  let skip: string[] | 'all' = [];
  let error = false;
  let experimental: string[] = [];
  for (const part of value.split(';')) {
    if (trimSpace(part) === '') continue;
    const eq = part.indexOf('=');
    if (eq < 0) throw problem(`invalid check option ${goQuote(part)}`);
    const key = trimSpace(part.slice(0, eq));
    const v = part.slice(eq + 1);
    const list = v
      .split(',')
      .map((s) => trimSpace(s))
      .filter((s) => s !== '');
    if (key === 'skip') skip = list.some((s) => s.toLowerCase() === 'all') ? 'all' : list;
    else if (key === 'experimental') experimental = list;
    else if (key === 'error') {
      const b = parseGoBool(trimSpace(v));
      if (b === undefined) throw problem(`failed to parse check option ${goQuote(part)}: invalid syntax`);
      error = b;
    } else throw problem(`invalid check option ${goQuote(key)}`);
  }
  return { skip, error, experimental };
}

const trimNewline = (s: string) => s.replace(/[\r\n]+$/, '');
const isComment = (line: string) => trimLeftSpace(trimNewline(line)).startsWith('#');

/** Split into lines that keep their newline, as BuildKit's scanner does (heredoc bodies need them). */
function splitLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) {
      if (start < text.length) lines.push(text.slice(start));
      return lines;
    }
    lines.push(text.slice(start, nl + 1));
    start = nl + 1;
  }
}

/**
 * Read the flags at the start of an instruction's arguments: words beginning `--`, with quotes removed and `\`
 * escaping the next character; `--` alone ends them. Returns the remaining text and the flags.
 */
export function extractBuilderFlags(line: string): [string, string[]] {
  const words: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= line.length; pos++) {
    let ch = pos < line.length ? line[pos]! : '';
    if (phase === 'spaces') {
      if (pos === line.length) break;
      if (isSpace(ch)) continue;
      if (ch !== '-' || line[pos + 1] !== '-') return [line.slice(pos), words];
      phase = 'word';
    }
    if (pos === line.length) {
      if (word !== '--' && (blankOK || word.length > 0)) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (word === '--') return [line.slice(pos), words];
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
        continue;
      }
      if (ch === '\\') {
        if (pos + 1 === line.length) continue;
        ch = line[++pos]!;
      }
      word += ch;
      continue;
    }
    // in a quote
    if (ch === quote) {
      phase = 'word';
      continue;
    }
    if (ch === '\\') {
      if (pos + 1 === line.length) {
        phase = 'word';
        continue;
      }
      ch = line[++pos]!;
    }
    word += ch;
  }
  return ['', words];
}

/** A JSON array of strings; 'not-strings' for an array holding anything else; undefined when not a JSON array. */
export function parseJsonArray(rest: string): string[] | 'not-strings' | undefined {
  const text = trimLeftSpace(rest);
  if (!text.startsWith('[')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  return value.every((v) => typeof v === 'string') ? (value as string[]) : 'not-strings';
}

interface LineParts {
  keyword: string;
  flags: string[];
  rest: string;
}

function splitCommand(line: string): LineParts {
  const trimmed = trimSpace(line);
  const m = /[\t\v\f\r ]+/.exec(trimmed);
  if (!m) return { keyword: trimmed, flags: [], rest: '' };
  const [rest, flags] = extractBuilderFlags(trimmed.slice(m.index + m[0].length));
  return { keyword: trimmed.slice(0, m.index), flags, rest: trimSpace(rest) };
}

/** Does this node (or, for ONBUILD, its trigger) take heredocs? RUN, COPY and ADD do, unless in JSON form. */
function canContainHeredoc(parts: LineParts): boolean {
  let p = parts;
  if (p.keyword.toLowerCase() === 'onbuild') p = splitCommand(p.rest);
  if (!HEREDOC_COMMANDS.has(p.keyword.toLowerCase())) return false;
  return !Array.isArray(parseJsonArray(p.rest));
}

/**
 * Bytes to nodes. Throws DockerfileSyntaxError for a repeated or invalid directive and an unterminated heredoc.
 */
export function parseLines(text: string, file: string): ParsedLines {
  const lines = splitLines(text);
  const d = new DirectiveState();
  const nodes: Node[] = [];
  const notes: LexicalNote[] = [];
  let i = 0;
  while (i < lines.length) {
    let first = lines[i]!;
    if (i === 0 && first.startsWith('\uFEFF')) first = first.slice(1);
    i++;
    const startLine = i;
    const at = (end: number): SourceLocation => ({ file, startLine, endLine: end });
    let token = trimLeftSpace(trimNewline(first));
    located(at(i), undefined, () => d.parseLine(token, i));
    if (isComment(token)) token = '';
    let [line, endOfLine] = trimContinuation(token, d.escape);
    if (endOfLine && line === '') continue;

    let emptyContinuation = false;
    while (!endOfLine && i < lines.length) {
      const raw = lines[i]!;
      i++;
      const next = trimNewline(raw);
      located(at(i), undefined, () => d.parseLine(next, i));
      if (isComment(raw)) continue; // comment lines inside a continuation are dropped
      if (trimLeftSpace(next) === '') {
        emptyContinuation = true;
        continue;
      }
      let part: string;
      [part, endOfLine] = trimContinuation(next, d.escape);
      line += part;
    }
    if (emptyContinuation) notes.push({ rule: 'NoEmptyContinuation', location: at(i) });

    const parts = splitCommand(line);
    const heredocs: Heredoc[] = [];
    const rawBodies: string[] = [];
    if (canContainHeredoc(parts) && line.includes('<<')) {
      const headers = located(at(i), parts.keyword.toUpperCase(), () => heredocsFromLine(line));
      for (const h of headers) {
        let body = '';
        let terminated = false;
        while (i < lines.length) {
          const raw = lines[i]!;
          i++;
          let candidate = trimNewline(raw);
          if (h.chomp) candidate = candidate.replace(/^\t+/, '');
          if (candidate === h.name) {
            terminated = true;
            break;
          }
          body += raw;
        }
        if (!terminated) {
          throw new DockerfileSyntaxError(`unterminated heredoc ${h.name}`, at(i), {
            instruction: parts.keyword.toUpperCase(),
            hint: `end the here-document with a line holding only ${h.name}`,
          });
        }
        rawBodies.push(body);
        heredocs.push({ ...h, content: h.chomp ? chompHeredocContent(body) : body });
      }
    }
    nodes.push(makeNode(parts, line, heredocs, rawBodies, at(i)));
  }
  const check = d.values.get('check');
  const directives: Directives = {
    escape: d.escape,
    ...(d.values.has('syntax') ? { syntax: d.values.get('syntax')! } : {}),
    ...(check === undefined
      ? {}
      : {
          check: located({ file, startLine: d.lines.get('check')!, endLine: d.lines.get('check')! }, undefined, () =>
            parseCheckDirective(check),
          ),
        }),
  };
  return { directives, nodes, notes };
}

function makeNode(
  parts: LineParts,
  original: string,
  heredocs: Heredoc[],
  rawHeredocBodies: string[],
  location: SourceLocation,
): Node {
  const command = parts.keyword.toLowerCase();
  const base = {
    keyword: parts.keyword,
    command,
    flags: parts.flags,
    rest: parts.rest,
    original,
    location,
  };
  if (command === 'onbuild' && parts.rest !== '') {
    const childParts = splitCommand(parts.rest);
    const child = makeNode(childParts, parts.rest, heredocs, rawHeredocBodies, location);
    return { ...base, heredocs: [], rawHeredocBodies, child };
  }
  return { ...base, heredocs, rawHeredocBodies };
}

/** Remove a trailing escape token (and the blanks after it); false when the line continues. */
function trimContinuation(line: string, escapeToken: EscapeToken): [string, boolean] {
  const m = (escapeToken === '`' ? /`[ \t]*$/ : /\\[ \t]*$/).exec(line);
  return m ? [line.slice(0, m.index), false] : [line, true];
}

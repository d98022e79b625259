import { type EscapeToken, expandWords } from './shell-lex.js';

/** A here-document attached to RUN, COPY or ADD (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`). */
export interface Heredoc {
  /** The delimiter word with quotes removed; COPY/ADD use it as the file name. */
  readonly name: string;
  /** The body, each line ending in a newline; with `<<-` its leading tabs are removed. */
  readonly content: string;
  /** False when any part of the delimiter was quoted: then the body is taken literally. */
  readonly expand: boolean;
  /** `<<-`: leading tabs were stripped from the body and the terminator. */
  readonly chomp: boolean;
  /** The file descriptor written before `<<` (`3<<EOF`), 0 when none. */
  readonly fileDescriptor: number;
}

/** A heredoc as the parser first reads it, before its body. */
export interface HeredocHeader {
  name: string;
  expand: boolean;
  chomp: boolean;
  fileDescriptor: number;
}

const HEREDOC = /^(\d*)<<(-?)([^<]*)$/;
const NO_VARS = () => undefined;

/** The heredoc a word introduces (`<<EOF`, `<<-'EOF'`), or undefined when it is not one. */
export function parseHeredocWord(word: string): HeredocHeader | undefined {
  const m = HEREDOC.exec(word);
  if (!m || m[3] === '') return undefined;
  const rest = m[3]!;
  // Lex the delimiter with and without quotes: if the counts of quote characters differ, part of it was quoted.
  const words = expandWords(rest, NO_VARS, { skipUnsetEnv: true }).words;
  if (words.length !== 1) return undefined;
  const raw = expandWords(rest, NO_VARS, { skipUnsetEnv: true, rawQuotes: true }).words;
  const name = words[0]!;
  const quotes = (s: string) => (s.match(/['"]/g) ?? []).length;
  return {
    name,
    expand: raw.length === 1 && quotes(name) === quotes(raw[0]!),
    chomp: m[2] === '-',
    fileDescriptor: m[1] === '' ? 0 : Number(m[1]),
  };
}

/** Every heredoc a line introduces, in order; a line the lexer cannot split has none (as in BuildKit). */
export function heredocsFromLine(line: string): HeredocHeader[] {
  let words: string[];
  try {
    words = expandWords(line, NO_VARS, { rawQuotes: true, rawEscapes: true, escape: '\\' as EscapeToken }).words;
  } catch {
    return [];
  }
  const out: HeredocHeader[] = [];
  for (const w of words) {
    const h = parseHeredocWord(w);
    if (h) out.push(h);
  }
  return out;
}

/** `<<-` bodies lose the tabs at the start of each line. */
export function chompHeredocContent(content: string): string {
  return content.replace(/^\t+/gm, '');
}

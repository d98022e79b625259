// Small text helpers with Go's notion of whitespace: BuildKit trims and splits with unicode.IsSpace and a
// `[\t\v\f\r ]+` regexp, and a Dockerfile that differs from JavaScript's \s (U+FEFF, U+0085) must read the same.

const GO_SPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
  0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** Go's unicode.IsSpace for one code point. */
export function isSpace(ch: string | undefined): boolean {
  return ch !== undefined && GO_SPACE.has(ch.codePointAt(0)!);
}

export function trimLeftSpace(s: string): string {
  let i = 0;
  while (i < s.length && isSpace(s[i])) i++;
  return s.slice(i);
}

export function trimRightSpace(s: string): string {
  let j = s.length;
  while (j > 0 && isSpace(s[j - 1])) j--;
  return s.slice(0, j);
}

/** Go's strings.TrimSpace. */
export function trimSpace(s: string): string {
  return trimRightSpace(trimLeftSpace(s));
}

/** BuildKit's reWhitespace: the separator between the words of FROM, EXPOSE and shell-form COPY/ADD/VOLUME. */
export const WHITESPACE_RUN = /[\t\v\f\r ]+/;

/** Go's strconv.ParseBool. */
export function parseGoBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

/** Go's %q for the strings we quote in messages (close enough: JSON escaping). */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}

/** Levenshtein distance, for "did you mean" suggestions. */
function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = prev[j]!;
      prev[j] = Math.min(above + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = above;
    }
  }
  return prev[b.length]!;
}

/**
 * The option closest to `word` by edit distance, when it is close enough to be a likely typo (at most two edits,
 * and fewer edits than the word has characters), as BuildKit's suggest package offers.
 */
export function closest(word: string, options: readonly string[], caseSensitive = false): string | undefined {
  if (word === '') return undefined;
  const w = caseSensitive ? word : word.toLowerCase();
  let best: string | undefined;
  let min = Number.POSITIVE_INFINITY;
  for (const option of options) {
    const d = distance(w, caseSensitive ? option : option.toLowerCase());
    if (d < min) {
      min = d;
      best = option;
    }
  }
  return min > 0 && min <= 2 && min < w.length ? best : undefined;
}

/** "message (did you mean X?)" when a suggestion exists. */
export function withSuggestion(
  message: string,
  word: string,
  options: readonly string[],
  caseSensitive = false,
): string {
  const s = closest(word, options, caseSensitive);
  return s === undefined ? message : `${message} (did you mean ${s}?)`;
}

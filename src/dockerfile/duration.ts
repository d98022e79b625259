import { problem } from './errors.js';
import { goQuote } from './text.js';

const UNIT_NS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  µs: 1e3, // U+00B5
  μs: 1e3, // U+03BC
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** Go's time.ParseDuration ("1h30m", "1.5s", "300ms"), in nanoseconds; errors read as Go's. */
export function parseGoDuration(s: string): number {
  const invalid = () => problem(`time: invalid duration ${goQuote(s)}`);
  let rest = s;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest[0] === '-') sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw invalid();
  let total = 0;
  while (rest !== '') {
    const num = /^(\d*)(?:\.(\d*))?/.exec(rest)!;
    const [whole, intPart = '', frac] = num;
    if (intPart === '' && (frac === undefined || frac === '')) throw invalid();
    rest = rest.slice(whole.length);
    const unit = /^[^\d.]*/.exec(rest)![0];
    if (unit === '') throw problem(`time: missing unit in duration ${goQuote(s)}`);
    const scale = UNIT_NS[unit];
    if (scale === undefined) throw problem(`time: unknown unit ${goQuote(unit)} in duration ${goQuote(s)}`);
    rest = rest.slice(unit.length);
    total += Number(`${intPart || '0'}.${frac ?? '0'}`) * scale;
  }
  return sign * Math.round(total);
}

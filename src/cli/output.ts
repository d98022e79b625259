/** Output helpers for the CLI: docker's table layout, human sizes and durations, JSON. Only `cli` prints. */
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { renderTemplate } from './template.js';

/** docker's size format (go-units HumanSizeWithPrecision(n, 3)): decimal units, 3 significant digits. */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let n = bytes;
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${Number(n.toPrecision(3))}${units[i]}`;
}

/** docker's "2 weeks ago" (go-units HumanDuration). */
export function humanAgo(iso: string | undefined, now = Date.now()): string {
  if (!iso) return 'N/A';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return 'N/A';
  const s = Math.max(0, Math.round((now - t) / 1000));
  const hours = s / 3600;
  let d: string;
  if (s < 1) d = 'Less than a second';
  else if (s === 1) d = '1 second';
  else if (s < 60) d = `${s} seconds`;
  else if (Math.round(s / 60) === 1) d = 'About a minute';
  else if (s < 3600) d = `${Math.round(s / 60)} minutes`;
  else if (Math.round(hours) === 1) d = 'About an hour';
  else if (hours < 48) d = `${Math.round(hours)} hours`;
  else if (hours < 24 * 7 * 2) d = `${Math.round(hours / 24)} days`;
  else if (hours < 24 * 30 * 2) d = `${Math.round(hours / 24 / 7)} weeks`;
  else if (hours < 24 * 365 * 2) d = `${Math.round(hours / 24 / 30)} months`;
  else d = `${Math.round(hours / 24 / 365)} years`;
  return `${d} ago`;
}

/** Columns padded as docker's tabwriter does (min width, 3 spaces of padding). */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3)))
        .join('')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * A listing in a `--format` other than the table: `json` (one object per line, as docker prints) or a Go template
 * per row. False when the table is wanted (no format, or `table`).
 */
export function printFormatted(rows: readonly object[], format: string | undefined): boolean {
  if (format === 'json') {
    for (const r of rows) print(JSON.stringify(r));
    return true;
  }
  if (format && format !== 'table') {
    for (const r of rows) print(renderTemplate(format, r as Record<string, unknown>));
    return true;
  }
  return false;
}

/**
 * Write a file next to its target and rename it into place, so an interrupted write never leaves a truncated file
 * (an archive a later load would half-read).
 */
export async function writeFileAtomically(path: string, write: (out: Writable) => Promise<void>): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    await write(createWriteStream(tmp));
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 4));
}

export function truncate(s: string, n: number, noTrunc: boolean): string {
  if (noTrunc || s.length <= n) return s;
  return `${s.slice(0, n - 1)}…`;
}

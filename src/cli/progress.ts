/**
 * Progress of pulls and pushes as docker shows it: on a terminal one live line per blob
 * (`<12-hex>: Downloading [=====>     ] 12.3MB/45.6MB`, `Already exists`, `Pull complete`), redrawn in place with
 * ANSI cursor movement at most ten times a second; elsewhere (or `--progress plain`) one line per state change and
 * no bars; `quiet` prints nothing. The renderer consumes the library's ProgressEvents.
 */
import { type ProgressEvent, type ProgressFn, type ProgressState, StrataError } from '../index.js';
import { humanSize } from './output.js';

export type ProgressMode = 'auto' | 'plain' | 'tty' | 'quiet';

export interface ProgressRenderer extends ProgressFn {
  /** Draw the final state and stop the timer. Idempotent. */
  close(): void;
}

export interface RendererOptions {
  /** Wording: docker's pull (Downloading, Pull complete) or push (Pushing, Pushed). Default pull. */
  verb?: 'pull' | 'push';
  /** Minimum interval between redraws on a terminal (default 100 ms). */
  intervalMs?: number;
}

interface Writable {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export function parseProgressMode(value: string | undefined): ProgressMode {
  const v = value ?? 'auto';
  if (v === 'auto' || v === 'plain' || v === 'tty' || v === 'quiet') return v;
  throw new StrataError('INVALID_ARGUMENT', `invalid --progress "${v}"`, { hint: 'use auto, plain or tty' });
}

const LABELS: Record<'pull' | 'push', Record<ProgressState, string>> = {
  pull: {
    waiting: 'Waiting',
    exists: 'Already exists',
    mounted: 'Mounted',
    downloading: 'Downloading',
    uploading: 'Uploading',
    verifying: 'Verifying Checksum',
    extracting: 'Extracting',
    done: 'Pull complete',
    retrying: 'Retrying',
    failed: 'Failed',
  },
  push: {
    waiting: 'Waiting',
    exists: 'Layer already exists',
    mounted: 'Mounted',
    downloading: 'Downloading',
    uploading: 'Pushing',
    verifying: 'Verifying',
    extracting: 'Extracting',
    done: 'Pushed',
    retrying: 'Retrying',
    failed: 'Failed',
  },
};

type BlobEvent = Extract<ProgressEvent, { kind: 'blob' }>;

/** docker's short form of a blob digest: the first 12 hex characters. */
export function shortDigest(d: string): string {
  return (d.includes(':') ? d.slice(d.indexOf(':') + 1) : d).slice(0, 12);
}

/** docker's progress bar: 50 columns of `=` with a `>` head, then `current/total`. */
export function progressBar(current: number, total: number, width = 50): string {
  const pct = total > 0 ? Math.min(1, Math.max(0, current / total)) : 0;
  const filled = Math.floor(pct * width);
  const bar =
    filled >= width
      ? `${'='.repeat(width - 1)}>`
      : `${'='.repeat(filled)}>${' '.repeat(Math.max(0, width - filled - 1))}`;
  return `[${bar}] ${humanSize(current).padStart(8)}/${humanSize(total)}`;
}

/** The text after `<id>: ` for a blob in a state; bars only when `bars`. */
export function blobText(e: BlobEvent, verb: 'pull' | 'push', bars: boolean, width = 50): string {
  const label = LABELS[verb][e.state];
  switch (e.state) {
    case 'waiting':
      return e.detail ?? label;
    case 'mounted':
      return e.detail ? `Mounted from ${e.detail}` : label;
    case 'retrying':
      return e.detail ?? label;
    case 'failed':
      return label; // the error itself is reported once, by the command
    case 'downloading':
    case 'uploading':
    case 'extracting':
      if (bars && e.current !== undefined && e.size > 0) return `${label} ${progressBar(e.current, e.size, width)}`;
      return e.size > 0 && !bars ? `${label} ${humanSize(e.size)}` : label;
    default:
      return e.detail ?? label;
  }
}

/**
 * A ProgressFn that renders to `stream` (with `close()` to finish). `auto` picks `tty` when the stream is a
 * terminal (and TERM is not dumb), `plain` otherwise. A `result` event prints docker's closing lines
 * (`Digest: sha256:...`, `Status: ...`); the caller prints the reference itself.
 */
export function createProgressRenderer(
  stream: Writable,
  mode: ProgressMode = 'auto',
  opts: RendererOptions = {},
): ProgressRenderer {
  const verb = opts.verb ?? 'pull';
  const resolved =
    mode === 'auto' ? (stream.isTTY && process.env['TERM'] !== 'dumb' ? 'tty' : 'plain') : (mode as ProgressMode);
  if (resolved === 'quiet') return Object.assign(() => {}, { close: () => {} });
  if (resolved === 'plain') return plainRenderer(stream, verb);
  return ttyRenderer(stream, verb, opts.intervalMs ?? 100);
}

function plainRenderer(stream: Writable, verb: 'pull' | 'push'): ProgressRenderer {
  const last = new Map<string, string>();
  const fn = (e: ProgressEvent): void => {
    if (e.kind === 'message') {
      stream.write(`${e.text}\n`);
      return;
    }
    if (e.kind === 'result') {
      stream.write(`Digest: ${e.digest}\nStatus: ${e.status}\n`);
      return;
    }
    const id = shortDigest(e.digest);
    const text = blobText(e, verb, false);
    // One line per change of state (a retry's detail counts as a change); byte counts alone are not.
    if (last.get(id) === text) return;
    last.set(id, text);
    stream.write(`${id}: ${text}\n`);
  };
  return Object.assign(fn, { close: () => {} });
}

function ttyRenderer(stream: Writable, verb: 'pull' | 'push', intervalMs: number): ProgressRenderer {
  /** Lines drawn since the live block began: a blob's id, or a fixed text. */
  const lines: Array<{ id?: string; text: string }> = [];
  const byId = new Map<string, { id?: string; text: string }>();
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;
  let lastDraw = 0;
  let closed = false;

  const width = (): number => {
    const cols = stream.columns ?? 80;
    return Math.max(10, Math.min(50, cols - 40));
  };
  const clip = (s: string): string => {
    const cols = stream.columns ?? 0;
    return cols > 1 && s.length >= cols ? s.slice(0, cols - 1) : s;
  };
  const draw = (): void => {
    timer = undefined;
    lastDraw = Date.now();
    let out = drawn > 0 ? `\x1b[${drawn}A` : '';
    for (const l of lines) out += `\x1b[2K\r${clip(l.id ? `${l.id}: ${l.text}` : l.text)}\n`;
    drawn = lines.length;
    stream.write(out);
  };
  const schedule = (): void => {
    if (closed || timer) return;
    const wait = Math.max(0, intervalMs - (Date.now() - lastDraw));
    if (wait === 0) draw();
    else {
      timer = setTimeout(draw, wait);
      timer.unref?.();
    }
  };
  /** Draw now and forget the block, so what follows is written below it. */
  const settle = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (lines.length > 0) draw();
    lines.length = 0;
    byId.clear();
    drawn = 0;
  };

  const fn = (e: ProgressEvent): void => {
    if (closed) return;
    if (e.kind === 'message') {
      // A message before any blob line stays a plain line; after, it joins the block (docker's ordering).
      if (lines.length === 0) stream.write(`${e.text}\n`);
      else {
        lines.push({ text: e.text });
        schedule();
      }
      return;
    }
    if (e.kind === 'result') {
      settle();
      stream.write(`Digest: ${e.digest}\nStatus: ${e.status}\n`);
      return;
    }
    const id = shortDigest(e.digest);
    const text = blobText(e, verb, true, width());
    let line = byId.get(id);
    if (!line) {
      line = { id, text };
      byId.set(id, line);
      lines.push(line);
    } else line.text = text;
    // Drawn at once when the last draw is older than intervalMs, else once the interval is over.
    schedule();
  };
  return Object.assign(fn, {
    close: () => {
      if (closed) return;
      settle();
      closed = true;
    },
  });
}

import { createWriteStream, type WriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { errnoCode } from '../errors/index.js';
import type { LogEntry } from './types.js';

/** A partial line is written as its own entry once it reaches this size (docker's json-file does the same). */
const MAX_LINE = 16 * 1024;

/**
 * The container log, as docker's json-file driver writes it: one JSON object per line,
 * `{"log":"hello\n","stream":"stdout","time":"2024-05-01T10:00:00.000000000Z"}`. Output is cut at newlines; a
 * partial line waits for its end (or 16 KiB, or the end of the stream).
 */
export class LogWriter {
  readonly #out: WriteStream;
  /** The file stream (to wait for its 'drain' when `write` returned false). */
  get stream(): WriteStream {
    return this.#out;
  }

  readonly #pending = new Map<'stdout' | 'stderr', { text: string; decoder: StringDecoder }>();
  #failed: Error | undefined;

  constructor(path: string) {
    this.#out = createWriteStream(path, { flags: 'a', mode: 0o640 });
    this.#out.on('error', (err) => {
      this.#failed = err;
    });
  }

  /** Add output; false when the file has a lot queued (wait for `stream`'s 'drain'). */
  write(stream: 'stdout' | 'stderr', chunk: Buffer): boolean {
    let p = this.#pending.get(stream);
    if (!p) {
      p = { text: '', decoder: new StringDecoder('utf8') };
      this.#pending.set(stream, p);
    }
    const text = p.text + p.decoder.write(chunk);
    // One timestamp and one file write per chunk: the entries of a chunk arrived at the same moment.
    const suffix = `,"stream":"${stream}","time":"${new Date().toISOString()}"}\n`;
    let out = '';
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      for (; nl + 1 - start > MAX_LINE; start += MAX_LINE) out += entry(text.slice(start, start + MAX_LINE), suffix);
      out += entry(text.slice(start, nl + 1), suffix);
      start = nl + 1;
    }
    for (; text.length - start >= MAX_LINE; start += MAX_LINE)
      out += entry(text.slice(start, start + MAX_LINE), suffix);
    p.text = text.slice(start);
    if (out !== '' && !this.#failed) this.#out.write(out);
    return this.#failed !== undefined || !this.#out.writableNeedDrain;
  }

  /** Write what is left of a stream's partial line (at the end of the stream). */
  flush(stream: 'stdout' | 'stderr'): void {
    const p = this.#pending.get(stream);
    if (!p) return;
    const rest = p.text + p.decoder.end();
    p.text = '';
    if (rest !== '' && !this.#failed) {
      this.#out.write(entry(rest, `,"stream":"${stream}","time":"${new Date().toISOString()}"}\n`));
    }
  }

  async close(): Promise<void> {
    this.flush('stdout');
    this.flush('stderr');
    await new Promise<void>((resolve) => this.#out.end(() => resolve()));
  }
}

/** One JSON line in docker's key order: {"log":...,"stream":...,"time":...}. */
function entry(log: string, suffix: string): string {
  return `{"log":${JSON.stringify(log)}${suffix}`;
}

function parseEntry(line: string): LogEntry | undefined {
  try {
    const v = JSON.parse(line) as Partial<LogEntry>;
    if (typeof v.log !== 'string' || (v.stream !== 'stdout' && v.stream !== 'stderr')) return undefined;
    return { log: v.log, stream: v.stream, time: typeof v.time === 'string' ? v.time : '' };
  } catch {
    return undefined;
  }
}

export interface ReadLogOptions {
  /** Keep reading new entries until `done()` says the container stopped (and the log is drained). */
  follow?: boolean;
  done?: () => Promise<boolean>;
  /** Only the last n entries (of what is there when reading starts). */
  tail?: number;
  /** Only entries at or after this time / before this time (ISO). */
  since?: string;
  until?: string;
  signal?: AbortSignal;
  pollMs?: number;
}

/** The entries of a container log, oldest first; with `follow`, new ones as they are written. */
export async function* readLog(path: string, opts: ReadLogOptions = {}): AsyncGenerator<LogEntry> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  try {
    let offset = 0;
    let rest = '';
    const decoder = new StringDecoder('utf8');
    const buf = Buffer.allocUnsafe(256 * 1024);
    const keep = (e: LogEntry) => (!opts.since || e.time >= opts.since) && (!opts.until || e.time < opts.until);
    /** The complete lines written since the last call, streamed chunk by chunk. */
    async function* available(): AsyncGenerator<LogEntry> {
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        if (bytesRead === 0) return;
        offset += bytesRead;
        rest += decoder.write(buf.subarray(0, bytesRead));
        const lines = rest.split('\n');
        rest = lines.pop() ?? '';
        for (const l of lines) {
          const e = l ? parseEntry(l) : undefined;
          if (e && keep(e)) yield e;
        }
      }
    }
    if (opts.tail !== undefined && opts.tail >= 0) {
      const tail = opts.tail;
      let last: LogEntry[] = [];
      for await (const e of available()) {
        if (tail === 0) continue; // read to the end, keep nothing
        last.push(e);
        if (last.length >= tail * 2) last = last.slice(-tail);
      }
      if (tail > 0) yield* last.slice(-tail);
    } else {
      yield* available();
    }
    if (!opts.follow) return;
    for (;;) {
      if (opts.signal?.aborted) return;
      const stopped = opts.done ? await opts.done() : false;
      yield* available();
      if (stopped) return;
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
    }
  } finally {
    await fh.close();
  }
}

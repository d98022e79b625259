import { readFile } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContainerProcess, ExitStatus } from '../runtime/index.js';

export type StreamName = 'stdout' | 'stderr';

/** Write to an attached stream; false when it wants the writer to wait for 'drain'. A gone reader is ignored. */
export function safeWrite(out: Writable | undefined, chunk: Buffer): boolean {
  if (!out || out.destroyed || out.writableEnded) return true;
  try {
    return out.write(chunk);
  } catch {
    return true; // the reader went away (EPIPE): the log still has everything
  }
}

/** Resolve once `out` drained, closed or failed (never hangs on a reader that went away). */
export function drained(out: Writable): Promise<void> {
  if (out.destroyed || !out.writableNeedDrain) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      out.off('error', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
    out.on('error', done);
  });
}

export async function readPid(path: string): Promise<number> {
  try {
    const n = Number((await readFile(path, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

/**
 * Relays a runtime child's stdout and stderr to `emit`, which returns the sinks that want the source to wait
 * (back-pressure: a chatty process is slowed to what its readers take). Until `release()`, output is held back:
 * what arrives before the process runs is the runtime's own complaint (runc prints its start errors on stderr as
 * well as in its log), reported as an error rather than as the process's output; `discard()` drops it.
 */
export class OutputRelay {
  #held: [StreamName, Buffer][] | undefined = [];

  constructor(
    proc: ContainerProcess,
    private readonly emit: (stream: StreamName, d: Buffer) => Writable[],
  ) {
    this.#attach(proc.child.stdout, 'stdout');
    this.#attach(proc.child.stderr, 'stderr');
  }

  #attach(src: Readable | null, stream: StreamName): void {
    src?.on('data', (d: Buffer) => {
      if (this.#held) {
        this.#held.push([stream, d]);
        return;
      }
      const full = this.emit(stream, d);
      if (full.length > 0) {
        src.pause();
        void Promise.all(full.map(drained)).then(() => src.resume());
      }
    });
  }

  /** Pass what was held back on, and everything after it as it comes. */
  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const [stream, d] of held) this.emit(stream, d);
  }

  /** Drop what was held back (the runtime's error output), keep relaying what comes after. */
  discard(): void {
    this.#held = undefined;
  }
}

/**
 * Wait for the runtime to write the process's pid file; 0 when the runtime exited without one (the process never
 * ran). `done` is the runtime's exit status.
 */
export async function waitForPid(pidFile: string, done: Promise<ExitStatus>): Promise<number> {
  let settled = false;
  done.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  let pid = 0;
  while (!settled && pid === 0) {
    pid = await readPid(pidFile);
    if (pid === 0) await sleep(5);
  }
  // It may have run and exited between two looks: the pid file tells whether it started at all.
  return pid === 0 ? readPid(pidFile) : pid;
}

// Shared by the attack tests: a target directory with a sentinel directory next to it, hand-made tars, and a check
// that nothing outside the target changed.
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { TestContext } from 'node:test';
import tar from 'tar-stream';
import { type ApplyOptions, applyLayer } from '../../src/archive/index.js';

export const isRoot = process.getuid?.() === 0;

export interface Sandbox {
  /** Where layers are applied. */
  target: string;
  /** A directory next to the target that no layer may touch. */
  sentinel: string;
  /** Fails if anything outside `target` changed since the sandbox was made. */
  assertOutsideUntouched(): void;
}

function describeTree(dir: string, skip: string): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    for (const name of readdirSync(p).sort()) {
      const abs = join(p, name);
      if (abs === skip) continue;
      const st = lstatSync(abs);
      const content = st.isFile() ? readFileSync(abs, 'hex') : '';
      out.push(`${abs} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.nlink} ${st.mtimeMs} ${content}`);
      if (st.isDirectory()) walk(abs);
    }
  };
  walk(dir);
  return out;
}

export async function sandbox(t: TestContext): Promise<Sandbox> {
  const base = await mkdtemp(join(tmpdir(), 'strata-attack-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const target = join(base, 'target');
  const sentinel = join(base, 'sentinel');
  mkdirSync(target);
  mkdirSync(sentinel, { mode: 0o700 });
  writeFileSync(join(sentinel, 'keep'), 'do not touch', { mode: 0o600 });
  const before = describeTree(base, target);
  return {
    target,
    sentinel,
    assertOutsideUntouched: () => assert.deepEqual(describeTree(base, target), before),
  };
}

export interface Entry {
  header: Partial<tar.Header> & { name: string; pax?: Record<string, string> };
  body?: string;
}

/** Builds the malicious tar by hand with tar-stream, byte for byte what an attacker would send. */
export async function attackTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as unknown as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(c));
  })();
  for (const e of entries) {
    const header = { mtime: new Date(0), mode: 0o644, ...e.header };
    const body = e.body ?? ((header.type ?? 'file') === 'file' ? '' : undefined);
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (body !== undefined) pack.entry(header, body, cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function apply(bytes: Buffer, target: string, whiteouts: ApplyOptions['whiteouts'] = 'delete') {
  return applyLayer(Readable.from([bytes]), target, { whiteouts });
}

/** The rejection a refused entry must produce: a PathEscapeError whose message quotes the entry name. */
export function refused(entry: string): { name: string; code: string; message: RegExp } {
  const quoted = `"${entry}"`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return { name: 'PathEscapeError', code: 'PERMISSION_DENIED', message: new RegExp(quoted) };
}

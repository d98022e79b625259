import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { decompressStream } from '../../../src/archive/index.js';

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

const chunks = (b: Buffer, n = 3): Readable =>
  Readable.from(
    Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, i * n + n)),
    { objectMode: false },
  );

describe('decompressStream', () => {
  it('gunzips gzip input even when the magic arrives split across chunks', async () => {
    const data = randomBytes(100_000);
    assert.deepEqual(await collect(decompressStream(chunks(gzipSync(data), 1))), data);
    assert.deepEqual(await collect(decompressStream(Readable.from([gzipSync(data)]))), data);
  });
  it('passes plain bytes through unchanged, including tiny and empty inputs', async () => {
    const data = Buffer.from('not compressed at all');
    assert.deepEqual(await collect(decompressStream(chunks(data))), data);
    assert.deepEqual(await collect(decompressStream(Readable.from([Buffer.from('ab')]))), Buffer.from('ab'));
    assert.deepEqual(await collect(decompressStream(Readable.from([], { objectMode: false }))), Buffer.alloc(0));
  });
  it('reads concatenated gzip members as one stream', async () => {
    const gz = Buffer.concat([gzipSync('hello '), gzipSync('world')]);
    assert.equal((await collect(decompressStream(Readable.from([gz])))).toString(), 'hello world');
  });
  it('reports truncated gzip as DATA_LOSS', async () => {
    const gz = gzipSync(randomBytes(50_000));
    await assert.rejects(collect(decompressStream(Readable.from([gz.subarray(0, gz.length - 100)]))), {
      code: 'DATA_LOSS',
      message: /truncated/,
    });
  });
  it('reports corrupt gzip as DATA_LOSS', async () => {
    const gz = gzipSync(Buffer.alloc(50_000, 7));
    gz[20] ^= 0xff;
    gz[21] ^= 0xff;
    await assert.rejects(collect(decompressStream(Readable.from([gz]))), { code: 'DATA_LOSS' });
  });
  it('refuses zstd with UNIMPLEMENTED unless node:zlib has zstd, and xz always', async () => {
    const zstdFrame = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]);
    const hasZstd = typeof ((await import('node:zlib')) as Record<string, unknown>).createZstdDecompress === 'function';
    if (!hasZstd) {
      await assert.rejects(collect(decompressStream(Readable.from([zstdFrame]))), {
        code: 'UNIMPLEMENTED',
        message: /zstd/,
      });
    }
    const xz = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2]);
    await assert.rejects(collect(decompressStream(Readable.from([xz]))), { code: 'UNIMPLEMENTED', message: /xz/ });
  });
  it('destroys the source when the consumer stops early', async () => {
    const src = Readable.from(
      (function* () {
        for (let i = 0; i < 1000; i++) yield Buffer.alloc(65_536, 1);
      })(),
      { objectMode: false },
    );
    const out = decompressStream(src);
    for await (const _ of out) break;
    await new Promise((r) => setImmediate(r));
    assert.ok(src.destroyed);
  });
});

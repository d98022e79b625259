import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { createParallelGzip, type ParallelGzipOptions } from '../../../src/archive/index.js';

async function gzip(data: Buffer, opts: ParallelGzipOptions = {}, chunk = 65_536): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let off = 0; off < data.length; off += chunk) parts.push(data.subarray(off, off + chunk));
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(parts, { objectMode: false }),
    createParallelGzip(opts),
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

/** Text-like data that compresses well but not trivially. */
function compressible(size: number): Buffer {
  const words = ['layer', 'image', 'manifest', 'digest', 'blob', 'tar', 'overlay', 'snapshot', '\n', ' '];
  const out = Buffer.alloc(size);
  let seed = 42;
  for (let i = 0; i < size; ) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const w = words[seed % words.length]!;
    i += out.write(w, i);
  }
  return out;
}

const gzipTool = spawnSync('gzip', ['--version']).status === 0;

function toolDecompress(gz: Buffer): Buffer {
  const test = spawnSync('gzip', ['-t'], { input: gz });
  assert.equal(test.status, 0, `gzip -t: ${test.stderr}`);
  const r = spawnSync('gzip', ['-dc'], { input: gz, maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, `gzip -dc: ${r.stderr}`);
  return r.stdout;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('createParallelGzip', () => {
  const sizes = [0, 1, 1000, 65_535, 262_143, 262_144, 262_145, 1_048_577, 3_000_001];
  for (const size of sizes) {
    it(`round-trips ${size} bytes of random and of compressible data through node's gunzip`, async () => {
      for (const data of [randomBytes(size), compressible(size)]) {
        const gz = await gzip(data, { blockSize: 65_536 * 2 });
        assert.ok(sha(gunzipSync(gz)) === sha(data));
      }
    });
  }

  it('produces output that gzip -t accepts and gzip -dc restores', {
    skip: !gzipTool && 'gzip not installed',
  }, async () => {
    for (const size of [0, 7, 131_073, 2_500_003]) {
      for (const data of [randomBytes(size), compressible(size)]) {
        const gz = await gzip(data, { blockSize: 65_536 });
        assert.equal(sha(toolDecompress(gz)), sha(data));
      }
    }
  });

  it('writes a fixed header: no mtime, no name, OS byte 3', async () => {
    const gz = await gzip(Buffer.from('hello'));
    assert.deepEqual([...gz.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
  });

  it('writes the CRC32 and the size mod 2^32 in the trailer', async () => {
    const data = compressible(300_001);
    const gz = await gzip(data);
    const reference = gunzipSync(gz);
    assert.equal(reference.length, gz.readUInt32LE(gz.length - 4));
    const { crc32 } = await import('node:zlib');
    assert.equal(gz.readUInt32LE(gz.length - 8), crc32(data));
  });

  it('gives identical bytes for the same input whatever the chunking, concurrency or timing', async () => {
    const data = Buffer.concat([compressible(1_500_000), randomBytes(700_001), compressible(333_333)]);
    const a = await gzip(data, { blockSize: 131_072, concurrency: 1 }, 65_536);
    const b = await gzip(data, { blockSize: 131_072, concurrency: 8 }, 1_000_003);
    const c = await gzip(data, { blockSize: 131_072, concurrency: 3 }, 4_097);
    assert.equal(sha(a), sha(b));
    assert.equal(sha(a), sha(c));
  });

  it('compresses within 1% of single-threaded zlib at the same level', async () => {
    const { gzipSync } = await import('node:zlib');
    const data = compressible(4_000_000);
    const ours = await gzip(data, { level: 6 });
    const single = gzipSync(data, { level: 6 });
    assert.ok(ours.length <= single.length * 1.01, `${ours.length} vs ${single.length}`);
  });

  it('stores blocks that do not compress, and still deflates the ones that do, in one valid stream', async () => {
    const blockSize = 512 * 1024;
    const noise = randomBytes(2 * blockSize);
    const text = compressible(2 * blockSize);
    const mixed = Buffer.concat([noise, text]);
    const out = await gzip(mixed, { level: 6, blockSize });
    assert.equal(sha(gunzipSync(out)), sha(mixed));
    // The noise costs its own size plus stored-block headers; the text half is deflated as usual.
    const textAlone = await gzip(text, { level: 6, blockSize });
    assert.ok(out.length < noise.length + textAlone.length + 1024, `${out.length}`);
    assert.ok(out.length > noise.length, `${out.length}`);
    // Stored without trying: the first deflate block after the 10-byte gzip header is a stored one (BTYPE 00) of
    // the largest size; zlib's own fallback after deflating random data stores 16 KiB blocks.
    assert.equal(out[10]! & 0b110, 0);
    assert.equal(out.readUInt16LE(11), 65_535);
    assert.notEqual(textAlone[10]! & 0b110, 0);
  });

  it('a stream that ends in a stored block ends it as the final one; gzip -t accepts it', async () => {
    const noise = randomBytes(3 * 512 * 1024 + 200_000);
    const out = await gzip(noise, { level: 6 });
    assert.equal(sha(gunzipSync(out)), sha(noise));
    const r = spawnSync('gzip', ['-t'], { input: out });
    assert.equal(r.status, 0, r.stderr.toString());
  });

  it('honours the level', async () => {
    const data = compressible(1_000_000);
    const fast = await gzip(data, { level: 1 });
    const best = await gzip(data, { level: 9 });
    assert.ok(best.length < fast.length);
    assert.equal(sha(gunzipSync(best)), sha(data));
  });

  it('rejects invalid options with INVALID_ARGUMENT', () => {
    assert.throws(() => createParallelGzip({ level: 11 }), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => createParallelGzip({ blockSize: 1024 }), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => createParallelGzip({ concurrency: 0 }), { code: 'INVALID_ARGUMENT' });
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { applyLayer, packDirectory } from '../../../src/archive/index.js';
import { collect, isRoot, makeTar, streamOf, tempDir } from './helpers.js';

const unhandled: unknown[] = [];
const onUnhandled = (err: unknown): void => {
  unhandled.push(err);
};

/** Fails instead of hanging: every error case must settle quickly. */
function settles<T>(p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

describe('layer errors', { skip: !isRoot && 'needs root' }, () => {
  before(() => process.on('unhandledRejection', onUnhandled));
  after(() => {
    process.off('unhandledRejection', onUnhandled);
    assert.deepEqual(unhandled, [], 'no unhandled rejections');
  });

  it('refuses input that is not a tar with INVALID_ARGUMENT', async (t) => {
    const dir = await tempDir(t);
    await assert.rejects(
      settles(applyLayer(streamOf(Buffer.alloc(4096, 'hello world ')), dir, { whiteouts: 'delete' })),
      {
        code: 'INVALID_ARGUMENT',
        message: /not a valid tar archive/,
      },
    );
    await assert.rejects(settles(applyLayer(streamOf(randomBytes(10_000)), dir, { whiteouts: 'delete' })), {
      code: 'INVALID_ARGUMENT',
    });
  });

  it('reports a truncated tar as DATA_LOSS, naming the last entry', async (t) => {
    const dir = await tempDir(t);
    const tarBytes = await makeTar([
      { header: { name: 'a', type: 'file' }, body: 'a' },
      { header: { name: 'big', type: 'file' }, body: randomBytes(100_000) },
    ]);
    await assert.rejects(settles(applyLayer(streamOf(tarBytes.subarray(0, 50_000)), dir, { whiteouts: 'delete' })), {
      code: 'DATA_LOSS',
      message: /truncated.*"big"/,
    });
    // Cut inside a header block.
    await assert.rejects(settles(applyLayer(streamOf(tarBytes.subarray(0, 700)), dir, { whiteouts: 'delete' })), {
      code: 'DATA_LOSS',
    });
  });

  it('reports truncated and corrupt gzip as DATA_LOSS', async (t) => {
    const dir = await tempDir(t);
    const tarBytes = await makeTar([{ header: { name: 'big', type: 'file' }, body: randomBytes(200_000) }]);
    const gz = gzipSync(tarBytes);
    await assert.rejects(
      settles(applyLayer(streamOf(gz.subarray(0, gz.length - 1000)), dir, { whiteouts: 'delete' })),
      { code: 'DATA_LOSS', message: /gzip stream is truncated/ },
    );
    const corrupt = Buffer.from(gz);
    corrupt.fill(0x55, 5000, 5100);
    await assert.rejects(settles(applyLayer(streamOf(corrupt), dir, { whiteouts: 'delete' })), { code: 'DATA_LOSS' });
  });

  it('propagates a source stream error instead of hanging', async (t) => {
    const dir = await tempDir(t);
    const src = new Readable({
      read() {
        this.destroy(new Error('network reset'));
      },
    });
    await assert.rejects(settles(applyLayer(src, dir, { whiteouts: 'delete' })), /network reset/);
  });

  it('accepts an empty layer (no entries, as containerd does) and an end-of-archive-only tar', async (t) => {
    const dir = await tempDir(t);
    const empty = await settles(applyLayer(streamOf(Buffer.alloc(0)), dir, { whiteouts: 'delete' }));
    assert.equal(empty.entries, 0);
    const eoa = await settles(applyLayer(streamOf(Buffer.alloc(1024)), dir, { whiteouts: 'delete' }));
    assert.equal(eoa.uncompressedSize, 1024);
  });

  it('rejects a missing target and a bad whiteouts option', async (t) => {
    const dir = await tempDir(t);
    await assert.rejects(applyLayer(streamOf(Buffer.alloc(1024)), join(dir, 'nope'), { whiteouts: 'delete' }), {
      code: 'NOT_FOUND',
    });
    await assert.rejects(applyLayer(streamOf(Buffer.alloc(1024)), dir, { whiteouts: 'bogus' as 'delete' }), {
      code: 'INVALID_ARGUMENT',
    });
  });

  it('fails packing a missing directory through the stream and info, without unhandled rejections', async (t) => {
    const dir = await tempDir(t);
    const layer = packDirectory(join(dir, 'missing'));
    await assert.rejects(settles(collect(layer.stream)), { code: 'NOT_FOUND' });
    await assert.rejects(layer.info, { code: 'NOT_FOUND' });
    // Nobody awaits this one's info: its rejection must not surface as unhandled.
    await assert.rejects(settles(collect(packDirectory(join(dir, 'missing-too')).stream)), { code: 'NOT_FOUND' });
  });

  it('fails when a file shrinks while being packed', async (t) => {
    const dir = await tempDir(t);
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'src/f'), randomBytes(3 * 1024 * 1024));
    const layer = packDirectory(join(dir, 'src'), { compression: 'none' });
    let first = true;
    const read = (async () => {
      for await (const _ of layer.stream) {
        if (first) writeFileSync(join(dir, 'src/f'), 'short');
        first = false;
      }
    })();
    await assert.rejects(settles(read), { code: 'FAILED_PRECONDITION', message: /changed size/ });
  });
});

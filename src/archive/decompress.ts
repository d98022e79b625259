import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { errnoCode, StrataError } from '../errors/index.js';

const GZIP = [0x1f, 0x8b];
const ZSTD = [0x28, 0xb5, 0x2f, 0xfd];
const XZ = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const BZIP2 = [0x42, 0x5a, 0x68];
const SNIFF_BYTES = 6;

type Format = 'gzip' | 'zstd' | 'xz' | 'bzip2' | 'plain';

function startsWith(head: Buffer, magic: number[]): boolean {
  return head.length >= magic.length && magic.every((b, i) => head[i] === b);
}

function sniff(head: Buffer): Format {
  if (startsWith(head, GZIP)) return 'gzip';
  if (startsWith(head, ZSTD)) return 'zstd';
  if (startsWith(head, XZ)) return 'xz';
  if (startsWith(head, BZIP2)) return 'bzip2';
  return 'plain';
}

// zstd arrived in node:zlib in Node 22.15 / 23.8; strata supports Node 20, so look it up at run time.
function zstdDecompressor(): Transform | undefined {
  const make = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
  return typeof make === 'function' ? make() : undefined;
}

function decompressor(format: Format): Transform | undefined {
  switch (format) {
    case 'gzip':
      // Larger output chunks mean fewer threadpool round trips and fewer, larger writes downstream.
      return zlib.createGunzip({ chunkSize: 128 * 1024 });
    case 'zstd': {
      const z = zstdDecompressor();
      if (!z) {
        throw new StrataError(
          'UNIMPLEMENTED',
          `zstd-compressed layers need Node.js 22.15 or newer (running ${process.version})`,
          {
            hint: 'upgrade Node.js, or re-push the image with gzip layers',
          },
        );
      }
      return z;
    }
    case 'xz':
    case 'bzip2':
      throw new StrataError('UNIMPLEMENTED', `${format}-compressed layers are not supported`, {
        hint: 'OCI layers are plain tar, gzip or zstd; recompress the layer with gzip',
      });
    default:
      return undefined;
  }
}

/** Maps zlib's errors to what they mean for a layer: truncated or corrupt compressed data. */
export function compressionError(err: unknown, format: string): unknown {
  if (err instanceof StrataError) return err;
  const code = errnoCode(err);
  if (code === 'Z_BUF_ERROR') {
    return new StrataError('DATA_LOSS', `${format} stream is truncated (unexpected end of compressed data)`, {
      cause: err,
      hint: 'the blob was cut short in transfer or on disk; fetch it again',
    });
  }
  if (code?.startsWith('Z_') || code?.startsWith('ERR_ZSTD') || code?.startsWith('ZSTD')) {
    const msg = err instanceof Error ? err.message : String(err);
    return new StrataError('DATA_LOSS', `${format} stream is corrupt: ${msg}`, {
      cause: err,
      hint: 'the blob is damaged; fetch it again',
    });
  }
  return err;
}

async function* decompressChunks(src: Readable): AsyncGenerator<Buffer> {
  const it = src[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let head = Buffer.alloc(0);
  try {
    while (head.length < SNIFF_BYTES) {
      const r = await it.next();
      if (r.done) break;
      head = head.length === 0 ? Buffer.from(r.value) : Buffer.concat([head, r.value]);
    }
    const format = sniff(head);
    const z = decompressor(format);
    if (!z) {
      if (head.length > 0) yield head;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
      return;
    }
    async function* compressed(): AsyncGenerator<Buffer> {
      yield head;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    }
    const feeding = pipeline(Readable.from(compressed(), { objectMode: false }), z);
    // The loop below sees the same error; this only keeps the promise from being reported as unhandled.
    feeding.catch(() => {});
    try {
      for await (const chunk of z) yield chunk as Buffer;
      await feeding;
    } catch (err) {
      throw compressionError(err, format);
    } finally {
      z.destroy();
    }
  } finally {
    await it.return?.();
  }
}

/**
 * The uncompressed bytes of a layer blob, whatever it is compressed with: the first bytes are sniffed (gzip → gunzip,
 * zstd → zstd where Node has it, anything else passes through as plain tar). Errors surface on the returned stream
 * as StrataError: UNIMPLEMENTED for compressions strata cannot read, DATA_LOSS for truncated or corrupt data.
 * Destroying the returned stream destroys `src`.
 */
export function decompressStream(src: Readable): Readable {
  return Readable.from(decompressChunks(src), { objectMode: false, highWaterMark: 1024 * 1024 });
}

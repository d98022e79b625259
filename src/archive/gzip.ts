import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { constants as zc, crc32, deflateRaw, type ZlibOptions } from 'node:zlib';
import { StrataError } from '../errors/index.js';

export interface ParallelGzipOptions {
  /** zlib level 0-9; 6 is gzip's and pigz's default. */
  level?: number;
  /**
   * Input bytes per independently deflated block, default 512 KiB (pigz: 128 KiB); Node creates a zlib stream per
   * block, so larger blocks amortise that. At least 64 KiB.
   */
  blockSize?: number;
  /** Blocks in flight (default: CPUs + 2, so the threadpool never idles while the oldest block is emitted). */
  concurrency?: number;
}

const WINDOW = 32 * 1024;
// gzip member header: magic, CM=deflate, no flags, MTIME=0, XFL=0, OS=3 (Unix) — fixed so output never depends on
// when or where it was made. zlib sets XFL=0 for levels 2-8 too.
const HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]);

function deflateRawAsync(block: Buffer, opts: ZlibOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    deflateRaw(block, opts, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

/** Bytes at the start of a block that are deflated (level 1) to see whether the block is worth deflating. */
const PROBE = 16 * 1024;
/**
 * A block whose probe shrinks by less than this fraction is stored (deflate level 0: copied in stored blocks).
 * Random or already compressed data (archives, media, encrypted files) costs zlib about 20 ms per MiB and core and
 * saves a few percent at best: less than the transfer time it would save on any link faster than ~100 Mbit/s. The
 * choice depends only on the bytes, so the output stays deterministic.
 */
const MIN_SAVING = 0.1;

/** Largest payload of one stored deflate block (its LEN field is 16 bits). */
const STORED_MAX = 0xffff;

/**
 * `block` as stored deflate blocks: for each piece a header byte (BFINAL, BTYPE 00; the stream is byte-aligned after
 * every block this class emits), LEN and its one's complement, then the bytes as they are.
 */
function storedBlocks(block: Buffer, final: boolean): Buffer {
  const pieces = Math.max(1, Math.ceil(block.length / STORED_MAX));
  const out = Buffer.allocUnsafe(block.length + 5 * pieces);
  let at = 0;
  for (let i = 0; i < pieces; i++) {
    const piece = block.subarray(i * STORED_MAX, (i + 1) * STORED_MAX);
    out[at] = final && i === pieces - 1 ? 1 : 0;
    out.writeUInt16LE(piece.length, at + 1);
    out.writeUInt16LE(~piece.length & 0xffff, at + 3);
    piece.copy(out, at + 5);
    at += 5 + piece.length;
  }
  return out;
}

async function deflateBlock(block: Buffer, opts: ZlibOptions): Promise<Buffer> {
  if ((opts.level ?? 6) > 0 && block.length >= 2 * PROBE) {
    const probe = await deflateRawAsync(block.subarray(0, PROBE), { level: 1 });
    if (probe.length > PROBE * (1 - MIN_SAVING)) return storedBlocks(block, opts.finishFlush === zc.Z_FINISH);
  }
  return deflateRawAsync(block, opts);
}

interface Pending {
  promise: Promise<Buffer>;
  result: Buffer | undefined;
}

/**
 * A gzip compressor that deflates blocks on the libuv threadpool in parallel, the way pigz does: each block is
 * raw-deflated with the previous block's last 32 KiB as its dictionary (so the ratio stays close to single-threaded
 * gzip) and ends with a sync flush (byte-aligned, not final), the last block with Z_FINISH. Concatenated, the blocks
 * form one ordinary deflate stream that any gunzip reads. Blocks are cut at fixed input offsets and emitted in
 * order, so the output depends only on the input bytes and the level, never on timing. A block that does not
 * compress (see MIN_SAVING) is stored instead of deflated.
 */
class ParallelGzip extends Transform {
  readonly #level: number;
  readonly #blockSize: number;
  readonly #concurrency: number;
  #block: Buffer;
  #fill = 0;
  #dictionary: Buffer | undefined;
  readonly #queue: Pending[] = [];
  #crc = 0;
  #isize = 0;
  #headerSent = false;

  constructor(opts: ParallelGzipOptions) {
    super({ highWaterMark: 4 * 1024 * 1024, writableHighWaterMark: 1024 * 1024 });
    this.#level = opts.level ?? 6;
    this.#blockSize = opts.blockSize ?? 512 * 1024;
    this.#concurrency = opts.concurrency ?? availableParallelism() + 2;
    if (!Number.isInteger(this.#level) || this.#level < 0 || this.#level > 9) {
      throw new StrataError('INVALID_ARGUMENT', `gzip level must be an integer from 0 to 9, got ${this.#level}`);
    }
    if (!Number.isInteger(this.#blockSize) || this.#blockSize < 2 * WINDOW) {
      throw new StrataError('INVALID_ARGUMENT', `gzip block size must be at least ${2 * WINDOW} bytes`);
    }
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1) {
      throw new StrataError('INVALID_ARGUMENT', 'gzip concurrency must be a positive integer');
    }
    this.#block = Buffer.allocUnsafe(this.#blockSize);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#crc = crc32(chunk, this.#crc);
    this.#isize = (this.#isize + chunk.length) % 0x100000000;
    this.#consume(chunk).then(() => cb(), cb);
  }

  async #consume(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (this.#fill === 0 && chunk.length - off >= this.#blockSize) {
        // Whole block inside the chunk: no copy. Upstream never reuses a buffer it has pushed.
        this.#submit(chunk.subarray(off, off + this.#blockSize), false);
        off += this.#blockSize;
      } else {
        const n = Math.min(this.#blockSize - this.#fill, chunk.length - off);
        chunk.copy(this.#block, this.#fill, off, off + n);
        this.#fill += n;
        off += n;
        if (this.#fill < this.#blockSize) break;
        this.#submit(this.#block, false);
        this.#block = Buffer.allocUnsafe(this.#blockSize);
        this.#fill = 0;
      }
      // Keep a big chunk from flooding the threadpool (file reads share it) and from pinning memory.
      await this.#drain(this.#concurrency - 1);
    }
  }

  override _flush(cb: TransformCallback): void {
    this.#submit(this.#block.subarray(0, this.#fill), true);
    this.#drain(0).then(() => {
      const trailer = Buffer.allocUnsafe(8);
      trailer.writeUInt32LE(this.#crc >>> 0, 0);
      trailer.writeUInt32LE(this.#isize, 4);
      cb(null, trailer);
    }, cb);
  }

  #submit(block: Buffer, final: boolean): void {
    const opts: ZlibOptions = {
      level: this.#level,
      finishFlush: final ? zc.Z_FINISH : zc.Z_SYNC_FLUSH,
      // One output buffer big enough for a stored block means one threadpool round trip per block.
      chunkSize: block.length + (block.length >> 3) + 1024,
    };
    if (this.#dictionary) opts.dictionary = this.#dictionary;
    // Non-final blocks are always full, so their tail is a whole window.
    this.#dictionary = block.subarray(Math.max(0, block.length - WINDOW));
    const entry: Pending = { promise: deflateBlock(block, opts), result: undefined };
    entry.promise.then(
      (out) => {
        entry.result = out;
      },
      () => {},
    );
    this.#queue.push(entry);
  }

  /** Emits finished blocks in order, waiting for the oldest while more than `keep` are still in flight. */
  async #drain(keep: number): Promise<void> {
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      if (head.result === undefined && this.#queue.length <= keep) return;
      const out = head.result ?? (await head.promise);
      this.#queue.shift();
      if (!this.#headerSent) {
        this.push(HEADER);
        this.#headerSent = true;
      }
      this.push(out);
    }
  }
}

/** See ParallelGzip: a deterministic gzip stream compressed on several threads. */
export function createParallelGzip(opts: ParallelGzipOptions = {}): Transform {
  return new ParallelGzip(opts);
}

import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * A pass-through stream that hashes and counts every byte flowing through it. Read `hex()` and `size` after the
 * stream has ended. Used wherever bytes are verified while they stream (store writes, layer creation, pulls).
 */
export class HashingStream extends Transform {
  readonly #hash: Hash;
  #hex: string | undefined;
  size = 0;

  constructor(algorithm: 'sha256' | 'sha512' = 'sha256') {
    super();
    this.#hash = createHash(algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }

  /** The hex digest of everything that passed through. Only valid once the stream has flushed. */
  hex(): string {
    if (this.#hex === undefined) this.#hex = this.#hash.digest('hex');
    return this.#hex;
  }
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { StorageDriver } from '../storage/driver.js';
import type { PositionalFile } from '../storage/filesystem.js';

/**
 * Blob bodies from drivers with positional reads (the filesystem driver), through a pool of reused buffers.
 *
 * A read stream allocates a fresh buffer for every chunk; at blob-serving rates that is about a gigabyte a second
 * of external memory, which drives V8 into a major GC every few dozen megabytes (the profile of a 100 MiB blob
 * GET load spent more CPU in concurrent marking and sweeping than in copying bytes). Here each response keeps at
 * most DEPTH chunks in flight and a buffer goes back to the pool only once the socket has taken its bytes (the
 * write callback), so no buffer is ever overwritten while the kernel or TLS may still read it.
 */
const CHUNK = 1 << 20;
const DEPTH = 2;
/** Buffers kept for reuse (CHUNK each); beyond that, buffers are left to the GC. */
const POOL_MAX = 32;
const pool: Buffer[] = [];

export function hasPositionalReads(
  driver: StorageDriver,
): driver is StorageDriver & { openRead(path: string): Promise<PositionalFile> } {
  return typeof (driver as { openRead?: unknown }).openRead === 'function';
}

/**
 * Answer with `length` bytes of `file` from `start`: the status and headers already set on `reply`, then the body.
 * Takes over the response (`reply.hijack()`): fastify's onResponse hooks still run when it finishes. Closes
 * `file`. Never rejects: a read error mid-body destroys the connection (the client sees a short body, as with a
 * failing stream), after logging it.
 */
export async function sendFileRange(
  reply: FastifyReply,
  file: PositionalFile,
  start: number,
  length: number,
  log: Logger,
): Promise<void> {
  const res = reply.raw;
  reply.hijack();
  const closed = new Promise<void>((resolve) => res.once('close', resolve));
  const inflight = new Set<Promise<void>>();
  try {
    res.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string | number | string[]>);
    const end = start + length;
    for (let pos = start; pos < end; ) {
      while (inflight.size >= DEPTH && !res.destroyed) await Promise.race([...inflight, closed]);
      // The client went away: the buffers still in flight are not returned (the socket may hold them).
      if (res.destroyed) return;
      const buf = pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
      let n: number;
      try {
        n = await file.read(buf, 0, Math.min(CHUNK, end - pos), pos);
      } catch (err) {
        pool.push(buf);
        throw err;
      }
      if (n === 0) throw new Error(`blob ended at byte ${pos}, before the ${end} its size promised`);
      pos += n;
      let done!: () => void;
      const written = new Promise<void>((resolve) => {
        done = resolve;
      });
      inflight.add(written);
      res.write(n === CHUNK ? buf : buf.subarray(0, n), (err) => {
        if (!err && pool.length < POOL_MAX) pool.push(buf);
        inflight.delete(written);
        done();
      });
    }
    await Promise.race([Promise.all(inflight), closed]);
    if (!res.destroyed) res.end();
  } catch (err) {
    log.error({ err, url: reply.request.url }, 'blob read failed mid-response: connection closed');
    res.destroy(err as Error);
  } finally {
    await file.close().catch(() => {});
  }
}

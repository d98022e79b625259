import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decompressStream } from '../archive/index.js';
import { StrataError } from '../errors/index.js';

/**
 * Random access into a tar file without extracting it: one pass over the headers (seeking past the data) records
 * where each entry's bytes are, then entries are read as byte ranges of the file. This is how an image archive
 * (docker-archive, oci-archive) is read whatever order its entries come in, with nothing staged but the index.
 * Reads ustar, PAX (path, size, linkpath) and GNU long names; symlinks and hard links between entries resolve.
 */
export interface TarEntry {
  name: string;
  /** Byte offset of the entry's data in the file. */
  offset: number;
  size: number;
  type: 'file' | 'symlink' | 'link' | 'other';
  linkname?: string;
}

const BLOCK = 512;

function cstr(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end < 0 || end > start + len ? start + len : end);
}

function num(buf: Buffer, start: number, len: number): number {
  if ((buf[start]! & 0x80) !== 0) {
    // GNU base-256
    let v = buf[start]! & 0x7f;
    for (let i = start + 1; i < start + len; i++) v = v * 256 + buf[i]!;
    return v;
  }
  const s = cstr(buf, start, len).trim();
  return s === '' ? 0 : Number.parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const want = num(h, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum === want;
}

function paxRecords(buf: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < buf.length && buf[pos] !== 0) {
    const space = buf.indexOf(0x20, pos);
    if (space < 0) break;
    const len = Number.parseInt(buf.toString('ascii', pos, space), 10);
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > buf.length) break;
    const rec = buf.toString('utf8', space + 1, pos + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    pos += len;
  }
  return out;
}

export function normalizeEntryName(name: string): string {
  return posix.normalize(name.replace(/^(\.\/|\/)+/, '')).replace(/\/$/, '');
}

function tarError(path: string, problem: string): StrataError {
  return new StrataError('INVALID_ARGUMENT', `${path} is not a readable tar archive: ${problem}`, {
    hint: 'give an archive written by `strata save`, `docker save`, `podman save` or `skopeo copy`',
  });
}

export class TarIndex {
  private constructor(
    readonly path: string,
    readonly entries: Map<string, TarEntry>,
  ) {}

  static async open(path: string): Promise<TarIndex> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw new StrataError('NOT_FOUND', `cannot open archive ${path}: ${(err as Error).message}`, { cause: err });
    }
    const entries = new Map<string, TarEntry>();
    try {
      const size = (await fh.stat()).size;
      const h = Buffer.alloc(BLOCK);
      let pos = 0;
      let longName: string | undefined;
      let longLink: string | undefined;
      let pax = new Map<string, string>();
      while (pos + BLOCK <= size) {
        const { bytesRead } = await fh.read(h, 0, BLOCK, pos);
        if (bytesRead < BLOCK) throw tarError(path, 'truncated header');
        if (h.every((b) => b === 0)) break;
        if (!checksumOk(h)) throw tarError(path, `bad header checksum at offset ${pos}`);
        const type = String.fromCharCode(h[156] ?? 0x30);
        let entrySize = num(h, 124, 12);
        const dataAt = pos + BLOCK;
        const readData = async (max: number): Promise<Buffer> => {
          if (entrySize > max) throw tarError(path, `a ${entrySize}-byte metadata entry at offset ${pos}`);
          const b = Buffer.alloc(entrySize);
          await fh.read(b, 0, entrySize, dataAt);
          return b;
        };
        const next = dataAt + Math.ceil(entrySize / BLOCK) * BLOCK;
        if (type === 'x') {
          pax = paxRecords(await readData(1 << 20));
          pos = next;
          continue;
        }
        if (type === 'g') {
          pos = next;
          continue;
        }
        if (type === 'L') {
          longName = cstr(await readData(1 << 20), 0, entrySize);
          pos = next;
          continue;
        }
        if (type === 'K') {
          longLink = cstr(await readData(1 << 20), 0, entrySize);
          pos = next;
          continue;
        }
        let name = cstr(h, 0, 100);
        const magic = h.toString('ascii', 257, 262);
        if (magic === 'ustar') {
          const prefix = cstr(h, 345, 155);
          if (prefix) name = `${prefix}/${name}`;
        }
        name = pax.get('path') ?? longName ?? name;
        const linkname = pax.get('linkpath') ?? longLink ?? cstr(h, 157, 100);
        if (pax.has('size')) entrySize = Number(pax.get('size'));
        const realNext = dataAt + Math.ceil(entrySize / BLOCK) * BLOCK;
        const kind: TarEntry['type'] =
          type === '0' || type === '\0' || type === '7'
            ? 'file'
            : type === '2'
              ? 'symlink'
              : type === '1'
                ? 'link'
                : 'other';
        const norm = normalizeEntryName(name);
        if (dataAt + (kind === 'file' ? entrySize : 0) > size) throw tarError(path, `entry "${norm}" is truncated`);
        entries.set(norm, {
          name: norm,
          offset: dataAt,
          size: kind === 'file' ? entrySize : 0,
          type: kind,
          ...(kind === 'symlink' || kind === 'link' ? { linkname } : {}),
        });
        longName = undefined;
        longLink = undefined;
        pax = new Map();
        pos = realNext;
      }
    } finally {
      await fh.close();
    }
    if (entries.size === 0) throw tarError(path, 'it holds no entries');
    return new TarIndex(path, entries);
  }

  /** The file entry a name leads to, following links. */
  get(name: string): TarEntry | undefined {
    let cur = normalizeEntryName(name);
    for (let i = 0; i < 16; i++) {
      const e = this.entries.get(cur);
      if (!e) return undefined;
      if (e.type === 'file') return e;
      if (e.type === 'other' || e.linkname === undefined) return undefined;
      cur =
        e.type === 'link'
          ? normalizeEntryName(e.linkname)
          : normalizeEntryName(e.linkname.startsWith('/') ? e.linkname : posix.join(posix.dirname(cur), e.linkname));
    }
    return undefined;
  }

  /** The entry's bytes from `start`. */
  read(entry: TarEntry, start = 0, signal?: AbortSignal): Readable {
    if (entry.size === 0 || start >= entry.size) return Readable.from([]);
    return createReadStream(this.path, {
      start: entry.offset + start,
      end: entry.offset + entry.size - 1,
      highWaterMark: 1 << 20,
      ...(signal ? { signal } : {}),
    });
  }

  async readSmall(entry: TarEntry, max: number, what: string): Promise<Buffer> {
    if (entry.size > max) {
      throw new StrataError(
        'INVALID_ARGUMENT',
        `${what} in ${this.path} is ${entry.size} bytes, over the ${max} allowed`,
      );
    }
    const fh = await open(this.path, 'r');
    try {
      const b = Buffer.alloc(entry.size);
      await fh.read(b, 0, entry.size, entry.offset);
      return b;
    } finally {
      await fh.close();
    }
  }
}

/** True when the file starts with the gzip magic. */
export async function isGzipFile(path: string, offset = 0): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(2), 0, 2, offset);
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/** A compressed tar decompressed into `out` (streaming), so it can be indexed. */
export async function decompressFile(path: string, out: string, signal?: AbortSignal): Promise<void> {
  await pipeline(decompressStream(createReadStream(path)), createWriteStream(out), signal ? { signal } : {});
}

// Encoding of tar headers (ustar + PAX) for the layer writer, and decoding of PAX records for the reader.
//
// tar-stream's pack() cannot carry binary PAX values (it builds records as JS strings and encodes them as UTF-8, so
// a `security.capability` xattr would be corrupted) and names every PAX-described entry "PaxHeader" in its ustar
// block. Layers need both right, so headers are encoded here; the byte layout follows POSIX pax, as Go's
// archive/tar (docker, containerd, BuildKit) writes it.

export type EntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo';

export interface TarHeader {
  /** Relative path without leading "/" or "./"; directories without the trailing "/" (added when encoding). */
  name: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (integer). */
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes, stored as `SCHILY.xattr.<name>` PAX records with raw byte values. */
  xattrs?: ReadonlyMap<string, Buffer>;
}

const TYPEFLAG: Record<EntryType, number> = {
  file: 0x30,
  link: 0x31,
  symlink: 0x32,
  'character-device': 0x33,
  'block-device': 0x34,
  directory: 0x35,
  fifo: 0x36,
};

export const BLOCK = 512;
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
const ZEROS = Buffer.alloc(BLOCK);

/** Zero bytes that pad `size` bytes of entry data up to the next 512-byte boundary. */
export function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? ZEROS.subarray(0, 0) : ZEROS.subarray(0, BLOCK - rest);
}

// Octal fields hold (width - 1) digits and a NUL: 8-byte fields top out at 0o7777777, 12-byte ones at 0o77777777777.
function fitsOctal(value: number, width: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < 8 ** (width - 1);
}

function writeOctal(buf: Buffer, offset: number, width: number, value: number): void {
  buf.write(value.toString(8).padStart(width - 1, '0'), offset, width - 1, 'ascii');
  buf[offset + width - 1] = 0;
}

// GNU base-256: high bit of the first byte set, big-endian value in the rest. GNU tar, Go and tar-stream read it.
function writeBase256(buf: Buffer, offset: number, width: number, value: number): void {
  let v = value;
  for (let i = offset + width - 1; i > offset; i--) {
    buf[i] = v % 256;
    v = Math.floor(v / 256);
  }
  buf[offset] = 0x80;
}

/** Writes a numeric field; returns false when the value needs a PAX record (written as base-256 or 0 here). */
function writeNumeric(buf: Buffer, offset: number, width: number, value: number): boolean {
  if (fitsOctal(value, width)) {
    writeOctal(buf, offset, width, value);
    return true;
  }
  if (Number.isSafeInteger(value) && value >= 0) writeBase256(buf, offset, width, value);
  else writeOctal(buf, offset, width, 0);
  return false;
}

const isAscii = (s: string): boolean => /^[\x01-\x7f]*$/.test(s);

function fitsField(s: string, width: number): boolean {
  return isAscii(s) && s.length <= width;
}

/** One PAX record: "<len> <key>=<value>\n" where <len> counts the whole record including its own digits. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length > len) len++;
  return Buffer.concat([Buffer.from(String(len), 'ascii'), body]);
}

function ustarBlock(h: {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkname: string;
  devmajor: number;
  devminor: number;
}): { block: Buffer; overflow: Set<'uid' | 'gid' | 'size' | 'mtime'> } {
  const buf = Buffer.alloc(BLOCK);
  const overflow = new Set<'uid' | 'gid' | 'size' | 'mtime'>();
  buf.write(h.name, 0, 100, 'utf8');
  writeOctal(buf, 100, 8, h.mode & 0o7777);
  if (!writeNumeric(buf, 108, 8, h.uid)) overflow.add('uid');
  if (!writeNumeric(buf, 116, 8, h.gid)) overflow.add('gid');
  if (!writeNumeric(buf, 124, 12, h.size)) overflow.add('size');
  if (!writeNumeric(buf, 136, 12, h.mtime)) overflow.add('mtime');
  buf[156] = h.typeflag;
  buf.write(h.linkname, 157, 100, 'utf8');
  buf.write('ustar\x0000', 257, 8, 'ascii');
  writeOctal(buf, 329, 8, h.devmajor);
  writeOctal(buf, 337, 8, h.devminor);
  buf.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += buf[i]!;
  buf.write(`${sum.toString(8).padStart(6, '0')}\x00 `, 148, 8, 'ascii');
  return { block: buf, overflow };
}

// Names as Go writes them for a PAX block: "<dir>/PaxHeaders.0/<base>", cut to the ustar field.
function paxBlockName(name: string): string {
  const slash = name.lastIndexOf('/');
  const full = slash < 0 ? `PaxHeaders.0/${name}` : `${name.slice(0, slash)}/PaxHeaders.0/${name.slice(slash + 1)}`;
  return asciiPrefix(full, 100);
}

function asciiPrefix(s: string, max: number): string {
  return s.replace(/[^\x01-\x7f]/g, '_').slice(0, max);
}

/**
 * Encodes one entry's header blocks: a PAX extended header when something does not fit ustar (name or link over 100
 * bytes or not ASCII, uid/gid/size/mtime out of range, xattrs), then the ustar header. The same header always gives
 * the same bytes: PAX keys are sorted, the PAX block's own fields are fixed.
 */
export function encodeHeader(h: TarHeader): Buffer {
  const name = h.type === 'directory' ? `${h.name}/` : h.name;
  const linkname = h.linkname ?? '';
  const size = h.type === 'file' ? h.size : 0;
  const records = new Map<string, Buffer>();
  if (!fitsField(name, 100)) records.set('path', Buffer.from(name, 'utf8'));
  if (!fitsField(linkname, 100)) records.set('linkpath', Buffer.from(linkname, 'utf8'));
  const { block, overflow } = ustarBlock({
    name: fitsField(name, 100) ? name : asciiPrefix(name, 100),
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    size,
    mtime: h.mtime,
    typeflag: TYPEFLAG[h.type],
    linkname: fitsField(linkname, 100) ? linkname : asciiPrefix(linkname, 100),
    devmajor: h.devmajor ?? 0,
    devminor: h.devminor ?? 0,
  });
  for (const key of overflow)
    records.set(key, Buffer.from(String({ uid: h.uid, gid: h.gid, size, mtime: h.mtime }[key])));
  for (const [key, value] of h.xattrs ?? []) records.set(`SCHILY.xattr.${key}`, value);
  if (records.size === 0) return block;

  const keys = [...records.keys()].sort();
  const pax = Buffer.concat(keys.map((k) => paxRecord(k, records.get(k)!)));
  const paxHeader = ustarBlock({
    name: paxBlockName(name),
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: pax.length,
    mtime: 0,
    typeflag: 0x78, // 'x'
    linkname: '',
    devmajor: 0,
    devminor: 0,
  }).block;
  return Buffer.concat([paxHeader, pax, padding(pax.length), block]);
}

/**
 * Parses PAX records keeping values as raw bytes (tar-stream decodes them as UTF-8, which corrupts binary xattrs).
 * Returns undefined for malformed data so the caller can report it with the entry's name.
 */
export function decodePaxRecords(buf: Buffer): Map<string, Buffer> | undefined {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] === 0) break; // trailing NUL padding some writers leave
    const space = buf.indexOf(0x20, pos);
    if (space < 0) return undefined;
    const len = Number.parseInt(buf.toString('ascii', pos, space), 10);
    if (!Number.isSafeInteger(len) || len <= space - pos + 1 || pos + len > buf.length) return undefined;
    const record = buf.subarray(space + 1, pos + len - 1);
    if (buf[pos + len - 1] !== 0x0a) return undefined;
    const eq = record.indexOf(0x3d);
    if (eq < 0) return undefined;
    out.set(record.toString('utf8', 0, eq), record.subarray(eq + 1));
    pos += len;
  }
  return out;
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import tar from 'tar-stream';
import { decodePaxRecords, encodeHeader, type TarHeader } from '../../../src/archive/tar-format.js';

const base: TarHeader = {
  name: 'etc/passwd',
  type: 'file',
  mode: 0o644,
  uid: 0,
  gid: 0,
  size: 5,
  mtime: 1_700_000_000,
};

function checksumOk(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum === Number.parseInt(block.toString('ascii', 148, 154), 8);
}

function paxText(header: Buffer): string {
  assert.equal(String.fromCharCode(header[156]!), 'x', 'expected a PAX header first');
  const size = Number.parseInt(header.toString('ascii', 124, 135), 8);
  return header.subarray(512, 512 + size).toString('latin1');
}

/** Decodes our header bytes with tar-stream, an independent reader. */
async function decode(headerBytes: Buffer, size: number): Promise<tar.Header> {
  const ex = tar.extract();
  const padded = Math.ceil(size / 512) * 512;
  const done = (async () => {
    for await (const entry of ex) {
      entry.resume();
      return entry.header;
    }
    throw new Error('no entry');
  })();
  ex.end(Buffer.concat([headerBytes, Buffer.alloc(padded), Buffer.alloc(1024)]));
  return done as Promise<tar.Header>;
}

describe('tar header encoding', () => {
  it('encodes a short entry as one ustar block with a valid checksum, empty uname/gname', () => {
    const b = encodeHeader(base);
    assert.equal(b.length, 512);
    assert.ok(checksumOk(b));
    assert.equal(b.toString('ascii', 257, 263), 'ustar\0');
    assert.equal(b.toString('ascii', 263, 265), '00');
    assert.equal(b.toString('ascii', 0, 10), 'etc/passwd');
    assert.ok(
      b.subarray(265, 329).every((x) => x === 0),
      'uname and gname are empty',
    );
  });

  it('is deterministic: the same header gives the same bytes', () => {
    const h: TarHeader = {
      ...base,
      name: 'x'.repeat(300),
      xattrs: new Map([
        ['user.b', Buffer.from('2')],
        ['user.a', Buffer.from('1')],
      ]),
    };
    assert.deepEqual(encodeHeader(h), encodeHeader({ ...h }));
  });

  it('gives directories a trailing slash', async () => {
    const b = encodeHeader({ ...base, name: 'etc', type: 'directory', size: 0, mode: 0o755 });
    assert.equal(b.toString('ascii', 0, 4), 'etc/');
    assert.equal(String.fromCharCode(b[156]!), '5');
  });

  it('uses a PAX path for names over 100 bytes, with sorted keys, and tar-stream reads it back', async () => {
    const name = `${'d'.repeat(120)}/${'f'.repeat(200)}`;
    const b = encodeHeader({
      ...base,
      name,
      xattrs: new Map([
        ['user.z', Buffer.from('1')],
        ['user.a', Buffer.from('2')],
      ]),
    });
    const text = paxText(b);
    const keys = [...text.matchAll(/\d+ ([^=]+)=/g)].map((m) => m[1]);
    assert.deepEqual(keys, [...keys].sort());
    assert.ok(text.includes(` path=${name}\n`));
    const h = await decode(b, 5);
    assert.equal(h.name, name);
  });

  it('uses PAX for long link targets and non-ASCII names', async () => {
    const target = `/${'t'.repeat(150)}`;
    const link = await decode(encodeHeader({ ...base, type: 'symlink', size: 0, linkname: target }), 0);
    assert.equal(link.linkname, target);
    const utf = await decode(encodeHeader({ ...base, name: 'usr/share/zoneinfo/Amérique' }), 5);
    assert.equal(utf.name, 'usr/share/zoneinfo/Amérique');
  });

  it('encodes sizes of 8 GiB and more as base-256 plus a PAX size record', () => {
    const size = 10 * 1024 ** 3 + 7;
    const b = encodeHeader({ ...base, size });
    assert.ok(paxText(b).includes(` size=${size}\n`));
    const ustar = b.subarray(b.length - 512);
    assert.equal(ustar[124], 0x80);
    let v = 0;
    for (let i = 125; i < 136; i++) v = v * 256 + ustar[i]!;
    assert.equal(v, size);
    assert.ok(checksumOk(ustar));
  });

  it('keeps a size just under 8 GiB in octal without PAX', () => {
    const b = encodeHeader({ ...base, size: 8 ** 11 - 1 });
    assert.equal(b.length, 512);
    assert.equal(b.toString('ascii', 124, 135), '77777777777');
  });

  it('writes uid/gid beyond the octal field (userns ranges) as PAX records', async () => {
    const b = encodeHeader({ ...base, uid: 100_000_000, gid: 3_000_000 });
    const text = paxText(b);
    assert.ok(text.includes(' uid=100000000\n') && text.includes(' gid=3000000\n'));
  });

  it('writes negative mtimes as PAX records', () => {
    assert.ok(paxText(encodeHeader({ ...base, mtime: -5 })).includes(' mtime=-5\n'));
  });

  it('writes binary xattr values byte for byte and decodes them back', () => {
    const cap = Buffer.from([1, 0, 0, 2, 0x80, 0x20, 0, 0, 0xff, 0, 0x0a, 0x3d, 0, 0, 0, 0, 0, 0, 0, 0]);
    const b = encodeHeader({ ...base, xattrs: new Map([['security.capability', cap]]) });
    const size = Number.parseInt(b.toString('ascii', 124, 135), 8);
    const records = decodePaxRecords(b.subarray(512, 512 + size));
    assert.deepEqual(records?.get('SCHILY.xattr.security.capability'), cap);
  });

  it('encodes devices with major and minor numbers', async () => {
    const h = await decode(
      encodeHeader({ ...base, type: 'block-device', size: 0, devmajor: 259, devminor: 65_537 }),
      0,
    );
    assert.equal(h.type, 'block-device');
    assert.equal(h.devmajor, 259);
    assert.equal(h.devminor, 65_537);
  });

  it('computes PAX record lengths that count their own digits', () => {
    for (const n of [1, 80, 88, 89, 90, 991, 995, 996, 10_000]) {
      const b = encodeHeader({ ...base, xattrs: new Map([['user.x', Buffer.alloc(n, 0x61)]]) });
      const size = Number.parseInt(b.toString('ascii', 124, 135), 8);
      const records = decodePaxRecords(b.subarray(512, 512 + size));
      assert.equal(records?.get('SCHILY.xattr.user.x')?.length, n);
    }
  });

  it('rejects malformed PAX data', () => {
    assert.equal(decodePaxRecords(Buffer.from('99 path=x\n')), undefined);
    assert.equal(decodePaxRecords(Buffer.from('garbage')), undefined);
    assert.equal(decodePaxRecords(Buffer.from('10 pathx\n\n')), undefined);
  });
});

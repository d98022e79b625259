import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { applyLayer, packChanges, packDirectory } from '../../../src/archive/index.js';
import {
  buildFeatureTree,
  collect,
  hasTool,
  isRoot,
  LONG_DIR,
  LONG_FILE,
  makeTar,
  OLD,
  run,
  snapshotTree,
  streamOf,
  tempDir,
} from './helpers.js';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Entry headers as tar-stream (an independent reader) sees them. */
async function listTar(tarBytes: Buffer): Promise<tar.Header[]> {
  const ex = tar.extract();
  const out: tar.Header[] = [];
  const done = (async () => {
    for await (const entry of ex) {
      out.push(entry.header);
      entry.resume();
    }
  })();
  ex.end(tarBytes);
  await done;
  return out;
}

describe('pack and apply', { skip: !isRoot && 'needs root (owners, devices, trusted xattrs)' }, () => {
  it('round-trips a tree with every kind of entry, gzip and uncompressed', async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'src');
    mkdirSync(src);
    buildFeatureTree(src);
    for (const compression of ['gzip', 'none'] as const) {
      const out = join(dir, `out-${compression}`);
      mkdirSync(out);
      const layer = packDirectory(src, { compression });
      const bytes = await collect(layer.stream);
      const info = await layer.info;
      const result = await applyLayer(streamOf(bytes), out, { whiteouts: 'delete' });
      assert.deepEqual(snapshotTree(out), snapshotTree(src));
      assert.equal(result.diffId, info.diffId);
      assert.equal(result.uncompressedSize, info.uncompressedSize);
      assert.equal(result.entries, Object.keys(snapshotTree(src)).length);
    }
  });

  it('keeps hardlinks as hardlinks: one file, link entries pointing at the first path', async (t) => {
    const dir = await tempDir(t);
    buildFeatureTree(dir);
    const layer = packDirectory(dir, { compression: 'none' });
    const headers = await listTar(await collect(layer.stream));
    const links = headers.filter((h) => h.type === 'link').map((h) => [h.name, h.linkname]);
    assert.deepEqual(links, [
      ['etc/passwd-hardlink', 'etc/passwd'],
      ['home/passwd-link2', 'etc/passwd'],
    ]);
  });

  it('reports digest, size, diffId and media type of the bytes it streamed', async (t) => {
    const dir = await tempDir(t);
    buildFeatureTree(dir);
    const layer = packDirectory(dir, { mediaType: 'docker' });
    const bytes = await collect(layer.stream);
    const info = await layer.info;
    const tarBytes = gunzipSync(bytes);
    assert.equal(info.digest, sha(bytes));
    assert.equal(info.size, bytes.length);
    assert.equal(info.diffId, sha(tarBytes));
    assert.equal(info.uncompressedSize, tarBytes.length);
    assert.equal(info.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    const plain = packDirectory(dir, { compression: 'none' });
    const plainBytes = await collect(plain.stream);
    const plainInfo = await plain.info;
    assert.equal(plainInfo.digest, plainInfo.diffId);
    assert.equal(plainInfo.diffId, info.diffId);
    assert.equal(plainInfo.mediaType, 'application/vnd.oci.image.layer.v1.tar');
    assert.deepEqual(plainBytes, tarBytes);
  });

  it('writes entries sorted bytewise, relative, without "./", directories with a trailing "/"', async (t) => {
    const dir = await tempDir(t);
    buildFeatureTree(dir);
    mkdirSync(join(dir, 'a'));
    writeFileSync(join(dir, 'a-b'), '');
    writeFileSync(join(dir, 'a/b'), '');
    const headers = await listTar(gunzipSync(await collect(packDirectory(dir).stream)));
    const names = headers.map((h) => h.name);
    const keys = names.map((n) => n.replace(/\/$/, ''));
    const sorted = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    assert.deepEqual(keys, sorted);
    assert.ok(names.every((n) => !n.startsWith('./') && !n.startsWith('/')));
    assert.ok(names.includes('etc/') && names.includes('etc/passwd'));
    assert.ok(names.includes(`${LONG_DIR}/${LONG_FILE}`), 'long path survives (PAX)');
    assert.ok(headers.every((h) => h.uname === '' && h.gname === ''));
    assert.deepEqual(names.slice(0, 3), ['a/', 'a-b', 'a/b']);
  });

  it('is reproducible: same tree, or a copy of it, gives the same digest; sourceDateEpoch clamps only newer mtimes', async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'src');
    mkdirSync(src);
    buildFeatureTree(src);
    const first = packDirectory(src);
    await collect(first.stream);
    const second = packDirectory(src);
    await collect(second.stream);
    assert.equal((await first.info).digest, (await second.info).digest);

    run('cp', ['-a', src, join(dir, 'copy')]);
    const copy = packDirectory(join(dir, 'copy'));
    await collect(copy.stream);
    assert.equal((await copy.info).digest, (await first.info).digest, 'inode numbers and ctimes do not leak in');

    writeFileSync(join(src, 'new-file'), 'now');
    const epoch = OLD + 3600;
    const headers = await listTar(gunzipSync(await collect(packDirectory(src, { sourceDateEpoch: epoch }).stream)));
    const mtime = (name: string): number => headers.find((h) => h.name === name)!.mtime.getTime() / 1000;
    assert.equal(mtime('new-file'), epoch);
    assert.ok(mtime('bin/su') < epoch, 'older mtimes are kept');
  });

  it('produces tars GNU tar lists and extracts to the same tree', {
    skip: !hasTool('tar') && 'no GNU tar',
  }, async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'src');
    const out = join(dir, 'out');
    mkdirSync(src);
    mkdirSync(out);
    buildFeatureTree(src);
    const archive = join(dir, 'layer.tar.gz');
    writeFileSync(archive, await collect(packDirectory(src).stream));
    const listing = run('tar', ['-tvzf', archive]);
    assert.match(listing, /^-rwsr-xr-x 0\/0 +6 2001-09-09 .* bin\/su$/m);
    assert.match(listing, /^crw--w---- 0\/0 +1,3 .* dev\/null$/m);
    assert.match(listing, /^brw-rw---- 0\/0 +7,9 .* dev\/loop9$/m);
    assert.match(listing, /^hrw-r--r-- .* etc\/passwd-hardlink link to etc\/passwd$/m);
    assert.match(listing, /^-rw-r----- 100000000\/3000000 .* home\/user\/big-uid$/m);
    assert.match(listing, new RegExp(`^-rw-r--r-- .* ${LONG_DIR}/${LONG_FILE}$`, 'm'));
    run('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpzf', archive, '-C', out]);
    assert.deepEqual(snapshotTree(out, { dirMtimes: false }), snapshotTree(src, { dirMtimes: false }));
  });

  it('applies tars made by GNU tar (-czf, posix format, "./" entries)', {
    skip: !hasTool('tar') && 'no GNU tar',
  }, async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'src');
    const out = join(dir, 'out');
    mkdirSync(src);
    mkdirSync(out);
    buildFeatureTree(src);
    const archive = join(dir, 'gnu.tar.gz');
    run('tar', [
      '--format=posix',
      '--xattrs',
      '--xattrs-include=*',
      '--numeric-owner',
      '-czf',
      archive,
      '-C',
      src,
      '.',
    ]);
    const result = await applyLayer(Readable.from([readFileSync(archive)]), out, { whiteouts: 'delete' });
    assert.deepEqual(snapshotTree(out), snapshotTree(src));
    assert.equal(result.diffId, sha(gunzipSync(readFileSync(archive))));
    // GNU format (long names via ././@LongLink) too.
    const gnu = join(dir, 'gnu-format.tar');
    const out2 = join(dir, 'out2');
    mkdirSync(out2);
    run('tar', ['--format=gnu', '--numeric-owner', '-cf', gnu, '-C', src, '.']);
    await applyLayer(Readable.from([readFileSync(gnu)]), out2, { whiteouts: 'delete' });
    assert.deepEqual(
      Object.keys(snapshotTree(out2)),
      Object.keys(snapshotTree(src)),
      'same paths, long names included',
    );
  });

  it('replaces existing entries as tar does: file over dir, dir over dir merges, never writes through symlinks or hardlinks', async (t) => {
    const dir = await tempDir(t);
    const target = join(dir, 'target');
    const outside = join(dir, 'outside');
    mkdirSync(target);
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret'), 'original');
    mkdirSync(join(target, 'was-dir/sub'), { recursive: true });
    mkdirSync(join(target, 'merge'));
    writeFileSync(join(target, 'merge/lower'), 'lower');
    symlinkSync(join(outside, 'secret'), join(target, 'link-to-outside'));
    writeFileSync(join(target, 'shared'), 'shared');
    run('ln', [join(target, 'shared'), join(target, 'shared-2')]);
    writeFileSync(join(target, 'was-file'), 'x');
    const layer = await makeTar([
      { header: { name: 'was-dir', type: 'file' }, body: 'now a file' },
      { header: { name: 'merge', type: 'directory', mode: 0o750 } },
      { header: { name: 'merge/upper', type: 'file' }, body: 'upper' },
      { header: { name: 'link-to-outside', type: 'file' }, body: 'replaced' },
      { header: { name: 'shared-2', type: 'file' }, body: 'new content' },
      { header: { name: 'was-file', type: 'directory' } },
    ]);
    await applyLayer(streamOf(layer), target, { whiteouts: 'delete' });
    assert.equal(readFileSync(join(target, 'was-dir'), 'utf8'), 'now a file');
    assert.equal(readFileSync(join(target, 'merge/lower'), 'utf8'), 'lower');
    assert.equal(readFileSync(join(target, 'merge/upper'), 'utf8'), 'upper');
    assert.equal(lstatSync(join(target, 'merge')).mode & 0o7777, 0o750);
    assert.ok(lstatSync(join(target, 'link-to-outside')).isFile());
    assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'original');
    assert.equal(readFileSync(join(target, 'shared'), 'utf8'), 'shared');
    assert.equal(readFileSync(join(target, 'shared-2'), 'utf8'), 'new content');
    assert.ok(lstatSync(join(target, 'was-file')).isDirectory());
  });

  it('applies PAX uid/gid/mtime records and SCHILY xattrs written by other tools', async (t) => {
    const dir = await tempDir(t);
    const layer = await makeTar([
      {
        header: {
          name: 'f',
          type: 'file',
          uid: 1,
          gid: 1,
          pax: { uid: '4000000000', gid: '2500000', mtime: '1234567890.5', 'SCHILY.xattr.user.k': 'v' },
        },
        body: 'x',
      },
    ]);
    await applyLayer(streamOf(layer), dir, { whiteouts: 'delete' });
    const st = lstatSync(join(dir, 'f'));
    assert.equal(st.uid, 4_000_000_000);
    assert.equal(st.gid, 2_500_000);
    assert.equal(st.mtimeMs, 1_234_567_890_500);
    assert.equal(snapshotTree(dir).f?.xattrs?.['user.k'], Buffer.from('v').toString('hex'));
  });

  it('never applies overlay-internal xattrs from a layer', async (t) => {
    const dir = await tempDir(t);
    const layer = await makeTar([
      { header: { name: 'd', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } } },
    ]);
    await applyLayer(streamOf(layer), dir, { whiteouts: 'overlay' });
    assert.equal(snapshotTree(dir).d?.xattrs, undefined);
  });

  it('streams a large file with bounded memory', async (t) => {
    const dir = await tempDir(t);
    const big = join(dir, 'src/big.bin');
    mkdirSync(join(dir, 'src'));
    writeFileSync(big, '');
    truncateSync(big, 1024 ** 3); // sparse 1 GiB: cheap on disk, full size in the tar
    const before = process.memoryUsage().rss;
    let peak = before;
    const layer = packDirectory(join(dir, 'src'), { compression: 'none' });
    let bytes = 0;
    for await (const chunk of layer.stream) {
      bytes += (chunk as Buffer).length;
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    assert.equal((await layer.info).uncompressedSize, bytes);
    assert.ok(bytes > 1024 ** 3);
    assert.ok(peak - before < 200 * 1024 * 1024, `rss grew by ${(peak - before) >> 20} MiB`);
  });

  it('writes files of 8 GiB and more so GNU tar reads their exact size', {
    skip: !hasTool('tar') && 'no GNU tar',
  }, async (t) => {
    const dir = await tempDir(t);
    const big = join(dir, 'huge.bin');
    const size = 8 * 1024 ** 3 + 12_345; // sparse: no disk used, but every byte is read and hashed
    writeFileSync(big, '');
    truncateSync(big, size);
    const layer = packDirectory(dir, { compression: 'none' });
    const child = spawn('tar', ['-tvf', '-'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let listing = '';
    child.stdout.on('data', (c: Buffer) => {
      listing += c.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await pipeline(layer.stream, child.stdin);
    assert.equal(await exited, 0);
    assert.match(listing, new RegExp(`^-rw-r--r-- 0/0 +${size} .* huge.bin$`, 'm'));
    assert.ok((await layer.info).uncompressedSize > size);
  });

  it('cancels packing and applying through an AbortSignal', async (t) => {
    const dir = await tempDir(t);
    buildFeatureTree(dir);
    const ac = new AbortController();
    ac.abort();
    const layer = packDirectory(dir, { signal: ac.signal });
    await assert.rejects(layer.info, { code: 'CANCELLED' });
    await assert.rejects(collect(layer.stream), { code: 'CANCELLED' });
    const bytes = await collect(packDirectory(dir).stream);
    const out = await tempDir(t);
    await assert.rejects(applyLayer(streamOf(bytes), out, { whiteouts: 'delete', signal: ac.signal }), {
      code: 'CANCELLED',
    });
  });
});

describe('packChanges', { skip: !isRoot && 'needs root' }, () => {
  it('writes A/C paths alone (not their subtrees) and D paths as .wh. whiteouts', async (t) => {
    const root = await tempDir(t);
    mkdirSync(join(root, 'etc/conf.d'), { recursive: true });
    writeFileSync(join(root, 'etc/hosts'), 'h');
    writeFileSync(join(root, 'etc/conf.d/unchanged'), 'u');
    const layer = packChanges(
      root,
      [
        { kind: 'C', path: '/etc' },
        { kind: 'A', path: '/etc/hosts' },
        { kind: 'D', path: '/etc/shadow' },
        { kind: 'D', path: '/old' },
      ],
      { compression: 'none' },
    );
    const headers = await listTar(await collect(layer.stream));
    assert.deepEqual(
      headers.map((h) => [h.name, h.type, h.size]),
      [
        ['.wh.old', 'file', 0],
        ['etc/', 'directory', 0],
        ['etc/.wh.shadow', 'file', 0],
        ['etc/hosts', 'file', 1],
      ],
    );
  });

  it('fails with NOT_FOUND when a changed path is gone, and refuses paths through symlinks', async (t) => {
    const root = await tempDir(t);
    symlinkSync('/', join(root, 'host'));
    await assert.rejects(collect(packChanges(root, [{ kind: 'A', path: '/missing' }]).stream), { code: 'NOT_FOUND' });
    await assert.rejects(collect(packChanges(root, [{ kind: 'C', path: '/host/etc/passwd' }]).stream), {
      name: 'PathEscapeError',
      message: /host\/etc\/passwd/,
    });
    await assert.rejects(collect(packChanges(root, [{ kind: 'A', path: '/../etc/passwd' }]).stream), {
      name: 'PathEscapeError',
    });
  });
});

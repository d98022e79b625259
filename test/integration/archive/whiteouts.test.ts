import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { getAttributeSync } from '@napi-rs/xattr';
import { applyLayer, packOverlayUpper } from '../../../src/archive/index.js';
import { collect, isRoot, makeTar, streamOf, tempDir } from './helpers.js';

function lowerTree(root: string): void {
  mkdirSync(join(root, 'etc/old-dir/nested'), { recursive: true });
  writeFileSync(join(root, 'etc/old-dir/nested/file'), 'x');
  writeFileSync(join(root, 'etc/doomed'), 'x');
  writeFileSync(join(root, 'etc/kept'), 'x');
  mkdirSync(join(root, 'opaque/lower-sub'), { recursive: true });
  writeFileSync(join(root, 'opaque/lower-file'), 'lower');
  writeFileSync(join(root, 'opaque/-sorts-first'), 'lower');
  writeFileSync(join(root, 'opaque/lower-sub/deep'), 'lower');
}

describe('whiteouts, delete mode', { skip: !isRoot && 'needs root' }, () => {
  it('.wh.<name> deletes a lower file or a whole lower directory', async (t) => {
    const root = await tempDir(t);
    lowerTree(root);
    const layer = await makeTar([
      { header: { name: 'etc/.wh.doomed', type: 'file' } },
      { header: { name: 'etc/.wh.old-dir', type: 'file' } },
      { header: { name: 'etc/.wh.never-existed', type: 'file' } },
      { header: { name: 'missing-parent/.wh.x', type: 'file' } },
    ]);
    const result = await applyLayer(streamOf(layer), root, { whiteouts: 'delete' });
    assert.equal(result.entries, 4);
    assert.deepEqual(readdirSync(join(root, 'etc')), ['kept']);
    assert.equal(existsSync(join(root, 'missing-parent')), false, 'a whiteout creates nothing');
  });

  it('.wh..wh..opq empties a lower directory but keeps entries of the same layer, before or after the marker', async (t) => {
    const root = await tempDir(t);
    lowerTree(root);
    // "+early" and "-sorts-first" sort before ".wh..wh..opq", so they arrive before the marker.
    const layer = await makeTar([
      { header: { name: 'opaque', type: 'directory' } },
      { header: { name: 'opaque/+early', type: 'file' }, body: 'same layer' },
      { header: { name: 'opaque/-sorts-first', type: 'file' }, body: 'same layer' },
      { header: { name: 'opaque/new-dir/inner', type: 'file' }, body: 'implicit parent' },
      { header: { name: 'opaque/.wh..wh..opq', type: 'file' } },
      { header: { name: 'opaque/late', type: 'file' }, body: 'same layer' },
    ]);
    await applyLayer(streamOf(layer), root, { whiteouts: 'delete' });
    assert.deepEqual(readdirSync(join(root, 'opaque')).sort(), ['+early', '-sorts-first', 'late', 'new-dir']);
    assert.equal(readFileSync(join(root, 'opaque/-sorts-first'), 'utf8'), 'same layer');
    assert.equal(readFileSync(join(root, 'opaque/new-dir/inner'), 'utf8'), 'implicit parent');
  });

  it('a whiteout never removes what the same layer wrote', async (t) => {
    const root = await tempDir(t);
    const layer = await makeTar([
      { header: { name: '-x', type: 'file' }, body: 'mine' },
      { header: { name: '.wh.-x', type: 'file' } },
    ]);
    await applyLayer(streamOf(layer), root, { whiteouts: 'delete' });
    assert.equal(readFileSync(join(root, '-x'), 'utf8'), 'mine');
  });

  it('ignores aufs bookkeeping entries (.wh..wh.plnk)', async (t) => {
    const root = await tempDir(t);
    const layer = await makeTar([{ header: { name: '.wh..wh.plnk', type: 'directory' } }]);
    await applyLayer(streamOf(layer), root, { whiteouts: 'delete' });
    assert.deepEqual(readdirSync(root), []);
  });
});

describe('whiteouts, overlay mode', { skip: !isRoot && 'needs root (mknod, trusted xattrs)' }, () => {
  it('turns .wh.<name> into a 0/0 character device and .wh..wh..opq into trusted.overlay.opaque=y', async (t) => {
    const snapshot = await tempDir(t);
    const layer = await makeTar([
      { header: { name: 'etc', type: 'directory' } },
      { header: { name: 'etc/.wh.shadow', type: 'file' } },
      { header: { name: 'var/cache', type: 'directory' } },
      { header: { name: 'var/cache/.wh..wh..opq', type: 'file' } },
      { header: { name: 'var/cache/kept', type: 'file' }, body: 'k' },
      { header: { name: '.wh.top', type: 'file' } },
    ]);
    await applyLayer(streamOf(layer), snapshot, { whiteouts: 'overlay' });
    for (const rel of ['etc/shadow', 'top']) {
      const st = lstatSync(join(snapshot, rel));
      assert.ok(st.isCharacterDevice(), `${rel} is a char device`);
      assert.equal(st.rdev, 0);
    }
    assert.equal(getAttributeSync(join(snapshot, 'var/cache'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.equal(readFileSync(join(snapshot, 'var/cache/kept'), 'utf8'), 'k');
  });

  it('round-trips: overlay-mode snapshot packed as an overlay upper gives the same whiteouts back', async (t) => {
    const snapshot = await tempDir(t);
    const layer = await makeTar([
      { header: { name: 'a', type: 'directory', mode: 0o755 } },
      { header: { name: 'a/.wh..wh..opq', type: 'file', mode: 0o755 } },
      { header: { name: 'a/.wh.gone', type: 'file', mode: 0o600 } },
      { header: { name: 'a/file', type: 'file' }, body: 'f' },
    ]);
    await applyLayer(streamOf(layer), snapshot, { whiteouts: 'overlay' });
    const packed = packOverlayUpper(snapshot, { compression: 'none' });
    const bytes = await collect(packed.stream);
    const names: string[] = [];
    for (let off = 0; off + 512 <= bytes.length; ) {
      const name = bytes.toString('utf8', off, off + 100).replace(/\0.*$/s, '');
      if (!name) break;
      names.push(name);
      const size = Number.parseInt(bytes.toString('ascii', off + 124, off + 135), 8);
      off += 512 + Math.ceil(size / 512) * 512;
    }
    assert.deepEqual(names, ['a/', 'a/.wh..wh..opq', 'a/.wh.gone', 'a/file']);
  });
});

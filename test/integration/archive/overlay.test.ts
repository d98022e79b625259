import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, lutimesSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setAttributeSync } from '@napi-rs/xattr';
import tar from 'tar-stream';
import {
  applyLayer,
  type Change,
  changesFromOverlayUpper,
  packChanges,
  packOverlayUpper,
} from '../../../src/archive/index.js';
import { collect, isRoot, run, snapshotTree, streamOf, tempDir } from './helpers.js';

async function headersOf(bytes: Buffer): Promise<tar.Header[]> {
  const ex = tar.extract();
  const out: tar.Header[] = [];
  const done = (async () => {
    for await (const entry of ex) {
      out.push(entry.header);
      entry.resume();
    }
  })();
  ex.end(bytes);
  await done;
  return out;
}

function whiteoutDevice(path: string, uid = 0, gid = 0, mtime = 1_500_000_000): void {
  run('mknod', [path, 'c', '0', '0']);
  chownSync(path, uid, gid);
  lutimesSync(path, mtime, mtime);
}

describe('packOverlayUpper', { skip: !isRoot && 'needs root (mknod, trusted xattrs)' }, () => {
  it('converts overlay whiteouts to OCI ones and leaves trusted.overlay.* xattrs out', async (t) => {
    const upper = await tempDir(t);
    mkdirSync(join(upper, 'etc'));
    writeFileSync(join(upper, 'etc/new'), 'n');
    setAttributeSync(join(upper, 'etc/new'), 'user.keep', 'k');
    setAttributeSync(join(upper, 'etc/new'), 'trusted.overlay.origin', Buffer.from([0, 1, 2]));
    whiteoutDevice(join(upper, 'etc/removed'), 1000, 1001);
    mkdirSync(join(upper, 'var'));
    chownSync(join(upper, 'var'), 7, 8);
    setAttributeSync(join(upper, 'var'), 'trusted.overlay.opaque', 'y');
    writeFileSync(join(upper, 'var/child'), 'c');
    const layer = packOverlayUpper(upper, { compression: 'none' });
    const headers = await headersOf(await collect(layer.stream));
    assert.deepEqual(
      headers.map((h) => [h.name, h.type]),
      [
        ['etc/', 'directory'],
        ['etc/.wh.removed', 'file'],
        ['etc/new', 'file'],
        ['var/', 'directory'],
        ['var/.wh..wh..opq', 'file'],
        ['var/child', 'file'],
      ],
    );
    const wh = headers[1]!;
    assert.deepEqual([wh.mode, wh.uid, wh.gid, wh.size, wh.mtime.getTime()], [0o600, 1000, 1001, 0, 1_500_000_000_000]);
    const opq = headers[4]!;
    assert.deepEqual([opq.uid, opq.gid], [7, 8]);
    const pax = (h: tar.Header): string[] => Object.keys((h.pax ?? {}) as Record<string, string>);
    assert.deepEqual(pax(headers[2]!), ['SCHILY.xattr.user.keep']);
    assert.ok(headers.every((h) => pax(h).every((k) => !k.includes('trusted.overlay'))));
  });
});

describe('changesFromOverlayUpper', { skip: !isRoot && 'needs root' }, () => {
  it('classifies A, C and D like docker diff and lists parents of changes as C', async (t) => {
    const dir = await tempDir(t);
    const [lower1, lower2, upper] = ['lower1', 'lower2', 'upper'].map((n) => join(dir, n)) as [string, string, string];
    // lower1 is the top lower (overlay's lowerdir order); it whites out lower2's /opt/gone.
    for (const d of [lower1, lower2, upper]) mkdirSync(d);
    mkdirSync(join(lower2, 'usr/local/bin'), { recursive: true });
    mkdirSync(join(lower2, 'opt'));
    writeFileSync(join(lower2, 'opt/gone'), 'x');
    mkdirSync(join(lower2, 'cache'));
    writeFileSync(join(lower2, 'cache/a'), 'a');
    writeFileSync(join(lower2, 'cache/b'), 'b');
    mkdirSync(join(lower1, 'etc'));
    writeFileSync(join(lower1, 'etc/hosts'), 'h');
    writeFileSync(join(lower1, 'etc/motd'), 'm');
    mkdirSync(join(lower1, 'opt'));
    whiteoutDevice(join(lower1, 'opt/gone'));

    run('cp', ['-a', join(lower2, 'usr'), join(upper, 'usr')]); // copied-up parents, unchanged
    writeFileSync(join(upper, 'usr/local/bin/tool'), 't');
    run('cp', ['-a', join(lower1, 'etc'), join(upper, 'etc')]);
    writeFileSync(join(upper, 'etc/hosts'), 'changed');
    rmSync(join(upper, 'etc/motd'));
    whiteoutDevice(join(upper, 'etc/motd'));
    mkdirSync(join(upper, 'opt'));
    writeFileSync(join(upper, 'opt/gone'), 'recreated'); // hidden below by lower1's whiteout: an add
    mkdirSync(join(upper, 'cache'));
    setAttributeSync(join(upper, 'cache'), 'trusted.overlay.opaque', 'y');
    writeFileSync(join(upper, 'cache/b'), 'new b');
    mkdirSync(join(upper, 'newdir/sub'), { recursive: true });

    const changes = await changesFromOverlayUpper(upper, [lower1, lower2]);
    assert.deepEqual(changes, [
      { kind: 'C', path: '/cache' },
      { kind: 'D', path: '/cache/a' },
      { kind: 'C', path: '/cache/b' },
      { kind: 'C', path: '/etc' },
      { kind: 'C', path: '/etc/hosts' },
      { kind: 'D', path: '/etc/motd' },
      { kind: 'A', path: '/newdir' },
      { kind: 'A', path: '/newdir/sub' },
      { kind: 'C', path: '/opt' },
      { kind: 'A', path: '/opt/gone' },
      { kind: 'C', path: '/usr' },
      { kind: 'C', path: '/usr/local' },
      { kind: 'C', path: '/usr/local/bin' },
      { kind: 'A', path: '/usr/local/bin/tool' },
    ] satisfies Change[]);
  });
});

function tryMount(lower: string, upper: string, work: string, merged: string): boolean {
  const r = spawnSync('mount', [
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${lower},upperdir=${upper},workdir=${work}`,
    merged,
  ]);
  return r.status === 0;
}

describe('a real overlay mount', { skip: !isRoot && 'needs root' }, () => {
  it('layers from the upper dir (packOverlayUpper) and from the change list (packChanges) both rebuild the merged view', async (t) => {
    const dir = await tempDir(t);
    const [snap, upper, work, merged, flatA, flatB] = ['snap', 'upper', 'work', 'merged', 'flat-a', 'flat-b'].map((n) =>
      join(dir, n),
    ) as [string, string, string, string, string, string];
    for (const d of [snap, upper, work, merged, flatA, flatB]) mkdirSync(d);
    // The base layer, unpacked twice: as an overlay snapshot and as a flat root to apply diffs to.
    const base = join(dir, 'base');
    mkdirSync(join(base, 'etc/sub'), { recursive: true });
    mkdirSync(join(base, 'var/lib/db'), { recursive: true });
    writeFileSync(join(base, 'etc/hosts'), 'hosts');
    writeFileSync(join(base, 'etc/sub/conf'), 'conf');
    writeFileSync(join(base, 'var/lib/db/data'), 'data');
    writeFileSync(join(base, 'var/lib/db/more'), 'more');
    const { packDirectory } = await import('../../../src/archive/index.js');
    const baseTar = await collect(packDirectory(base).stream);
    await applyLayer(streamOf(baseTar), snap, { whiteouts: 'overlay' });
    await applyLayer(streamOf(baseTar), flatA, { whiteouts: 'delete' });
    await applyLayer(streamOf(baseTar), flatB, { whiteouts: 'delete' });

    if (!tryMount(snap, upper, work, merged)) {
      t.skip('overlay mount not permitted here');
      return;
    }
    try {
      writeFileSync(join(merged, 'etc/hosts'), 'changed');
      rmSync(join(merged, 'etc/sub'), { recursive: true });
      rmSync(join(merged, 'var/lib/db'), { recursive: true });
      mkdirSync(join(merged, 'var/lib/db'));
      writeFileSync(join(merged, 'var/lib/db/fresh'), 'fresh');
      mkdirSync(join(merged, 'new/deep'), { recursive: true });
      writeFileSync(join(merged, 'new/deep/file'), 'n');

      const fromUpper = await collect(packOverlayUpper(upper).stream);
      await applyLayer(streamOf(fromUpper), flatA, { whiteouts: 'delete' });
      const changes = await changesFromOverlayUpper(upper, [snap]);
      const fromChanges = await collect(packChanges(merged, changes).stream);
      await applyLayer(streamOf(fromChanges), flatB, { whiteouts: 'delete' });

      const expected = snapshotTree(merged, { dirMtimes: false });
      assert.deepEqual(snapshotTree(flatA, { dirMtimes: false }), expected);
      assert.deepEqual(snapshotTree(flatB, { dirMtimes: false }), expected);
    } finally {
      spawnSync('umount', [merged]);
    }
  });
});

// Active snapshots on real overlayfs mounts (and the copy-based fallback): merged views, isolation, 120 layers,
// docker-diff semantics, the commit layer's whiteouts, removal. Every mount lives under a temp dir and is
// unmounted in `after`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { getAttributeSync, setAttributeSync } from '@napi-rs/xattr';
import tar from 'tar-stream';
import { applyLayer, type PackedLayer, packChanges, packOverlayUpper } from '../../../src/archive/index.js';
import { ContentStore } from '../../../src/content/index.js';
import { collectGarbage } from '../../../src/metadata/index.js';
import { type Change, isMounted, readMountInfo, Snapshotter } from '../../../src/snapshot/index.js';
import { describeTree } from '../../helpers/tree.js';

const isRoot = process.getuid?.() === 0;
const hasOverlay = isRoot && readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n');
const skip = !hasOverlay && 'needs root and overlayfs';

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

function whiteout(path: string): void {
  run('mknod', [path, 'c', '0', '0']);
}

const T0 = 1_600_000_000;

function file(path: string, content: string, mode = 0o644): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
  chmodSync(path, mode);
  utimesSync(path, T0, T0);
}

async function collect(layer: PackedLayer): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    layer.stream,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

async function tarNames(bytes: Buffer): Promise<string[]> {
  const ex = tar.extract();
  const names: string[] = [];
  const done = (async () => {
    for await (const entry of ex) {
      names.push(entry.header.name);
      entry.resume();
    }
  })();
  ex.end(bytes);
  await done;
  return names;
}

const lines = (changes: Change[]): string[] => changes.map((c) => `${c.kind} ${c.path}`);

describe('active snapshots', { skip }, () => {
  let tmp: string;
  let snaps: Snapshotter;
  let top: string; // chainId of the 3-layer chain
  const savedEnv = process.env['STRATA_SNAPSHOTTER'];
  let n = 0;
  const target = (name: string): string => join(tmp, 'mnt', `${name}-${n++}`);

  /** Commit a layer snapshot named `name` on `parent`, filled by `fill(dir)`. */
  async function layer(name: string, parent: string | undefined, fill: (dir: string) => void): Promise<string> {
    const key = `extract-${name}`;
    const dir = await snaps.prepare(key, parent);
    fill(dir);
    assert.equal(await snaps.commit(name, key), true);
    return name;
  }

  before(async () => {
    delete process.env['STRATA_SNAPSHOTTER'];
    tmp = await mkdtemp(join(tmpdir(), 'strata-snapshot-'));
    snaps = new Snapshotter(join(tmp, 'root'));
    const l1 = await layer('sha256:l1', undefined, (d) => {
      file(join(d, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
      file(join(d, 'etc/hosts'), 'h1\n');
      file(join(d, 'bin/sh'), '#!sh\n', 0o755);
      file(join(d, 'var/cache/a'), 'a');
      file(join(d, 'var/cache/b'), 'b');
      file(join(d, 'opt/keep'), 'k');
      file(join(d, 'usr/lib/libx'), 'x-v1');
      linkSync(join(d, 'usr/lib/libx'), join(d, 'usr/lib/liby'));
      symlinkSync('usr/lib', join(d, 'lib'));
      file(join(d, 'data/old1'), 'o1');
      file(join(d, 'data/sub/old2'), 'o2');
      file(join(d, 'home/user/.profile'), 'p');
      file(join(d, 'mnt/deep/x'), 'x');
      file(join(d, 'mnt/deep/y'), 'y');
    });
    const l2 = await layer('sha256:l2', l1, (d) => {
      file(join(d, 'etc/hosts'), 'h2\n');
      mkdirSync(join(d, 'var/cache'), { recursive: true });
      whiteout(join(d, 'var/cache/b'));
      file(join(d, 'srv/x'), 'x');
    });
    top = await layer('sha256:l3', l2, (d) => {
      mkdirSync(join(d, 'data'));
      setAttributeSync(join(d, 'data'), 'trusted.overlay.opaque', 'y');
      file(join(d, 'data/new'), 'n');
      whiteout(join(d, 'opt'));
    });
  });

  after(async () => {
    if (savedEnv === undefined) delete process.env['STRATA_SNAPSHOTTER'];
    else process.env['STRATA_SNAPSHOTTER'] = savedEnv;
    if (!tmp) return;
    for (const a of await snaps.listActive().catch(() => [])) await snaps.removeActive(a.key).catch(() => {});
    const left = (await readMountInfo()).filter((m) => m.mountPoint.startsWith(`${tmp}/`));
    for (const m of left.reverse()) spawnSync('umount', ['-l', m.mountPoint]);
    await rm(tmp, { recursive: true, force: true });
  });

  const mergedPaths = [
    'bin',
    'bin/sh',
    'data',
    'data/new',
    'etc',
    'etc/hosts',
    'etc/passwd',
    'home',
    'home/user',
    'home/user/.profile',
    'lib',
    'mnt',
    'mnt/deep',
    'mnt/deep/x',
    'mnt/deep/y',
    'srv',
    'srv/x',
    'usr',
    'usr/lib',
    'usr/lib/libx',
    'usr/lib/liby',
    'var',
    'var/cache',
    'var/cache/a',
  ];

  it('detects overlayfs and prepares fs/, work/ and short lowerdir links', async () => {
    assert.equal(await snaps.activeMode(), 'overlay');
    const a = await snaps.prepareActive('probe-c', top, { labels: { role: 'test' } });
    assert.equal(a.mode, 'overlay');
    assert.equal(a.parent, top);
    assert.deepEqual(a.labels, { role: 'test' });
    assert.deepEqual(
      a.lowerDirs,
      ['sha256:l3', 'sha256:l2', 'sha256:l1'].map((c) => snaps.fsDir(c)),
    );
    assert.ok(lstatSync(a.upperDir).isDirectory() && lstatSync(a.workDir!).isDirectory());
    assert.equal(a.upperDir, snaps.fsDir('probe-c'));
    const [m] = await snaps.mounts('probe-c');
    assert.equal(m!.type, 'overlay');
    assert.equal(m!.source, 'overlay');
    assert.deepEqual(m!.options.slice(0, 3), [
      `lowerdir=${a.lowerDirs.join(':')}`,
      `upperdir=${a.upperDir}`,
      `workdir=${a.workDir}`,
    ]);
    assert.ok((await snaps.listActive()).some((x) => x.key === 'probe-c'));
    await assert.rejects(snaps.prepareActive('probe-c', top), { code: 'ALREADY_EXISTS' });
    await assert.rejects(snaps.prepareActive('other', 'sha256:nope'), { code: 'NOT_FOUND' });
    await assert.rejects(snaps.commit('sha256:bad', 'probe-c'), { code: 'FAILED_PRECONDITION' });
    assert.equal(await snaps.removeActive('probe-c'), true);
    assert.equal(await snaps.removeActive('probe-c'), false);
  });

  it('mounts the chain: merged view with whiteouts, opaque dirs and hardlinks applied', async () => {
    await snaps.prepareActive('view', top);
    const mnt = await snaps.mountActive('view', target('view'));
    assert.equal(await isMounted(mnt), true);
    const tree = await describeTree(mnt);
    assert.deepEqual(Object.keys(tree), mergedPaths);
    assert.equal(readFileSync(join(mnt, 'etc/hosts'), 'utf8'), 'h2\n');
    assert.equal(tree['usr/lib/liby']!.linkGroup, 'usr/lib/libx');
    assert.equal(tree['lib']!.target, 'usr/lib');
    assert.equal(tree['bin/sh']!.mode, '755');
    // Mounting again on the same target is a no-op; the target is recorded for removeActive.
    assert.equal(await snaps.mountActive('view', mnt), mnt);
    assert.deepEqual((await snaps.getActive('view'))!.mountTargets, [mnt]);
    assert.equal(await snaps.unmount(mnt), true);
    assert.equal(await isMounted(mnt), false);
    assert.deepEqual((await snaps.getActive('view'))!.mountTargets, []);
    assert.equal(await snaps.unmount(mnt), false);
    await snaps.removeActive('view');
  });

  it('writes land in the upper dir only, and two actives on one chain are isolated', async () => {
    const a = await snaps.prepareActive('w1', top);
    await snaps.prepareActive('w2', top);
    const m1 = await snaps.mountActive('w1', target('w1'));
    const m2 = await snaps.mountActive('w2', target('w2'));
    writeFileSync(join(m1, 'etc/new'), 'new');
    writeFileSync(join(m1, 'etc/passwd'), 'changed\n');
    rmSync(join(m1, 'bin/sh'));
    // visible in the mount and the upper dir
    assert.equal(readFileSync(join(m1, 'etc/passwd'), 'utf8'), 'changed\n');
    assert.equal(readFileSync(join(a.upperDir, 'etc/new'), 'utf8'), 'new');
    const wh = lstatSync(join(a.upperDir, 'bin/sh'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0);
    // invisible in every lowerdir
    for (const lower of a.lowerDirs) assert.equal(existsSync(join(lower, 'etc/new')), false);
    assert.equal(readFileSync(join(snaps.fsDir('sha256:l1'), 'etc/passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
    assert.ok(existsSync(join(snaps.fsDir('sha256:l1'), 'bin/sh')));
    // invisible in the other container
    assert.equal(existsSync(join(m2, 'etc/new')), false);
    assert.equal(readFileSync(join(m2, 'etc/passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
    assert.ok(existsSync(join(m2, 'bin/sh')));
    assert.deepEqual(lines(await snaps.diffActive('w2')), []);
    await snaps.removeActive('w1');
    await snaps.removeActive('w2');
  });

  it('mounts a 120-layer chain (lowerdir would not fit in a page with absolute paths)', async () => {
    let parent: string | undefined;
    for (let i = 0; i < 120; i++) {
      parent = await layer(`sha256:deep-${String(i).padStart(3, '0')}`, parent, (d) => {
        file(join(d, `f${i}`), String(i));
        if (i === 119) whiteout(join(d, 'f0'));
      });
    }
    await snaps.prepareActive('deep', parent);
    const [m] = await snaps.mounts('deep');
    assert.ok(m!.options.join(',').length > 4096, 'absolute lowerdirs exceed the page limit');
    const mnt = await snaps.mountActive('deep', target('deep'));
    const tree = await describeTree(mnt);
    assert.equal(Object.keys(tree).length, 119);
    assert.equal(existsSync(join(mnt, 'f0')), false);
    assert.equal(readFileSync(join(mnt, 'f119'), 'utf8'), '119');
    assert.equal(readFileSync(join(mnt, 'f1'), 'utf8'), '1');
    await snaps.removeActive('deep');
    assert.equal(await isMounted(mnt), false);
  });

  it('an image without layers mounts an empty rootfs', async () => {
    const a = await snaps.prepareActive('scratch', undefined);
    assert.deepEqual(a.lowerDirs, []);
    const mnt = await snaps.mountActive('scratch', target('scratch'));
    assert.deepEqual(Object.keys(await describeTree(mnt)), []);
    file(join(mnt, 'hello'), 'hi');
    assert.deepEqual(lines(await snaps.diffActive('scratch')), ['A /hello']);
    await snaps.removeActive('scratch');
  });

  /**
   * The same edits in either snapshotter: add, change, delete, a removed tree, an emptied and re-created dir (opaque
   * in the upper), and a directory re-created inside a re-created one (its lower content is hidden too).
   */
  function edit(mnt: string): void {
    writeFileSync(join(mnt, 'etc/new'), 'new file');
    writeFileSync(join(mnt, 'etc/passwd'), 'root:x:0:0::/root:/bin/bash\n');
    rmSync(join(mnt, 'var/cache/a'));
    rmSync(join(mnt, 'home/user'), { recursive: true });
    rmSync(join(mnt, 'usr/lib'), { recursive: true });
    mkdirSync(join(mnt, 'usr/lib'));
    writeFileSync(join(mnt, 'usr/lib/libx'), 'x-v2 rebuilt');
    mkdirSync(join(mnt, 'newdir'));
    writeFileSync(join(mnt, 'newdir/f'), 'f');
    rmSync(join(mnt, 'mnt'), { recursive: true });
    mkdirSync(join(mnt, 'mnt/deep'), { recursive: true });
    writeFileSync(join(mnt, 'mnt/deep/y'), 'new y');
  }

  const expectedDiff = [
    'C /etc',
    'A /etc/new',
    'C /etc/passwd',
    'C /home',
    'D /home/user',
    'C /mnt',
    'C /mnt/deep',
    'D /mnt/deep/x',
    'C /mnt/deep/y',
    'A /newdir',
    'A /newdir/f',
    'C /usr',
    'C /usr/lib',
    'C /usr/lib/libx',
    'D /usr/lib/liby',
    'C /var',
    'C /var/cache',
    'D /var/cache/a',
  ];

  /** Apply `layer` as a new committed snapshot on the chain and return the merged tree of a fresh active on it. */
  async function treeAfterLayer(name: string, bytes: Buffer): Promise<Record<string, unknown>> {
    const key = `extract-${name}`;
    const dir = await snaps.prepare(key, top);
    await applyLayer(Readable.from([bytes]), dir, { whiteouts: 'overlay' });
    await snaps.commit(name, key);
    await snaps.prepareActive(`${name}-check`, name);
    const mnt = await snaps.mountActive(`${name}-check`, target(name));
    const tree = await describeTree(mnt);
    await snaps.removeActive(`${name}-check`);
    return tree;
  }

  let overlayTree: Record<string, unknown> | undefined;
  let overlayFresh: Record<string, unknown> | undefined;

  it('diff lists exactly the A/C/D lines docker shows, and the commit layer carries OCI whiteouts', async () => {
    const a = await snaps.prepareActive('d1', top);
    const mnt = await snaps.mountActive('d1', target('d1'));
    overlayFresh = await describeTree(mnt);
    edit(mnt);
    // rm -rf + mkdir made usr/lib an opaque directory in the upper
    const changes = await snaps.diffActive('d1');
    assert.deepEqual(lines(changes), expectedDiff);
    assert.equal(getAttributeSync(join(a.upperDir, 'usr/lib'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.equal(getAttributeSync(join(a.upperDir, 'mnt/deep'), 'trusted.overlay.opaque'), null);

    const src = await snaps.layerSource('d1');
    assert.equal(src.kind, 'overlay-upper');
    if (src.kind !== 'overlay-upper') return;
    const bytes = await collect(packOverlayUpper(src.upperDir, { compression: 'none' }));
    const names = await tarNames(bytes);
    assert.deepEqual(
      names.filter((x) => x.includes('.wh.')),
      ['home/.wh.user', 'mnt/.wh..wh..opq', 'usr/lib/.wh..wh..opq', 'var/cache/.wh.a'],
    );
    for (const x of ['etc/new', 'etc/passwd', 'newdir/', 'newdir/f', 'usr/lib/', 'usr/lib/libx']) {
      assert.ok(names.includes(x), `${x} in ${names.join(' ')}`);
    }
    overlayTree = await describeTree(mnt);
    // The layer, applied on the chain, gives back the container's tree.
    assert.deepEqual(await treeAfterLayer('sha256:commit-overlay', bytes), overlayTree);
    await snaps.removeActive('d1');
  });

  it('copy fallback (STRATA_SNAPSHOTTER=copy): same merged tree, same diff, a commit layer that rebuilds it', async () => {
    process.env['STRATA_SNAPSHOTTER'] = 'copy';
    try {
      assert.equal(await snaps.activeMode(), 'copy');
      const a = await snaps.prepareActive('c1', top);
      assert.equal(a.mode, 'copy');
      assert.equal(a.workDir, undefined);
      // no whiteout devices or opaque markers are copied
      assert.deepEqual(Object.keys(await describeTree(a.upperDir)), mergedPaths);
      assert.equal(getAttributeSync(join(a.upperDir, 'data'), 'trusted.overlay.opaque'), null);
      const [m] = await snaps.mounts('c1');
      assert.deepEqual(m, { type: 'bind', source: a.upperDir, options: ['rbind', 'rw'] });
      assert.deepEqual(lines(await snaps.diffActive('c1')), []);
      const mnt = await snaps.mountActive('c1', target('c1'));
      assert.ok(overlayFresh, 'the overlay diff test ran');
      assert.deepEqual(await describeTree(mnt), overlayFresh);
      edit(mnt);
      assert.deepEqual(lines(await snaps.diffActive('c1')), expectedDiff);
      assert.deepEqual(await describeTree(mnt), overlayTree);
      // The lower layers are untouched.
      assert.equal(readFileSync(join(snaps.fsDir('sha256:l1'), 'usr/lib/libx'), 'utf8'), 'x-v1');

      const src = await snaps.layerSource('c1');
      assert.equal(src.kind, 'changes');
      if (src.kind !== 'changes') return;
      assert.deepEqual(lines(src.changes), expectedDiff);
      const bytes = await collect(packChanges(src.root, src.changes, { compression: 'none' }));
      assert.deepEqual(
        (await tarNames(bytes)).filter((x) => x.includes('.wh.')),
        ['home/.wh.user', 'mnt/deep/.wh.x', 'usr/lib/.wh.liby', 'var/cache/.wh.a'],
      );
      assert.deepEqual(await treeAfterLayer('sha256:commit-copy', bytes), overlayTree);
      assert.equal(await snaps.removeActive('c1'), true);
      assert.equal(await isMounted(mnt), false);
      assert.equal(existsSync(a.dir), false);
    } finally {
      delete process.env['STRATA_SNAPSHOTTER'];
    }
  });

  it('copy diff: a touched but unchanged file is no change, a same-size rewrite is', async () => {
    const a = await snaps.prepareActive('c2', top, { mode: 'copy' });
    utimesSync(join(a.upperDir, 'etc/hosts'), T0 + 5, T0 + 5);
    writeFileSync(join(a.upperDir, 'srv/x'), 'y');
    writeFileSync(join(a.upperDir, 'data/new'), 'm');
    assert.deepEqual(lines(await snaps.diffActive('c2')), ['C /data', 'C /data/new', 'C /srv', 'C /srv/x']);
    await snaps.removeActive('c2');
  });

  it('removeActive unmounts everywhere and deletes the directory', async () => {
    const a = await snaps.prepareActive('rm1', top);
    const m1 = await snaps.mountActive('rm1', target('rm1'));
    const m2 = await snaps.mountActive('rm1', target('rm1b'));
    writeFileSync(join(m1, 'x'), 'x');
    assert.equal(readFileSync(join(m2, 'x'), 'utf8'), 'x', 'the second target shows the same mount');
    assert.ok(await isMounted(m1));
    assert.ok(await isMounted(m2));
    assert.equal(await snaps.removeActive('rm1'), true);
    const info = await readMountInfo();
    assert.equal(
      info.some((m) => m.mountPoint === m1 || m.mountPoint === m2 || m.superOptions.includes(a.upperDir)),
      false,
    );
    assert.equal(existsSync(a.dir), false);
    assert.equal(await snaps.getActive('rm1'), undefined);
    assert.equal(
      (await snaps.listActive()).some((x) => x.key === 'rm1'),
      false,
    );
  });

  it('a scratch snapshot (a build step) records no mount target, and removeActive still finds and unmounts it', async () => {
    const a = await snaps.prepareActive('scratch-step', top, { scratch: true });
    assert.equal(a.scratch, true);
    const m = await snaps.mountActive('scratch-step', target('scratch-step'));
    writeFileSync(join(m, 'made-by-step'), 'x');
    assert.ok(await isMounted(m));
    assert.equal(existsSync(join(a.dir, 'mounts.json')), false);
    assert.deepEqual((await snaps.getActive('scratch-step'))?.mountTargets, []);
    assert.equal(readFileSync(join(a.upperDir, 'made-by-step'), 'utf8'), 'x');
    // left mounted, as by a killed build: found by its upperdir in the mount table
    assert.equal(await snaps.removeActive('scratch-step'), true);
    assert.equal(await isMounted(m), false);
    assert.equal(existsSync(a.dir), false);
  });

  it('falls back to copying when overlayfs cannot mount there (a root on overlayfs cannot hold uppers)', async () => {
    const base = join(tmp, 'nested');
    for (const d of ['lower', 'upper', 'work', 'merged']) mkdirSync(join(base, d), { recursive: true });
    run('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${base}/lower,upperdir=${base}/upper,workdir=${base}/work`,
      `${base}/merged`,
    ]);
    try {
      const nested = new Snapshotter(join(base, 'merged', 'root'));
      const key = 'extract-n1';
      file(join(await nested.prepare(key), 'etc/os-release'), 'ID=test\n');
      await nested.commit('sha256:n1', key);
      assert.equal(await nested.activeMode(), 'copy');
      const a = await nested.prepareActive('n-c', 'sha256:n1');
      assert.equal(a.mode, 'copy');
      writeFileSync(join(a.upperDir, 'etc/os-release'), 'ID=changed\n');
      assert.deepEqual(lines(await nested.diffActive('n-c')), ['C /etc', 'C /etc/os-release']);
      const mnt = await nested.mountActive('n-c', target('n-c'));
      assert.equal(readFileSync(join(mnt, 'etc/os-release'), 'utf8'), 'ID=changed\n');
      await nested.removeActive('n-c');
      assert.equal(await isMounted(mnt), false);
      assert.deepEqual(readdirSync(join(base, 'merged', 'root', 'tmp')), [], 'the probe cleaned up');
    } finally {
      run('umount', [`${base}/merged`]);
    }
  });

  it('an active snapshot whose layer is gone is listed with its problem and can still be removed', async () => {
    const lone = await layer('sha256:lone', undefined, (d) => file(join(d, 'f'), 'f'));
    await snaps.prepareActive('orphan', lone);
    const mnt = await snaps.mountActive('orphan', target('orphan'));
    await snaps.unmount(mnt);
    await snaps.remove(lone);
    const listed = (await snaps.listActive()).find((a) => a.key === 'orphan');
    assert.match(listed?.problem ?? '', /layer chain is broken/);
    await assert.rejects(snaps.diffActive('orphan'), { code: 'FAILED_PRECONDITION' });
    await assert.rejects(snaps.mountActive('orphan', mnt), { code: 'FAILED_PRECONDITION' });
    assert.equal(await snaps.removeActive('orphan'), true);
    assert.equal(await snaps.getActive('orphan'), undefined);
  });

  it('garbage collection keeps the layer chain an active snapshot stands on', async () => {
    const root = join(tmp, 'root');
    const store = new ContentStore(root);
    await snaps.prepareActive('gc1', 'sha256:l2');
    const first = await collectGarbage(root, store, snaps, [], { dryRun: true });
    const removed = new Set(first.snapshots.map((s) => s.name));
    assert.equal(removed.has('sha256:l2') || removed.has('sha256:l1') || removed.has('gc1'), false);
    assert.ok(removed.has('sha256:l3'), 'a chain no image or container uses is collectable');
    await snaps.removeActive('gc1');
    const second = await collectGarbage(root, store, snaps, [], { dryRun: true });
    assert.ok(second.snapshots.some((s) => s.name === 'sha256:l1'));
  });
});

import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importBusybox, strata } from '../../helpers/cli.js';
import { hasTool, inCI, tempDir } from '../../helpers/env.js';

const ready = hasTool('busybox') || inCI;

describe('image commands on a busybox base', { skip: ready ? false : 'busybox-static not installed' }, () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let root: string;
  let id: string;

  before(async () => {
    work = await tempDir();
    root = join(work.path, 'root');
    id = await importBusybox(root, work.path);
  });
  after(async () => work.cleanup());

  it('import prints the image ID and images lists it with docker columns', async () => {
    assert.match(id, /^sha256:[0-9a-f]{64}$/);
    const r = await strata(root, ['images']);
    assert.equal(r.code, 0, r.stderr);
    const [header, row] = r.stdout.trim().split('\n');
    assert.match(header!, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    assert.match(row!, new RegExp(`^busybox\\s+latest\\s+${id.slice(7, 19)}\\s+.*ago\\s+[\\d.]+[kM]B$`));
  });

  it('the root is an OCI image layout whose index.json names the tag', async () => {
    const layout = JSON.parse(await readFile(join(root, 'oci-layout'), 'utf8'));
    assert.equal(layout.imageLayoutVersion, '1.0.0');
    const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8'));
    assert.equal(
      index.manifests[0].annotations['org.opencontainers.image.ref.name'],
      'docker.io/library/busybox:latest',
    );
  });

  it('inspect prints docker-shaped JSON with Id, RepoTags, Config and RootFS', async () => {
    const r = await strata(root, ['inspect', 'busybox']);
    assert.equal(r.code, 0, r.stderr);
    const [obj] = JSON.parse(r.stdout);
    assert.equal(obj.Id, id);
    assert.deepEqual(obj.RepoTags, ['busybox:latest']);
    assert.deepEqual(obj.Config.Cmd, ['sh']);
    assert.equal(obj.RootFS.Type, 'layers');
    assert.equal(obj.RootFS.Layers.length, 1);
    assert.ok(obj.Size > 500_000);
    const f = await strata(root, ['inspect', '--format', '{{.Id}} {{json .Config.Cmd}}', id.slice(7, 19)]);
    assert.equal(f.stdout.trim(), `${id} ["sh"]`);
  });

  it('tag adds a name for the same image; rmi of one tag keeps the other', async () => {
    assert.equal((await strata(root, ['tag', 'busybox', 'localhost:5000/tools/bb:v1'])).code, 0);
    let r = await strata(root, ['images', '--format', 'json']);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(rows.map((x) => `${x.Repository}:${x.Tag}`).sort(), [
      'busybox:latest',
      'localhost:5000/tools/bb:v1',
    ]);
    assert.equal(new Set(rows.map((x) => x.ID)).size, 1);
    r = await strata(root, ['rmi', 'localhost:5000/tools/bb:v1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Untagged: localhost:5000\/tools\/bb:v1$/m);
    assert.doesNotMatch(r.stdout, /Deleted/);
    assert.equal((await strata(root, ['inspect', 'busybox'])).code, 0);
  });

  it('history lists the import entry with the layer size', async () => {
    const r = await strata(root, ['history', 'busybox']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
    assert.match(lines[1]!, new RegExp(`^${id.slice(7, 19)}\\s+.*ago\\s+[\\d.]+[kM]B\\s+Imported from `));
  });

  it('an unknown image is a clear error with a non-zero exit', async () => {
    const r = await strata(root, ['inspect', 'nosuch:tag']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no such image: nosuch:tag/);
    const bad = await strata(root, ['tag', 'busybox', 'Bad_Name']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid reference/);
  });

  it('save then load into an empty root keeps manifest and config digests, in both formats', async () => {
    const [inspected] = JSON.parse((await strata(root, ['inspect', 'busybox'])).stdout);
    for (const format of ['docker', 'oci']) {
      const file = join(work.path, `bb-${format}.tar`);
      const s = await strata(root, ['save', '--format', format, '-o', file, 'busybox']);
      assert.equal(s.code, 0, s.stderr);
      const other = join(work.path, `root-${format}`);
      const l = await strata(other, ['load', '-i', file]);
      assert.equal(l.code, 0, l.stderr);
      assert.equal(l.stdout.trim(), 'Loaded image: busybox:latest');
      const [again] = JSON.parse((await strata(other, ['inspect', 'busybox'])).stdout);
      assert.equal(again.Id, inspected.Id);
      assert.deepEqual(again.RootFS, inspected.RootFS);
      if (format === 'oci') assert.equal(again.Descriptor.digest, inspected.Descriptor.digest);
      assert.equal((await strata(other, ['fsck'])).code, 0);
    }
  });

  it('load reads an archive from standard input', async () => {
    const file = join(work.path, 'stdin.tar');
    assert.equal((await strata(root, ['save', '-o', file, 'busybox'])).code, 0);
    const other = join(work.path, 'root-stdin');
    const l = await strata(other, ['load'], { input: await readFile(file) });
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /Loaded image: busybox:latest/);
  });

  it('save of two images sharing a layer writes the layer once', async () => {
    const work2 = join(work.path, 'two');
    await importBusybox(root, work2, 'second:latest');
    const file = join(work.path, 'two.tar');
    assert.equal((await strata(root, ['save', '--format', 'oci', '-o', file, 'busybox', 'second'])).code, 0);
    const one = join(work.path, 'one.tar');
    assert.equal((await strata(root, ['save', '--format', 'oci', '-o', one, 'busybox'])).code, 0);
    const [a, b] = [await stat(file), await stat(one)];
    assert.ok(a.size < b.size * 1.2, `two images sharing their layer take ${a.size} bytes vs ${b.size} for one`);
  });

  it('system df counts each shared blob once', async () => {
    const r = await strata(root, ['system', 'df', '-v']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /REPOSITORY\s+IMAGE ID\s+SIZE\s+SHARED SIZE\s+UNIQUE SIZE/);
    const plain = await strata(root, ['system', 'df']);
    assert.match(plain.stdout, /^Images\s+2\s+0\s+/m);
  });

  it('rmi then image prune removes blobs no image uses, and fsck stays clean', async () => {
    const before = (await readdir(join(root, 'blobs/sha256'))).length;
    assert.equal((await strata(root, ['rmi', 'second'])).code, 0);
    assert.equal((await readdir(join(root, 'blobs/sha256'))).length, before, 'rmi alone keeps blobs');
    const p = await strata(root, ['image', 'prune', '-f']);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /Total reclaimed space: /);
    const afterCount = (await readdir(join(root, 'blobs/sha256'))).length;
    assert.ok(afterCount < before, 'prune removed the config and manifest of the removed image');
    const f = await strata(root, ['fsck']);
    assert.equal(f.code, 0, f.stdout + f.stderr);
    assert.match(f.stdout, /no errors/);
  });

  it('fsck finds a blob whose bytes were changed', async () => {
    const other = join(work.path, 'corrupt');
    const file = join(work.path, 'bb-oci.tar');
    assert.equal((await strata(other, ['load', '-i', file])).code, 0);
    const index = JSON.parse(await readFile(join(other, 'index.json'), 'utf8'));
    const manifestHex = index.manifests[0].digest.slice(7);
    const path = join(other, 'blobs/sha256', manifestHex);
    const { chmod } = await import('node:fs/promises');
    await chmod(path, 0o644);
    await writeFile(path, '{"schemaVersion":2}');
    const f = await strata(other, ['fsck']);
    assert.equal(f.code, 1);
    assert.match(f.stdout, new RegExp(`blob sha256:${manifestHex} is corrupt`));
  });
});

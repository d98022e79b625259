import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Env, nothingLeft, setup, skipReason, strata } from './helpers.js';

const CHANGES = [
  'echo new > /added.txt',
  'echo changed >> /etc/passwd',
  'rm /etc/group',
  'rm -rf /app',
  'mkdir /app',
  'echo c > /app/c',
].join('; ');

const EXPECTED = [
  'A /added.txt',
  'C /app',
  'D /app/a',
  'D /app/b',
  'A /app/c',
  'D /app/sub',
  'C /etc',
  'D /etc/group',
  'C /etc/passwd',
].join('\n');

for (const snapshotter of ['overlay', 'copy'] as const) {
  describe(`diff and commit (${snapshotter} snapshotter)`, { skip: skipReason }, () => {
    let env: Env;
    let root: string;
    const cli = (args: string[], input?: string) =>
      strata(root, args, { env: { STRATA_SNAPSHOTTER: snapshotter }, ...(input ? { input } : {}) });

    before(async () => {
      env = await setup();
      root = env.root;
      // A base image with a populated directory, made by commit.
      const r = await cli([
        'run',
        '--name',
        'mkbase',
        'busybox',
        'sh',
        '-c',
        'mkdir -p /app/sub; echo a > /app/a; echo b > /app/b; echo s > /app/sub/s',
      ]);
      assert.equal(r.code, 0, r.stderr);
      // (commit keeps the container's command as the image's CMD, as docker does: -c gives back a shell.)
      const c = await cli(['commit', '-c', 'CMD ["sh"]', 'mkbase', 'base:1']);
      assert.equal(c.code, 0, c.stderr);
      assert.equal((await cli(['rm', 'mkbase'])).code, 0);
    });
    after(async () => env?.cleanup());

    it('a fresh container has no changes', async () => {
      assert.equal((await cli(['create', '--name', 'fresh', 'base:1'])).code, 0);
      assert.equal((await cli(['start', '-a', 'fresh'])).code, 0);
      const d = await cli(['diff', 'fresh']);
      assert.equal(d.code, 0, d.stderr);
      assert.equal(d.stdout, '');
      assert.equal((await cli(['rm', 'fresh'])).code, 0);
    });

    it('diff lists exactly the added, changed and deleted paths (a directory emptied and re-created too)', async () => {
      const r = await cli(['run', '--name', 'changer', 'base:1', 'sh', '-c', CHANGES]);
      assert.equal(r.code, 0, r.stderr);
      const d = await cli(['diff', 'changer']);
      assert.equal(d.code, 0, d.stderr);
      assert.equal(d.stdout.trim(), EXPECTED);
    });

    it('commit makes an image with the changed tree, the -c config, author, message and history', async () => {
      const c = await cli([
        'commit',
        '-m',
        'my change',
        '-a',
        'Jane <jane@example.com>',
        '-c',
        'CMD ["cat", "/app/c"]',
        '-c',
        'ENV COMMITTED=yes',
        'changer',
        'changed:1',
      ]);
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stdout, /^sha256:[0-9a-f]{64}\n$/);
      const img = JSON.parse((await cli(['inspect', 'changed:1'])).stdout)[0];
      assert.equal(img.Id, c.stdout.trim());
      assert.deepEqual(img.Config.Cmd, ['cat', '/app/c']);
      assert.ok(img.Config.Env.includes('COMMITTED=yes'));
      assert.equal(img.Author, 'Jane <jane@example.com>');
      assert.equal(img.Comment, 'my change');
      assert.equal(img.RootFS.Layers.length, 3);
      const hist = await cli(['history', '--format', 'json', 'changed:1']);
      const top = JSON.parse(hist.stdout.split('\n')[0]!);
      assert.equal(top.Comment, 'my change');
      assert.match(top.CreatedBy, /^sh -c echo new/);

      const def = await cli(['run', '--rm', 'changed:1']);
      assert.equal(def.code, 0, def.stderr);
      assert.equal(def.stdout, 'c\n');
      const tree = await cli([
        'run',
        '--rm',
        'changed:1',
        'sh',
        '-c',
        'ls -A /app; cat /added.txt; tail -n 1 /etc/passwd; ls /etc/group 2>&1 || true; echo $COMMITTED',
      ]);
      assert.equal(tree.code, 0, tree.stderr);
      const lines = tree.stdout.trim().split('\n');
      assert.deepEqual(lines.slice(0, 3), ['c', 'new', 'changed']);
      assert.match(lines[3]!, /No such file/);
      assert.equal(lines[4], 'yes');
      // A container of the committed image starts with no changes of its own.
      assert.equal((await cli(['create', '--name', 'child', 'changed:1'])).code, 0);
      assert.equal((await cli(['diff', 'child'])).stdout, '');
      assert.equal((await cli(['rm', 'child'])).code, 0);
    });

    it('commit without a name makes an untagged image; the container is unchanged', async () => {
      const c = await cli(['commit', 'changer']);
      assert.equal(c.code, 0, c.stderr);
      const images = (await cli(['images', '--format', 'json'])).stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.ok(images.some((i) => i.Repository === '<none>' && c.stdout.includes(i.ID)));
      assert.equal((await cli(['diff', 'changer'])).stdout.trim(), EXPECTED);
      assert.equal((await cli(['rm', 'changer'])).code, 0);
      nothingLeft(root);
    });

    it('diff and commit of unknown containers are clear errors', async () => {
      const d = await cli(['diff', 'nope']);
      assert.notEqual(d.code, 0);
      assert.match(d.stderr, /No such container: nope/);
      const c = await cli(['commit', 'nope', 'x:1']);
      assert.notEqual(c.code, 0);
      assert.match(c.stderr, /No such container: nope/);
    });
  });
}

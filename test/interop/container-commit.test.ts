import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importBusybox, strata } from '../helpers/cli.js';
import { type Dockerd, DOCKER_CLIENT, startDockerd } from '../helpers/dockerd.js';
import { hasTool, inCI, needRoot, needTool, tempDir } from '../helpers/env.js';

/**
 * A listing of the whole tree as the image's own busybox sees it: path, mode, owner, type, symlink target, and for
 * regular files link count, size and md5. The files every engine provides itself (/proc, /sys, /dev, /etc/hosts,
 * /etc/hostname, /etc/resolv.conf, docker's /.dockerenv and /etc/mtab) are left out.
 */
const LIST = [
  'cd / && find . -xdev \\( -path ./proc -o -path ./sys -o -path ./dev -o -path ./.dockerenv -o -path ./etc/hosts',
  '-o -path ./etc/hostname -o -path ./etc/resolv.conf -o -path ./etc/mtab \\) -prune -o -print | sort |',
  'while read -r p; do if [ -f "$p" ] && [ ! -L "$p" ]; then',
  'echo "$(stat -c \'%n %a %u %g %h %s\' "$p") $(md5sum < "$p" | cut -c1-32)";',
  'else stat -c \'%N %a %u %g %F\' "$p"; fi; done',
].join(' ');

// Added, changed and deleted files, a directory emptied and re-created, a new owner, mode, symlink and hardlink.
const CHANGES = [
  'echo new > /added.txt',
  'echo changed >> /etc/passwd',
  'rm /etc/group',
  'rm -rf /app',
  'mkdir /app',
  'echo c > /app/c',
  'chown 1000:1000 /app/c',
  'chmod 0640 /app/c',
  'ln -s /app/c /app/link',
  'ln /added.txt /added-hardlink',
  'mkdir -p /deep/er/still && echo d > /deep/er/still/file',
].join('; ');

describe('a committed image: docker run and umoci unpack see the tree strata runs', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let root: string;
  let dockerd: Dockerd | undefined;
  let strataTree: string;

  before(async () => {
    work = await tempDir();
    root = join(work.path, 'root');
    if (process.getuid?.() !== 0 || !hasTool('runc') || !hasTool('busybox')) return;
    await importBusybox(root, work.path);
    const base = await strata(root, [
      'run',
      '--name',
      'mkbase',
      'busybox',
      'sh',
      '-c',
      'mkdir -p /app/sub; echo a > /app/a; echo s > /app/sub/s',
    ]);
    assert.equal(base.code, 0, base.stderr);
    assert.equal((await strata(root, ['commit', '-c', 'CMD ["sh"]', 'mkbase', 'base:1'])).code, 0);
    const changer = await strata(root, ['run', '--name', 'changer', 'base:1', 'sh', '-c', CHANGES]);
    assert.equal(changer.code, 0, changer.stderr);
    const commit = await strata(root, ['commit', '-c', 'CMD ["sh"]', 'changer', 'changed:1']);
    assert.equal(commit.code, 0, commit.stderr);
    const listed = await strata(root, ['run', '--rm', 'changed:1', 'sh', '-c', LIST]);
    assert.equal(listed.code, 0, listed.stderr);
    strataTree = listed.stdout;
    const canDocker = hasTool('dockerd') && hasTool(DOCKER_CLIENT) && hasTool('ctr');
    if (canDocker || inCI) dockerd = await startDockerd(join(work.path, 'docker'));
  });
  after(async () => {
    await dockerd?.stop();
    if (root) {
      const ids = (await strata(root, ['ps', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await strata(root, ['rm', '-f', ...ids]);
    }
    await work?.cleanup();
  });

  it("strata's own run of the committed image shows exactly the changes", (t) => {
    if (!needRoot(t) || !needTool(t, 'runc', 'busybox')) return;
    const lines = strataTree.split('\n');
    assert.ok(lines.some((l) => /^\.\/added\.txt 644 0 0 2 4 [0-9a-f]{32}$/.test(l)));
    assert.ok(lines.some((l) => /^\.\/added-hardlink 644 0 0 2 4 /.test(l)));
    assert.ok(lines.some((l) => /^\.\/app\/c 640 1000 1000 1 2 /.test(l)));
    assert.ok(lines.includes("'./app/link' -> '/app/c' 777 0 0 symbolic link"));
    assert.ok(lines.some((l) => l.startsWith('./deep/er/still/file ')));
    assert.ok(!lines.some((l) => /^\.\/app\/(a|sub)/.test(l)), 'the emptied directory keeps none of its old files');
    assert.ok(!lines.some((l) => l.startsWith('./etc/group ')));
  });

  it('docker run --network none of the saved and loaded image sees the same tree', async (t) => {
    if (!needRoot(t) || !needTool(t, 'runc', 'busybox', 'dockerd', DOCKER_CLIENT)) return;
    const archive = join(work.path, 'changed.tar');
    assert.equal((await strata(root, ['save', '-o', archive, 'changed:1'])).code, 0);
    await dockerd!.docker(['load', '-i', archive]);
    const fromDocker = await dockerd!.docker(['run', '--rm', '--network', 'none', 'changed:1', 'sh', '-c', LIST]);
    assert.equal(fromDocker, strataTree);
    // And docker sees the same image: same ID and layers.
    const dockerId = (await dockerd!.docker(['image', 'inspect', '--format', '{{.Id}}', 'changed:1'])).trim();
    const ours = JSON.parse((await strata(root, ['inspect', 'changed:1'])).stdout)[0];
    assert.equal(dockerId, ours.Id);
  });

  it('umoci unpack of the committed image gives the same tree', async (t) => {
    if (!needRoot(t) || !needTool(t, 'runc', 'busybox', 'umoci', 'skopeo', 'chroot')) return;
    // umoci wants a plain tag name in the layout: copy the image (blobs unchanged) into a layout tagged "t".
    const layout = join(work.path, 'layout');
    execFileSync('skopeo', [
      '--insecure-policy',
      'copy',
      '-q',
      `oci:${root}:docker.io/library/changed:1`,
      `oci:${layout}:t`,
    ]);
    const bundle = join(work.path, 'bundle');
    execFileSync('umoci', ['unpack', '--image', `${layout}:t`, bundle], { stdio: 'pipe' });
    const fromUmoci = execFileSync('chroot', [join(bundle, 'rootfs'), '/bin/sh', '-c', LIST], { encoding: 'utf8' });
    assert.equal(fromUmoci, strataTree);
  });
});

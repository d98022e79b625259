import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busyboxRootfs, importBusybox, strata } from '../helpers/cli.js';
import { needRoot, needTool, tempDir } from '../helpers/env.js';

describe('podman loads what strata saves, and strata loads what podman saves', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let root: string;
  let podman: (args: string[]) => string;
  let inspected: { Id: string; RootFS: { Layers: string[] } };

  before(async () => {
    work = await tempDir();
    root = join(work.path, 'root');
    // Podman with its own throwaway storage (vfs: no mounts needed), never the machine's.
    const storage = [
      '--root',
      join(work.path, 'podman-root'),
      '--runroot',
      join(work.path, 'podman-run'),
      '--storage-driver',
      'vfs',
    ];
    podman = (args) =>
      execFileSync('podman', [...storage, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    await importBusybox(root, work.path);
    inspected = JSON.parse((await strata(root, ['inspect', 'busybox'])).stdout)[0];
  });
  after(async () => work?.cleanup());

  for (const format of ['docker', 'oci'] as const) {
    it(`podman load reads a ${format} archive from strata save with the same image ID`, async (t) => {
      if (!needRoot(t) || !needTool(t, 'podman')) return;
      const file = join(work.path, `bb-${format}.tar`);
      assert.equal((await strata(root, ['save', '--format', format, '-o', file, 'busybox'])).code, 0);
      const out = podman(['load', '-i', file]);
      assert.match(out, /Loaded image/);
      // podman names a docker-archive's short RepoTags under localhost/ (its own rule); the OCI name is kept whole.
      const [img] = JSON.parse(podman(['image', 'inspect', inspected.Id.slice(7)]));
      assert.equal(`sha256:${img.Id}`, inspected.Id);
      assert.deepEqual(img.RootFS.Layers, inspected.RootFS.Layers);
      assert.ok(
        img.RepoTags.some((t: string) => /(^|\/)busybox:latest$/.test(t)),
        `podman named it ${img.RepoTags.join(', ')}`,
      );
      podman(['rmi', '-f', inspected.Id.slice(7)]);
    });
  }

  it('archives saved by podman load into strata with identical manifest and config digests', async (t) => {
    if (!needRoot(t) || !needTool(t, 'podman', 'skopeo')) return;
    const rootfs = await busyboxRootfs(join(work.path, 'podman-rootfs'));
    const tar = join(work.path, 'rootfs.tar');
    execFileSync('tar', ['-C', rootfs, '-cf', tar, '.']);
    podman(['import', '--change', 'CMD ["sh"]', tar, 'localhost/podbox:1']);
    const ociFile = join(work.path, 'podman.oci.tar');
    const dockerFile = join(work.path, 'podman.docker.tar');
    podman(['save', '--format', 'oci-archive', '-o', ociFile, 'localhost/podbox:1']);
    podman(['save', '--format', 'docker-archive', '-o', dockerFile, 'localhost/podbox:1']);
    const [pimg] = JSON.parse(podman(['image', 'inspect', 'localhost/podbox:1']));
    const want = JSON.parse(execFileSync('skopeo', ['inspect', `oci-archive:${ociFile}`], { encoding: 'utf8' }));
    for (const [file, root2] of [
      [ociFile, 'from-oci'],
      [dockerFile, 'from-docker'],
    ] as const) {
      const other = join(work.path, root2);
      const l = await strata(other, ['load', '-i', file]);
      assert.equal(l.code, 0, l.stderr);
      assert.match(l.stdout, /Loaded image: localhost\/podbox:1/);
      const [img] = JSON.parse((await strata(other, ['inspect', 'localhost/podbox:1'])).stdout);
      assert.equal(img.Id, `sha256:${pimg.Id}`);
      if (file === ociFile) assert.equal(img.Descriptor.digest, want.Digest);
      assert.equal((await strata(other, ['fsck'])).code, 0);
    }
  });
});

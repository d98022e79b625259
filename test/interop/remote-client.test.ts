import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { busyboxRootfs, importBusybox, strata } from '../helpers/cli.js';
import { hasTool, needRoot, needTool, tempDir } from '../helpers/env.js';
import { type LayoutImage, readLayoutImage, skopeo, threeLayerImage } from '../helpers/image-layout.js';
import { DOCKER_REGISTRY, type RegistryProcess, startDockerRegistry } from '../helpers/registry-process.js';

const run = promisify(execFile);

/**
 * strata's registry client against Debian's CNCF docker-registry, with skopeo and podman on the other side: strata
 * pulls what they pushed and they read what strata pushed, with identical digests.
 */
describe('strata pull/push interoperate with skopeo and podman through docker-registry', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let reg: RegistryProcess | undefined;
  let image: LayoutImage | undefined;
  let podman: (args: string[]) => Promise<string>;

  before(async () => {
    work = await tempDir('strata-remote-interop-');
    if (hasTool(DOCKER_REGISTRY)) reg = await startDockerRegistry(join(work.path, 'registry'));
    podman = async (args) => {
      const flags = [
        '--root',
        join(work.path, 'podman-root'),
        '--runroot',
        join(work.path, 'podman-run'),
        '--storage-driver',
        'vfs',
      ];
      const { stdout } = await run('podman', [...flags, ...args], { maxBuffer: 64 << 20 });
      return stdout;
    };
    if (reg && hasTool('skopeo') && hasTool('umoci')) {
      image = await threeLayerImage(join(work.path, 'three'));
      await skopeo(['copy', '-q', '--dest-tls-verify=false', image.ref, `docker://${reg.host}/skopeo/three:v1`]);
    }
  });
  after(async () => {
    await reg?.stop();
    await work?.cleanup();
  });

  it('strata pulls the 3-layer image skopeo pushed: same manifest digest, config and layers', async (t) => {
    if (!needTool(t, 'skopeo', 'umoci', DOCKER_REGISTRY)) return;
    const root = join(work.path, 'pull-skopeo');
    const ref = `${reg!.host}/skopeo/three:v1`;
    const r = await strata(root, ['pull', '-q', ref]);
    assert.equal(r.code, 0, r.stderr);
    const [info] = JSON.parse((await strata(root, ['image', 'inspect', ref])).stdout) as [
      { Id: string; RepoDigests: string[]; RootFS: { Layers: string[] } },
    ];
    assert.equal(info.Id, image!.configDigest);
    assert.deepEqual(info.RootFS.Layers, image!.diffIds);
    assert.ok(
      info.RepoDigests.some((d) => d.endsWith(`@${image!.manifestDigest}`)),
      info.RepoDigests.join(', '),
    );
    assert.equal((await strata(root, ['fsck'])).code, 0);
  });

  it('skopeo inspect and skopeo copy read what strata pushed, with the same digests', async (t) => {
    if (!needTool(t, 'skopeo', 'umoci', DOCKER_REGISTRY)) return;
    const root = join(work.path, 'pull-skopeo');
    const ref = `${reg!.host}/strata/three:pushed`;
    assert.equal((await strata(root, ['tag', `${reg!.host}/skopeo/three:v1`, ref])).code, 0);
    const r = await strata(root, ['push', '-q', ref]);
    assert.equal(r.code, 0, r.stderr);
    const inspected = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${ref}`])) as {
      Digest: string;
      Layers: string[];
    };
    assert.equal(inspected.Digest, image!.manifestDigest);
    assert.deepEqual(inspected.Layers, image!.layerDigests);
    const out = join(work.path, 'copied');
    await skopeo(['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${out}:x`]);
    const copied = await readLayoutImage(out, 'x');
    assert.equal(copied.manifestDigest, image!.manifestDigest);
    assert.equal(copied.configDigest, image!.configDigest);
  });

  it('strata pulls what podman pushed: the config digest is podman image ID', async (t) => {
    if (!needRoot(t) || !needTool(t, 'podman', DOCKER_REGISTRY)) return;
    const rootfs = await busyboxRootfs(join(work.path, 'podman-rootfs'));
    const tar = join(work.path, 'podman-rootfs.tar');
    await run('tar', ['-C', rootfs, '-cf', tar, '.']);
    await podman(['import', '--change', 'CMD ["sh"]', tar, 'localhost/podbox:1']);
    const ref = `${reg!.host}/podman/box:1`;
    const digestFile = join(work.path, 'podman.digest');
    await podman(['push', '--tls-verify=false', '--digestfile', digestFile, 'localhost/podbox:1', `docker://${ref}`]);
    const [pod] = JSON.parse(await podman(['image', 'inspect', 'localhost/podbox:1'])) as [{ Id: string }];
    const root = join(work.path, 'pull-podman');
    const r = await strata(root, ['pull', '-q', ref]);
    assert.equal(r.code, 0, r.stderr);
    const [info] = JSON.parse((await strata(root, ['image', 'inspect', ref])).stdout) as [{ Id: string }];
    assert.equal(info.Id, `sha256:${pod.Id}`);
  });

  it('podman pulls what strata pushed: same image ID', async (t) => {
    if (!needRoot(t) || !needTool(t, 'podman', DOCKER_REGISTRY)) return;
    const root = join(work.path, 'busybox-root');
    await importBusybox(root, join(work.path, 'bb'));
    const id = JSON.parse((await strata(root, ['inspect', 'busybox'])).stdout)[0].Id as string;
    const ref = `${reg!.host}/strata/busybox:1`;
    assert.equal((await strata(root, ['tag', 'busybox', ref])).code, 0);
    const r = await strata(root, ['push', '-q', ref]);
    assert.equal(r.code, 0, r.stderr);
    await podman(['pull', '--tls-verify=false', `docker://${ref}`]);
    const [pod] = JSON.parse(await podman(['image', 'inspect', ref])) as [{ Id: string }];
    assert.equal(`sha256:${pod.Id}`, id);
  });
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { busyboxRootfs } from '../helpers/cli.js';
import { hasTool, needRoot, needTool, tempDir } from '../helpers/env.js';
import { type LayoutImage, readLayoutImage, skopeo, threeLayerImage } from '../helpers/image-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const run = promisify(execFile);

interface PodmanImage {
  Id: string;
  Digest: string;
  RepoDigests: string[];
  RootFS: { Layers: string[] };
}

describe('podman pushes to and pulls from the strata registry', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let reg: TestRegistry;
  let image: LayoutImage;
  let podman: (args: string[], storage?: string) => Promise<string>;
  let host: string;

  before(async () => {
    work = await tempDir();
    reg = await startTestRegistry();
    host = reg.host;
    // Podman with its own throwaway storage (vfs: no mounts needed), never the machine's. The registry runs in
    // this process, so podman must run asynchronously (a sync spawn would block the server it talks to).
    podman = async (args, storage = 'podman') => {
      const flags = [
        '--root',
        join(work.path, `${storage}-root`),
        '--runroot',
        join(work.path, `${storage}-run`),
        '--storage-driver',
        'vfs',
      ];
      const { stdout } = await run('podman', [...flags, ...args], { maxBuffer: 64 << 20 });
      return stdout;
    };
    if (hasTool('skopeo') && hasTool('umoci')) {
      image = await threeLayerImage(work.path);
      await skopeo(['copy', '-q', '--dest-tls-verify=false', image.ref, `docker://${host}/interop/three:v1`]);
    }
  });
  after(async () => {
    await reg?.stop();
    await work?.cleanup();
  });

  const inspect = async (ref: string, storage?: string): Promise<PodmanImage> =>
    (JSON.parse(await podman(['image', 'inspect', ref], storage)) as PodmanImage[])[0]!;

  it('podman pull gets the image skopeo pushed: same manifest digest, image ID (config) and layers', async (t) => {
    if (!needRoot(t) || !needTool(t, 'podman', 'skopeo', 'umoci')) return;
    const out = await podman(['pull', '--tls-verify=false', `${host}/interop/three:v1`]);
    const img = await inspect(`${host}/interop/three:v1`);
    assert.equal(out.trim().split('\n').at(-1), img.Id);
    assert.equal(`sha256:${img.Id}`, image.configDigest);
    assert.equal(img.Digest, image.manifestDigest);
    assert.ok(img.RepoDigests.includes(`${host}/interop/three@${image.manifestDigest}`), img.RepoDigests.join(', '));
    assert.deepEqual(img.RootFS.Layers, image.diffIds);
  });

  it('podman push stores the same config and layers; the registry serves the digest podman reports', async (t) => {
    if (!needRoot(t) || !needTool(t, 'podman', 'skopeo', 'umoci')) return;
    const digestFile = join(work.path, 'pushed.digest');
    await podman([
      'push',
      '--tls-verify=false',
      '--digestfile',
      digestFile,
      `${host}/interop/three:v1`,
      `${host}/podman/three:v1`,
    ]);
    const pushed = (await readFile(digestFile, 'utf8')).trim();
    const head = await fetch(`${reg.url}/v2/podman/three/manifests/v1`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('docker-content-digest'), pushed);
    // Podman re-encodes the manifest (umoci's trailing newline goes), so only the documents compare equal; the
    // config and the compressed layers are the same blobs.
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/podman/three:v1`]);
    assert.deepEqual(JSON.parse(raw), JSON.parse(image.manifestBytes.toString('utf8')));
    const pulled = join(work.path, 'podman-pushed');
    await skopeo(['copy', '-q', '--src-tls-verify=false', `docker://${host}/podman/three:v1`, `oci:${pulled}:p`]);
    const back = await readLayoutImage(pulled, 'p');
    assert.equal(back.manifestDigest, pushed);
    assert.equal(back.configDigest, image.configDigest);
    assert.deepEqual(back.layerDigests, image.layerDigests);
  });

  it('an image built by podman round-trips through the registry into a fresh podman storage', async (t) => {
    if (!needRoot(t) || !needTool(t, 'podman', 'skopeo')) return;
    const rootfs = await busyboxRootfs(join(work.path, 'podman-rootfs'));
    const tar = join(work.path, 'rootfs.tar');
    await run('tar', ['-C', rootfs, '-cf', tar, '.']);
    await podman(['import', '--change', 'CMD ["sh"]', tar, 'localhost/podbox:1']);
    const local = await inspect('localhost/podbox:1');
    const digestFile = join(work.path, 'podbox.digest');
    await podman(['push', '--tls-verify=false', '--digestfile', digestFile, 'localhost/podbox:1', `${host}/pod/box:1`]);
    const pushed = (await readFile(digestFile, 'utf8')).trim();
    // A second podman with empty storage pulls by digest and gets the same image.
    await podman(['pull', '--tls-verify=false', `${host}/pod/box@${pushed}`], 'fresh');
    const img = await inspect(`${host}/pod/box@${pushed}`, 'fresh');
    assert.equal(img.Id, local.Id);
    assert.equal(img.Digest, pushed);
    assert.deepEqual(img.RootFS.Layers, local.RootFS.Layers);
    const info = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${host}/pod/box:1`]));
    assert.equal(info.Digest, pushed);
  });
});

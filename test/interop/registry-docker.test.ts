import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importBusybox, strata } from '../helpers/cli.js';
import { type Dockerd, DOCKER_CLIENT, startDockerd } from '../helpers/dockerd.js';
import { hasTool, inCI, needRoot, needTool, tempDir } from '../helpers/env.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

/** Upload starts (POST /blobs/uploads/) the registry has answered so far, from its /metrics. */
async function uploadPosts(reg: TestRegistry): Promise<number> {
  const text = await (await fetch(`${reg.url}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^strata_registry_requests_total\{route="uploads",method="POST",[^}]*\} (\d+)$/gm)) {
    n += Number(m[1]);
  }
  return n;
}

describe('docker and containerd push to and pull from strata registry serve', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let reg: TestRegistry;
  let dockerd: Dockerd | undefined;
  let imageId: string;
  let ref: string;
  let pushedDigest: string;

  before(async () => {
    work = await tempDir();
    reg = await startTestRegistry();
    ref = `${reg.host}/interop/busybox:1`;
    const root = join(work.path, 'root');
    await importBusybox(root, work.path);
    imageId = JSON.parse((await strata(root, ['inspect', 'busybox'])).stdout)[0].Id;
    assert.equal((await strata(root, ['save', '-o', join(work.path, 'bb.tar'), 'busybox'])).code, 0);
    const canRun = process.getuid?.() === 0 && hasTool('dockerd') && hasTool(DOCKER_CLIENT) && hasTool('ctr');
    if (canRun || inCI) dockerd = await startDockerd(join(work.path, 'docker'));
  });
  after(async () => {
    await dockerd?.stop();
    await reg?.stop();
    await work?.cleanup();
  });

  it('docker push stores the image; a second push finds every layer already there', async (t) => {
    if (!needRoot(t) || !needTool(t, 'dockerd', DOCKER_CLIENT)) return;
    await dockerd!.docker(['load', '-i', join(work.path, 'bb.tar')]);
    await dockerd!.docker(['tag', 'busybox:latest', ref]);
    const first = await dockerd!.docker(['push', ref]);
    const m = /digest: (sha256:[a-f0-9]{64}) size: (\d+)/.exec(first);
    assert.ok(m, first);
    pushedDigest = m[1]!;
    const res = await fetch(`${reg.url}/v2/interop/busybox/manifests/1`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), pushedDigest);
    const manifest = (await res.json()) as { config: { digest: string } };
    assert.equal(manifest.config.digest, imageId);

    const posts = await uploadPosts(reg);
    const second = await dockerd!.docker(['push', ref]);
    assert.match(second, /Layer already exists/);
    assert.doesNotMatch(second, /Pushed/);
    assert.equal(await uploadPosts(reg), posts, 'the second push started no upload');
  });

  it('docker pull into an empty daemon store gives the same image ID and digest', async (t) => {
    if (!needRoot(t) || !needTool(t, 'dockerd', DOCKER_CLIENT)) return;
    assert.ok(pushedDigest, 'the push test ran first');
    await dockerd!.docker(['rmi', '-f', ref, 'busybox:latest']);
    const out = await dockerd!.docker(['pull', ref]);
    assert.match(out, new RegExp(`Digest: ${pushedDigest}`));
    const id = (await dockerd!.docker(['image', 'inspect', '--format', '{{.Id}}', ref])).trim();
    assert.equal(id, imageId);
  });

  it('containerd (ctr) pulls the image and pushes it under a new name', async (t) => {
    if (!needRoot(t) || !needTool(t, 'dockerd', 'ctr')) return;
    assert.ok(pushedDigest, 'the push test ran first');
    const pulled = await dockerd!.ctr(['images', 'pull', '--plain-http', ref]);
    assert.match(pulled, /done/);
    const listed = await dockerd!.ctr(['images', 'ls']);
    assert.match(listed, new RegExp(pushedDigest));
    const copy = `${reg.host}/interop/copied:2`;
    await dockerd!.ctr(['images', 'tag', ref, copy]);
    await dockerd!.ctr(['images', 'push', '--plain-http', copy]);
    const res = await fetch(`${reg.url}/v2/interop/copied/manifests/2`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), pushedDigest);
  });
});

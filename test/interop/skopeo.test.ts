import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importBusybox, strata } from '../helpers/cli.js';
import { needTool, tempDir } from '../helpers/env.js';

function skopeoJson(args: string[]): Record<string, unknown> {
  return JSON.parse(execFileSync('skopeo', ['--insecure-policy', ...args], { encoding: 'utf8' }));
}

describe('skopeo reads what strata writes, and strata loads what skopeo writes', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let root: string;
  let inspected: { Id: string; RootFS: { Layers: string[] }; Descriptor: { digest: string } };
  let layerDigests: string[];

  before(async () => {
    work = await tempDir();
    root = join(work.path, 'root');
    await importBusybox(root, work.path);
    inspected = JSON.parse((await strata(root, ['inspect', 'busybox'])).stdout)[0];
    const manifest = JSON.parse(
      execFileSync('cat', [join(root, 'blobs/sha256', inspected.Descriptor.digest.slice(7))], { encoding: 'utf8' }),
    );
    layerDigests = manifest.layers.map((l: { digest: string }) => l.digest);
  });
  after(async () => work?.cleanup());

  it('skopeo inspect docker-archive: sees the same config and layer diffIds', async (t) => {
    if (!needTool(t, 'skopeo')) return;
    const file = join(work.path, 'bb.docker.tar');
    assert.equal((await strata(root, ['save', '-o', file, 'busybox'])).code, 0);
    const raw = skopeoJson(['inspect', '--raw', `docker-archive:${file}`]) as { config: { digest: string } };
    assert.equal(raw.config.digest, inspected.Id);
    const info = skopeoJson(['inspect', `docker-archive:${file}`]) as { Layers: string[]; RepoTags: string[] };
    assert.deepEqual(info.Layers, inspected.RootFS.Layers);
  });

  it('skopeo inspect oci-archive: sees the same manifest digest and layers', async (t) => {
    if (!needTool(t, 'skopeo')) return;
    const file = join(work.path, 'bb.oci.tar');
    assert.equal((await strata(root, ['save', '--format', 'oci', '-o', file, 'busybox'])).code, 0);
    const info = skopeoJson(['inspect', `oci-archive:${file}`]) as { Digest: string; Layers: string[] };
    assert.equal(info.Digest, inspected.Descriptor.digest);
    assert.deepEqual(info.Layers, layerDigests);
  });

  it('skopeo reads the store directly as an OCI layout', async (t) => {
    if (!needTool(t, 'skopeo')) return;
    const info = skopeoJson(['inspect', `oci:${root}:docker.io/library/busybox:latest`]) as { Digest: string };
    assert.equal(info.Digest, inspected.Descriptor.digest);
    const out = join(work.path, 'copied');
    execFileSync('skopeo', [
      '--insecure-policy',
      'copy',
      '-q',
      `oci:${root}:docker.io/library/busybox:latest`,
      `oci:${out}:bb`,
    ]);
    const copied = skopeoJson(['inspect', `oci:${out}:bb`]) as { Digest: string };
    assert.equal(copied.Digest, inspected.Descriptor.digest);
  });

  it('archives written by skopeo load with identical manifest and config digests', async (t) => {
    if (!needTool(t, 'skopeo')) return;
    const src = `oci:${root}:docker.io/library/busybox:latest`;
    const ociFile = join(work.path, 'skopeo.oci.tar');
    const dockerFile = join(work.path, 'skopeo.docker.tar');
    execFileSync('skopeo', [
      '--insecure-policy',
      'copy',
      '-q',
      src,
      `oci-archive:${ociFile}:docker.io/library/fromskopeo:oci`,
    ]);
    execFileSync('skopeo', ['--insecure-policy', 'copy', '-q', src, `docker-archive:${dockerFile}:fromskopeo:docker`]);
    const want = skopeoJson(['inspect', `oci-archive:${ociFile}`]) as { Digest: string };
    const other = join(work.path, 'from-skopeo');
    for (const f of [ociFile, dockerFile]) {
      const l = await strata(other, ['load', '-i', f]);
      assert.equal(l.code, 0, l.stderr);
    }
    const [oci] = JSON.parse((await strata(other, ['inspect', 'fromskopeo:oci'])).stdout);
    assert.equal(oci.Descriptor.digest, want.Digest);
    assert.equal(oci.Id, inspected.Id);
    const [docker] = JSON.parse((await strata(other, ['inspect', 'fromskopeo:docker'])).stdout);
    assert.equal(docker.Id, inspected.Id);
    assert.deepEqual(docker.RootFS.Layers, inspected.RootFS.Layers);
    assert.equal((await strata(other, ['fsck'])).code, 0);
  });
});

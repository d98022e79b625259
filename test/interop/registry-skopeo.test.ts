import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { hasTool, needTool, tempDir } from '../helpers/env.js';
import { type LayoutImage, readLayoutImage, requestCount, skopeo, threeLayerImage } from '../helpers/image-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const run = promisify(execFile);

/**
 * skopeo under a pseudo-terminal (util-linux `script`): skopeo 1.9 prints "Copying blob X skipped: already exists"
 * only to a terminal (newer versions print it either way). Returns the output with terminal escapes removed.
 */
async function skopeoTty(args: string[]): Promise<string> {
  const quoted = ['skopeo', '--insecure-policy', ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  const { stdout } = await run('script', ['-qec', `stty cols 200 rows 50; ${quoted}`, '/dev/null'], {
    maxBuffer: 16 << 20,
  });
  return stdout.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/\r/g, '\n');
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('skopeo pushes to and pulls from the strata registry', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let reg: TestRegistry;
  let image: LayoutImage;
  let dest: string;

  before(async () => {
    work = await tempDir();
    reg = await startTestRegistry();
    dest = `docker://${reg.host}/interop/three:v1`;
    if (hasTool('skopeo') && hasTool('umoci')) image = await threeLayerImage(work.path);
  });
  after(async () => {
    await reg?.stop();
    await work?.cleanup();
  });

  it('skopeo copy oci: -> docker:// pushes all three layers, the config and the manifest', async (t) => {
    if (!needTool(t, 'skopeo', 'umoci')) return;
    const before = await requestCount(reg.url, 'uploads', 'POST');
    await skopeo(['copy', '--dest-tls-verify=false', image.ref, dest]);
    // One upload per blob: three layers and the config.
    assert.equal((await requestCount(reg.url, 'uploads', 'POST')) - before, 4);
    const head = await fetch(`${reg.url}/v2/interop/three/manifests/v1`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('docker-content-digest'), image.manifestDigest);
    assert.equal(head.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
  });

  it('skopeo inspect docker:// sees the pushed digests; --raw returns the manifest byte for byte', async (t) => {
    if (!needTool(t, 'skopeo', 'umoci')) return;
    const info = JSON.parse(await skopeo(['inspect', '--tls-verify=false', dest])) as {
      Digest: string;
      Layers: string[];
      Os: string;
      Architecture: string;
    };
    assert.equal(info.Digest, image.manifestDigest);
    assert.deepEqual(info.Layers, image.layerDigests);
    assert.equal(info.Os, 'linux');
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', dest]);
    assert.equal(raw, image.manifestBytes.toString('utf8'));
    const config = await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', dest]);
    assert.equal(sha256(Buffer.from(config)), image.configDigest);
    const tags = JSON.parse(await skopeo(['list-tags', '--tls-verify=false', `docker://${reg.host}/interop/three`]));
    assert.deepEqual(tags.Tags, ['v1']);
  });

  it('skopeo copy docker:// -> oci: pulls back identical manifest, config and layer digests', async (t) => {
    if (!needTool(t, 'skopeo', 'umoci')) return;
    const out = join(work.path, 'pulled');
    await skopeo(['copy', '--src-tls-verify=false', dest, `oci:${out}:three`]);
    const pulled = await readLayoutImage(out, 'three');
    assert.equal(pulled.manifestDigest, image.manifestDigest);
    assert.ok(pulled.manifestBytes.equals(image.manifestBytes));
    assert.equal(pulled.configDigest, image.configDigest);
    assert.deepEqual(pulled.layerDigests, image.layerDigests);
    assert.deepEqual(pulled.diffIds, image.diffIds);
    // Every blob skopeo wrote hashes to its name: the bytes came back intact.
    for (const d of [pulled.configDigest, ...pulled.layerDigests]) {
      assert.equal(sha256(await readFile(join(out, 'blobs', ...d.split(':')))), d);
    }
  });

  it('a second push finds every blob already there: skipped, and no upload is started', async (t) => {
    if (!needTool(t, 'skopeo', 'umoci', 'script')) return;
    const posts = await requestCount(reg.url, 'uploads', 'POST');
    const patches = await requestCount(reg.url, 'upload', 'PATCH');
    const out = await skopeoTty(['copy', '--dest-tls-verify=false', image.ref, dest]);
    for (const d of image.layerDigests) {
      const hex = d.slice('sha256:'.length, 'sha256:'.length + 12);
      assert.match(out, new RegExp(`Copying blob (sha256:)?${hex}[0-9a-f]* skipped: already exists`), out);
    }
    assert.equal(await requestCount(reg.url, 'uploads', 'POST'), posts, 'the second push started uploads');
    assert.equal(await requestCount(reg.url, 'upload', 'PATCH'), patches, 'the second push sent blob data');
    assert.equal(
      JSON.parse(await skopeo(['inspect', '--tls-verify=false', dest])).Digest,
      image.manifestDigest,
      'the re-pushed tag still names the same manifest',
    );
  });

  it('skopeo copy between two repositories of the registry keeps every digest', async (t) => {
    if (!needTool(t, 'skopeo', 'umoci')) return;
    const other = `docker://${reg.host}/interop/copied:v2`;
    await skopeo(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', dest, other]);
    const info = JSON.parse(await skopeo(['inspect', '--tls-verify=false', other]));
    assert.equal(info.Digest, image.manifestDigest);
    assert.deepEqual(info.Layers, image.layerDigests);
    const catalog = (await (await fetch(`${reg.url}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.deepEqual(catalog.repositories, ['interop/copied', 'interop/three']);
  });

  it('skopeo delete removes the manifest by digest; the tag is gone with it', async (t) => {
    if (!needTool(t, 'skopeo', 'umoci')) return;
    const ref = `docker://${reg.host}/interop/copied@${image.manifestDigest}`;
    await skopeo(['delete', '--tls-verify=false', ref]);
    await assert.rejects(skopeo(['inspect', '--tls-verify=false', ref]), /manifest unknown|not found|unknown/i);
    await assert.rejects(skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/interop/copied:v2`]));
    // The other repository is untouched.
    assert.equal(JSON.parse(await skopeo(['inspect', '--tls-verify=false', dest])).Digest, image.manifestDigest);
  });
});

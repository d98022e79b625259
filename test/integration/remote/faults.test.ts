import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importBusybox, strata } from '../../helpers/cli.js';
import { tempDir } from '../../helpers/env.js';
import { type FaultProxy, startFaultProxy } from '../../helpers/fault-proxy.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';

/**
 * `strata pull` and `strata push` through a proxy on 127.0.0.1 that misbehaves the way networks and busy registries
 * do: 429 with Retry-After, a one-off 500, a flipped byte, a connection cut in the middle of a blob. Each either
 * completes with the right digests or fails with a clear error, and a corrupted blob never reaches the store.
 */
describe('pull and push survive registry and network faults', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let source: string;
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let layer: string;
  let imageId: string;
  let n = 0;

  const fresh = (): string => join(work.path, `root-${++n}`);
  const blobs = async (root: string): Promise<string[]> =>
    (await readdir(join(root, 'blobs', 'sha256')).catch(() => [] as string[])).sort();

  before(async () => {
    work = await tempDir('strata-faults-');
    source = join(work.path, 'source');
    await importBusybox(source, work.path);
    const inspected = JSON.parse((await strata(source, ['inspect', 'busybox'])).stdout)[0] as {
      Id: string;
    };
    imageId = inspected.Id;
    reg = await startTestRegistry();
    // Seed the registry directly (not through the proxy).
    assert.equal((await strata(source, ['tag', 'busybox', `${reg.host}/faults/bb:1`])).code, 0);
    const pushed = await strata(source, ['push', '-q', `${reg.host}/faults/bb:1`]);
    assert.equal(pushed.code, 0, pushed.stderr);
    const manifest = (await (
      await fetch(`${reg.url}/v2/faults/bb/manifests/1`, {
        headers: {
          accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
        },
      })
    ).json()) as { layers: { digest: string; size: number }[] };
    layer = manifest.layers[0]!.digest;
    proxy = await startFaultProxy(reg.url);
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
    await work?.cleanup();
  });

  async function pullOk(root: string): Promise<void> {
    const r = await strata(root, ['pull', '--progress', 'plain', `${proxy.host}/faults/bb:1`]);
    assert.equal(r.code, 0, r.stderr);
    const id = JSON.parse((await strata(root, ['inspect', `${proxy.host}/faults/bb:1`])).stdout)[0].Id;
    assert.equal(id, imageId);
    const fsck = await strata(root, ['fsck']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  }

  it('429 with Retry-After on the manifest: the pull waits, retries and completes', async () => {
    const before = proxy.injected;
    proxy.add({ method: 'GET', path: /\/manifests\/1$/, fault: { kind: 'status', status: 429, retryAfter: '1' } });
    const root = fresh();
    await pullOk(root);
    assert.equal(proxy.injected, before + 1);
    const manifestGets = proxy.log.filter((l) => l === 'GET /v2/faults/bb/manifests/1').length;
    assert.ok(manifestGets >= 2, `the manifest was asked for again (${manifestGets} GETs)`);
  });

  it('a one-off 500 on the layer: the pull retries it and completes', async () => {
    const before = proxy.injected;
    proxy.add({ method: 'GET', path: new RegExp(`/blobs/${layer}$`), fault: { kind: 'status', status: 500 } });
    await pullOk(fresh());
    assert.equal(proxy.injected, before + 1);
  });

  it('a connection cut mid-layer: the pull resumes from the bytes it has instead of starting over', async () => {
    const size = (await fetch(`${reg.url}/v2/faults/bb/blobs/${layer}`, { method: 'HEAD' })).headers.get(
      'content-length',
    );
    const total = Number(size);
    proxy.add({
      method: 'GET',
      path: new RegExp(`/blobs/${layer}$`),
      fault: { kind: 'cut-response', afterBytes: Math.floor(total / 2) },
    });
    const down = proxy.bytes.down;
    await pullOk(fresh());
    const moved = proxy.bytes.down - down;
    assert.ok(moved < total * 1.2, `moved ${moved} bytes for a ${total}-byte layer: it restarted instead of resuming`);
  });

  it('a layer corrupted on every attempt: a clear digest error, nothing tagged, no corrupted blob stored', async () => {
    proxy.add({
      method: 'GET',
      path: new RegExp(`/blobs/${layer}$`),
      fault: { kind: 'corrupt', offset: 1000 },
      times: 50,
    });
    const root = fresh();
    const r = await strata(root, ['pull', '--progress', 'plain', `${proxy.host}/faults/bb:1`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /digest mismatch|does not match/i);
    assert.ok(!(await blobs(root)).includes(layer.slice(7)), 'the corrupted layer is not in the store');
    const images = await strata(root, ['images', '--format', 'json']);
    assert.equal(images.stdout.trim(), '');
    const fsck = await strata(root, ['fsck']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    proxy.clear();
  });

  it('push: 429 on the manifest PUT and a 500 on a blob HEAD are retried; the registry ends with the same digest', async () => {
    proxy.add({ method: 'PUT', path: /\/manifests\/2$/, fault: { kind: 'status', status: 429, retryAfter: '1' } });
    proxy.add({ method: 'HEAD', path: /\/blobs\/sha256:/, fault: { kind: 'status', status: 500 } });
    const before = proxy.injected;
    const ref = `${proxy.host}/faults/pushed:2`;
    assert.equal((await strata(source, ['tag', 'busybox', ref])).code, 0);
    const r = await strata(source, ['push', '--progress', 'plain', ref]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(proxy.injected, before + 2);
    const res = await fetch(`${reg.url}/v2/faults/pushed/manifests/2`, {
      method: 'HEAD',
      headers: {
        accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
      },
    });
    assert.equal(res.status, 200);
    const local = JSON.parse((await strata(source, ['image', 'inspect', ref])).stdout)[0] as {
      Descriptor: { digest: string };
    };
    assert.equal(res.headers.get('docker-content-digest'), local.Descriptor.digest);
  });

  it('push to a registry that keeps failing: a clear error naming the registry answer, non-zero exit', async () => {
    proxy.add({ method: 'HEAD', path: /\/blobs\/sha256:/, fault: { kind: 'status', status: 503 }, times: 1000 });
    proxy.add({ method: 'POST', path: /\/blobs\/uploads\/$/, fault: { kind: 'status', status: 503 }, times: 1000 });
    const ref = `${proxy.host}/faults/down:1`;
    assert.equal((await strata(source, ['tag', 'busybox', ref])).code, 0);
    const r = await strata(source, ['push', '--progress', 'plain', ref]);
    proxy.clear();
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /503/);
  });
});

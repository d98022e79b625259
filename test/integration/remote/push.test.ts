import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { blobSources, createTransport, pushBlob, recordBlobSource } from '../../../src/remote/index.js';
import { Readable } from 'node:stream';
import type { Digest } from '../../../src/oci/index.js';
import { importBusybox, strata } from '../../helpers/cli.js';
import { hasTool, inCI, tempDir } from '../../helpers/env.js';
import { startFaultProxy } from '../../helpers/fault-proxy.js';
import { threeLayerImage } from '../../helpers/image-layout.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { DOCKER_REGISTRY, type RegistryProcess, startDockerRegistry } from '../../helpers/registry-process.js';

const run = promisify(execFile);

/**
 * `strata push`, end to end: the built CLI against strata's registry and Debian's docker-registry on 127.0.0.1,
 * checked from outside with skopeo and plain HTTP (the manifest the registry serves hashes to the local digest),
 * with the registry's own counters (/metrics) showing which bytes moved. The resume test puts a real TCP proxy in
 * front of the registry that cuts the connection once in the middle of a chunk upload.
 */

let work: { path: string; cleanup: () => Promise<void> };
let root: string;
let reg: TestRegistry;
let host: string;
let local: { digest: string; bytes: Buffer; layers: string[] };

async function skopeoInspect(ref: string): Promise<{ Digest: string; Layers: string[] }> {
  const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', ref], { maxBuffer: 16 << 20 });
  return JSON.parse(stdout) as { Digest: string; Layers: string[] };
}

async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) {
      n += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return n;
}

async function localManifest(r: string, name: string): Promise<{ digest: string; bytes: Buffer; layers: string[] }> {
  const res = await strata(r, ['image', 'inspect', name]);
  assert.equal(res.code, 0, res.stderr);
  const info = JSON.parse(res.stdout) as [{ Descriptor: { digest: string } }];
  const digest = info[0].Descriptor.digest;
  const bytes = await readFile(join(r, 'blobs', 'sha256', digest.slice(7)));
  const layers = (JSON.parse(bytes.toString()) as { layers: { digest: string }[] }).layers.map((l) => l.digest);
  return { digest, bytes, layers };
}

async function getManifest(url: string, repo: string, ref: string): Promise<{ status: number; bytes: Buffer }> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref}`, {
    headers: {
      accept: [
        'application/vnd.oci.image.manifest.v1+json',
        'application/vnd.docker.distribution.manifest.v2+json',
        'application/vnd.oci.image.index.v1+json',
      ].join(', '),
    },
  });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  work = await tempDir('strata-push-');
  root = join(work.path, 'root');
  await importBusybox(root, work.path);
  local = await localManifest(root, 'busybox:latest');
  reg = await startTestRegistry();
  host = new URL(reg.url).host;
});

after(async () => {
  await reg?.stop();
  await work?.cleanup();
});

describe('strata push to strata registry', () => {
  it('pushes to an empty registry: the registry serves the same manifest bytes, skopeo sees the same digest', async (t) => {
    const name = `${host}/library/busybox:1.0`;
    assert.equal((await strata(root, ['tag', 'busybox', name])).code, 0);
    const received0 = await metric(reg.url, 'strata_registry_bytes_received_total');
    const res = await strata(root, ['push', '--progress', 'plain', name]);
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trim().split('\n');
    assert.equal(lines[0], `The push refers to repository [${host}/library/busybox]`);
    for (const l of local.layers) {
      const id = l.slice(7, 19);
      assert.ok(lines.includes(`${id}: Preparing`), res.stdout);
      assert.ok(lines.includes(`${id}: Pushed`), res.stdout);
    }
    assert.equal(lines.at(-1), `1.0: digest: ${local.digest} size: ${local.bytes.length}`);

    const got = await getManifest(reg.url, 'library/busybox', '1.0');
    assert.equal(got.status, 200);
    assert.ok(got.bytes.equals(local.bytes), 'the registry serves the manifest byte for byte');
    assert.equal(sha256(got.bytes), local.digest);
    // Layers as stored locally (never recompressed): the registry received their bytes, the config's and the
    // manifest's, nothing more.
    const received = (await metric(reg.url, 'strata_registry_bytes_received_total')) - received0;
    const m = JSON.parse(local.bytes.toString()) as { layers: { size: number }[]; config: { size: number } };
    assert.equal(received, m.layers.reduce((n, l) => n + l.size, 0) + m.config.size + local.bytes.length);

    if (!hasTool('skopeo')) {
      if (inCI) throw new Error('skopeo missing in CI');
      t.diagnostic('skopeo not installed: skipped the skopeo check');
      return;
    }
    const info = await skopeoInspect(`docker://${name}`);
    assert.equal(info.Digest, local.digest);
    assert.deepEqual(info.Layers, local.layers);
  });

  it('a second push moves no blob bytes and says "Layer already exists" for each layer', async () => {
    const name = `${host}/library/busybox:1.0`;
    const before = {
      bytes: await metric(reg.url, 'strata_registry_bytes_received_total'),
      posts: await metric(reg.url, 'strata_registry_requests_total', { route: 'uploads', method: 'POST' }),
      patches: await metric(reg.url, 'strata_registry_requests_total', { route: 'upload' }),
    };
    const res = await strata(root, ['push', '--progress', 'plain', name]);
    assert.equal(res.code, 0, res.stderr);
    for (const l of local.layers)
      assert.match(res.stdout, new RegExp(`^${l.slice(7, 19)}: Layer already exists$`, 'm'));
    assert.doesNotMatch(res.stdout, /Pushed|Pushing/);
    assert.equal(await metric(reg.url, 'strata_registry_bytes_received_total'), before.bytes);
    assert.equal(
      await metric(reg.url, 'strata_registry_requests_total', { route: 'uploads', method: 'POST' }),
      before.posts,
    );
    assert.equal(await metric(reg.url, 'strata_registry_requests_total', { route: 'upload' }), before.patches);
  });

  it('--quiet prints only the reference', async () => {
    const name = `${host}/library/busybox:1.0`;
    const res = await strata(root, ['push', '-q', name]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, `${host}/library/busybox:1.0\n`);
  });

  it('mounts the base layers from another repository of the same registry (201) instead of uploading them', async (t) => {
    if (!hasTool('skopeo') || !hasTool('umoci')) {
      if (inCI) throw new Error('skopeo and umoci are required in CI');
      t.skip('skopeo and umoci not installed');
      return;
    }
    // A three-layer image whose base is the busybox layer pushed to library/busybox above.
    const img = await threeLayerImage(join(work.path, 'three'));
    const tarFile = join(work.path, 'three.tar');
    await run('tar', ['-C', img.dir, '-cf', tarFile, '.']);
    const load = await strata(root, ['load', '-i', tarFile]);
    assert.equal(load.code, 0, load.stderr);
    const name = `${host}/apps/three:v1`;
    assert.equal((await strata(root, ['tag', img.configDigest, name])).code, 0);

    const mounts0 = await metric(reg.url, 'strata_registry_requests_total', {
      route: 'uploads',
      method: 'POST',
      status: '201',
    });
    const received0 = await metric(reg.url, 'strata_registry_bytes_received_total');
    const res = await strata(root, ['push', '--progress', 'plain', name]);
    assert.equal(res.code, 0, res.stderr);
    const base = img.layerDigests[0]!;
    assert.equal(base, local.layers[0], 'the base layer is the busybox layer');
    assert.match(res.stdout, new RegExp(`^${base.slice(7, 19)}: Mounted from library/busybox$`, 'm'));
    for (const l of img.layerDigests.slice(1)) assert.match(res.stdout, new RegExp(`^${l.slice(7, 19)}: Pushed$`, 'm'));
    assert.equal(
      await metric(reg.url, 'strata_registry_requests_total', { route: 'uploads', method: 'POST', status: '201' }),
      mounts0 + 1,
    );
    // The mounted layer's bytes did not travel.
    const manifest = JSON.parse(img.manifestBytes.toString()) as {
      layers: { size: number }[];
      config: { size: number };
    };
    const received = (await metric(reg.url, 'strata_registry_bytes_received_total')) - received0;
    assert.equal(
      received,
      manifest.layers[1]!.size + manifest.layers[2]!.size + manifest.config.size + img.manifestBytes.length,
    );

    const got = await getManifest(reg.url, 'apps/three', 'v1');
    assert.equal(sha256(got.bytes), img.manifestDigest);
    const info = await skopeoInspect(`docker://${name}`);
    assert.equal(info.Digest, img.manifestDigest);
  });

  it('resumes a chunked upload cut mid-PATCH from the offset the registry reports', async (t) => {
    // A 64 MiB layer of random bytes (incompressible): pushed in 16 MiB chunks.
    const dir = join(work.path, 'big-rootfs');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'random.bin'), randomBytes(64 << 20));
    const imp = await strata(root, ['import', dir, 'big:latest']);
    assert.equal(imp.code, 0, imp.stderr);
    const big = await localManifest(root, 'big:latest');
    const layerSize = (JSON.parse(big.bytes.toString()) as { layers: { size: number }[] }).layers[0]!.size;
    assert.ok(layerSize > 64 << 20);

    const proxy = await startFaultProxy(reg.url);
    try {
      proxy.add({ method: 'PATCH', path: /\/blobs\/uploads\//, fault: { kind: 'cut-request', afterBytes: 10 << 20 } });
      const name = `${proxy.host}/big/random:1`;
      assert.equal((await strata(root, ['tag', 'big:latest', name])).code, 0);
      const res = await strata(root, ['push', '--progress', 'plain', name]);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(proxy.injected, 1, 'the connection was cut once');
      assert.match(res.stdout, /Retrying/);
      assert.ok(
        proxy.log.some((l) => /^GET \/v2\/big\/random\/blobs\/uploads\//.test(l)),
        'the client asked the registry where the upload stands',
      );
      // Resumed, not restarted: the bytes sent are close to one copy of the layer, well below two.
      t.diagnostic(`${proxy.bytes.up} bytes through the proxy for a ${layerSize}-byte layer`);
      assert.ok(proxy.bytes.up >= layerSize);
      // strata's registry keeps the part of the cut chunk it received, so only what was in flight at the cut is
      // sent again; a restart would send the 10 MiB before the cut once more.
      assert.ok(proxy.bytes.up < layerSize + (8 << 20), `${proxy.bytes.up} bytes sent for a ${layerSize}-byte layer`);
      const got = await getManifest(reg.url, 'big/random', '1');
      assert.equal(got.status, 200);
      assert.equal(sha256(got.bytes), big.digest);
      // The blob the registry committed is the layer (it verified the digest).
      const head = await fetch(`${reg.url}/v2/big/random/blobs/${big.layers[0]}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(Number(head.headers.get('content-length')), layerSize);
    } finally {
      await proxy.close();
    }
  });
});

describe('strata push of an image that came through an index', () => {
  /** Load an OCI layout whose index.json names an image index (over the busybox manifest, plus `extra` entries). */
  async function loadIndexed(dir: string, extra: object[]): Promise<{ index: Buffer }> {
    const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;
    const layout = join(dir, 'layout');
    await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    const cfg = JSON.parse(local.bytes.toString()) as { config: { digest: string; size: number } };
    for (const d of [local.digest, cfg.config.digest, ...local.layers]) {
      await writeFile(
        join(layout, 'blobs', 'sha256', d.slice(7)),
        await readFile(join(root, 'blobs', 'sha256', d.slice(7))),
      );
    }
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: local.digest,
            size: local.bytes.length,
            platform: { os: 'linux', architecture: arch },
          },
          ...extra,
        ],
      }),
    );
    await writeFile(join(layout, 'blobs', 'sha256', sha256(index).slice(7)), index);
    await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          { mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha256(index), size: index.length },
        ],
      }),
    );
    const tarFile = join(dir, 'indexed.tar');
    await run('tar', ['-C', layout, '-cf', tarFile, '.']);
    const load = await strata(root, ['load', '-i', tarFile]);
    assert.equal(load.code, 0, load.stderr);
    return { index };
  }

  it('pushes the platform manifests and then the index when all of them are here', async () => {
    const dir = join(work.path, 'indexed-full');
    const { index } = await loadIndexed(dir, []);
    const name = `${host}/indexed/full:1`;
    // The loaded image is untagged: tag it by the digest the load recorded it under (the index's).
    const tagged = await strata(root, ['tag', sha256(index), name]);
    assert.equal(tagged.code, 0, tagged.stderr);
    const res = await strata(root, ['push', '--progress', 'plain', name]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`^1: digest: ${sha256(index)} size: ${index.length}$`, 'm'));
    const got = await getManifest(reg.url, 'indexed/full', '1');
    assert.ok(got.bytes.equals(index), 'the tag names the index, byte for byte');
    assert.equal((await getManifest(reg.url, 'indexed/full', local.digest)).status, 200);
  });

  it('pushes only the platform manifest when the index lists images that are not here', async () => {
    const dir = join(work.path, 'indexed-partial');
    const missing = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${'e'.repeat(64)}`,
      size: 500,
      platform: { os: 'linux', architecture: 's390x' },
    };
    const { index } = await loadIndexed(dir, [missing]);
    const name = `${host}/indexed/partial:1`;
    assert.equal((await strata(root, ['tag', sha256(index), name])).code, 0);
    const res = await strata(root, ['push', '--progress', 'plain', name]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`^1: digest: ${local.digest} size: ${local.bytes.length}$`, 'm'));
    const got = await getManifest(reg.url, 'indexed/partial', '1');
    assert.ok(got.bytes.equals(local.bytes));
  });
});

describe('blob upload (library)', () => {
  it('uploads in many chunks, and refuses a source whose bytes are not the digest before the last byte', async () => {
    const transport = createTransport(host);
    try {
      const data = randomBytes(300_000);
      const digest = sha256(data) as Digest;
      const open = async (start: number) => Readable.from([data.subarray(start)]);
      const ok = await pushBlob(transport, 'lib/chunks', { digest, size: data.length }, open, {
        monolithicMax: 0,
        chunkSize: 64 * 1024,
      });
      assert.equal(ok.state, 'uploaded');
      const head = await fetch(`${reg.url}/v2/lib/chunks/blobs/${digest}`, { method: 'HEAD' });
      assert.equal(head.status, 200);

      const bad = Buffer.from(data);
      bad[250_000]! ^= 1;
      const other = sha256(randomBytes(8)) as Digest; // claims a digest the bytes do not have
      await assert.rejects(
        pushBlob(
          transport,
          'lib/chunks',
          { digest: other, size: bad.length },
          async (s) => Readable.from([bad.subarray(s)]),
          {
            monolithicMax: 0,
            chunkSize: 64 * 1024,
          },
        ),
        (err: Error) => /digest mismatch/.test(err.message),
      );
      assert.equal((await fetch(`${reg.url}/v2/lib/chunks/blobs/${other}`, { method: 'HEAD' })).status, 404);
      await assert.rejects(
        pushBlob(transport, 'lib/short', { digest, size: data.length + 5 }, open, { monolithicMax: 1 << 30 }),
        (err: Error) => /size mismatch|digest mismatch/.test(err.message),
      );
    } finally {
      await transport.close();
    }
  });
});

describe('strata push to docker-registry (CNCF distribution)', () => {
  let dreg: RegistryProcess | undefined;
  let dwork: { path: string; cleanup: () => Promise<void> } | undefined;

  before(async () => {
    if (!hasTool(DOCKER_REGISTRY)) return;
    dwork = await tempDir('strata-push-dreg-');
    dreg = await startDockerRegistry(dwork.path);
  });
  after(async () => {
    await dreg?.stop();
    await dwork?.cleanup();
  });

  it('pushes, pushes again (nothing moves), and mounts across repositories', async (t) => {
    if (!dreg) {
      if (inCI) throw new Error('docker-registry is required in CI');
      t.skip('docker-registry not installed');
      return;
    }
    const name = `${dreg.host}/mirror/busybox:latest`;
    assert.equal((await strata(root, ['tag', 'busybox', name])).code, 0);
    let res = await strata(root, ['push', '--progress', 'plain', name]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /: Pushed$/m);
    assert.match(res.stdout, new RegExp(`^latest: digest: ${local.digest} size: ${local.bytes.length}$`, 'm'));
    const got = await getManifest(dreg.url, 'mirror/busybox', 'latest');
    assert.ok(got.bytes.equals(local.bytes));

    res = await strata(root, ['push', '--progress', 'plain', name]);
    assert.equal(res.code, 0, res.stderr);
    for (const l of local.layers)
      assert.match(res.stdout, new RegExp(`^${l.slice(7, 19)}: Layer already exists$`, 'm'));

    const other = `${dreg.host}/second/busybox:latest`;
    assert.equal((await strata(root, ['tag', 'busybox', other])).code, 0);
    res = await strata(root, ['push', '--progress', 'plain', other]);
    assert.equal(res.code, 0, res.stderr);
    for (const l of local.layers)
      assert.match(res.stdout, new RegExp(`^${l.slice(7, 19)}: Mounted from mirror/busybox$`, 'm'));
    if (hasTool('skopeo')) assert.equal((await skopeoInspect(`docker://${other}`)).Digest, local.digest);
  });

  it('resumes a cut chunked upload against docker-registry too', async (t) => {
    if (!dreg) {
      t.skip('docker-registry not installed');
      return;
    }
    const big = await localManifest(root, 'big:latest');
    const layerSize = (JSON.parse(big.bytes.toString()) as { layers: { size: number }[] }).layers[0]!.size;
    const proxy = await startFaultProxy(dreg.url);
    try {
      proxy.add({ method: 'PATCH', path: /\/blobs\/uploads\//, fault: { kind: 'cut-request', afterBytes: 10 << 20 } });
      const name = `${proxy.host}/big/random:1`;
      assert.equal((await strata(root, ['tag', 'big:latest', name])).code, 0);
      const res = await strata(root, ['push', '--progress', 'plain', name]);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(proxy.injected, 1);
      t.diagnostic(`${proxy.bytes.up} bytes through the proxy for a ${layerSize}-byte layer`);
      // At most the cut chunk again (distribution may drop a partial chunk), never the whole layer twice.
      assert.ok(proxy.bytes.up < layerSize + (17 << 20), `${proxy.bytes.up} bytes sent for a ${layerSize}-byte layer`);
      const got = await getManifest(dreg.url, 'big/random', '1');
      assert.equal(sha256(got.bytes), big.digest);
    } finally {
      await proxy.close();
    }
  });
});

describe('blob sources record', () => {
  it('keeps the most recent repositories first, per registry, and survives concurrent writers', async () => {
    const dir = await tempDir('strata-blobsrc-');
    try {
      const d = `sha256:${'a'.repeat(64)}` as Digest;
      await Promise.all(['one', 'two', 'three'].map((r) => recordBlobSource(dir.path, 'reg:5000', r, d)));
      const got = await blobSources(dir.path, 'reg:5000', d);
      assert.deepEqual([...got].sort(), ['one', 'three', 'two']);
      await recordBlobSource(dir.path, 'reg:5000', 'two', d);
      assert.equal((await blobSources(dir.path, 'reg:5000', d))[0], 'two');
      assert.deepEqual(await blobSources(dir.path, 'other:5000', d), []);
    } finally {
      await dir.cleanup();
    }
  });
});

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { type AddressInfo, createServer, type Socket, connect } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { ContentStore } from '../../../src/content/index.js';
import { type ProgressEvent, Strata } from '../../../src/index.js';
import { chainIds, type Digest, MediaType } from '../../../src/oci/index.js';
import { createTransport, downloadBlob, fetchManifest, listTags } from '../../../src/remote/index.js';
import { createProgressRenderer, progressBar } from '../../../src/cli/progress.js';
import { strata } from '../../helpers/cli.js';
import { cliPath, hasTool, inCI, tempDir } from '../../helpers/env.js';
import { type LayoutImage, skopeo, threeLayerImage } from '../../helpers/image-layout.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { type RegistryProcess, startDockerRegistry } from '../../helpers/registry-process.js';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer | string): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

// ---------------------------------------------------------------------------------------------------------------
// Filling registries: blobs and manifests over plain HTTP, as any client pushes them.

async function uploadBlob(registryUrl: string, repo: string, data: Buffer | string): Promise<Digest> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const digest = sha256(bytes);
  const head = await fetch(`${registryUrl}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  if (head.status === 200) return digest;
  const post = await fetch(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await post.arrayBuffer();
  assert.equal(post.status, 202, `POST upload: ${post.status}`);
  const loc = new URL(post.headers.get('location')!, registryUrl);
  loc.searchParams.set('digest', digest);
  const put = await fetch(loc, {
    method: 'PUT',
    body: new Uint8Array(bytes),
    headers: { 'content-type': 'application/octet-stream' },
  });
  const text = await put.text();
  assert.equal(put.status, 201, `PUT blob: ${put.status} ${text}`);
  return digest;
}

/** Upload a file by streaming it (a 64 MiB layer need not sit in memory twice). */
async function uploadFile(registryUrl: string, repo: string, path: string, digest: Digest, size: number) {
  const post = await fetch(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await post.arrayBuffer();
  const loc = new URL(post.headers.get('location')!, registryUrl);
  loc.searchParams.set('digest', digest);
  const put = await fetch(loc, {
    method: 'PUT',
    body: createReadStream(path) as unknown as BodyInit,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    duplex: 'half',
  } as RequestInit);
  const text = await put.text();
  assert.equal(put.status, 201, `PUT blob: ${put.status} ${text}`);
}

async function putManifest(registryUrl: string, repo: string, ref: string, body: string, mediaType: string) {
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    body,
    headers: { 'content-type': mediaType },
  });
  const text = await res.text();
  assert.equal(res.status, 201, `PUT manifest ${repo}:${ref}: ${res.status} ${text}`);
  return sha256(body);
}

async function bytesSent(registryUrl: string): Promise<number> {
  const text = await (await fetch(`${registryUrl}/metrics`)).text();
  const m = /^strata_registry_bytes_sent_total (\d+)/m.exec(text);
  return Number(m?.[1] ?? Number.NaN);
}

// ---------------------------------------------------------------------------------------------------------------
// A TCP proxy on 127.0.0.1: counts the bytes it carries to the client, can throttle them and cut a connection once.

interface TcpProxy {
  host: string;
  down: number;
  cuts: number;
  connections: number;
  /** Cut the next connection whose download passes this many bytes (once). */
  cutAfter(bytes: number): void;
  close(): Promise<void>;
}

async function startTcpProxy(targetPort: number, opts: { bytesPerSecond?: number } = {}): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let cutAt: number | undefined;
  const proxy: TcpProxy = {
    host: '',
    down: 0,
    cuts: 0,
    connections: 0,
    cutAfter: (n) => {
      cutAt = n;
    },
    close: async () => {},
  };
  const server = createServer((client) => {
    proxy.connections++;
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', () => {
      sockets.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.end();
    });
    client.pipe(upstream);
    let seen = 0;
    let budgetStart = Date.now();
    let budgetBytes = 0;
    upstream.on('data', (chunk: Buffer) => {
      if (cutAt !== undefined && seen + chunk.length > cutAt) {
        const part = chunk.subarray(0, Math.max(0, cutAt - seen));
        cutAt = undefined;
        proxy.cuts++;
        proxy.down += part.length;
        client.write(part, () => end());
        upstream.pause();
        return;
      }
      seen += chunk.length;
      proxy.down += chunk.length;
      const ok = client.write(chunk);
      if (opts.bytesPerSecond) {
        budgetBytes += chunk.length;
        const due = budgetStart + (budgetBytes / opts.bytesPerSecond) * 1000;
        const wait = due - Date.now();
        if (wait > 0) {
          upstream.pause();
          setTimeout(() => {
            if (client.writableNeedDrain) client.once('drain', () => upstream.resume());
            else upstream.resume();
          }, wait);
          return;
        }
        if (Date.now() - budgetStart > 1000) {
          budgetStart = Date.now();
          budgetBytes = 0;
        }
      }
      if (!ok) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return proxy;
}

// ---------------------------------------------------------------------------------------------------------------

async function listIngest(root: string): Promise<string[]> {
  return readdir(join(root, 'ingest')).catch(() => [] as string[]);
}

async function fsckClean(root: string): Promise<void> {
  const f = await strata(root, ['fsck']);
  assert.equal(f.code, 0, `fsck: ${f.stdout}${f.stderr}`);
  assert.doesNotMatch(f.stdout, /error:|warning:/i, `fsck: ${f.stdout}`);
}

async function inspect(root: string, ref: string): Promise<Record<string, unknown>> {
  const r = await strata(root, ['inspect', ref]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as Record<string, unknown>[])[0]!;
}

const ready = (hasTool('skopeo') && hasTool('umoci') && hasTool('busybox')) || inCI;

describe('strata pull', { skip: ready ? false : 'skopeo, umoci or busybox missing' }, () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let reg: TestRegistry;
  let srcRoot: string;
  let busybox: { manifest: Digest; id: Digest; layer: Digest; layerSize: number; diffId: Digest };
  let three: LayoutImage;
  let host: string;

  before(async () => {
    work = await tempDir('strata-pull-');
    reg = await startTestRegistry();
    host = reg.url.replace(/^http:\/\//, '');
    const made = await threeLayerImage(work.path);
    three = made;
    srcRoot = join(work.path, 'strata-root');
    const store = new ContentStore(srcRoot);
    const s = await Strata.open({ root: srcRoot });
    const img = (await s.resolve('busybox:latest')).image;
    busybox = {
      manifest: img.digest,
      id: img.id,
      layer: img.layers[0]!.digest,
      layerSize: img.layers[0]!.size,
      diffId: img.layers[0]!.diffId,
    };
    assert.ok(await store.has(busybox.layer));
    await skopeo([
      'copy',
      '-q',
      '--dest-tls-verify=false',
      `oci:${srcRoot}:docker.io/library/busybox:latest`,
      `docker://${host}/library/busybox:latest`,
    ]);
    await skopeo(['copy', '-q', '--dest-tls-verify=false', three.ref, `docker://${host}/team/app:three`]);
  });
  after(async () => {
    await reg?.stop();
    await work?.cleanup();
  });

  it('pulls into an empty root: same manifest, config and image ID, layers unpacked, fsck clean', async () => {
    const root = join(work.path, 'empty');
    const ref = `${host}/library/busybox:latest`;
    const r = await strata(root, ['pull', '--progress', 'plain', ref]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    const short = busybox.layer.slice(7, 19);
    assert.equal(lines[0], 'latest: Pulling from library/busybox');
    assert.ok(lines.includes(`${short}: Pulling fs layer`), r.stdout);
    assert.ok(
      lines.some((l) => l.startsWith(`${short}: Downloading `)),
      r.stdout,
    );
    assert.ok(lines.includes(`${short}: Verifying Checksum`), r.stdout);
    assert.ok(lines.includes(`${short}: Download complete`), r.stdout);
    assert.ok(lines.includes(`${short}: Extracting`) || lines.some((l) => l.startsWith(`${short}: Extracting`)));
    assert.ok(lines.includes(`${short}: Pull complete`), r.stdout);
    assert.equal(lines.at(-3), `Digest: ${busybox.manifest}`);
    assert.equal(lines.at(-2), `Status: Downloaded newer image for ${ref}`);
    assert.equal(lines.at(-1), ref);
    assert.doesNotMatch(r.stdout, /\[=|\x1b\[/, 'plain output has no bars and no escapes');

    const info = await inspect(root, ref);
    assert.equal(info['Id'], busybox.id);
    assert.equal((info['Descriptor'] as { digest: string }).digest, busybox.manifest);
    assert.deepEqual(info['RepoDigests'], [`${host}/library/busybox@${busybox.manifest}`]);
    const s = await Strata.open({ root });
    for (const c of chainIds([busybox.diffId])) assert.equal((await s.snapshots.stat(c))?.kind, 'committed');
    await fsckClean(root);
    assert.deepEqual(await listIngest(root), []);

    // Again: nothing to download, docker's wording.
    const again = await strata(root, ['pull', '--progress', 'plain', ref]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`${short}: Already exists`));
    assert.match(again.stdout, new RegExp(`Status: Image is up to date for ${ref.replace(/\./g, '\\.')}`));

    // --quiet prints only the reference; a missing tag adds docker's "Using default tag".
    const q = await strata(root, ['pull', '-q', ref]);
    assert.equal(q.stdout, `${ref}\n`);
    const d = await strata(root, ['pull', '--progress', 'plain', `${host}/library/busybox`]);
    assert.match(d.stdout, /^Using default tag: latest\n/);
  });

  it('downloads only the layers the store lacks (a shared base is "Already exists")', async () => {
    const root = join(work.path, 'shared');
    assert.equal((await strata(root, ['pull', '-q', `${host}/library/busybox:latest`])).code, 0);
    const before = await bytesSent(reg.url);
    const r = await strata(root, ['pull', '--progress', 'plain', `${host}/team/app:three`]);
    assert.equal(r.code, 0, r.stderr);
    const sent = (await bytesSent(reg.url)) - before;
    assert.match(r.stdout, new RegExp(`${three.layerDigests[0]!.slice(7, 19)}: Already exists`));
    const sizes = await Promise.all(
      three.layerDigests.map(async (d) => (await stat(join(three.dir, 'blobs', 'sha256', d.slice(7)))).size),
    );
    const newLayers = sizes[1]! + sizes[2]!;
    assert.ok(sent >= newLayers, `sent ${sent} >= ${newLayers}`);
    assert.ok(sent < newLayers + 64 * 1024, `sent ${sent}: only the two new layers (+ manifest and config)`);
    const info = await inspect(root, `${host}/team/app:three`);
    assert.equal(info['Id'], three.configDigest);
    await fsckClean(root);
  });

  it('pulls an index: the host platform by default (tagged by the index digest), another with --platform', async () => {
    // An index over busybox (amd64) and the same layer under an arm64 config.
    const repo = 'library/multi';
    const srcStore = new ContentStore(srcRoot);
    const layerBytes = await srcStore.readBytes(busybox.layer, 64 * MiB);
    await uploadBlob(reg.url, repo, layerBytes);
    const amdConfig = await srcStore.readBytes(busybox.id);
    const armConfig = JSON.stringify({ ...JSON.parse(amdConfig.toString()), architecture: 'arm64', variant: 'v8' });
    const layers = [{ mediaType: MediaType.OciLayerGzip, digest: busybox.layer, size: busybox.layerSize }];
    const manifests: { digest: Digest; size: number; platform: Record<string, string> }[] = [];
    for (const [cfg, platform] of [
      [amdConfig.toString(), { os: 'linux', architecture: 'amd64' }],
      [armConfig, { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ] as const) {
      const cfgDigest = await uploadBlob(reg.url, repo, cfg);
      const m = JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: cfgDigest, size: Buffer.byteLength(cfg) },
        layers,
      });
      const d = await putManifest(reg.url, repo, sha256(m), m, MediaType.OciManifest);
      manifests.push({ digest: d, size: Buffer.byteLength(m), platform });
    }
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: manifests.map((m) => ({ mediaType: MediaType.OciManifest, ...m })),
    });
    const indexDigest = await putManifest(reg.url, repo, 'latest', index, MediaType.OciIndex);
    const ref = `${host}/${repo}:latest`;

    const root = join(work.path, 'index');
    const arm = await strata(root, ['pull', '--progress', 'plain', '--platform', 'linux/arm64', ref]);
    assert.equal(arm.code, 0, arm.stderr);
    assert.match(arm.stdout, new RegExp(`Digest: ${indexDigest}`));
    const armInfo = await inspect(root, ref);
    assert.equal(armInfo['Architecture'], 'arm64');
    assert.equal(armInfo['Id'], sha256(armConfig));

    if (process.arch === 'x64') {
      const amd = await strata(root, ['pull', '--progress', 'plain', ref]);
      assert.equal(amd.code, 0, amd.stderr);
      assert.match(amd.stdout, /Already exists/);
      assert.equal((await inspect(root, ref))['Id'], busybox.id);
      const images = await strata(root, ['images', '--digests', '--format', '{{.Digest}}']);
      assert.match(images.stdout, new RegExp(indexDigest), 'the tag carries the repository (index) digest');
      const d = await inspect(root, `${host}/${repo}@${indexDigest}`);
      assert.equal(d['Id'], busybox.id);
    }
    const none = await strata(root, ['pull', '--platform', 'linux/s390x', ref]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no matching manifest for linux\/s390x/);
    assert.match(none.stderr, /linux\/amd64, linux\/arm64\/v8/);
    await fsckClean(root);
  });

  it('two pulls of the same image at once into one root both succeed (no deadlock, one copy of each blob)', async () => {
    const root = join(work.path, 'concurrent');
    const before = await bytesSent(reg.url);
    const ref = `${host}/team/app:three`;
    const [a, b] = await Promise.all([strata(root, ['pull', '-q', ref]), strata(root, ['pull', '-q', ref])]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(a.stdout, `${ref}\n`);
    const sizes = await Promise.all(
      three.layerDigests.map(async (d) => (await stat(join(three.dir, 'blobs', 'sha256', d.slice(7)))).size),
    );
    const total = sizes.reduce((x, y) => x + y, 0);
    const sent = (await bytesSent(reg.url)) - before;
    assert.ok(sent < total * 1.2 + 64 * 1024, `sent ${sent} for ${total} bytes of layers: each blob came once`);
    assert.equal((await inspect(root, ref))['Id'], three.configDigest);
    await fsckClean(root);
    assert.deepEqual(await listIngest(root), []);
  });

  it('a corrupt blob in the registry is a clear error and nothing is stored', async () => {
    const bad = await startTestRegistry();
    try {
      const badHost = bad.url.slice('http://'.length);
      await skopeo(['copy', '-q', '--dest-tls-verify=false', three.ref, `docker://${badHost}/team/app:three`]);
      const big = three.layerDigests[2]!.slice(7);
      const file = join(bad.root, 'docker/registry/v2/blobs/sha256', big.slice(0, 2), big, 'data');
      const fh = await open(file, 'r+');
      const { size } = await fh.stat();
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, Math.floor(size / 2));
      b[0] = b[0]! ^ 0xff;
      await fh.write(b, 0, 1, Math.floor(size / 2));
      await fh.close();

      const root = join(work.path, 'corrupt');
      const r = await strata(root, ['pull', '--progress', 'plain', `${badHost}/team/app:three`]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /digest mismatch/);
      assert.match(r.stderr, new RegExp(big.slice(0, 12)));
      const s = await Strata.open({ root });
      assert.equal(await s.content.has(three.layerDigests[2]! as Digest), false);
      assert.equal(await s.content.has(three.manifestDigest as Digest), false, 'no manifest stored');
      assert.deepEqual(await s.names.list(), []);
      assert.deepEqual(await listIngest(root), []);
      await fsckClean(root);
      // Layers that verified are plain content no image uses: prune takes them.
      assert.equal((await strata(root, ['image', 'prune'])).code, 0);
      let blobs = 0;
      for await (const _ of s.content.walk()) blobs++;
      assert.equal(blobs, 0);
    } finally {
      await bad.stop();
    }
  });

  it('pulls from CNCF distribution (docker-registry) with identical digests', async (t) => {
    if (!hasTool('docker-registry') && !inCI) {
      t.skip('docker-registry not installed');
      return;
    }
    let dr: RegistryProcess | undefined;
    try {
      dr = await startDockerRegistry(join(work.path, 'docker-registry'));
      await skopeo([
        'copy',
        '-q',
        '--dest-tls-verify=false',
        `oci:${srcRoot}:docker.io/library/busybox:latest`,
        `docker://${dr.host}/library/busybox:latest`,
      ]);
      await skopeo(['copy', '-q', '--dest-tls-verify=false', three.ref, `docker://${dr.host}/team/app:three`]);
      const root = join(work.path, 'from-distribution');
      for (const [ref, id] of [
        [`${dr.host}/library/busybox:latest`, busybox.id],
        [`${dr.host}/team/app:three`, three.configDigest],
      ] as const) {
        const r = await strata(root, ['pull', '--progress', 'plain', ref]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal((await inspect(root, ref))['Id'], id);
      }
      assert.equal(
        ((await inspect(root, `${dr.host}/library/busybox:latest`))['Descriptor'] as { digest: string }).digest,
        busybox.manifest,
      );
      await fsckClean(root);
    } finally {
      await dr?.stop();
    }
  });

  it('--all-tags pulls every tag, following the tags/list pagination', async () => {
    const repo = 'library/tagged';
    for (const tag of ['a', 'b', 'c']) {
      await skopeo([
        'copy',
        '-q',
        '--dest-tls-verify=false',
        `oci:${srcRoot}:docker.io/library/busybox:latest`,
        `docker://${host}/${repo}:${tag}`,
      ]);
    }
    const transport = createTransport(host, {});
    try {
      assert.deepEqual((await listTags(transport, repo, { pageSize: 2 })).sort(), ['a', 'b', 'c']);
    } finally {
      await transport.close();
    }
    const root = join(work.path, 'all-tags');
    const r = await strata(root, ['pull', '-a', '--progress', 'plain', `${host}/${repo}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.match(/^Status: /gm)?.length, 3, r.stdout);
    assert.equal(r.stdout.trimEnd().split('\n').at(-1), `${host}/${repo}`);
    const images = await strata(root, ['images', '--format', '{{.Tag}}']);
    assert.deepEqual(images.stdout.trim().split('\n').sort(), ['a', 'b', 'c']);
    const bad = await strata(root, ['pull', '-a', `${host}/${repo}:a`]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /tag can't be used with --all-tags/);
  });

  it('a connection cut mid-blob resumes with Range from the current offset (no restart)', async () => {
    const proxy = await startTcpProxy(Number(host.split(':')[1]));
    try {
      const big = three.layerDigests[2]!;
      const size = (await stat(join(three.dir, 'blobs', 'sha256', big.slice(7)))).size;
      const root = join(work.path, 'cut');
      const s = await Strata.open({ root });
      await s.pull(`${host}/library/busybox:latest`);
      proxy.cutAfter(Math.floor(size / 2));
      const transport = createTransport(proxy.host, {});
      const events: ProgressEvent[] = [];
      const [res] = await s.pull(`${proxy.host}/team/app:three`, {
        transport,
        retryDelayMs: 10,
        onProgress: (e) => events.push(e),
      });
      await transport.close();
      assert.equal(proxy.cuts, 1);
      assert.ok(
        events.some((e) => e.kind === 'blob' && e.state === 'retrying'),
        'the cut was seen and retried',
      );
      const total = res!.bytesDownloaded;
      assert.ok(total < size * 1.1 + 100_000, `received ${total} bytes for ${size}: resumed, not restarted`);
      assert.ok(proxy.down < size * 1.1 + 100_000, `proxy carried ${proxy.down} bytes`);
      assert.equal((await inspect(root, `${proxy.host}/team/app:three`))['Id'], three.configDigest);
      await fsckClean(root);
    } finally {
      await proxy.close();
    }
  });

  it('a pull stopped by Ctrl-C, then killed with SIGKILL, resumes from the verified bytes each time', async () => {
    // A 64 MiB layer of random bytes (an uncompressed tar: its digest is its diffId).
    const repo = 'big/image';
    const dir = join(work.path, 'big-layer');
    await mkdir(join(dir, 'rootfs'), { recursive: true });
    await pipeline(
      (async function* () {
        for (let i = 0; i < 64; i++) yield randomBytes(MiB);
      })(),
      createWriteStream(join(dir, 'rootfs', 'random.bin')),
    );
    const tarPath = join(dir, 'layer.tar');
    const { execFileSync } = await import('node:child_process');
    execFileSync('tar', ['-C', join(dir, 'rootfs'), '-cf', tarPath, '.']);
    const tarSize = (await stat(tarPath)).size;
    const h = createHash('sha256');
    await pipeline(createReadStream(tarPath), h);
    const layerDigest = `sha256:${h.digest('hex')}` as Digest;
    await uploadFile(reg.url, repo, tarPath, layerDigest, tarSize);
    const config = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [layerDigest] },
    });
    const configDigest = await uploadBlob(reg.url, repo, config);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: configDigest, size: config.length },
      layers: [{ mediaType: MediaType.OciLayer, digest: layerDigest, size: tarSize }],
    });
    await putManifest(reg.url, repo, 'v1', manifest, MediaType.OciManifest);

    // 16 MiB/s through the proxy: the kill lands while the layer streams.
    const proxy = await startTcpProxy(Number(host.split(':')[1]), { bytesPerSecond: 16 * MiB });
    const root = join(work.path, 'killed');
    const ref = `${proxy.host}/${repo}:v1`;
    const data = join(root, 'ingest', `r-sha256-${layerDigest.slice(7)}`, 'data');
    try {
      /** Start a pull, wait until ingest/ holds more than `bytes`, send `signal`; resolves with its stderr and code. */
      const interrupt = async (bytes: number, signal: NodeJS.Signals) => {
        const child: ChildProcess = spawn(cliPath, ['pull', '--progress', 'plain', ref], {
          env: { ...process.env, STRATA_ROOT: root },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline) {
          if (((await stat(data).catch(() => undefined))?.size ?? 0) > bytes) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        child.kill(signal);
        return { code: await exited, stderr };
      };
      // Ctrl-C: a clean stop that lets go of the lock and keeps the bytes.
      const int = await interrupt(4 * MiB, 'SIGINT');
      assert.equal(int.code, 1, int.stderr);
      assert.match(int.stderr, /cancelled/);
      assert.match(int.stderr, /resume/);
      assert.ok(!(await listIngest(root)).some((n) => n.endsWith('.lock')), 'the lock was let go');
      const afterInt = (await stat(data)).size;
      assert.ok(afterInt > 4 * MiB && afterInt < tarSize, `${afterInt} bytes kept after Ctrl-C`);
      // kill -9: nothing is let go; the next attempt takes the stale lock over.
      await interrupt(afterInt + 8 * MiB, 'SIGKILL');
      const partial = (await stat(data)).size;
      assert.ok(partial > afterInt && partial < tarSize, `killed with ${partial} of ${tarSize} bytes in ingest/`);
      const firstRun = proxy.down;

      const r = await strata(root, ['pull', '--progress', 'plain', ref]);
      assert.equal(r.code, 0, r.stderr);
      const secondRun = proxy.down - firstRun;
      assert.ok(
        secondRun < tarSize - partial + 1 * MiB,
        `second pull moved ${secondRun} bytes; ${tarSize - partial} were missing`,
      );
      assert.ok(proxy.down < tarSize * 1.5, `the three pulls moved ${proxy.down} bytes for a ${tarSize}-byte layer`);
      const info = await inspect(root, ref);
      assert.equal(info['Id'], configDigest);
      const s = await Strata.open({ root });
      assert.equal(await s.content.verify(layerDigest), layerDigest);
      await fsckClean(root);
    } finally {
      await proxy.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Odd registries, played by a small HTTP server: schema 1, a lying Docker-Content-Digest, Range ignored.

describe('pull against odd registries', () => {
  let server: Server;
  let host: string;
  let work: { path: string; cleanup: () => Promise<void> };
  const layer = randomBytes(300_000);
  const layerDigest = sha256(layer);
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
  let rangeRequests = 0;

  before(async () => {
    work = await tempDir('strata-pull-odd-');
    server = createHttpServer((req, res) => {
      const url = req.url ?? '';
      if (url === '/v2/') return void res.end('{}');
      if (url === '/v2/old/manifests/latest') {
        res.writeHead(200, { 'content-type': MediaType.DockerSchema1Signed });
        return void res.end(JSON.stringify({ schemaVersion: 1, name: 'old', tag: 'latest', fsLayers: [] }));
      }
      if (url === '/v2/liar/manifests/latest') {
        const body = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: {}, layers: [] });
        res.writeHead(200, {
          'content-type': MediaType.OciManifest,
          'docker-content-digest': sha256('something else'),
        });
        return void res.end(body);
      }
      if (url === `/v2/norange/blobs/${layerDigest}`) {
        if (req.headers.range) rangeRequests++;
        res.writeHead(200, { 'content-length': layer.length });
        return void res.end(layer);
      }
      if (url === `/v2/norange/blobs/${sha256(config)}`) return void res.end(config);
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await work.cleanup();
  });

  it('refuses schema 1, a manifest not matching Docker-Content-Digest, and names a missing tag', async () => {
    const t = createTransport(host, {});
    try {
      await assert.rejects(fetchManifest(t, 'old', 'latest'), /schema 1.*not supported/);
      await assert.rejects(fetchManifest(t, 'liar', 'latest'), /digest mismatch/);
      await assert.rejects(fetchManifest(t, 'nothing', 'v9'), /manifest for .*nothing:v9 not found/);
    } finally {
      await t.close();
    }
  });

  it('a server that ignores Range restarts the blob from 0 and the result still verifies', async () => {
    const root = join(work.path, 'norange');
    const store = new ContentStore(root);
    // An earlier attempt left a third of the blob.
    const w = await store.resumable(layerDigest, layer.length);
    await w.append(layer.subarray(0, 100_000));
    await w.release();
    const t = createTransport(host, {});
    try {
      let bytes = 0;
      const got = await downloadBlob(
        t,
        store,
        'norange',
        { digest: layerDigest, size: layer.length },
        {
          onBytes: (n) => {
            bytes += n;
          },
        },
      );
      assert.ok(got);
      assert.equal(got.restored, 100_000);
      assert.equal(rangeRequests, 1, 'asked for the rest with Range');
      assert.equal(bytes, layer.length, 'took the whole blob again when the server sent 200');
      await got.commit();
      assert.equal(await store.verify(layerDigest), layerDigest);
      assert.deepEqual(await listIngest(root), []);
    } finally {
      await t.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('resumable ingest', () => {
  it('restores offset and hash state from the bytes on disk, and locks out a second writer', async () => {
    const dir = await tempDir('strata-resumable-');
    try {
      const store = new ContentStore(dir.path);
      const data = randomBytes(1_000_000);
      const d = sha256(data);
      const a = await store.resumable(d, data.length);
      assert.equal(a.offset, 0);
      await a.append(data.subarray(0, 400_000));
      let second = false;
      const b = store.resumable(d, data.length).then((w) => {
        second = true;
        return w;
      });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(second, false, 'the second writer waits for the lock');
      await a.release();
      const w = await b;
      assert.equal(w.offset, 400_000);
      assert.equal(w.restored, 400_000);
      await w.append(data.subarray(400_000));
      await w.verify();
      await w.commit();
      assert.equal(await store.verify(d), d);
      assert.deepEqual(await listIngest(dir.path), []);
      // Wrong bytes fail verification; abort leaves nothing.
      const bad = randomBytes(1000);
      const x = await store.resumable(sha256('other'), bad.length);
      await x.append(bad);
      await assert.rejects(x.verify(), /digest mismatch/);
      await x.abort();
      assert.deepEqual(await listIngest(dir.path), []);
      // A resumable entry outlives its writer but not its age limit.
      const y = await store.resumable(sha256('kept'), 10);
      await y.append(Buffer.from('kept'));
      await y.release();
      assert.equal(await store.cleanIngest(), 0);
      assert.equal(await store.cleanIngest(-1), 1);
      assert.deepEqual(await listIngest(dir.path), []);
      const body = await readFile(store.blobPath(d));
      assert.equal(sha256(body), d);
      await writeFile(join(dir.path, 'x'), '');
    } finally {
      await dir.cleanup();
    }
  });
});

describe('progress renderer', () => {
  const blob = 'sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef' as Digest;
  const capture = (isTTY: boolean) => {
    const out: string[] = [];
    return { out, stream: { isTTY, columns: 120, write: (s: string) => out.push(s) } };
  };

  it('plain: one line per state change, no bars; closing Digest and Status lines', () => {
    const { out, stream } = capture(false);
    const p = createProgressRenderer(stream, 'auto');
    p({ kind: 'message', text: 'latest: Pulling from library/busybox' });
    p({ kind: 'blob', digest: blob, size: 2_000_000, state: 'waiting', detail: 'Pulling fs layer' });
    for (const current of [0, 500_000, 1_000_000, 2_000_000]) {
      p({ kind: 'blob', digest: blob, size: 2_000_000, state: 'downloading', current });
    }
    p({ kind: 'blob', digest: blob, size: 2_000_000, state: 'verifying' });
    p({ kind: 'blob', digest: blob, size: 2_000_000, state: 'waiting', detail: 'Download complete' });
    p({ kind: 'blob', digest: blob, size: 2_000_000, state: 'extracting', current: 10 });
    p({ kind: 'blob', digest: blob, size: 2_000_000, state: 'done' });
    p({ kind: 'blob', digest: blob.replace('0123', '9999') as Digest, size: 5, state: 'exists' });
    p({
      kind: 'result',
      reference: 'docker.io/library/busybox:latest',
      digest: blob,
      status: 'Downloaded newer image for busybox:latest',
    });
    p.close();
    assert.deepEqual(out.join('').split('\n'), [
      'latest: Pulling from library/busybox',
      '0123456789ab: Pulling fs layer',
      '0123456789ab: Downloading 2MB',
      '0123456789ab: Verifying Checksum',
      '0123456789ab: Download complete',
      '0123456789ab: Extracting 2MB',
      '0123456789ab: Pull complete',
      '9999456789ab: Already exists',
      `Digest: ${blob}`,
      'Status: Downloaded newer image for busybox:latest',
      '',
    ]);
    const push = capture(false);
    const q = createProgressRenderer(push.stream, 'plain', { verb: 'push' });
    q({ kind: 'blob', digest: blob, size: 1, state: 'exists' });
    q({ kind: 'blob', digest: blob, size: 1, state: 'done' });
    assert.deepEqual(push.out, ['0123456789ab: Layer already exists\n', '0123456789ab: Pushed\n']);
  });

  it('tty: live bars redrawn in place, at most every interval', async () => {
    const { out, stream } = capture(true);
    const p = createProgressRenderer(stream, 'tty', { intervalMs: 50 });
    p({ kind: 'blob', digest: blob, size: 45_600_000, state: 'downloading', current: 0 });
    for (let i = 1; i <= 100; i++) {
      p({ kind: 'blob', digest: blob, size: 45_600_000, state: 'downloading', current: i * 123_000 });
    }
    const drawsSoFar = out.length;
    assert.ok(drawsSoFar <= 2, `${drawsSoFar} draws for 101 events in a burst`);
    await new Promise((r) => setTimeout(r, 80));
    p.close();
    const last = out.join('');
    assert.match(last, /\x1b\[1A/);
    assert.match(last, /0123456789ab: Downloading \[=+>\s*\]\s+12\.3MB\/45\.6MB/);
    assert.equal(progressBar(0, 10, 10), '[>         ]       0B/10B');
    assert.equal(progressBar(10, 10, 10), '[=========>]      10B/10B');
  });
});

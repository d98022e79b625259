import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parseImageName } from '../../../src/remote/index.js';
import { importBusybox, strata } from '../../helpers/cli.js';
import { hasTool, inCI, tempDir } from '../../helpers/env.js';
import { startFaultProxy } from '../../helpers/fault-proxy.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { DOCKER_REGISTRY, type RegistryProcess, startDockerRegistry } from '../../helpers/registry-process.js';

const run = promisify(execFile);

/**
 * `strata copy SRC DST` (skopeo copy's transports: docker://, oci:, oci-archive:, docker-archive:), end to end with
 * the built CLI, strata's registry and Debian's docker-registry on 127.0.0.1, checked with skopeo, `strata load`
 * and plain HTTP. Digests must survive registry <-> OCI layout <-> OCI archive round trips byte for byte.
 */

let work: { path: string; cleanup: () => Promise<void> };
let root: string;
let reg: TestRegistry;
let host: string;
/** busybox pushed to `${host}/library/busybox:1`. */
let src: { digest: string; bytes: Buffer; config: string; layers: string[]; diffIds: string[] };

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function needSkopeo(t: { skip(m: string): void }): boolean {
  if (hasTool('skopeo')) return true;
  if (inCI) throw new Error('skopeo is required in CI');
  t.skip('skopeo not installed');
  return false;
}

async function skopeoInspect(ref: string, raw = false): Promise<Record<string, unknown>> {
  const { stdout } = await run(
    'skopeo',
    ['--insecure-policy', 'inspect', ...(raw ? ['--raw'] : []), '--tls-verify=false', ref],
    { maxBuffer: 16 << 20 },
  );
  return JSON.parse(stdout) as Record<string, unknown>;
}

async function getManifest(
  url: string,
  repo: string,
  ref: string,
): Promise<{ status: number; bytes: Buffer; type: string }> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref}`, {
    headers: {
      accept: [
        'application/vnd.oci.image.manifest.v1+json',
        'application/vnd.docker.distribution.manifest.v2+json',
        'application/vnd.oci.image.index.v1+json',
        'application/vnd.docker.distribution.manifest.list.v2+json',
      ].join(', '),
    },
  });
  return {
    status: res.status,
    bytes: Buffer.from(await res.arrayBuffer()),
    type: res.headers.get('content-type') ?? '',
  };
}

async function copy(...args: string[]) {
  return strata(root, ['copy', ...args]);
}

before(async () => {
  work = await tempDir('strata-copy-');
  root = join(work.path, 'root');
  await importBusybox(root, work.path);
  reg = await startTestRegistry();
  host = new URL(reg.url).host;
  const name = `${host}/library/busybox:1`;
  assert.equal((await strata(root, ['tag', 'busybox', name])).code, 0);
  const p = await strata(root, ['push', '-q', name]);
  assert.equal(p.code, 0, p.stderr);
  const m = await getManifest(reg.url, 'library/busybox', '1');
  const doc = JSON.parse(m.bytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  const inspect = JSON.parse((await strata(root, ['image', 'inspect', 'busybox'])).stdout) as [
    { RootFS: { Layers: string[] } },
  ];
  src = {
    digest: sha256(m.bytes),
    bytes: m.bytes,
    config: doc.config.digest,
    layers: doc.layers.map((l) => l.digest),
    diffIds: inspect[0].RootFS.Layers,
  };
});

after(async () => {
  await reg?.stop();
  await work?.cleanup();
});

describe('image names', () => {
  it('parses skopeo-style transports, the path ending at the first colon', () => {
    assert.deepEqual(parseImageName('oci:/tmp/l:docker.io/library/busybox:latest'), {
      transport: 'oci',
      path: '/tmp/l',
      ref: 'docker.io/library/busybox:latest',
    });
    assert.deepEqual(parseImageName('oci-archive:/tmp/a.tar'), {
      transport: 'oci-archive',
      path: '/tmp/a.tar',
      ref: undefined,
    });
    assert.equal(parseImageName('docker-archive:/x.tar:app:1').transport, 'docker-archive');
    const d = parseImageName('docker://busybox');
    assert.equal(d.transport === 'docker' && d.reference.toString(), 'docker.io/library/busybox:latest');
    const bare = parseImageName('127.0.0.1:5000/a/b:c');
    assert.equal(bare.transport === 'docker' && bare.reference.registry, '127.0.0.1:5000');
    assert.throws(() => parseImageName('oci:'), /no path/);
  });
});

describe('strata copy', () => {
  it('docker:// -> oci:DIR -> oci-archive: -> docker:// keeps the manifest digest and bytes', async (t) => {
    const layout = join(work.path, 'layout');
    const archive = join(work.path, 'out', 'busybox-oci.tar');
    let r = await copy(`docker://${host}/library/busybox:1`, `oci:${layout}:bb`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Getting image source signatures$/m);
    assert.match(r.stdout, new RegExp(`^Copying blob ${src.layers[0]!.slice(7, 19)} done$`, 'm'));
    assert.match(r.stdout, /^Writing manifest to image destination$/m);
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    assert.equal(index.manifests.length, 1);
    assert.equal(index.manifests[0]!.digest, src.digest);
    assert.equal(index.manifests[0]!.annotations['org.opencontainers.image.ref.name'], 'bb');
    assert.ok((await readFile(join(layout, 'blobs', 'sha256', src.digest.slice(7)))).equals(src.bytes));

    r = await copy(`oci:${layout}:bb`, `oci-archive:${archive}:bb2`);
    assert.equal(r.code, 0, r.stderr);
    r = await copy(`oci-archive:${archive}:bb2`, `docker://${host}/roundtrip/busybox:2`);
    assert.equal(r.code, 0, r.stderr);
    // Same registry: the layer was mounted from the repository it is in, not uploaded.
    assert.match(r.stdout, /skipped: mounted from /);
    const back = await getManifest(reg.url, 'roundtrip/busybox', '2');
    assert.equal(back.status, 200);
    assert.ok(back.bytes.equals(src.bytes), 'the manifest came back byte for byte');

    // Copying again is a no-op for blobs.
    r = await copy(`oci:${layout}:bb`, `docker://${host}/roundtrip/busybox:2`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /skipped: already exists/);

    if (!needSkopeo(t)) return;
    assert.equal((await skopeoInspect(`oci:${layout}:bb`))['Digest'], src.digest);
    assert.equal((await skopeoInspect(`oci-archive:${archive}:bb2`))['Digest'], src.digest);
    assert.equal((await skopeoInspect(`docker://${host}/roundtrip/busybox:2`))['Digest'], src.digest);
  });

  it('oci: into a layout that has other images keeps them; a ref replaces only its own entry', async () => {
    const layout = join(work.path, 'multi');
    for (const tag of ['a', 'b', 'a']) {
      const r = await copy(`docker://${host}/library/busybox:1`, `oci:${layout}:${tag}`);
      assert.equal(r.code, 0, r.stderr);
    }
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
      manifests: { annotations: Record<string, string> }[];
    };
    assert.deepEqual(index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']).sort(), ['a', 'b']);
    const r = await copy(`oci:${layout}`, `oci:${join(work.path, 'x')}:y`);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /lists 2 images/);
  });

  it('docker-archive: strata load and skopeo agree with the source', async (t) => {
    const file = join(work.path, 'out', 'busybox-docker.tar');
    const r = await copy(`docker://${host}/library/busybox:1`, `docker-archive:${file}:example.com/bb:v1`);
    assert.equal(r.code, 0, r.stderr);
    const { stdout } = await run('tar', ['-tf', file]);
    const names = stdout.trim().split('\n').sort();
    assert.deepEqual(
      names,
      [`${src.config.slice(7)}.json`, ...src.diffIds.map((d) => `${d.slice(7)}.tar`), 'manifest.json'].sort(),
    );

    const other = join(work.path, 'root-load');
    const load = await strata(other, ['load', '-i', file]);
    assert.equal(load.code, 0, load.stderr);
    assert.match(load.stdout, /Loaded image: example.com\/bb:v1/);
    const info = JSON.parse((await strata(other, ['image', 'inspect', 'example.com/bb:v1'])).stdout) as [
      { Id: string; RootFS: { Layers: string[] } },
    ];
    assert.equal(info[0].Id, src.config, 'the image ID (config digest) is kept');
    assert.deepEqual(info[0].RootFS.Layers, src.diffIds);

    if (!needSkopeo(t)) return;
    const sk = await skopeoInspect(`docker-archive:${file}`);
    assert.deepEqual(sk['Layers'], src.diffIds);
    const { stdout: tags } = await run('skopeo', ['list-tags', `docker-archive:${file}`]);
    assert.deepEqual((JSON.parse(tags) as { Tags: string[] }).Tags, ['example.com/bb:v1']);
    const raw = (await skopeoInspect(`docker-archive:${file}`, true)) as { config: { digest: string } };
    assert.equal(raw.config.digest, src.config);
  });

  it('docker-archive: as a source builds a Docker schema 2 manifest with gzip layers (config kept)', async (t) => {
    const file = join(work.path, 'out', 'busybox-docker.tar');
    const r = await copy(`docker-archive:${file}`, `docker://${host}/fromarchive/bb:1`);
    assert.equal(r.code, 0, r.stderr);
    const m = await getManifest(reg.url, 'fromarchive/bb', '1');
    assert.equal(m.status, 200);
    const doc = JSON.parse(m.bytes.toString()) as {
      mediaType: string;
      config: { mediaType: string; digest: string };
      layers: { mediaType: string; digest: string }[];
    };
    assert.equal(doc.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(doc.config.mediaType, 'application/vnd.docker.container.image.v1+json');
    assert.equal(doc.config.digest, src.config);
    assert.deepEqual(
      doc.layers.map((l) => l.mediaType),
      src.layers.map(() => 'application/vnd.docker.image.rootfs.diff.tar.gzip'),
    );
    // The same archive gives the same manifest every time (deterministic compression).
    const again = await copy(`docker-archive:${file}`, `oci:${join(work.path, 'fromarchive')}:bb`);
    assert.equal(again.code, 0, again.stderr);
    const index = JSON.parse(await readFile(join(work.path, 'fromarchive', 'index.json'), 'utf8')) as {
      manifests: { digest: string }[];
    };
    assert.equal(index.manifests[0]!.digest, sha256(m.bytes));

    // And it runs back through a docker-archive unchanged.
    const file2 = join(work.path, 'out', 'again-docker.tar');
    const r2 = await copy(`docker://${host}/fromarchive/bb:1`, `docker-archive:${file2}:bb:again`);
    assert.equal(r2.code, 0, r2.stderr);
    const other = join(work.path, 'root-load2');
    assert.equal((await strata(other, ['load', '-i', file2])).code, 0);
    const info = JSON.parse((await strata(other, ['image', 'inspect', 'bb:again'])).stdout) as [{ Id: string }];
    assert.equal(info[0].Id, src.config);
    if (!needSkopeo(t)) return;
    assert.equal((await skopeoInspect(`docker://${host}/fromarchive/bb:1`))['Digest'], sha256(m.bytes));
  });

  it('--all copies an index and its images byte for byte; without it, the host platform image', async () => {
    // An OCI layout whose index.json points at an image index over the busybox manifest.
    const layout = join(work.path, 'indexed');
    assert.equal((await copy(`docker://${host}/library/busybox:1`, `oci:${layout}:plain`)).code, 0);
    const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;
    const idx = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: src.digest,
            size: src.bytes.length,
            platform: { os: 'linux', architecture: arch },
          },
        ],
      }),
    );
    const idxDigest = sha256(idx);
    await writeFile(join(layout, 'blobs', 'sha256', idxDigest.slice(7)), idx);
    await writeFile(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.index.v1+json',
            digest: idxDigest,
            size: idx.length,
            annotations: { 'org.opencontainers.image.ref.name': 'multi' },
          },
        ],
      }),
    );
    let r = await copy('--all', `oci:${layout}:multi`, `docker://${host}/indexed/bb:all`);
    assert.equal(r.code, 0, r.stderr);
    const got = await getManifest(reg.url, 'indexed/bb', 'all');
    assert.ok(got.bytes.equals(idx), 'the index arrived byte for byte');
    const child = await getManifest(reg.url, 'indexed/bb', src.digest);
    assert.equal(child.status, 200);

    r = await copy(`oci:${layout}:multi`, `docker://${host}/indexed/bb:one`);
    assert.equal(r.code, 0, r.stderr);
    const one = await getManifest(reg.url, 'indexed/bb', 'one');
    assert.ok(one.bytes.equals(src.bytes), 'without --all the platform manifest is copied');
  });

  it('a corrupted source blob fails the copy with a clear error and the destination gets no manifest', async () => {
    const layout = join(work.path, 'corrupt');
    assert.equal((await copy(`docker://${host}/library/busybox:1`, `oci:${layout}:bb`)).code, 0);
    const blob = join(layout, 'blobs', 'sha256', src.layers[0]!.slice(7));
    const bytes = await readFile(blob);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await writeFile(blob, bytes);

    // To a registry that lacks the blob (the test registry has it, and would be asked to mount it): nothing is
    // committed, no manifest, no tag.
    const empty = await startTestRegistry();
    let r: Awaited<ReturnType<typeof copy>>;
    try {
      const emptyHost = new URL(empty.url).host;
      r = await copy(`oci:${layout}:bb`, `docker://${emptyHost}/corrupt/bb:1`);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /digest mismatch/);
      assert.match(r.stderr, new RegExp(src.layers[0]!));
      assert.equal((await getManifest(empty.url, 'corrupt/bb', '1')).status, 404);
      const head = await fetch(`${empty.url}/v2/corrupt/bb/blobs/${src.layers[0]}`, { method: 'HEAD' });
      assert.equal(head.status, 404);
    } finally {
      await empty.stop();
    }

    // To an OCI archive: no file at all.
    const archive = join(work.path, 'out', 'corrupt.tar');
    r = await copy(`oci:${layout}:bb`, `oci-archive:${archive}`);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /digest mismatch/);
    await assert.rejects(access(archive));

    // To an OCI layout: the name is not added.
    const dst = join(work.path, 'corrupt-dst');
    r = await copy(`oci:${layout}:bb`, `oci:${dst}:bb`);
    assert.notEqual(r.code, 0);
    await assert.rejects(access(join(dst, 'index.json')));

    // To a docker-archive: no file.
    const da = join(work.path, 'out', 'corrupt-docker.tar');
    r = await copy(`oci:${layout}:bb`, `docker-archive:${da}:x:1`);
    assert.notEqual(r.code, 0);
    await assert.rejects(access(da));
  });

  it('a blob corrupted in transit from a registry fails the copy', async () => {
    const proxy = await startFaultProxy(reg.url);
    try {
      proxy.add({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'corrupt', offset: 1000 }, times: 10 });
      const dst = join(work.path, 'transit');
      const r = await copy(`docker://${proxy.host}/library/busybox:1`, `oci:${dst}:bb`);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /digest mismatch/);
      await assert.rejects(access(join(dst, 'index.json')));
    } finally {
      await proxy.close();
    }
  });

  it('registry to registry: a large blob streams from GET into a chunked upload that resumes after a cut', async (t) => {
    const dir = join(work.path, 'big-rootfs');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'random.bin'), randomBytes(40 << 20));
    assert.equal((await strata(root, ['import', dir, `${host}/big/src:1`])).code, 0);
    assert.equal((await strata(root, ['push', '-q', `${host}/big/src:1`])).code, 0);
    const m = await getManifest(reg.url, 'big/src', '1');
    const size = (JSON.parse(m.bytes.toString()) as { layers: { size: number }[] }).layers[0]!.size;

    const dwork = await tempDir('strata-copy-dst-');
    const dst = await startTestRegistry({}, dwork.path);
    const proxy = await startFaultProxy(dst.url);
    try {
      proxy.add({ method: 'PATCH', path: /\/blobs\/uploads\//, fault: { kind: 'cut-request', afterBytes: 6 << 20 } });
      const r = await copy(`docker://${host}/big/src:1`, `docker://${proxy.host}/big/dst:1`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(proxy.injected, 1);
      t.diagnostic(`${proxy.bytes.up} bytes sent for a ${size}-byte layer`);
      assert.ok(proxy.bytes.up < size + (6 << 20), `${proxy.bytes.up} bytes sent for a ${size}-byte layer`);
      const got = await getManifest(dst.url, 'big/dst', '1');
      assert.ok(got.bytes.equals(m.bytes));
    } finally {
      await proxy.close();
      await dst.stop();
      await dwork.cleanup();
    }
  });
});

describe('strata copy with docker-registry (CNCF distribution)', () => {
  let dreg: RegistryProcess | undefined;
  let dwork: { path: string; cleanup: () => Promise<void> } | undefined;
  before(async () => {
    if (!hasTool(DOCKER_REGISTRY)) return;
    dwork = await tempDir('strata-copy-dreg-');
    dreg = await startDockerRegistry(dwork.path);
  });
  after(async () => {
    await dreg?.stop();
    await dwork?.cleanup();
  });

  it('strata registry -> docker-registry -> oci-archive keeps the digest', async (t) => {
    if (!dreg) {
      if (inCI) throw new Error('docker-registry is required in CI');
      t.skip('docker-registry not installed');
      return;
    }
    let r = await copy(`docker://${host}/library/busybox:1`, `docker://${dreg.host}/mirror/busybox:1`);
    assert.equal(r.code, 0, r.stderr);
    const got = await getManifest(dreg.url, 'mirror/busybox', '1');
    assert.ok(got.bytes.equals(src.bytes));
    r = await copy(`docker://${dreg.host}/mirror/busybox:1`, `docker://${dreg.host}/other/busybox:1`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /skipped: mounted from mirror\/busybox/);
    const file = join(work.path, 'out', 'from-dreg.tar');
    r = await copy(`docker://${dreg.host}/other/busybox:1`, `oci-archive:${file}:bb`);
    assert.equal(r.code, 0, r.stderr);
    if (!needSkopeo(t)) return;
    assert.equal((await skopeoInspect(`oci-archive:${file}:bb`))['Digest'], src.digest);
  });
});

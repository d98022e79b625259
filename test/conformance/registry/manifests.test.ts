import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { digestOf, MediaType } from '../../../src/oci/index.js';
import {
  artifactManifest,
  assertError,
  chunksOf,
  content,
  type Content,
  EMPTY_CONFIG,
  imageConfig,
  imageIndex,
  imageManifest,
  locationPath,
  randomLayer,
  RegistryClient,
  registrySuite,
  repoName,
} from '../../helpers/oci-fixtures.js';
import { startTestRegistry } from '../../helpers/registry.js';

const FOUR_MIB = 4 * 1024 * 1024;

describe('registry conformance: manifests', () => {
  const suite = registrySuite();

  /** GET and HEAD by tag and by digest: 200, Content-Type the manifest's media type, its digest, its exact bytes. */
  async function assertServed(name: string, refs: string[], m: Content): Promise<void> {
    for (const ref of refs) {
      const get = await suite.client.get(`/v2/${name}/manifests/${ref}`);
      assert.equal(get.status, 200, `GET ${ref}: ${get.status} ${get.text()}`);
      assert.equal(get.headers.get('content-type'), m.mediaType);
      assert.equal(get.headers.get('docker-content-digest'), m.digest);
      assert.equal(get.headers.get('content-length'), String(m.size));
      assert.ok(get.body.equals(m.bytes), `GET ${ref}: bytes differ`);
      const head = await suite.client.head(`/v2/${name}/manifests/${ref}`);
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-type'), m.mediaType);
      assert.equal(head.headers.get('docker-content-digest'), m.digest);
      assert.equal(head.headers.get('content-length'), String(m.size));
      assert.equal(head.body.length, 0);
    }
  }

  /** PUT by tag: 201, Location by digest, Docker-Content-Digest. */
  async function putByTag(name: string, tag: string, m: Content): Promise<void> {
    const res = await suite.client.pushManifest(name, tag, m);
    assert.equal(res.status, 201);
    assert.equal(locationPath(res), `/v2/${name}/manifests/${m.digest}`);
    assert.equal(res.headers.get('docker-content-digest'), m.digest);
    assert.equal(res.headers.get('oci-subject'), null);
  }

  async function pushBlobs(name: string, blobs: Content[]): Promise<void> {
    for (const b of blobs) await suite.client.pushBlob(name, b);
  }

  /** A manifest of `format` whose blobs are pushed to `name`. */
  async function readyManifest(name: string, format: 'oci' | 'docker' = 'oci', layers = 2): Promise<Content> {
    const layerType = format === 'docker' ? MediaType.DockerLayer : MediaType.OciLayerGzip;
    const ls = Array.from({ length: layers }, () => randomLayer(1000, { mediaType: layerType }));
    const config = imageConfig(ls, { mediaType: format === 'docker' ? MediaType.DockerConfig : MediaType.OciConfig });
    await pushBlobs(name, [config, ...ls]);
    return imageManifest({ config, layers: ls, format });
  }

  for (const format of ['oci', 'docker'] as const) {
    it(`${format} image manifest: PUT by tag and by digest, GET/HEAD by both with its media type`, async () => {
      const name = repoName(format);
      const m = await readyManifest(name, format);
      assert.equal(m.mediaType, format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest);
      await putByTag(name, 'v1', m);
      await assertServed(name, ['v1', m.digest], m);
      const byDigest = await suite.client.pushManifest(name, m.digest, m);
      assert.equal(byDigest.status, 201);
      assert.equal(locationPath(byDigest), `/v2/${name}/manifests/${m.digest}`);
      assert.equal(byDigest.headers.get('docker-content-digest'), m.digest);
      // Only by digest: a fresh manifest, no tag.
      const m2 = await readyManifest(name, format, 1);
      await suite.client.pushManifest(name, m2.digest, m2);
      await assertServed(name, [m2.digest], m2);
      assert.deepEqual((await suite.client.get(`/v2/${name}/tags/list`)).json(), { name, tags: ['v1'] });
    });

    it(`${format === 'oci' ? 'OCI index' : 'Docker manifest list'}: PUT after its children, GET/HEAD by tag and digest`, async () => {
      const name = repoName(`${format}-index`);
      const children = [await readyManifest(name, format), await readyManifest(name, format)];
      for (const c of children) await suite.client.pushManifest(name, c.digest, c);
      const index = imageIndex(children, { format });
      assert.equal(index.mediaType, format === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList);
      await putByTag(name, 'multi', index);
      await assertServed(name, ['multi', index.digest], index);
      for (const c of children) await assertServed(name, [c.digest], c);
    });
  }

  it('an index of indexes', async () => {
    const name = repoName('nested');
    const leaf = await readyManifest(name);
    await suite.client.pushManifest(name, leaf.digest, leaf);
    const inner = imageIndex([leaf]);
    await suite.client.pushManifest(name, inner.digest, inner);
    const outer = imageIndex([inner, leaf]);
    await putByTag(name, 'outer', outer);
    await assertServed(name, ['outer'], outer);
  });

  it('a client Accept header listing the manifest types gets the manifest', async () => {
    const name = repoName();
    const m = await readyManifest(name, 'docker');
    await suite.client.pushManifest(name, 'x', m);
    const accept = [MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifest, MediaType.DockerManifestList];
    for (const a of [accept.join(', '), '*/*', `${MediaType.DockerManifest};q=0.9`]) {
      const res = await suite.client.get(`/v2/${name}/manifests/x`, { accept: a });
      assert.equal(res.status, 200, a);
      assert.equal(res.headers.get('content-type'), MediaType.DockerManifest);
      assert.ok(res.body.equals(m.bytes));
    }
  });

  it('a manifest naming a missing layer or config: 400 MANIFEST_BLOB_UNKNOWN, nothing stored', async () => {
    const name = repoName();
    const layer = randomLayer(100);
    const config = imageConfig([layer]);
    await suite.client.pushBlob(name, config);
    const missingLayer = imageManifest({ config, layers: [layer] });
    const res = await suite.client.request('PUT', `/v2/${name}/manifests/t`, {
      headers: { 'content-type': MediaType.OciManifest },
      body: missingLayer.bytes,
    });
    const err = assertError(res, 400, 'MANIFEST_BLOB_UNKNOWN');
    assert.match(JSON.stringify(err.errors[0]), new RegExp(layer.digest.slice(7)));
    const config2 = imageConfig([]);
    await suite.client.pushBlob(name, layer);
    const missingConfig = imageManifest({ config: config2, layers: [layer] });
    assertError(
      await suite.client.request('PUT', `/v2/${name}/manifests/t`, {
        headers: { 'content-type': MediaType.OciManifest },
        body: missingConfig.bytes,
      }),
      400,
      'MANIFEST_BLOB_UNKNOWN',
    );
    // A blob pushed to another repository does not count.
    const other = repoName();
    const elsewhere = randomLayer(100);
    await suite.client.pushBlob(other, elsewhere);
    const foreign = imageManifest({ config, layers: [elsewhere] });
    assertError(
      await suite.client.request('PUT', `/v2/${name}/manifests/t`, {
        headers: { 'content-type': MediaType.OciManifest },
        body: foreign.bytes,
      }),
      400,
      'MANIFEST_BLOB_UNKNOWN',
    );
    assertError(await suite.client.get(`/v2/${name}/manifests/t`), 404, 'MANIFEST_UNKNOWN');
    for (const m of [missingLayer, missingConfig, foreign]) {
      assertError(await suite.client.get(`/v2/${name}/manifests/${m.digest}`), 404, 'MANIFEST_UNKNOWN');
    }
  });

  it('an index naming a child manifest not pushed: 400 MANIFEST_BLOB_UNKNOWN', async () => {
    for (const format of ['oci', 'docker'] as const) {
      const name = repoName();
      const pushed = await readyManifest(name, format);
      await suite.client.pushManifest(name, pushed.digest, pushed);
      const absent = await readyManifest(name, format); // its blobs are there, the manifest is not
      const index = imageIndex([pushed, absent], { format });
      assertError(
        await suite.client.request('PUT', `/v2/${name}/manifests/idx`, {
          headers: { 'content-type': index.mediaType },
          body: index.bytes,
        }),
        400,
        'MANIFEST_BLOB_UNKNOWN',
      );
      assertError(await suite.client.get(`/v2/${name}/manifests/idx`), 404, 'MANIFEST_UNKNOWN');
    }
  });

  it('malformed JSON or a wrong schema: 400 MANIFEST_INVALID', async () => {
    const name = repoName();
    const layer = randomLayer(100);
    const config = imageConfig([layer]);
    await suite.client.pushBlob(name, layer);
    await suite.client.pushBlob(name, config);
    const good = JSON.parse(imageManifest({ config, layers: [layer] }).bytes.toString()) as Record<string, unknown>;
    const bodies: [string, string][] = [
      ['{"schemaVersion": 2, "config": ', MediaType.OciManifest],
      ['', MediaType.OciManifest],
      ['[]', MediaType.OciManifest],
      ['"a string"', MediaType.OciManifest],
      ['{}', MediaType.OciManifest],
      [JSON.stringify({ ...good, schemaVersion: 3 }), MediaType.OciManifest],
      [JSON.stringify({ ...good, layers: 'not a list' }), MediaType.OciManifest],
      [
        JSON.stringify({ ...good, config: { ...(good['config'] as object), digest: 'sha256:nothex' } }),
        MediaType.OciManifest,
      ],
      [
        JSON.stringify({ ...good, config: { mediaType: config.mediaType, digest: config.digest } }),
        MediaType.OciManifest,
      ],
      [
        JSON.stringify({ ...good, mediaType: 'application/vnd.example.thing+json' }),
        'application/vnd.example.thing+json',
      ],
      [JSON.stringify({ ...good, mediaType: MediaType.OciIndex }), MediaType.OciIndex],
      [JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: {} }), MediaType.OciIndex],
      // The manifest says the layer has another size than the registry holds.
      [
        JSON.stringify({
          ...good,
          layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size + 1 }],
        }),
        MediaType.OciManifest,
      ],
    ];
    for (const [body, type] of bodies) {
      const res = await suite.client.request('PUT', `/v2/${name}/manifests/bad`, {
        headers: { 'content-type': type },
        body,
      });
      assertError(res, 400, 'MANIFEST_INVALID');
    }
    assertError(await suite.client.get(`/v2/${name}/manifests/bad`), 404, 'MANIFEST_UNKNOWN');
  });

  it('a schema 1 manifest is refused: 400 MANIFEST_INVALID', async () => {
    const name = repoName();
    const schema1 = JSON.stringify({
      schemaVersion: 1,
      name,
      tag: 'old',
      architecture: 'amd64',
      fsLayers: [{ blobSum: randomLayer(10).digest }],
      history: [{ v1Compatibility: '{}' }],
      signatures: [],
    });
    for (const type of [
      MediaType.DockerSchema1Signed,
      MediaType.DockerSchema1,
      'application/json',
      MediaType.DockerManifest,
    ]) {
      const res = await suite.client.request('PUT', `/v2/${name}/manifests/old`, {
        headers: { 'content-type': type },
        body: schema1,
      });
      assertError(res, 400, 'MANIFEST_INVALID');
    }
    assertError(await suite.client.get(`/v2/${name}/manifests/old`), 404, 'MANIFEST_UNKNOWN');
  });

  it('PUT by a digest the content does not hash to: 400 DIGEST_INVALID', async () => {
    const name = repoName();
    const m = await readyManifest(name);
    const wrong = digestOf(`${m.bytes.toString()} `);
    const res = await suite.client.request('PUT', `/v2/${name}/manifests/${wrong}`, {
      headers: { 'content-type': m.mediaType },
      body: m.bytes,
    });
    assertError(res, 400, 'DIGEST_INVALID');
    assertError(await suite.client.get(`/v2/${name}/manifests/${wrong}`), 404, 'MANIFEST_UNKNOWN');
    assertError(await suite.client.get(`/v2/${name}/manifests/${m.digest}`), 404, 'MANIFEST_UNKNOWN');
    assertError(await suite.client.get(`/v2/${name}/manifests/sha256:abcd`), 400, 'DIGEST_INVALID');
  });

  it('PUT and GET by a sha512 digest', async () => {
    const name = repoName();
    const m = await readyManifest(name);
    const d512 = digestOf(m.bytes, 'sha512');
    const res = await suite.client.pushManifest(name, d512, m);
    assert.equal(res.headers.get('docker-content-digest'), d512);
    assert.equal(locationPath(res), `/v2/${name}/manifests/${d512}`);
    const get = await suite.client.get(`/v2/${name}/manifests/${d512}`);
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('docker-content-digest'), d512);
    assert.equal(get.headers.get('content-type'), m.mediaType);
    assert.ok(get.body.equals(m.bytes));
  });

  describe('size limit (4 MiB)', () => {
    /** An OCI manifest of exactly `size` bytes: a big annotations map, the last value padded to fit. */
    async function manifestOfSize(name: string, size: number): Promise<Content> {
      const layer = randomLayer(64);
      const config = imageConfig([layer]);
      await suite.client.pushBlob(name, layer);
      await suite.client.pushBlob(name, config);
      const annotations: Record<string, string> = {};
      for (let i = 0; i < 4000; i++) annotations[`org.example.key.${String(i).padStart(5, '0')}`] = 'v'.repeat(1000);
      annotations['org.example.pad'] = '';
      const base = imageManifest({ config, layers: [layer], annotations }).size;
      assert.ok(base < size);
      annotations['org.example.pad'] = 'p'.repeat(size - base);
      const m = imageManifest({ config, layers: [layer], annotations });
      assert.equal(m.size, size);
      return m;
    }

    it('a manifest of exactly 4 MiB is accepted and served whole', async () => {
      const name = repoName('big');
      const m = await manifestOfSize(name, FOUR_MIB);
      await putByTag(name, 'big', m);
      await assertServed(name, ['big'], m);
    });

    it('a manifest one byte over 4 MiB: 413, with or without Content-Length; nothing stored', async () => {
      const name = repoName('big');
      const m = await manifestOfSize(name, FOUR_MIB + 1);
      const declared = await suite.client.request('PUT', `/v2/${name}/manifests/big`, {
        headers: { 'content-type': m.mediaType },
        body: m.bytes,
      });
      assertError(declared, 413, 'SIZE_INVALID');
      const streamed = await suite.client.request('PUT', `/v2/${name}/manifests/big`, {
        headers: { 'content-type': m.mediaType },
        body: chunksOf(m.bytes, 65_536),
      });
      assertError(streamed, 413, 'SIZE_INVALID');
      assertError(await suite.client.get(`/v2/${name}/manifests/big`), 404, 'MANIFEST_UNKNOWN');
      assertError(await suite.client.get(`/v2/${name}/manifests/${m.digest}`), 404, 'MANIFEST_UNKNOWN');
      // The connection is still usable afterwards.
      assert.equal((await suite.client.get('/v2/')).status, 200);
    });
  });

  it('DELETE by digest: 202; the manifest and every tag naming it are gone, other tags stay', async () => {
    const name = repoName('del');
    const m = await readyManifest(name);
    const keep = await readyManifest(name);
    await suite.client.pushManifest(name, 't1', m);
    await suite.client.pushManifest(name, 't2', m);
    await suite.client.pushManifest(name, 'other', keep);
    const del = await suite.client.request('DELETE', `/v2/${name}/manifests/${m.digest}`);
    assert.equal(del.status, 202);
    for (const ref of [m.digest, 't1', 't2']) {
      assertError(await suite.client.get(`/v2/${name}/manifests/${ref}`), 404, 'MANIFEST_UNKNOWN');
      assert.equal((await suite.client.head(`/v2/${name}/manifests/${ref}`)).status, 404);
    }
    assert.deepEqual((await suite.client.get(`/v2/${name}/tags/list`)).json(), { name, tags: ['other'] });
    await assertServed(name, ['other', keep.digest], keep);
    assertError(await suite.client.request('DELETE', `/v2/${name}/manifests/${m.digest}`), 404, 'MANIFEST_UNKNOWN');
    // Pushing it again brings it back.
    await putByTag(name, 't1', m);
    await assertServed(name, ['t1', m.digest], m);
  });

  it('DELETE by tag: 202; only the tag goes', async () => {
    const name = repoName('del');
    const m = await readyManifest(name);
    await suite.client.pushManifest(name, 'a', m);
    await suite.client.pushManifest(name, 'b', m);
    const del = await suite.client.request('DELETE', `/v2/${name}/manifests/a`);
    assert.equal(del.status, 202);
    assertError(await suite.client.get(`/v2/${name}/manifests/a`), 404, 'MANIFEST_UNKNOWN');
    await assertServed(name, ['b', m.digest], m);
    assert.deepEqual((await suite.client.get(`/v2/${name}/tags/list`)).json(), { name, tags: ['b'] });
    assertError(await suite.client.request('DELETE', `/v2/${name}/manifests/a`), 404, 'MANIFEST_UNKNOWN');
  });

  it('unknown tags and digests: 404 MANIFEST_UNKNOWN', async () => {
    const name = repoName();
    await suite.client.pushImage(name, 'exists');
    assertError(await suite.client.get(`/v2/${name}/manifests/nope`), 404, 'MANIFEST_UNKNOWN');
    assertError(await suite.client.get(`/v2/${name}/manifests/${randomLayer(5).digest}`), 404, 'MANIFEST_UNKNOWN');
    assert.equal((await suite.client.head(`/v2/${name}/manifests/nope`)).status, 404);
    // A layer is a blob of the repository, not a manifest.
    const { layers } = await suite.client.pushImage(name, 'other');
    assertError(await suite.client.get(`/v2/${name}/manifests/${layers[0]!.digest}`), 404, 'MANIFEST_UNKNOWN');
    assertError(
      await suite.client.request('DELETE', `/v2/${name}/manifests/${randomLayer(5).digest}`),
      404,
      'MANIFEST_UNKNOWN',
    );
  });

  it('a tag moves to the manifest pushed last', async () => {
    const name = repoName();
    const a = await readyManifest(name);
    const b = await readyManifest(name);
    await suite.client.pushManifest(name, 'latest', a);
    await suite.client.pushManifest(name, 'latest', b);
    await assertServed(name, ['latest'], b);
    await assertServed(name, [a.digest], a);
  });

  it('an OCI artifact with artifactType and subject: 201 with OCI-Subject; served with its media type', async () => {
    const name = repoName('artifact');
    const subject = await readyManifest(name);
    await suite.client.pushManifest(name, 'v1', subject);
    const payload = content('{"sbom":true}', 'application/vnd.example.sbom.v1+json');
    await pushBlobs(name, [EMPTY_CONFIG, payload]);
    const art = artifactManifest({ subject, artifactType: 'application/vnd.example.sbom.v1', blobs: [payload] });
    const res = await suite.client.pushManifest(name, art.digest, art);
    assert.equal(res.headers.get('oci-subject'), subject.digest);
    assert.equal(res.headers.get('docker-content-digest'), art.digest);
    await assertServed(name, [art.digest], art);
    // The subject need not exist (yet).
    const ghost = await readyManifest(name);
    const early = artifactManifest({ subject: ghost, artifactType: 'application/vnd.example.sig.v1' });
    const res2 = await suite.client.pushManifest(name, early.digest, early);
    assert.equal(res2.headers.get('oci-subject'), ghost.digest);
    // An index can have a subject too.
    const idx = imageIndex([art], { subject, artifactType: 'application/vnd.example.bundle.v1' });
    const res3 = await suite.client.pushManifest(name, idx.digest, idx);
    assert.equal(res3.headers.get('oci-subject'), subject.digest);
  });

  it('manifests are served the same after a restart (nothing only in memory)', async () => {
    const name = repoName('restart');
    const docs: Content[] = [];
    for (const format of ['oci', 'docker'] as const) {
      const m = await readyManifest(name, format);
      await suite.client.pushManifest(name, `${format}-m`, m);
      const idx = imageIndex([m], { format });
      await suite.client.pushManifest(name, `${format}-i`, idx);
      docs.push(m, idx);
    }
    const bare = await readyManifest(name);
    const noType = content(
      JSON.stringify({ ...JSON.parse(bare.bytes.toString()), mediaType: undefined }),
      MediaType.OciManifest,
    );
    await suite.client.pushManifest(name, 'notype', noType);
    const second = await startTestRegistry({}, suite.reg.root);
    try {
      const c2 = new RegistryClient(second.url);
      const tags = ['oci-m', 'oci-i', 'docker-m', 'docker-i'];
      for (const [i, m] of docs.entries()) {
        const res = await c2.get(`/v2/${name}/manifests/${tags[i]}`);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), m.mediaType);
        assert.ok(res.body.equals(m.bytes));
      }
      const nt = await c2.get(`/v2/${name}/manifests/notype`);
      assert.equal(nt.headers.get('content-type'), MediaType.OciManifest);
      assert.ok(nt.body.equals(noType.bytes));
    } finally {
      await second.close();
    }
  });
});

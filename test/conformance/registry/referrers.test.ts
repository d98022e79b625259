import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { MediaType } from '../../../src/oci/index.js';
import {
  artifactManifest,
  assertError,
  content,
  type Content,
  type DescriptorJson,
  EMPTY_CONFIG,
  imageConfig,
  imageIndex,
  imageManifest,
  randomLayer,
  registrySuite,
  repoName,
} from '../../helpers/oci-fixtures.js';

interface IndexJson {
  schemaVersion: number;
  mediaType: string;
  manifests: DescriptorJson[];
}

const SBOM = 'application/vnd.example.sbom.v1';
const SIG = 'application/vnd.example.signature.v1';
const CONFIG_TYPE = 'application/vnd.example.config.v1+json';

function byDigest(a: { digest: string }, b: { digest: string }): number {
  return a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0;
}

describe('registry conformance: referrers', () => {
  const suite = registrySuite();

  async function referrers(
    name: string,
    subject: string,
    query = '',
  ): Promise<{ index: IndexJson; filters: string | null }> {
    const res = await suite.client.get(`/v2/${name}/referrers/${subject}${query}`);
    assert.equal(res.status, 200, `${res.status} ${res.text()}`);
    assert.equal(res.headers.get('content-type'), MediaType.OciIndex);
    const index = res.json<IndexJson>();
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.mediaType, MediaType.OciIndex);
    assert.ok(Array.isArray(index.manifests));
    return { index, filters: res.headers.get('oci-filters-applied') };
  }

  /** The descriptor a referrers response must list for `m`. */
  function expected(m: Content, artifactType: string, annotations?: Record<string, string>): DescriptorJson {
    return {
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.size,
      artifactType,
      ...(annotations ? { annotations } : {}),
    };
  }

  describe('a subject with several referrers', () => {
    const name = repoName('refs');
    let subject: Content;
    let sbom: Content;
    let sig1: Content;
    let sig2: Content;
    let image: Content;
    let index: Content;
    const annotations = { 'org.opencontainers.image.created': '2024-01-02T03:04:05Z', 'org.example.k': 'v' };
    before(async () => {
      ({ manifest: subject } = await suite.client.pushImage(name, 'app'));
      const payload = content('{"packages":[]}', 'application/spdx+json');
      await suite.client.pushBlob(name, EMPTY_CONFIG);
      await suite.client.pushBlob(name, payload);
      sbom = artifactManifest({ subject, artifactType: SBOM, blobs: [payload], annotations });
      sig1 = artifactManifest({ subject, artifactType: SIG });
      sig2 = artifactManifest({ subject, artifactType: SIG, annotations: { n: '2' } });
      // An image manifest with a subject and no artifactType: its config media type is the artifact type.
      const cfg = content('{"x":1}', CONFIG_TYPE);
      await suite.client.pushBlob(name, cfg);
      const layer = randomLayer(100);
      await suite.client.pushBlob(name, layer);
      image = imageManifest({ config: cfg, layers: [layer], subject });
      for (const m of [sbom, sig1, sig2, image]) {
        const res = await suite.client.pushManifest(name, m.digest, m);
        assert.equal(res.headers.get('oci-subject'), subject.digest);
      }
      // An index referrer, pushed by tag.
      index = imageIndex([sig1], { subject, artifactType: 'application/vnd.example.bundle.v1' });
      await suite.client.pushManifest(name, 'bundle', index);
    });

    it('GET referrers: an OCI index listing each referrer with its artifactType and annotations', async () => {
      const { index: res, filters } = await referrers(name, subject.digest);
      assert.equal(filters, null);
      const want = [
        expected(sbom, SBOM, annotations),
        expected(sig1, SIG),
        expected(sig2, SIG, { n: '2' }),
        expected(image, CONFIG_TYPE),
        expected(index, 'application/vnd.example.bundle.v1'),
      ].sort(byDigest);
      assert.deepEqual([...res.manifests].sort(byDigest), want);
    });

    it('?artifactType= filters and says so in OCI-Filters-Applied', async () => {
      const sigs = await referrers(name, subject.digest, `?artifactType=${encodeURIComponent(SIG)}`);
      assert.equal(sigs.filters, 'artifactType');
      assert.deepEqual(
        [...sigs.index.manifests].sort(byDigest),
        [expected(sig1, SIG), expected(sig2, SIG, { n: '2' })].sort(byDigest),
      );
      const sboms = await referrers(name, subject.digest, `?artifactType=${encodeURIComponent(SBOM)}`);
      assert.equal(sboms.filters, 'artifactType');
      assert.deepEqual(sboms.index.manifests, [expected(sbom, SBOM, annotations)]);
      const none = await referrers(name, subject.digest, '?artifactType=application%2Fvnd.example.none');
      assert.equal(none.filters, 'artifactType');
      assert.deepEqual(none.index.manifests, []);
    });

    it('an index referrer without artifactType is listed without one', async () => {
      const plain = imageIndex([sig2], { subject });
      await suite.client.pushManifest(name, plain.digest, plain);
      const { index: res } = await referrers(name, subject.digest);
      const listed = res.manifests.find((d) => d.digest === plain.digest);
      assert.deepEqual(listed, { mediaType: MediaType.OciIndex, digest: plain.digest, size: plain.size });
      assert.equal(res.manifests.length, 6);
      await suite.client.request('DELETE', `/v2/${name}/manifests/${plain.digest}`);
      assert.equal((await referrers(name, subject.digest)).index.manifests.length, 5);
    });

    it('a referrer of a referrer is listed under its own subject only', async () => {
      const sigOfSbom = artifactManifest({ subject: sbom, artifactType: SIG });
      await suite.client.pushManifest(name, sigOfSbom.digest, sigOfSbom);
      assert.deepEqual((await referrers(name, sbom.digest)).index.manifests, [expected(sigOfSbom, SIG)]);
      assert.ok(!(await referrers(name, subject.digest)).index.manifests.some((d) => d.digest === sigOfSbom.digest));
    });

    it('other repositories do not see these referrers', async () => {
      const other = repoName('refs');
      await suite.client.pushImage(other, 'x');
      assert.deepEqual((await referrers(other, subject.digest)).index.manifests, []);
    });
  });

  it('no referrers: 200 with an empty manifests list (unknown subject and unknown repository too)', async () => {
    const name = repoName('refs');
    const { manifest } = await suite.client.pushImage(name, 'lonely');
    for (const [repo, digest] of [
      [name, manifest.digest],
      [name, randomLayer(3).digest],
      [repoName('never'), manifest.digest],
    ] as const) {
      const { index, filters } = await referrers(repo, digest);
      assert.deepEqual(index, { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] });
      assert.equal(filters, null);
    }
  });

  it('a referrer pushed before its subject is listed; deleting it removes it', async () => {
    const name = repoName('refs');
    const layer = randomLayer(50);
    const config = imageConfig([layer]);
    const subject = imageManifest({ config, layers: [layer] });
    await suite.client.pushBlob(name, EMPTY_CONFIG);
    const sig = artifactManifest({ subject, artifactType: SIG });
    const res = await suite.client.pushManifest(name, sig.digest, sig);
    assert.equal(res.headers.get('oci-subject'), subject.digest);
    assert.deepEqual((await referrers(name, subject.digest)).index.manifests, [expected(sig, SIG)]);
    await suite.client.pushBlob(name, layer);
    await suite.client.pushBlob(name, config);
    await suite.client.pushManifest(name, 'v1', subject);
    assert.deepEqual((await referrers(name, subject.digest)).index.manifests, [expected(sig, SIG)]);
    assert.equal((await suite.client.request('DELETE', `/v2/${name}/manifests/${sig.digest}`)).status, 202);
    assert.deepEqual((await referrers(name, subject.digest)).index.manifests, []);
  });

  it('an invalid subject digest: 400 DIGEST_INVALID; an invalid name: 400 NAME_INVALID', async () => {
    assertError(await suite.client.get(`/v2/${repoName()}/referrers/sha256:1234`), 400, 'DIGEST_INVALID');
    assertError(await suite.client.get(`/v2/${repoName()}/referrers/latest`), 400, 'DIGEST_INVALID');
    assertError(await suite.client.get(`/v2/BAD/referrers/${randomLayer(1).digest}`), 400, 'NAME_INVALID');
  });
});

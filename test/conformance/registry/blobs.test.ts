import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { digestOf } from '../../../src/oci/index.js';
import {
  assertError,
  locationPath,
  randomLayer,
  registrySuite,
  repoName,
  startUpload,
  withDigest,
} from '../../helpers/oci-fixtures.js';

describe('registry conformance: base and blobs', () => {
  const suite = registrySuite();

  it('GET and HEAD /v2/ answer 200 with the API version header', async () => {
    const res = await suite.client.get('/v2/');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(res.json(), {});
    const head = await suite.client.head('/v2/');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    const noSlash = await suite.client.get('/v2');
    assert.equal(noSlash.status, 200);
  });

  it('HEAD and GET a pushed blob: 200, Content-Length, Docker-Content-Digest, the exact bytes', async () => {
    const name = repoName();
    const blob = randomLayer(70_001);
    await suite.client.pushBlob(name, blob);
    const head = await suite.client.head(`/v2/${name}/blobs/${blob.digest}`);
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(blob.size));
    assert.equal(head.headers.get('docker-content-digest'), blob.digest);
    assert.equal(head.body.length, 0);
    const get = await suite.client.get(`/v2/${name}/blobs/${blob.digest}`);
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('content-length'), String(blob.size));
    assert.equal(get.headers.get('docker-content-digest'), blob.digest);
    assert.ok(get.body.equals(blob.bytes));
  });

  it('an empty blob is pushed and read back with Content-Length 0', async () => {
    const name = repoName();
    const blob = randomLayer(0);
    assert.equal(blob.digest, 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    await suite.client.pushBlob(name, blob);
    const get = await suite.client.get(`/v2/${name}/blobs/${blob.digest}`);
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('content-length'), '0');
    assert.equal(get.body.length, 0);
  });

  it('an unknown blob: HEAD 404, GET 404 BLOB_UNKNOWN', async () => {
    const name = repoName();
    await suite.client.pushBlob(name, randomLayer(10)); // the repository exists, the blob does not
    const missing = randomLayer(10).digest;
    const head = await suite.client.head(`/v2/${name}/blobs/${missing}`);
    assert.equal(head.status, 404);
    assert.equal(head.body.length, 0);
    assertError(await suite.client.get(`/v2/${name}/blobs/${missing}`), 404, 'BLOB_UNKNOWN');
    assertError(await suite.client.get(`/v2/${repoName('nowhere')}/blobs/${missing}`), 404, 'BLOB_UNKNOWN');
  });

  describe('Range reads', () => {
    const name = repoName('range');
    const blob = randomLayer(10_000);
    before(async () => {
      await suite.client.pushBlob(name, blob);
    });

    const cases: { range: string; start: number; end: number }[] = [
      { range: 'bytes=0-0', start: 0, end: 0 },
      { range: 'bytes=100-199', start: 100, end: 199 },
      { range: 'bytes=9000-', start: 9000, end: 9999 },
      { range: 'bytes=-250', start: 9750, end: 9999 },
      { range: 'bytes=9990-20000', start: 9990, end: 9999 },
      { range: 'bytes=-20000', start: 0, end: 9999 },
    ];
    for (const c of cases) {
      it(`${c.range}: 206, Content-Range bytes ${c.start}-${c.end}/10000, those bytes`, async () => {
        const res = await suite.client.get(`/v2/${name}/blobs/${blob.digest}`, { range: c.range });
        assert.equal(res.status, 206);
        assert.equal(res.headers.get('content-range'), `bytes ${c.start}-${c.end}/${blob.size}`);
        assert.equal(res.headers.get('content-length'), String(c.end - c.start + 1));
        assert.equal(res.headers.get('docker-content-digest'), blob.digest);
        assert.ok(res.body.equals(blob.bytes.subarray(c.start, c.end + 1)));
      });
    }

    it('HEAD with a Range: 206 with the range length, no body', async () => {
      const res = await suite.client.head(`/v2/${name}/blobs/${blob.digest}`, { range: 'bytes=10-19' });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get('content-range'), `bytes 10-19/${blob.size}`);
      assert.equal(res.headers.get('content-length'), '10');
      assert.equal(res.body.length, 0);
    });

    for (const range of ['items=0-5', 'bytes=0-1,5-6', 'bytes=0-1, 100-']) {
      it(`${range}: ignored, 200 with the whole blob`, async () => {
        const res = await suite.client.get(`/v2/${name}/blobs/${blob.digest}`, { range });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-range'), null);
        assert.equal(res.headers.get('content-length'), String(blob.size));
        assert.ok(res.body.equals(blob.bytes));
      });
    }

    for (const range of ['bytes=10000-', 'bytes=20000-30000', 'bytes=-0', 'bytes=abc', 'bytes=5-2']) {
      it(`${range}: 416 with Content-Range bytes */10000`, async () => {
        const res = await suite.client.get(`/v2/${name}/blobs/${blob.digest}`, { range });
        assert.equal(res.status, 416);
        assert.equal(res.headers.get('content-range'), `bytes */${blob.size}`);
        assert.equal(res.body.length, 0);
      });
    }
  });

  it('an invalid digest: 400 DIGEST_INVALID on HEAD, GET and DELETE', async () => {
    const name = repoName();
    const bad = [
      'sha256:abc',
      `sha256:${'A'.repeat(64)}`,
      `sha256:${'0'.repeat(63)}`,
      `sha512:${'0'.repeat(64)}`,
      `md5:${'0'.repeat(32)}`,
      'nodigest',
    ];
    for (const d of bad) {
      assertError(await suite.client.get(`/v2/${name}/blobs/${d}`), 400, 'DIGEST_INVALID');
      assertError(await suite.client.request('DELETE', `/v2/${name}/blobs/${d}`), 400, 'DIGEST_INVALID');
      assert.equal((await suite.client.head(`/v2/${name}/blobs/${d}`)).status, 400);
    }
  });

  it('an invalid repository name: 400 NAME_INVALID', async () => {
    const d = randomLayer(1).digest;
    const names = ['Upper/case', 'a..b', '-lead', 'trail-', 'a//b', 'a/_b', `x${'y'.repeat(255)}`, 'a%20b'];
    for (const name of names) {
      assertError(await suite.client.get(`/v2/${name}/blobs/${d}`), 400, 'NAME_INVALID');
      assertError(await suite.client.request('POST', `/v2/${name}/blobs/uploads/`), 400, 'NAME_INVALID');
    }
  });

  it('sha512 digests work end to end: monolithic and chunked pushes, HEAD, GET, ranges', async () => {
    const name = repoName('sha512');
    const blob = randomLayer(50_000, { algorithm: 'sha512' });
    assert.match(blob.digest, /^sha512:[a-f0-9]{128}$/);
    const pushed = await suite.client.pushBlob(name, blob);
    assert.equal(pushed.headers.get('docker-content-digest'), blob.digest);
    assert.equal(locationPath(pushed), `/v2/${name}/blobs/${blob.digest}`);
    const head = await suite.client.head(`/v2/${name}/blobs/${blob.digest}`);
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(blob.size));
    assert.equal(head.headers.get('docker-content-digest'), blob.digest);
    const get = await suite.client.get(`/v2/${name}/blobs/${blob.digest}`);
    assert.ok(get.body.equals(blob.bytes));
    const part = await suite.client.get(`/v2/${name}/blobs/${blob.digest}`, { range: 'bytes=5-9' });
    assert.equal(part.status, 206);
    assert.ok(part.body.equals(blob.bytes.subarray(5, 10)));

    const chunked = randomLayer(30_000, { algorithm: 'sha512' });
    const loc = await startUpload(suite.client, name);
    const p = await suite.client.request('PATCH', loc, {
      headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${chunked.size - 1}` },
      body: chunked.bytes,
    });
    assert.equal(p.status, 202);
    const put = await suite.client.request('PUT', withDigest(locationPath(p), chunked.digest));
    assert.equal(put.status, 201, put.text());
    assert.equal(put.headers.get('docker-content-digest'), chunked.digest);
    assert.ok((await suite.client.get(`/v2/${name}/blobs/${chunked.digest}`)).body.equals(chunked.bytes));

    // The same bytes under their sha256 digest are a different name: not pushed, so unknown.
    assertError(await suite.client.get(`/v2/${name}/blobs/${digestOf(chunked.bytes)}`), 404, 'BLOB_UNKNOWN');
    // A wrong sha512 digest is refused.
    const wrong = randomLayer(100, { algorithm: 'sha512' });
    const bad = await suite.client.request('POST', `/v2/${name}/blobs/uploads/?digest=${wrong.digest}`, {
      body: randomLayer(100).bytes,
    });
    assertError(bad, 400, 'DIGEST_INVALID');
    assert.equal((await suite.client.head(`/v2/${name}/blobs/${wrong.digest}`)).status, 404);
  });

  it('DELETE a blob: 202, then 404 BLOB_UNKNOWN; other repositories keep it', async () => {
    const a = repoName();
    const b = repoName();
    const blob = randomLayer(500);
    await suite.client.pushBlob(a, blob);
    await suite.client.pushBlob(b, blob);
    const del = await suite.client.request('DELETE', `/v2/${a}/blobs/${blob.digest}`);
    assert.equal(del.status, 202);
    assertError(await suite.client.get(`/v2/${a}/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
    assertError(await suite.client.request('DELETE', `/v2/${a}/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
    const other = await suite.client.get(`/v2/${b}/blobs/${blob.digest}`);
    assert.equal(other.status, 200);
    assert.ok(other.body.equals(blob.bytes));
  });
});

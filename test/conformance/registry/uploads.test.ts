import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  assertError,
  chunksOf,
  locationPath,
  randomLayer,
  registrySuite,
  repoName,
  startUpload,
  withDigest,
} from '../../helpers/oci-fixtures.js';

const UPLOAD_PATH = /^\/v2\/([a-z0-9/._-]+)\/blobs\/uploads\/([A-Za-z0-9-]+)$/;

describe('registry conformance: blob uploads', () => {
  const suite = registrySuite();

  async function assertBlob(name: string, blob: { digest: string; bytes: Buffer }): Promise<void> {
    const res = await suite.client.get(`/v2/${name}/blobs/${blob.digest}`);
    assert.equal(res.status, 200, `${blob.digest} in ${name}: ${res.status}`);
    assert.ok(res.body.equals(blob.bytes), 'blob bytes differ');
  }

  async function assertNoBlob(name: string, digest: string): Promise<void> {
    assertError(await suite.client.get(`/v2/${name}/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
  }

  it('monolithic POST ?digest=: 201, Location of the blob, Docker-Content-Digest', async () => {
    const name = repoName();
    const blob = randomLayer(12_345);
    const res = await suite.client.request('POST', `/v2/${name}/blobs/uploads/?digest=${blob.digest}`, {
      headers: { 'content-type': 'application/octet-stream' },
      body: blob.bytes,
    });
    assert.equal(res.status, 201);
    assert.equal(locationPath(res), `/v2/${name}/blobs/${blob.digest}`);
    assert.equal(res.headers.get('docker-content-digest'), blob.digest);
    assert.equal(res.headers.get('content-length'), '0');
    assert.ok((await suite.client.get(locationPath(res))).body.equals(blob.bytes));
  });

  it('monolithic POST ?digest= with a streamed body (chunked transfer encoding): 201', async () => {
    const name = repoName();
    const blob = randomLayer(123_456);
    const res = await suite.client.request('POST', `/v2/${name}/blobs/uploads/?digest=${blob.digest}`, {
      body: chunksOf(blob.bytes, 10_000),
    });
    assert.equal(res.status, 201, res.text());
    assert.equal(res.headers.get('docker-content-digest'), blob.digest);
    await assertBlob(name, blob);
  });

  it('POST then PUT ?digest= with the whole body: 202 with Location and Range 0-0, then 201', async () => {
    const name = repoName();
    const blob = randomLayer(9_999);
    const post = await suite.client.request('POST', `/v2/${name}/blobs/uploads/`);
    assert.equal(post.status, 202);
    const loc = locationPath(post);
    const m = UPLOAD_PATH.exec(loc);
    assert.ok(m, `Location ${loc}`);
    assert.equal(m[1], name);
    assert.equal(post.headers.get('range'), '0-0');
    assert.equal(post.headers.get('docker-upload-uuid'), m[2]);
    assert.equal(post.headers.get('content-length'), '0');
    const put = await suite.client.request('PUT', withDigest(loc, blob.digest), {
      headers: { 'content-type': 'application/octet-stream' },
      body: blob.bytes,
    });
    assert.equal(put.status, 201, put.text());
    assert.equal(locationPath(put), `/v2/${name}/blobs/${blob.digest}`);
    assert.equal(put.headers.get('docker-content-digest'), blob.digest);
    await assertBlob(name, blob);
    // The session is over.
    assertError(await suite.client.get(loc), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('chunked PATCH with Content-Range in order: 202 each, Range 0-<last byte>, Location; then PUT', async () => {
    const name = repoName();
    const blob = randomLayer(100_000);
    let loc = await startUpload(suite.client, name);
    const sizes = [1, 16_383, 40_000, 43_616];
    assert.equal(
      sizes.reduce((a, b) => a + b),
      blob.size,
    );
    let offset = 0;
    for (const n of sizes) {
      const res = await suite.client.request('PATCH', loc, {
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + n - 1}` },
        body: blob.bytes.subarray(offset, offset + n),
      });
      assert.equal(res.status, 202, res.text());
      offset += n;
      assert.equal(res.headers.get('range'), `0-${offset - 1}`);
      assert.equal(res.headers.get('content-length'), '0');
      assert.match(locationPath(res), UPLOAD_PATH);
      loc = locationPath(res);
      const status = await suite.client.get(loc);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), `0-${offset - 1}`);
    }
    const put = await suite.client.request('PUT', withDigest(loc, blob.digest));
    assert.equal(put.status, 201, put.text());
    assert.equal(put.headers.get('docker-content-digest'), blob.digest);
    await assertBlob(name, blob);
  });

  it('chunks then a last chunk in the PUT body', async () => {
    const name = repoName();
    const blob = randomLayer(30_000);
    const loc = await startUpload(suite.client, name);
    const p = await suite.client.request('PATCH', loc, {
      headers: { 'content-range': '0-19999' },
      body: blob.bytes.subarray(0, 20_000),
    });
    assert.equal(p.status, 202);
    const put = await suite.client.request('PUT', withDigest(locationPath(p), blob.digest), {
      headers: { 'content-range': '20000-29999' },
      body: blob.bytes.subarray(20_000),
    });
    assert.equal(put.status, 201, put.text());
    await assertBlob(name, blob);
  });

  it('an out-of-order chunk: 416 with the current Range and Location; the upload goes on', async () => {
    const name = repoName();
    const blob = randomLayer(3000);
    const loc = await startUpload(suite.client, name);
    const first = await suite.client.request('PATCH', loc, {
      headers: { 'content-range': '0-999' },
      body: blob.bytes.subarray(0, 1000),
    });
    assert.equal(first.status, 202);
    for (const [range, body] of [
      ['2000-2999', blob.bytes.subarray(2000)], // a gap
      ['0-999', blob.bytes.subarray(0, 1000)], // a repeat
      ['500-1499', blob.bytes.subarray(500, 1500)], // an overlap
    ] as const) {
      const res = await suite.client.request('PATCH', loc, { headers: { 'content-range': range }, body });
      assert.equal(res.status, 416, `${range}: ${res.status}`);
      assert.equal(res.headers.get('range'), '0-999');
      assert.equal(locationPath(res), loc);
    }
    const malformed = await suite.client.request('PATCH', loc, { headers: { 'content-range': 'garbage' }, body: 'x' });
    assert.equal(malformed.status, 416);
    const status = await suite.client.get(loc);
    assert.equal(status.headers.get('range'), '0-999');
    const second = await suite.client.request('PATCH', loc, {
      headers: { 'content-range': '1000-2999' },
      body: blob.bytes.subarray(1000),
    });
    assert.equal(second.status, 202);
    assert.equal(second.headers.get('range'), '0-2999');
    assert.equal((await suite.client.request('PUT', withDigest(loc, blob.digest))).status, 201);
    await assertBlob(name, blob);
  });

  it('PATCH without Content-Range, streamed (chunked transfer encoding): appended as it arrives', async () => {
    const name = repoName();
    const blob = randomLayer(200_000);
    const loc = await startUpload(suite.client, name);
    const a = await suite.client.request('PATCH', loc, {
      headers: { 'content-type': 'application/octet-stream' },
      body: chunksOf(blob.bytes.subarray(0, 150_000), 7_000),
    });
    assert.equal(a.status, 202, a.text());
    assert.equal(a.headers.get('range'), '0-149999');
    const b = await suite.client.request('PATCH', locationPath(a), { body: chunksOf(blob.bytes.subarray(150_000)) });
    assert.equal(b.status, 202);
    assert.equal(b.headers.get('range'), '0-199999');
    assert.equal((await suite.client.request('PUT', withDigest(locationPath(b), blob.digest))).status, 201);
    await assertBlob(name, blob);
  });

  it('upload status: GET 204 with Range, Location and no body', async () => {
    const name = repoName();
    const loc = await startUpload(suite.client, name);
    const empty = await suite.client.get(loc);
    assert.equal(empty.status, 204);
    assert.equal(empty.headers.get('range'), '0-0');
    assert.equal(locationPath(empty), loc);
    assert.equal(empty.body.length, 0);
    await suite.client.request('PATCH', loc, { headers: { 'content-range': '0-41' }, body: Buffer.alloc(42, 7) });
    const after42 = await suite.client.get(loc);
    assert.equal(after42.status, 204);
    assert.equal(after42.headers.get('range'), '0-41');
    assert.equal(locationPath(after42), loc);
  });

  it('DELETE cancels an upload (204); the session is then unknown: 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const name = repoName();
    const blob = randomLayer(5000);
    const loc = await startUpload(suite.client, name);
    await suite.client.request('PATCH', loc, { body: blob.bytes.subarray(0, 2000) });
    const del = await suite.client.request('DELETE', loc);
    assert.equal(del.status, 204);
    assertError(await suite.client.get(loc), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(
      await suite.client.request('PATCH', loc, { body: blob.bytes.subarray(2000) }),
      404,
      'BLOB_UPLOAD_UNKNOWN',
    );
    assertError(
      await suite.client.request('PUT', withDigest(loc, blob.digest), { body: blob.bytes }),
      404,
      'BLOB_UPLOAD_UNKNOWN',
    );
    assertError(await suite.client.request('DELETE', loc), 404, 'BLOB_UPLOAD_UNKNOWN');
    await assertNoBlob(name, blob.digest);
  });

  it('an upload session never started, or of another repository: 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const a = repoName();
    const b = repoName();
    assertError(
      await suite.client.get(`/v2/${a}/blobs/uploads/00000000-0000-0000-0000-000000000000`),
      404,
      'BLOB_UPLOAD_UNKNOWN',
    );
    const loc = await startUpload(suite.client, a);
    const foreign = loc.replace(`/v2/${a}/`, `/v2/${b}/`);
    assertError(await suite.client.get(foreign), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(await suite.client.request('PATCH', foreign, { body: 'abc' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    assert.equal((await suite.client.get(loc)).status, 204);
  });

  it('a digest mismatch: 400 DIGEST_INVALID, and nothing becomes visible', async () => {
    const name = repoName('mismatch');
    const blob = randomLayer(4000);
    const other = randomLayer(4000);
    // Monolithic.
    assertError(
      await suite.client.request('POST', `/v2/${name}/blobs/uploads/?digest=${other.digest}`, { body: blob.bytes }),
      400,
      'DIGEST_INVALID',
    );
    // Chunked, then a wrong digest at PUT.
    const loc = await startUpload(suite.client, name);
    assert.equal((await suite.client.request('PATCH', loc, { body: blob.bytes })).status, 202);
    assertError(await suite.client.request('PUT', withDigest(loc, other.digest)), 400, 'DIGEST_INVALID');
    for (const d of [blob.digest, other.digest]) {
      assert.equal((await suite.client.head(`/v2/${name}/blobs/${d}`)).status, 404);
      await assertNoBlob(name, d);
    }
    // A failed push leaves no repository behind.
    const cat = await suite.client.get('/v2/_catalog');
    assert.equal(cat.status, 200);
    assert.ok(!cat.json<{ repositories: string[] }>().repositories.includes(name), cat.text());
    assertError(await suite.client.get(`/v2/${name}/tags/list`), 404, 'NAME_UNKNOWN');
  });

  it('PUT without a digest, or with an invalid one: 400 DIGEST_INVALID, the upload stays', async () => {
    const name = repoName();
    const loc = await startUpload(suite.client, name);
    assertError(await suite.client.request('PUT', loc), 400, 'DIGEST_INVALID');
    assertError(await suite.client.request('PUT', withDigest(loc, 'sha256:1234')), 400, 'DIGEST_INVALID');
    assertError(
      await suite.client.request('POST', `/v2/${name}/blobs/uploads/?digest=sha256:xyz`, { body: 'a' }),
      400,
      'DIGEST_INVALID',
    );
    assert.equal((await suite.client.get(loc)).status, 204);
  });

  it('a Content-Length that disagrees with Content-Range: 400 SIZE_INVALID, nothing appended', async () => {
    const name = repoName();
    const loc = await startUpload(suite.client, name);
    const res = await suite.client.request('PATCH', loc, {
      headers: { 'content-range': '0-99' },
      body: Buffer.alloc(50, 1),
    });
    assertError(res, 400, 'SIZE_INVALID');
    const status = await suite.client.get(loc);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), '0-0');
  });

  it('a streamed chunk shorter than its Content-Range: 400 SIZE_INVALID', async () => {
    const name = repoName();
    const loc = await startUpload(suite.client, name);
    const res = await suite.client.request('PATCH', loc, {
      headers: { 'content-range': '0-99' },
      body: chunksOf(Buffer.alloc(50, 1), 10),
    });
    assertError(res, 400, 'SIZE_INVALID');
  });

  it('cross-repository mount: 201 when the source has the blob; B cannot read it before', async () => {
    const a = repoName('mount');
    const b = repoName('mount');
    const blob = randomLayer(8000);
    await suite.client.pushBlob(a, blob);
    assert.equal((await suite.client.head(`/v2/${b}/blobs/${blob.digest}`)).status, 404);
    await assertNoBlob(b, blob.digest);
    const res = await suite.client.request('POST', `/v2/${b}/blobs/uploads/?mount=${blob.digest}&from=${a}`);
    assert.equal(res.status, 201, res.text());
    assert.equal(locationPath(res), `/v2/${b}/blobs/${blob.digest}`);
    assert.equal(res.headers.get('docker-content-digest'), blob.digest);
    await assertBlob(b, blob);
    await assertBlob(a, blob);
  });

  it('cross-repository mount when the source lacks the blob: 202, a fresh upload that works', async () => {
    const a = repoName('mount');
    const b = repoName('mount');
    const blob = randomLayer(8000);
    await suite.client.pushBlob(a, randomLayer(10)); // a exists, without this blob
    await assertNoBlob(b, blob.digest);
    for (const from of [a, repoName('absent')]) {
      const res = await suite.client.request('POST', `/v2/${b}/blobs/uploads/?mount=${blob.digest}&from=${from}`);
      assert.equal(res.status, 202, res.text());
      const loc = locationPath(res);
      assert.match(loc, UPLOAD_PATH);
      assert.ok(loc.startsWith(`/v2/${b}/blobs/uploads/`));
      assert.equal(res.headers.get('range'), '0-0');
      const put = await suite.client.request('PUT', withDigest(loc, blob.digest), { body: blob.bytes });
      assert.equal(put.status, 201);
    }
    await assertBlob(b, blob);
    await assertNoBlob(a, blob.digest);
  });

  it('a mount with a malformed digest or source name falls back to a fresh upload (202)', async () => {
    const a = repoName('mount');
    const b = repoName('mount');
    const blob = randomLayer(500);
    await suite.client.pushBlob(a, blob);
    for (const q of [`mount=sha256:nothex&from=${a}`, `mount=${blob.digest}&from=NOT..VALID`, `mount=${blob.digest}`]) {
      const res = await suite.client.request('POST', `/v2/${b}/blobs/uploads/?${q}`);
      assert.equal(res.status, 202, `${q}: ${res.status} ${res.text()}`);
      assert.match(locationPath(res), UPLOAD_PATH);
    }
    await assertNoBlob(b, blob.digest);
  });

  it('a blob already in the repository can be pushed again (201) and stays readable', async () => {
    const name = repoName();
    const blob = randomLayer(1000);
    await suite.client.pushBlob(name, blob);
    await suite.client.pushBlob(name, blob);
    const loc = await startUpload(suite.client, name);
    assert.equal((await suite.client.request('PUT', withDigest(loc, blob.digest), { body: blob.bytes })).status, 201);
    await assertBlob(name, blob);
  });
});

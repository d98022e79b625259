import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import {
  API_VERSION_HEADER,
  assertError,
  RegistryClient,
  randomLayer,
  repoName,
  startUpload,
} from '../../helpers/oci-fixtures.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';

/** A request with the path sent exactly as given (fetch would normalize `..` and percent-encoding). */
function rawRequest(
  base: string,
  method: string,
  path: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('registry conformance: errors', () => {
  let reg: TestRegistry;
  let client: RegistryClient;
  const name = repoName('errors');
  let digest: string;
  let uploadPath: string;
  before(async () => {
    reg = await startTestRegistry();
    client = new RegistryClient(reg.url);
    const { layers } = await client.pushImage(name, 'latest');
    digest = layers[0]!.digest;
    uploadPath = await startUpload(client, name);
  });
  after(async () => {
    await reg.stop();
  });

  it('a method a route does not support: 405 UNSUPPORTED with the API version header', async () => {
    const cases: [string, string][] = [
      ['POST', '/v2/'],
      ['PUT', '/v2/'],
      ['DELETE', '/v2/'],
      ['PATCH', '/v2/'],
      ['POST', '/v2/_catalog'],
      ['PUT', '/v2/_catalog'],
      ['DELETE', '/v2/_catalog'],
      ['POST', `/v2/${name}/tags/list`],
      ['PUT', `/v2/${name}/tags/list`],
      ['DELETE', `/v2/${name}/tags/list`],
      ['POST', `/v2/${name}/manifests/latest`],
      ['PATCH', `/v2/${name}/manifests/latest`],
      ['POST', `/v2/${name}/blobs/${digest}`],
      ['PUT', `/v2/${name}/blobs/${digest}`],
      ['PATCH', `/v2/${name}/blobs/${digest}`],
      ['GET', `/v2/${name}/blobs/uploads/`],
      ['PUT', `/v2/${name}/blobs/uploads/`],
      ['PATCH', `/v2/${name}/blobs/uploads/`],
      ['DELETE', `/v2/${name}/blobs/uploads/`],
      ['POST', '__UPLOAD__'],
      ['POST', `/v2/${name}/referrers/${digest}`],
      ['PUT', `/v2/${name}/referrers/${digest}`],
      ['DELETE', `/v2/${name}/referrers/${digest}`],
      ['OPTIONS', `/v2/${name}/manifests/latest`],
      ['OPTIONS', '/v2/'],
    ];
    for (const [method, p] of cases) {
      const path = p === '__UPLOAD__' ? uploadPath : p;
      const res = await client.request(method, path, method === 'GET' || method === 'OPTIONS' ? {} : { body: '' });
      assertError(res, 405, 'UNSUPPORTED');
    }
    // Nothing was changed by them.
    assert.equal((await client.get(`/v2/${name}/manifests/latest`)).status, 200);
    assert.equal((await client.get(`/v2/${name}/blobs/${digest}`)).status, 200);
    assert.equal((await client.get(uploadPath)).status, 204);
  });

  it('an unknown endpoint under /v2/: 404 with an error body and the API version header', async () => {
    for (const path of [`/v2/${name}/nonsense`, `/v2/${name}/blobs`, `/v2/${name}/manifests/`, '/v2/_catalog/x']) {
      const res = await client.get(path);
      assert.equal(res.status, 404, path);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.ok(Array.isArray(res.json<{ errors: unknown[] }>().errors));
    }
  });

  it('error bodies are {"errors":[{code, message, detail?}]} with a matching Content-Length', async () => {
    const res = await client.get(`/v2/${name}/blobs/${randomLayer(4).digest}`);
    const body = assertError(res, 404, 'BLOB_UNKNOWN');
    assert.equal(body.errors.length, 1);
    assert.deepEqual(Object.keys(body.errors[0]!).sort(), ['code', 'detail', 'message']);
    assert.equal(res.headers.get('content-length'), String(res.body.length));
  });

  it('HEAD errors: the status and headers, no body', async () => {
    const cases: [string, number][] = [
      [`/v2/${name}/blobs/${randomLayer(4).digest}`, 404],
      [`/v2/${name}/manifests/nothere`, 404],
      [`/v2/${name}/blobs/sha256:00`, 400],
      [`/v2/UPPER/manifests/latest`, 400],
    ];
    for (const [path, status] of cases) {
      const res = await client.head(path);
      assert.equal(res.status, status, path);
      assert.equal(res.body.length, 0);
    }
  });

  it('malformed percent-encoding in a path: 400, not a server error', async () => {
    const blob = await client.get(`/v2/${name}/blobs/sha256%3A%ZZ`);
    assertError(blob, 400, 'DIGEST_INVALID');
    const refs = await client.get(`/v2/${name}/referrers/%E0%A4%A`);
    assertError(refs, 400, 'DIGEST_INVALID');
    const manifest = await client.get(`/v2/${name}/manifests/%E0%A4%A`);
    assert.equal(manifest.status, 400);
    assert.match(manifest.headers.get('content-type') ?? '', /^application\/json/);
  });

  it('hostile paths never reach storage or fail the server (4xx, with the API version header)', async () => {
    const paths = [
      '/v2/../../etc/passwd/blobs/uploads/',
      `/v2/a/../../b/manifests/latest`,
      `/v2/${name}/blobs/uploads/..%2F..%2F..%2Fetc`,
      `/v2/${name}/blobs/uploads/${'a'.repeat(65)}`,
      `/v2/${name}/manifests/..`,
      `/v2/${name}/manifests/.hidden`,
      `/v2/${name}/blobs/sha256:${'0'.repeat(64)}%2F..%2F..`,
      `/v2/${name}/referrers/..%2F..`,
      '/v2/%2e%2e/tags/list',
      `/v2/${name}/manifests/${'t'.repeat(129)}`,
    ];
    for (const path of paths) {
      for (const method of ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE']) {
        const res = await rawRequest(reg.url, method, path);
        assert.ok(res.status >= 400 && res.status < 500, `${method} ${path}: ${res.status} ${res.body}`);
        assert.equal(res.headers[API_VERSION_HEADER], 'registry/2.0', `${method} ${path}`);
      }
    }
    // Still serving.
    assert.equal((await client.get(`/v2/${name}/manifests/latest`)).status, 200);
  });

  it('every response this suite received carried the API version header', () => {
    // RegistryClient asserts the header on each response; check it saw the variety this suite means to cover.
    const statuses = new Set(client.seen.map((s) => s.status));
    for (const s of [200, 201, 202, 204, 400, 404, 405]) assert.ok(statuses.has(s), `no ${s} response seen`);
  });
});

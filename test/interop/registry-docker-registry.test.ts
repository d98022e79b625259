import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { hasTool, needTool, tempDir } from '../helpers/env.js';
import { type LayoutImage, skopeo, threeLayerImage } from '../helpers/image-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { DOCKER_REGISTRY, type RegistryProcess, startDockerRegistry } from '../helpers/registry-process.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const ZERO = `sha256:${'0'.repeat(64)}`;

interface Answer {
  status: number;
  headers: Record<string, string | null>;
  /** errors[].code of an error body, else the body's sha256. */
  body: string;
}

/** Headers both registries must agree on when they answer the same request. */
const COMPARED = ['content-type', 'content-length', 'docker-content-digest', 'content-range', 'accept-ranges'];

async function ask(base: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const r = await fetch(`${base}${path}`, { redirect: 'manual', ...init });
  const bytes = Buffer.from(await r.arrayBuffer());
  const headers: Record<string, string | null> = {};
  for (const h of COMPARED) headers[h] = r.headers.get(h);
  let body = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (r.status >= 400 && bytes.length > 0) {
    body = (JSON.parse(bytes.toString('utf8')) as { errors: Array<{ code: string }> }).errors.map((e) => e.code).join();
  } else if (r.status < 400 && headers['content-type']?.startsWith('application/json')) {
    // API listings (tags, catalog) compare as documents: distribution's encoder adds a newline, strata's does not.
    body = JSON.stringify(JSON.parse(bytes.toString('utf8')));
    headers['content-length'] = null;
  }
  return { status: r.status, headers, body };
}

describe('strata and the CNCF registry (docker-registry) hold and serve the same image identically', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let strata: TestRegistry;
  let cncf: RegistryProcess;
  let image: LayoutImage;
  const ready = (): boolean => hasTool('skopeo') && hasTool('umoci') && hasTool(DOCKER_REGISTRY);

  before(async () => {
    work = await tempDir();
    strata = await startTestRegistry();
    if (!ready()) return;
    cncf = await startDockerRegistry(`${work.path}/cncf`);
    image = await threeLayerImage(work.path);
  });
  after(async () => {
    await cncf?.stop();
    await strata?.stop();
    await work?.cleanup();
  });

  it('skopeo copies the same image into both: the same manifest digest from each', async (t) => {
    if (!needTool(t, 'skopeo', 'umoci', DOCKER_REGISTRY)) return;
    const digests: string[] = [];
    for (const host of [strata.host, cncf.host]) {
      await skopeo(['copy', '-q', '--dest-tls-verify=false', image.ref, `docker://${host}/interop/three:v1`]);
      const info = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${host}/interop/three:v1`]));
      digests.push(info.Digest);
      assert.deepEqual(info.Layers, image.layerDigests);
      const head = await fetch(`http://${host}/v2/interop/three/manifests/v1`, {
        method: 'HEAD',
        headers: { accept: OCI_MANIFEST },
      });
      assert.equal(head.headers.get('docker-content-digest'), image.manifestDigest, host);
    }
    assert.deepEqual(digests, [image.manifestDigest, image.manifestDigest]);
  });

  it('registry-to-registry copies in both directions keep every digest', async (t) => {
    if (!needTool(t, 'skopeo', 'umoci', DOCKER_REGISTRY)) return;
    const tls = ['--src-tls-verify=false', '--dest-tls-verify=false'];
    await skopeo([
      'copy',
      '-q',
      ...tls,
      `docker://${cncf.host}/interop/three:v1`,
      `docker://${strata.host}/from/cncf:1`,
    ]);
    await skopeo([
      'copy',
      '-q',
      ...tls,
      `docker://${strata.host}/interop/three:v1`,
      `docker://${cncf.host}/from/strata:1`,
    ]);
    for (const ref of [`${strata.host}/from/cncf:1`, `${cncf.host}/from/strata:1`]) {
      const info = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${ref}`]));
      assert.equal(info.Digest, image.manifestDigest, ref);
      assert.deepEqual(info.Layers, image.layerDigests, ref);
    }
  });

  it('the same requests get the same status, headers and error codes from both', async (t) => {
    if (!needTool(t, 'skopeo', 'umoci', DOCKER_REGISTRY)) return;
    const layer = image.layerDigests[2]!;
    const repo = '/v2/interop/three';
    const cases: Array<[string, string, RequestInit?]> = [
      ['base', '/v2/'],
      ['HEAD manifest by tag', `${repo}/manifests/v1`, { method: 'HEAD', headers: { accept: OCI_MANIFEST } }],
      ['GET manifest by tag', `${repo}/manifests/v1`, { headers: { accept: OCI_MANIFEST } }],
      ['GET manifest by digest', `${repo}/manifests/${image.manifestDigest}`, { headers: { accept: OCI_MANIFEST } }],
      ['GET unknown tag', `${repo}/manifests/nope`, { headers: { accept: OCI_MANIFEST } }],
      ['GET unknown manifest digest', `${repo}/manifests/${ZERO}`, { headers: { accept: OCI_MANIFEST } }],
      ['GET manifest, unknown repository', '/v2/no/such/manifests/v1', { headers: { accept: OCI_MANIFEST } }],
      ['HEAD blob', `${repo}/blobs/${layer}`, { method: 'HEAD' }],
      ['GET blob', `${repo}/blobs/${layer}`],
      ['GET config blob', `${repo}/blobs/${image.configDigest}`],
      ['GET blob range', `${repo}/blobs/${layer}`, { headers: { range: 'bytes=0-9' } }],
      ['GET blob open range', `${repo}/blobs/${layer}`, { headers: { range: 'bytes=3000000-' } }],
      ['GET unknown blob', `${repo}/blobs/${ZERO}`],
      ['HEAD unknown blob', `${repo}/blobs/${ZERO}`, { method: 'HEAD' }],
      ['GET blob with a bad digest', `${repo}/blobs/sha256:abc`],
      ['tags list', `${repo}/tags/list`],
      ['tags list, unknown repository', '/v2/no/such/tags/list'],
    ];
    assert.deepEqual(await compare(cases), []);
  });

  it('a manifest naming a missing blob is refused the same way: 400 MANIFEST_BLOB_UNKNOWN', async (t) => {
    if (!needTool(t, 'skopeo', 'umoci', DOCKER_REGISTRY)) return;
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: ZERO, size: 2 },
      layers: [],
    });
    const init = { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: manifest };
    assert.deepEqual(
      await compare([['PUT manifest naming a missing blob', '/v2/interop/three/manifests/broken', init]]),
      [],
    );
  });

  /** Send each request to both registries; describe every way the answers differ. */
  async function compare(cases: Array<[string, string, RequestInit?]>): Promise<string[]> {
    const differences: string[] = [];
    for (const [label, path, init] of cases) {
      const [s, c] = [await ask(strata.url, path, init), await ask(cncf.url, path, init)];
      if (s.status !== c.status) differences.push(`${label}: status strata ${s.status}, cncf ${c.status}`);
      for (const h of COMPARED) {
        // Content-Type and Content-Length of error bodies are the registries' own business (messages differ).
        if (s.status >= 400 && (h === 'content-length' || h === 'content-type')) continue;
        if (s.headers[h] !== c.headers[h]) {
          differences.push(`${label}: ${h} strata ${s.headers[h]}, cncf ${c.headers[h]}`);
        }
      }
      if (s.body !== c.body) differences.push(`${label}: body strata ${s.body}, cncf ${c.body}`);
    }
    return differences;
  }
});

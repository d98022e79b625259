import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { describe, it } from 'node:test';
import { request } from 'undici';
import {
  API_VERSION_HEADER,
  type Content,
  imageConfig,
  imageManifest,
  locationPath,
  pseudoRandomStream,
  randomLayer,
  RegistryClient,
  registrySuite,
  startUpload,
  withDigest,
} from '../../helpers/oci-fixtures.js';

const CLIENTS = 50;
const ROUNDS = 3;
const GIB = 1024 * 1024 * 1024;
const CHUNK = 64 * 1024 * 1024;
const RSS_BOUND = 300 * 1024 * 1024;

/** Sample process RSS every 100 ms until stopped; the largest value seen. */
function sampleRss(): { stop(): number } {
  let max = process.memoryUsage().rss;
  const timer = setInterval(() => {
    max = Math.max(max, process.memoryUsage().rss);
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(max, process.memoryUsage().rss);
    },
  };
}

describe('registry conformance: load', () => {
  const suite = registrySuite();

  it(`${CLIENTS} concurrent clients push and pull small blobs and manifests: no errors, nothing lost`, {
    timeout: 300_000,
  }, async () => {
    const failures: string[] = [];
    const pushed = new Map<string, { tag: string; manifest: Content; blobs: Content[] }[]>();
    const expectStatus = (what: string, got: number, want: number) => {
      if (got !== want) failures.push(`${what}: ${got}, expected ${want}`);
    };

    const runClient = async (i: number): Promise<void> => {
      const c = new RegistryClient(suite.reg.url);
      const name = `load/client-${String(i).padStart(2, '0')}`;
      const mine: { tag: string; manifest: Content; blobs: Content[] }[] = [];
      pushed.set(name, mine);
      for (let round = 0; round < ROUNDS; round++) {
        const layers = Array.from({ length: 3 }, (_, k) =>
          randomLayer(1024 + ((i * 7919 + round * 104_729 + k * 31) % 65_536)),
        );
        const config = imageConfig(layers);
        for (const [k, b] of [config, ...layers].entries()) {
          if ((i + k) % 2 === 0) {
            const r = await c.request('POST', `/v2/${name}/blobs/uploads/?digest=${b.digest}`, { body: b.bytes });
            expectStatus(`${name} monolithic ${b.digest}`, r.status, 201);
          } else {
            const loc = await startUpload(c, name);
            const mid = b.size >> 1;
            const p1 = await c.request('PATCH', loc, {
              headers: { 'content-range': `0-${mid - 1}` },
              body: b.bytes.subarray(0, mid),
            });
            expectStatus(`${name} patch 1`, p1.status, 202);
            const p2 = await c.request('PATCH', locationPath(p1), {
              headers: { 'content-range': `${mid}-${b.size - 1}` },
              body: b.bytes.subarray(mid),
            });
            expectStatus(`${name} patch 2`, p2.status, 202);
            const put = await c.request('PUT', withDigest(locationPath(p2), b.digest));
            expectStatus(`${name} put ${b.digest}`, put.status, 201);
          }
        }
        // Every client also shares one blob into a common repository by mount.
        const mount = await c.request('POST', `/v2/load/shared/blobs/uploads/?mount=${layers[0]!.digest}&from=${name}`);
        expectStatus(`${name} mount`, mount.status, 201);
        const manifest = imageManifest({ config, layers });
        const tag = `r${round}`;
        const put = await c.request('PUT', `/v2/${name}/manifests/${tag}`, {
          headers: { 'content-type': manifest.mediaType },
          body: manifest.bytes,
        });
        expectStatus(`${name} manifest ${tag}`, put.status, 201);
        mine.push({ tag, manifest, blobs: [config, ...layers] });
        // Pull it straight back.
        const got = await c.get(`/v2/${name}/manifests/${tag}`);
        expectStatus(`${name} pull ${tag}`, got.status, 200);
        if (!got.body.equals(manifest.bytes)) failures.push(`${name} ${tag}: manifest bytes differ`);
        for (const b of [config, ...layers]) {
          const r = await c.get(`/v2/${name}/blobs/${b.digest}`);
          expectStatus(`${name} pull blob`, r.status, 200);
          if (!r.body.equals(b.bytes)) failures.push(`${name} ${b.digest}: blob bytes differ`);
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, i) => runClient(i)));
    assert.deepEqual(failures, []);

    // Afterwards, everything pushed is there, once.
    const catalog = (await suite.client.get('/v2/_catalog')).json<{ repositories: string[] }>().repositories;
    assert.deepEqual(catalog, [...[...pushed.keys()].sort(), 'load/shared'].sort());
    for (const [name, images] of pushed) {
      const tags = (await suite.client.get(`/v2/${name}/tags/list`)).json<{ tags: string[] }>().tags;
      assert.deepEqual(
        tags,
        Array.from({ length: ROUNDS }, (_, r) => `r${r}`),
      );
      for (const img of images) {
        const m = await suite.client.get(`/v2/${name}/manifests/${img.tag}`);
        assert.equal(m.status, 200);
        assert.ok(m.body.equals(img.manifest.bytes));
        for (const b of img.blobs) {
          const h = await suite.client.head(`/v2/${name}/blobs/${b.digest}`);
          assert.equal(h.status, 200);
          assert.equal(h.headers.get('content-length'), String(b.size));
        }
        const shared = await suite.client.head(`/v2/load/shared/blobs/${img.blobs[1]!.digest}`);
        assert.equal(shared.status, 200);
      }
    }
  });

  it('a 1 GiB blob streamed up in chunks and down, with bounded memory', { timeout: 600_000 }, async (t) => {
    const name = 'load/huge';
    const seed = 'strata-1gib';
    const baseline = process.memoryUsage().rss;
    const rss = sampleRss();
    let peak: number;
    try {
      // Up: 16 PATCHes of 64 MiB with Content-Range and Content-Length, generated on the fly and hashed as sent.
      const hash = createHash('sha256');
      let loc = await startUpload(suite.client, name);
      for (let off = 0; off < GIB; off += CHUNK) {
        const body = pseudoRandomStream(seed, CHUNK, off).pipe(
          new Transform({
            transform(chunk: Buffer, _enc, cb) {
              hash.update(chunk);
              cb(null, chunk);
            },
          }),
        );
        const res = await request(suite.client.url(loc), {
          method: 'PATCH',
          headers: {
            'content-type': 'application/octet-stream',
            'content-length': String(CHUNK),
            'content-range': `${off}-${off + CHUNK - 1}`,
          },
          body,
        });
        const text = await res.body.text();
        assert.equal(res.statusCode, 202, text);
        assert.equal(res.headers[API_VERSION_HEADER], 'registry/2.0');
        assert.equal(res.headers['range'], `0-${off + CHUNK - 1}`);
        loc = new URL(String(res.headers['location']), suite.reg.url).pathname;
      }
      const digest = `sha256:${hash.digest('hex')}`;
      const put = await suite.client.request('PUT', withDigest(loc, digest));
      assert.equal(put.status, 201, put.text());
      assert.equal(put.headers.get('docker-content-digest'), digest);

      const head = await suite.client.head(`/v2/${name}/blobs/${digest}`);
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(GIB));

      // Down: streamed and hashed, never buffered.
      const res = await request(suite.client.url(`/v2/${name}/blobs/${digest}`), { method: 'GET' });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers[API_VERSION_HEADER], 'registry/2.0');
      assert.equal(res.headers['content-length'], String(GIB));
      const down = createHash('sha256');
      let received = 0;
      for await (const chunk of res.body) {
        down.update(chunk as Buffer);
        received += (chunk as Buffer).length;
      }
      assert.equal(received, GIB);
      assert.equal(`sha256:${down.digest('hex')}`, digest);

      // A range from the middle matches the generator at that offset.
      const start = 512 * 1024 * 1024 + 4096;
      const part = await suite.client.get(`/v2/${name}/blobs/${digest}`, { range: `bytes=${start}-${start + 65_535}` });
      assert.equal(part.status, 206);
      const expected: Buffer[] = [];
      for await (const c of pseudoRandomStream(seed, 65_536, start)) expected.push(c as Buffer);
      assert.ok(part.body.equals(Buffer.concat(expected)));
    } finally {
      peak = rss.stop();
    }
    const growth = peak - baseline;
    t.diagnostic(`RSS ${Math.round(baseline / 1048576)} MiB at start, peak growth ${Math.round(growth / 1048576)} MiB`);
    assert.ok(
      growth < RSS_BOUND,
      `RSS grew by ${Math.round(growth / 1048576)} MiB (from ${Math.round(baseline / 1048576)} MiB), bound ${RSS_BOUND / 1048576} MiB`,
    );
  });
});

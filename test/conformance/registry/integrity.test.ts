import assert from 'node:assert/strict';
import { readdir, readFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { digestOf } from '../../../src/oci/index.js';
import { pathFor } from '../../../src/registry/index.js';
import {
  assertError,
  imageConfig,
  imageManifest,
  randomLayer,
  RegistryClient,
  registrySuite,
  repoName,
  startUpload,
  withDigest,
} from '../../helpers/oci-fixtures.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';

/** Every file under `dir`, relative paths. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) await walk(join(d, e.name), `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}`);
    }
  };
  await walk(dir, '');
  return out.sort();
}

function storage(reg: TestRegistry, path: string): string {
  return join(reg.root, path);
}

/** Upload id: the last path segment of an upload Location. */
function uploadId(location: string): string {
  return location.split('?')[0]!.split('/').pop()!;
}

/** A body that sends `first`, then waits for `gate`, then sends `rest`. */
async function* stalled(first: Buffer, gate: Promise<void>, rest: Buffer): AsyncGenerator<Uint8Array> {
  yield first;
  await gate;
  yield rest;
}

/** Poll an upload's status until it holds at least `bytes` (the server has written the first chunk). */
async function waitForUploadSize(client: RegistryClient, location: string, bytes: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const res = await client.get(location);
    const m = /^0-(\d+)$/.exec(res.headers.get('range') ?? '');
    if (res.status === 204 && m && Number(m[1]) + 1 >= bytes) return;
    await sleep(10);
  }
  assert.fail(`upload ${location} never reached ${bytes} bytes`);
}

describe('registry conformance: concurrency and integrity', () => {
  const suite = registrySuite();

  it('20 concurrent monolithic pushes of one blob: all 201, stored once, no leftovers', async () => {
    const fresh = await startTestRegistry();
    try {
      const c = new RegistryClient(fresh.url);
      const name = repoName('same');
      const blob = randomLayer(300_000);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          c.request('POST', `/v2/${i % 2 ? name : `${name}-${i}`}/blobs/uploads/?digest=${blob.digest}`, {
            body: blob.bytes,
          }),
        ),
      );
      for (const r of results) {
        assert.equal(r.status, 201, r.text());
        assert.equal(r.headers.get('docker-content-digest'), blob.digest);
      }
      const blobFiles = await filesUnder(storage(fresh, pathFor({ kind: 'blobs' })));
      assert.deepEqual(blobFiles, [`sha256/${blob.digest.slice(7, 9)}/${blob.digest.slice(7)}/data`]);
      const all = await filesUnder(storage(fresh, pathFor({ kind: 'root' })));
      assert.deepEqual(
        all.filter((f) => f.includes('_uploads/') || f.endsWith('.tmp')),
        [],
        'uploads or temp files left behind',
      );
      for (let i = 0; i < 20; i++) {
        const res = await c.get(`/v2/${i % 2 ? name : `${name}-${i}`}/blobs/${blob.digest}`);
        assert.equal(res.status, 200);
        assert.ok(res.body.equals(blob.bytes));
      }
    } finally {
      await fresh.stop();
    }
  });

  it('20 concurrent PUTs of different manifests to one tag: all 201, the tag names one of them, all readable', async () => {
    const name = repoName('race');
    const images = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const layers = [randomLayer(2000), randomLayer(3000)];
        const config = imageConfig(layers);
        await Promise.all([config, ...layers].map((b) => suite.client.pushBlob(name, b)));
        return { manifest: imageManifest({ config, layers }), blobs: [config, ...layers] };
      }),
    );
    const results = await Promise.all(
      images.map((img) =>
        suite.client.request('PUT', `/v2/${name}/manifests/latest`, {
          headers: { 'content-type': img.manifest.mediaType },
          body: img.manifest.bytes,
        }),
      ),
    );
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 201, r.text());
      assert.equal(r.headers.get('docker-content-digest'), images[i]!.manifest.digest);
    }
    const tagged = await suite.client.get(`/v2/${name}/manifests/latest`);
    assert.equal(tagged.status, 200);
    const winner = images.find((img) => img.manifest.digest === tagged.headers.get('docker-content-digest'));
    assert.ok(winner, 'the tag names none of the pushed manifests');
    assert.ok(tagged.body.equals(winner.manifest.bytes));
    for (const b of winner.blobs) {
      const res = await suite.client.get(`/v2/${name}/blobs/${b.digest}`);
      assert.equal(res.status, 200);
      assert.ok(res.body.equals(b.bytes));
    }
    for (const img of images) {
      const res = await suite.client.get(`/v2/${name}/manifests/${img.manifest.digest}`);
      assert.equal(res.status, 200);
      assert.ok(res.body.equals(img.manifest.bytes));
    }
    assert.deepEqual((await suite.client.get(`/v2/${name}/tags/list`)).json(), { name, tags: ['latest'] });
  });

  it('concurrent PATCHes to one upload never interleave: the upload holds whole chunks', async () => {
    const name = repoName('patch');
    const loc = await startUpload(suite.client, name);
    const size = 200_000;
    const chunks = Array.from({ length: 6 }, () => randomLayer(size).bytes);
    const results = await Promise.all(chunks.map((c) => suite.client.request('PATCH', loc, { body: c })));
    const accepted = chunks.filter((_, i) => results[i]!.status === 202);
    assert.ok(accepted.length >= 1, 'no PATCH accepted');
    for (const r of results) if (r.status !== 202) assertError(r, 400, 'BLOB_UPLOAD_INVALID');
    const status = await suite.client.get(loc);
    assert.equal(status.headers.get('range'), `0-${accepted.length * size - 1}`);
    // The stored bytes are the accepted chunks, each whole, each once, in some order.
    const stored = await readFile(storage(suite.reg, pathFor({ kind: 'uploadData', name, id: uploadId(loc) })));
    assert.equal(stored.length, accepted.length * size);
    const left = [...accepted];
    for (let off = 0; off < stored.length; off += size) {
      const i = left.findIndex((c) => c.equals(stored.subarray(off, off + size)));
      assert.ok(i >= 0, `bytes at ${off} are not one accepted chunk`);
      left.splice(i, 1);
    }
    const put = await suite.client.request('PUT', withDigest(loc, digestOf(stored)));
    assert.equal(put.status, 201, put.text());
  });

  // The timeout also catches a close() that hangs on a connection whose request was in flight.
  it('a server closed mid-upload leaves nothing visible; the upload resumes after a restart', {
    timeout: 30_000,
  }, async () => {
    const fresh = await startTestRegistry();
    let second: TestRegistry | undefined;
    try {
      const c = new RegistryClient(fresh.url);
      const name = repoName('closed');
      const blob = randomLayer(2 << 20);
      const half = 1 << 20;

      // 1. A chunk in flight when close() is called finishes (graceful close); nothing is committed.
      const loc = await startUpload(c, name);
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const patch = c.request('PATCH', loc, {
        body: stalled(blob.bytes.subarray(0, half), gate, blob.bytes.subarray(half)),
      });
      await waitForUploadSize(c, loc, half);

      // 2. A monolithic push whose client goes away mid-body.
      const other = randomLayer(2 << 20);
      const abort = new AbortController();
      const never = new Promise<void>(() => {});
      const monoLoc = `/v2/${name}/blobs/uploads/?digest=${other.digest}`;
      const mono = fetch(c.url(monoLoc), {
        method: 'POST',
        body: stalled(other.bytes.subarray(0, half), never, other.bytes.subarray(half)) as unknown as BodyInit,
        duplex: 'half',
        signal: abort.signal,
      } as RequestInit).catch((err: unknown) => err);
      // Wait until its bytes reached an upload directory.
      const uploadsDir = storage(fresh, pathFor({ kind: 'uploads', name }));
      for (let i = 0; i < 500; i++) {
        const files = await filesUnder(uploadsDir);
        if (files.filter((f) => f.endsWith('/data')).length >= 2) break;
        await sleep(10);
      }

      const closing = fresh.close();
      release();
      const patched = await patch;
      assert.equal(patched.status, 202);
      assert.equal(patched.headers.get('range'), `0-${blob.size - 1}`);
      abort.abort();
      assert.ok((await mono) instanceof Error, 'the aborted push did not fail on the client');
      await closing;

      second = await startTestRegistry({}, fresh.root);
      const c2 = new RegistryClient(second.url);
      for (const d of [blob.digest, other.digest]) {
        assert.equal((await c2.head(`/v2/${name}/blobs/${d}`)).status, 404);
        assertError(await c2.get(`/v2/${name}/blobs/${d}`), 404, 'BLOB_UNKNOWN');
      }
      assert.ok(!(await c2.get('/v2/_catalog')).json<{ repositories: string[] }>().repositories.includes(name));
      assertError(await c2.get(`/v2/${name}/tags/list`), 404, 'NAME_UNKNOWN');

      // The acknowledged upload survives and completes on the new server (the digest is recomputed from disk).
      const status = await c2.get(loc);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), `0-${blob.size - 1}`);
      const put = await c2.request('PUT', withDigest(loc, blob.digest));
      assert.equal(put.status, 201, put.text());
      const got = await c2.get(`/v2/${name}/blobs/${blob.digest}`);
      assert.ok(got.body.equals(blob.bytes));
      // The abandoned one is purged, and the other blob never appears.
      assert.equal(await second.context.store.purgeUploads(new Date(Date.now() + 1000)), 1);
      assert.deepEqual(await filesUnder(uploadsDir), []);
      assert.equal((await c2.head(`/v2/${name}/blobs/${other.digest}`)).status, 404);
    } finally {
      await second?.close();
      await fresh.stop();
    }
  });

  it('RegistryStore.purgeUploads removes stale uploads only, in every repository', async () => {
    const fresh = await startTestRegistry();
    try {
      const c = new RegistryClient(fresh.url);
      const a = repoName('purge');
      const b = repoName('purge');
      await c.pushBlob(a, randomLayer(10)); // a is a repository; b only ever has uploads
      const recent = await startUpload(c, a);
      const stale = await startUpload(c, a);
      const revived = await startUpload(c, a);
      const staleB = await startUpload(c, b);
      for (const loc of [recent, stale, revived, staleB]) {
        assert.equal((await c.request('PATCH', loc, { body: Buffer.alloc(100, 1) })).status, 202);
      }
      const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
      const age = async (name: string, loc: string, data: boolean) => {
        const id = uploadId(loc);
        await fresh.context.driver.putContent(pathFor({ kind: 'uploadStartedAt', name, id }), twoDaysAgo.toISOString());
        if (data) await utimes(storage(fresh, pathFor({ kind: 'uploadData', name, id })), twoDaysAgo, twoDaysAgo);
      };
      await age(a, stale, true);
      await age(a, revived, false); // started long ago, written to just now: still in use
      await age(b, staleB, true);
      const oneDayAgo = new Date(Date.now() - 24 * 3600 * 1000);
      assert.equal(await fresh.context.store.purgeUploads(oneDayAgo), 2);
      assert.equal((await c.get(recent)).status, 204);
      assert.equal((await c.get(revived)).status, 204);
      assertError(await c.get(stale), 404, 'BLOB_UPLOAD_UNKNOWN');
      assertError(await c.get(staleB), 404, 'BLOB_UPLOAD_UNKNOWN');
      assert.equal(await fresh.context.store.purgeUploads(oneDayAgo), 0);
      // Everything older than "now + 1s": the two left.
      assert.equal(await fresh.context.store.purgeUploads(new Date(Date.now() + 1000)), 2);
      assertError(await c.get(recent), 404, 'BLOB_UPLOAD_UNKNOWN');
      assert.deepEqual((await c.get('/v2/_catalog')).json(), { repositories: [a] });
    } finally {
      await fresh.stop();
    }
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { ContentStore } from '../../src/content/index.js';
import { type Digest, digestOf } from '../../src/oci/index.js';
import { tempDir } from '../helpers/env.js';

/** The contract every content store honours; run against each implementation (today: the local filesystem one). */
function contentStoreSuite(name: string, open: () => Promise<{ store: ContentStore; cleanup: () => Promise<void> }>) {
  describe(`content store conformance: ${name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    const fresh = async () => {
      const s = await open();
      cleanups.push(s.cleanup);
      return s.store;
    };
    after(async () => {
      for (const c of cleanups) await c();
    });

    it('put returns the digest and size, and read gives the bytes back', async () => {
      const store = await fresh();
      const data = randomBytes(300_000);
      const info = await store.put(Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
      assert.equal(info.digest, digestOf(data));
      assert.equal(info.size, data.length);
      const chunks: Buffer[] = [];
      for await (const c of await store.read(info.digest)) chunks.push(c as Buffer);
      assert.ok(Buffer.concat(chunks).equals(data));
      assert.deepEqual(await store.info(info.digest), { digest: info.digest, size: data.length });
    });

    it('a digest or size mismatch stores nothing', async () => {
      const store = await fresh();
      const data = Buffer.from('hello');
      const wrong = digestOf('other');
      await assert.rejects(store.put(data, { digest: wrong }), /digest mismatch/);
      await assert.rejects(store.put(data, { size: 4 }), /size mismatch/);
      await assert.rejects(store.put(data, { size: 6 }), /size mismatch/);
      assert.equal(await store.has(digestOf(data)), false);
      const all = [];
      for await (const b of store.walk()) all.push(b);
      assert.deepEqual(all, []);
    });

    it('nothing is visible before commit, and abort leaves nothing', async () => {
      const store = await fresh();
      const data = Buffer.from('staged');
      const ing = await store.ingest(data);
      assert.equal(await store.has(ing.digest), false);
      await ing.commit();
      assert.equal(await store.has(ing.digest), true);
      const other = await store.ingest(Buffer.from('dropped'));
      await other.abort();
      assert.equal(await store.has(other.digest), false);
    });

    it('the same blob put twice is stored once', async () => {
      const store = await fresh();
      const data = Buffer.from('twice');
      await Promise.all([store.put(data), store.put(data)]);
      const all = [];
      for await (const b of store.walk()) all.push(b.digest);
      assert.deepEqual(all, [digestOf(data)]);
    });

    it('ranged reads start at the offset; unknown blobs are NOT_FOUND', async () => {
      const store = await fresh();
      const { digest } = await store.put(Buffer.from('0123456789'));
      const chunks: Buffer[] = [];
      for await (const c of await store.read(digest, { start: 4 })) chunks.push(c as Buffer);
      assert.equal(Buffer.concat(chunks).toString(), '456789');
      await assert.rejects(
        store.read(digestOf('missing') as Digest),
        (e: Error & { code?: string }) => e.code === 'NOT_FOUND',
      );
    });

    it('delete removes a blob; verify re-hashes it', async () => {
      const store = await fresh();
      const { digest } = await store.put(Buffer.from('bye'));
      assert.equal(await store.verify(digest), digest);
      assert.equal(await store.delete(digest), true);
      assert.equal(await store.delete(digest), false);
    });
  });
}

contentStoreSuite('local filesystem', async () => {
  const dir = await tempDir();
  return { store: new ContentStore(join(dir.path, 'root')), cleanup: dir.cleanup };
});

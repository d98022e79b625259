import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';

// Blob GETs from the filesystem driver go through a pool of reused 1 MiB buffers (handlers/send-file.ts): these
// check that no response ever carries bytes of another, whatever the chunk boundaries, concurrency and aborts.

const MiB = 1024 * 1024;
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function push(base: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(post.status, 202);
  const location = new URL(post.headers.get('location')!, base);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', body: new Uint8Array(data) });
  assert.equal(put.status, 201);
  return digest;
}

async function get(url: string, range?: string): Promise<{ status: number; body: Buffer; headers: Headers }> {
  const r = await fetch(url, range ? { headers: { range } } : {});
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()), headers: r.headers };
}

/** Start a GET and drop the connection after the first `after` bytes. */
function abortedGet(url: string, after: number): Promise<void> {
  return new Promise((resolve) => {
    const req = request(url, (res) => {
      let got = 0;
      res.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= after) req.destroy();
      });
      res.on('end', resolve);
    });
    req.on('error', () => {});
    req.on('close', resolve);
    req.end();
  });
}

/** Descriptors of this process open on files under `dir` (the registry runs in this process). */
function openFilesUnder(dir: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir)) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

async function metric(base: string, prefix: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

describe('registry: blob bodies served from reused buffers', () => {
  let reg: TestRegistry;
  const blobs: Array<{ data: Buffer; url: string }> = [];

  before(async () => {
    reg = await startTestRegistry();
    // Sizes around the 1 MiB chunk: below, exactly one, one more byte, several and a tail.
    for (const size of [1, MiB - 1, MiB, MiB + 1, 5 * MiB + 123]) {
      const data = randomBytes(size);
      const digest = await push(reg.url, 'serve/test', data);
      blobs.push({ data, url: `${reg.url}/v2/serve/test/blobs/${digest}` });
    }
  });
  after(async () => reg?.stop());

  it('concurrent GETs of blobs of every size each get exactly their own bytes', async () => {
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => blobs[i % blobs.length]!).map(async (b) => ({ b, r: await get(b.url) })),
    );
    for (const { b, r } of results) {
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-length'), String(b.data.length));
      assert.ok(r.body.equals(b.data), `body of a ${b.data.length}-byte blob differs`);
    }
  });

  it('ranges across chunk boundaries return the right bytes', async () => {
    const big = blobs[4]!;
    const size = big.data.length;
    const cases: Array<[string, number, number]> = [
      ['bytes=0-0', 0, 0],
      [`bytes=${MiB - 1}-${MiB}`, MiB - 1, MiB],
      [`bytes=${MiB - 10}-${3 * MiB + 10}`, MiB - 10, 3 * MiB + 10],
      [`bytes=${2 * MiB}-`, 2 * MiB, size - 1],
      ['bytes=-100', size - 100, size - 1],
      [`bytes=${size - 1}-${size + 1000}`, size - 1, size - 1],
    ];
    const answers = await Promise.all(cases.map(([range]) => get(big.url, range)));
    for (const [i, [range, start, end]] of cases.entries()) {
      const r = answers[i]!;
      assert.equal(r.status, 206, range);
      assert.equal(r.headers.get('content-range'), `bytes ${start}-${end}/${size}`, range);
      assert.ok(r.body.equals(big.data.subarray(start, end + 1)), `bytes of ${range} differ`);
    }
  });

  it('clients that drop the connection mid-body leak no file and corrupt no other response', async () => {
    const big = blobs[4]!;
    const before = await metric(reg.url, 'strata_registry_requests_total{route="blob",method="GET",status="200"}');
    const work: Array<Promise<unknown>> = [];
    for (let i = 0; i < 30; i++) {
      work.push(abortedGet(big.url, (i % 5) * 300_000 + 1));
      work.push(get(blobs[i % 4]!.url).then((r) => assert.ok(r.body.equals(blobs[i % 4]!.data))));
    }
    await Promise.all(work);
    const r = await get(big.url);
    assert.ok(r.body.equals(big.data));
    // Completed responses are still counted by the onResponse hook.
    const after = await metric(reg.url, 'strata_registry_requests_total{route="blob",method="GET",status="200"}');
    assert.ok(after - before >= 31, `GET 200 grew by ${after - before}`);
    // Aborted responses close their files once the server sees the disconnect.
    for (let i = 0; i < 50 && openFilesUnder(reg.root) > 0; i++) await new Promise((res) => setTimeout(res, 50));
    assert.equal(openFilesUnder(reg.root), 0, 'blob files left open');
  });
});

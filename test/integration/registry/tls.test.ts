import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { Agent, fetch as undiciFetch } from 'undici';
import { parseChallenges } from '../../../src/distribution/index.js';
import { inCI, tempDir } from '../../helpers/env.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';

/** A self-signed P-256 certificate for 127.0.0.1 (and localhost), made with openssl. */
function makeCert(dir: string): { cert: string; key: string } | string {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { encoding: 'utf8' },
  );
  if (r.error || r.status !== 0) return `openssl failed: ${r.error?.message ?? r.stderr}`;
  return { cert, key };
}

describe('registry TLS', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let files: { cert: string; key: string } | undefined;
  let ca: Buffer;
  let skipReason: string | undefined;
  let reg: TestRegistry | undefined;
  let trusted: Agent;

  before(async () => {
    work = await tempDir('strata-tls-');
    const made = makeCert(work.path);
    if (typeof made === 'string') {
      if (inCI) throw new Error(made);
      skipReason = made;
      return;
    }
    files = made;
    ca = await readFile(made.cert);
    trusted = new Agent({ connect: { ca } });
    reg = await startTestRegistry({ tls: files });
  });
  after(async () => {
    await reg?.stop();
    await trusted?.close();
    await work?.cleanup();
  });

  it('serves /v2/ over https to a client that trusts the certificate', async (t) => {
    if (skipReason) return t.skip(skipReason);
    assert.match(reg!.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await undiciFetch(`${reg!.url}/v2/`, { dispatcher: trusted });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    // The name in the certificate is what is checked: localhost is in the SAN list too.
    const byName = await undiciFetch(`https://localhost:${reg!.port}/v2/`, { dispatcher: trusted });
    assert.equal(byName.status, 200);
  });

  it('a client without the CA refuses the self-signed certificate; rejectUnauthorized:false accepts it', async (t) => {
    if (skipReason) return t.skip(skipReason);
    await assert.rejects(undiciFetch(`${reg!.url}/v2/`), (err: Error & { cause?: { code?: string } }) =>
      /SELF_SIGNED|UNABLE_TO_VERIFY|self.signed/i.test(`${err.cause?.code} ${err.cause}`),
    );
    const insecure = new Agent({ connect: { rejectUnauthorized: false } });
    try {
      const res = await undiciFetch(`${reg!.url}/v2/`, { dispatcher: insecure });
      assert.equal(res.status, 200);
    } finally {
      await insecure.close();
    }
  });

  it('plain http to the TLS port fails', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const ac = AbortSignal.timeout(5000);
    await assert.rejects(undiciFetch(`http://127.0.0.1:${reg!.port}/v2/`, { signal: ac }));
  });

  it('blobs go up and come back over TLS', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const data = Buffer.from('bytes over tls\n');
    const { createHash } = await import('node:crypto');
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const put = await undiciFetch(`${reg!.url}/v2/tls/test/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      body: data,
      headers: { 'content-type': 'application/octet-stream' },
      dispatcher: trusted,
    });
    assert.equal(put.status, 201);
    assert.match(put.headers.get('location') ?? '', new RegExp(`/v2/tls/test/blobs/${digest}$`));
    const get = await undiciFetch(`${reg!.url}/v2/tls/test/blobs/${digest}`, { dispatcher: trusted });
    assert.equal(get.status, 200);
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
  });

  it('with token auth the default realm is https (this server as the client reached it)', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const htpasswd = join(work.path, 'htpasswd');
    await writeFile(htpasswd, `tls-user:${bcrypt.hashSync('tls-Password', 5)}\n`);
    const treg = await startTestRegistry({ tls: files!, auth: { htpasswd: { path: htpasswd }, token: {} } });
    t.after(() => treg.stop());
    const res = await undiciFetch(`${treg.url}/v2/tls/test/tags/list`, { dispatcher: trusted });
    assert.equal(res.status, 401);
    const [ch] = parseChallenges(res.headers.get('www-authenticate') ?? '');
    assert.equal(ch?.params['realm'], `https://127.0.0.1:${treg.port}/token`);
    const url = new URL(ch!.params['realm']!);
    url.searchParams.set('service', ch!.params['service']!);
    url.searchParams.set('scope', ch!.params['scope']!);
    const tr = await undiciFetch(url, {
      dispatcher: trusted,
      headers: { authorization: `Basic ${Buffer.from('tls-user:tls-Password').toString('base64')}` },
    });
    assert.equal(tr.status, 200);
    const { token } = (await tr.json()) as { token: string };
    const again = await undiciFetch(`${treg.url}/v2/tls/test/tags/list`, {
      dispatcher: trusted,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(again.status, 404);
  });

  it('a missing certificate file fails the start, naming the file', async (t) => {
    if (skipReason) return t.skip(skipReason);
    await assert.rejects(
      startTestRegistry({ tls: { cert: join(work.path, 'missing.pem'), key: files!.key } }),
      /missing\.pem/,
    );
  });
});

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import {
  createTransport,
  isInsecureRegistry,
  parseRetryAfter,
  RegistryError,
  type RequestScope,
  redactUrl,
  registryOrigin,
  StaticCredentialStore,
  scopeStrings,
  type Transport,
} from '../../../src/remote/index.js';
import { hasTool, inCI, tempDir } from '../../helpers/env.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { DOCKER_REGISTRY, startDockerRegistry } from '../../helpers/registry-process.js';

/**
 * The registry client's transport against real servers on 127.0.0.1: strata's own registry (anonymous, htpasswd,
 * token auth), Debian's docker-registry with htpasswd, and tiny node:http servers that answer 429/500/redirects
 * on purpose (real sockets, real HTTP: nothing is mocked).
 */

const PASSWORDS = { alice: 'alice-Pa55word!', bob: 'bob-Pa55word!' };
const RULES = [
  { repository: '**', users: ['alice'], actions: ['*' as const] },
  { repository: 'bob/**', users: ['bob'], actions: ['pull' as const, 'push' as const] },
  { repository: 'public/*', users: ['anonymous'], actions: ['pull' as const] },
];

let work: { path: string; cleanup: () => Promise<void> };
let htpasswd: string;

before(async () => {
  work = await tempDir('strata-transport-');
  htpasswd = join(work.path, 'htpasswd');
  await writeFile(
    htpasswd,
    `${Object.entries(PASSWORDS)
      .map(([u, p]) => `${u}:${bcrypt.hashSync(p, 5)}`)
      .join('\n')}\n`,
  );
});
after(() => work?.cleanup());

const hostOf = (url: string) => new URL(url).host;
const pull = (name: string): RequestScope => ({ name, actions: ['pull'] });
const push = (name: string): RequestScope => ({ name, actions: ['pull', 'push'] });

function blob(n = 1000): { data: Buffer; digest: string } {
  const data = randomBytes(n);
  return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
}

/** Monolithic upload (POST, then PUT ?digest= with the bytes), as a pusher does it. */
async function upload(t: Transport, repo: string, b: { data: Buffer; digest: string }, streamed = false) {
  const start = await t.request({ method: 'POST', path: `/v2/${repo}/blobs/uploads/`, scope: push(repo) });
  await start.dump();
  assert.equal(start.status, 202);
  const loc = new URL(String(start.headers.location), t.origin);
  loc.searchParams.set('digest', b.digest);
  const put = await t.request({
    method: 'PUT',
    path: loc.href,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(b.data.length) },
    body: streamed ? Readable.from([b.data.subarray(0, 100), b.data.subarray(100)]) : b.data,
    scope: push(repo),
  });
  await put.dump();
  assert.equal(put.status, 201);
}

async function getBlob(t: Transport, repo: string, digest: string): Promise<Buffer> {
  const res = await t.request({ method: 'GET', path: `/v2/${repo}/blobs/${digest}`, scope: pull(repo) });
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** `strata_registry_requests_total` summed over the lines matching `filter`. */
async function metricCount(reg: TestRegistry, filter: RegExp): Promise<number> {
  const text = await (await fetch(`${reg.url}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('strata_registry_requests_total{') && filter.test(line)) n += Number(line.split(' ').pop());
  }
  return n;
}

function assertNoSecrets(text: string, ...secrets: string[]): void {
  for (const s of secrets) assert.ok(!text.includes(s), `a secret appears in: ${text}`);
  assert.doesNotMatch(text, /Basic [A-Za-z0-9+/=]{8,}|Bearer [A-Za-z0-9._-]{8,}/);
}

/** A node:http server on 127.0.0.1 answering with `handler`, recording every request it saw. */
async function tinyServer(
  handler: (req: IncomingMessage, res: ServerResponse, n: number, body: Buffer) => void,
): Promise<{
  server: Server;
  url: string;
  host: string;
  seen: { method: string; url: string; headers: IncomingMessage['headers'] }[];
}> {
  const seen: { method: string; url: string; headers: IncomingMessage['headers'] }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers });
      handler(req, res, seen.length, Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}`, seen };
}

function closeServer(s: Server): Promise<void> {
  s.closeAllConnections();
  return new Promise((r) => s.close(() => r()));
}

describe('transport: origins and helpers (pure)', () => {
  it('https by default, plain http for loopback and insecure registries, docker.io -> registry-1', () => {
    assert.equal(registryOrigin('docker.io'), 'https://registry-1.docker.io');
    assert.equal(registryOrigin('index.docker.io'), 'https://registry-1.docker.io');
    assert.equal(registryOrigin('ghcr.io'), 'https://ghcr.io');
    assert.equal(registryOrigin('quay.io:443'), 'https://quay.io:443');
    assert.equal(registryOrigin('localhost:5000'), 'http://localhost:5000');
    assert.equal(registryOrigin('localhost'), 'http://localhost');
    assert.equal(registryOrigin('127.0.0.1:5000'), 'http://127.0.0.1:5000');
    assert.equal(registryOrigin('127.1.2.3:5000'), 'http://127.1.2.3:5000');
    assert.equal(registryOrigin('[::1]:5000'), 'http://[::1]:5000');
    assert.equal(registryOrigin('10.1.2.3:5000'), 'https://10.1.2.3:5000');
    assert.equal(registryOrigin('10.1.2.3:5000', ['10.0.0.0/8']), 'http://10.1.2.3:5000');
    assert.equal(registryOrigin('reg.lan:5000', ['reg.lan:5000']), 'http://reg.lan:5000');
    assert.equal(registryOrigin('reg.lan:5000', ['http://reg.lan:5000/']), 'http://reg.lan:5000');
    assert.equal(registryOrigin('reg.lan:5001', ['reg.lan:5000']), 'https://reg.lan:5001');
    assert.equal(isInsecureRegistry('192.168.1.9', ['192.168.0.0/16']), true);
    assert.equal(isInsecureRegistry('192.169.1.9', ['192.168.0.0/16']), false);
  });

  it('scopes: one per repository, mount sources included, actions in canonical order', () => {
    assert.deepEqual(scopeStrings({ name: 'a/b', actions: ['push', 'pull'] }), ['repository:a/b:pull,push']);
    assert.deepEqual(
      scopeStrings({ name: 'dst', actions: ['pull', 'push'], also: [{ name: 'src', actions: ['pull'] }] }),
      ['repository:dst:pull,push', 'repository:src:pull'],
    );
    assert.deepEqual(scopeStrings({ name: '', actions: [] }), []);
  });

  it('Retry-After in seconds or as an HTTP date; URLs in messages lose their query', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter(new Date(Date.now() + 5000).toUTCString(), Date.now()) !== undefined, true);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(undefined), undefined);
    assert.equal(
      redactUrl('https://cdn.example/blobs/x?X-Amz-Signature=secret&X-Amz-Credential=k'),
      'https://cdn.example/blobs/x',
    );
  });
});

describe('transport: anonymous (strata registry, no auth)', () => {
  let reg: TestRegistry;
  let t: Transport;
  before(async () => {
    reg = await startTestRegistry();
    t = createTransport(hostOf(reg.url));
  });
  after(async () => {
    await t?.close();
    await reg?.stop();
  });

  it('GET /v2/ over plain http; push and pull a blob; stats count bytes both ways', async () => {
    assert.equal(t.origin, reg.url);
    const res = await t.request({ method: 'GET', path: '/v2/', scope: { name: '', actions: [] } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    await res.dump();
    const b = blob(200_000);
    const before = { ...t.stats };
    await upload(t, 'anon/app', b);
    assert.deepEqual(await getBlob(t, 'anon/app', b.digest), b.data);
    assert.ok(t.stats.bytesOut - before.bytesOut >= b.data.length);
    assert.ok(t.stats.bytesIn - before.bytesIn >= b.data.length);
    assert.equal(t.stats.retries, 0);
    assert.equal(t.auth.scheme, undefined);
  });

  it('a status the caller does not accept is a RegistryError with the registry code, method, URL and hint', async () => {
    await assert.rejects(
      t.request({ method: 'GET', path: '/v2/anon/none/manifests/latest', scope: pull('anon/none') }),
      (err: RegistryError) => {
        assert.ok(err instanceof RegistryError);
        assert.equal(err.code, 'NOT_FOUND');
        assert.equal(err.status, 404);
        assert.match(err.message, /^GET http:\/\/127\.0\.0\.1:\d+\/v2\/anon\/none\/manifests\/latest: 404/);
        assert.match(err.message, /manifest_unknown|name_unknown/);
        assert.ok(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN'].includes(err.errors[0]!.code));
        assert.match(err.hint ?? '', /check the repository name/);
        return true;
      },
    );
    const res = await t.request({
      method: 'HEAD',
      path: '/v2/anon/none/manifests/latest',
      scope: pull('anon/none'),
      accept: [404],
    });
    assert.equal(res.status, 404);
    await res.dump();
  });

  it('a streamed body is sent as a stream (never collected first)', async () => {
    await upload(t, 'anon/streamed', blob(300_000), true);
  });
});

describe('transport: Basic auth (strata registry with htpasswd)', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry({ auth: { htpasswd: { path: htpasswd }, access: RULES } });
  });
  after(() => reg?.stop());

  it('learns the Basic challenge from the first 401, then sends credentials up front', async () => {
    const t = createTransport(hostOf(reg.url), {
      credentials: new StaticCredentialStore({ [hostOf(reg.url)]: { username: 'bob', password: PASSWORDS.bob } }),
    });
    try {
      const b = blob();
      await upload(t, 'bob/app', b);
      assert.equal(t.auth.scheme, 'basic');
      const requests = t.stats.requests;
      assert.deepEqual(await getBlob(t, 'bob/app', b.digest), b.data);
      assert.equal(t.stats.requests, requests + 1, 'no 401 round trip once the scheme is known');
      // 401 round trips: one for the first request only.
      assert.equal(await metricCount(reg, /status="401"/), 1);
    } finally {
      await t.close();
    }
  });

  it('wrong password or none: UNAUTHENTICATED with a login hint and no secret in the message', async () => {
    for (const creds of [{ username: 'bob', password: 'not-the-Password-123' }, undefined]) {
      const t = createTransport(hostOf(reg.url), {
        ...(creds ? { credentials: new StaticCredentialStore({ [hostOf(reg.url)]: creds }) } : {}),
      });
      try {
        await assert.rejects(
          t.request({ method: 'GET', path: '/v2/bob/app/tags/list', scope: pull('bob/app') }),
          (err: RegistryError) => {
            assert.equal(err.code, 'UNAUTHENTICATED');
            assert.equal(err.status, 401);
            assert.match(err.message, /unauthorized/);
            assert.equal(err.hint, `run \`strata login ${hostOf(reg.url)}\` with an account that may do this`);
            assertNoSecrets(`${err.message} ${err.hint} ${JSON.stringify(err.details)}`, 'not-the-Password-123');
            return true;
          },
        );
      } finally {
        await t.close();
      }
    }
  });

  it('a permission the account lacks: PERMISSION_DENIED (403, DENIED)', async () => {
    const t = createTransport(hostOf(reg.url), {
      credentials: new StaticCredentialStore({ [hostOf(reg.url)]: { username: 'bob', password: PASSWORDS.bob } }),
    });
    try {
      await assert.rejects(
        t.request({ method: 'POST', path: '/v2/alice/app/blobs/uploads/', scope: push('alice/app') }),
        (err: RegistryError) => {
          assert.equal(err.code, 'PERMISSION_DENIED');
          assert.equal(err.errors[0]?.code, 'DENIED');
          assertNoSecrets(err.message, PASSWORDS.bob);
          return true;
        },
      );
    } finally {
      await t.close();
    }
  });
});

/**
 * A counting proxy in front of the registry's /token, used as the token realm (so the realm is on another origin,
 * as auth.docker.io is for Docker Hub): every token request the client sends is seen and counted here.
 */
async function tokenProxy(): Promise<{
  realm: string;
  target: { url: string };
  hits: { url: string; authorization: string | undefined }[];
  close(): Promise<void>;
}> {
  const target = { url: '' };
  const hits: { url: string; authorization: string | undefined }[] = [];
  const srv = await tinyServer((req, res) => {
    hits.push({ url: req.url!, authorization: req.headers.authorization });
    void fetch(`${target.url}${req.url}`, {
      headers: req.headers.authorization ? { authorization: req.headers.authorization } : {},
    }).then(async (r) => {
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
      res.end(Buffer.from(await r.arrayBuffer()));
    });
  });
  return { realm: `${srv.url}/token`, target, hits, close: () => closeServer(srv.server) };
}

describe('transport: Bearer token flow (strata registry with token auth)', () => {
  let reg: TestRegistry;
  let proxy: Awaited<ReturnType<typeof tokenProxy>>;
  before(async () => {
    proxy = await tokenProxy();
    reg = await startTestRegistry({
      auth: { htpasswd: { path: htpasswd }, token: { realm: proxy.realm }, access: RULES },
    });
    proxy.target.url = reg.url;
  });
  after(async () => {
    await reg?.stop();
    await proxy?.close();
  });

  const aliceStore = () =>
    new StaticCredentialStore({ [hostOf(reg.url)]: { username: 'alice', password: PASSWORDS.alice } });

  it('401 -> token for the scope -> retry; later requests of the scope reuse the cached token', async () => {
    const t = createTransport(hostOf(reg.url), { credentials: aliceStore() });
    try {
      const b = blob();
      await upload(t, 'alice/app', b);
      assert.equal(t.auth.scheme, 'bearer');
      assert.equal(t.auth.tokenRequests, 1, 'one token for repository:alice/app:pull,push');
      for (let i = 0; i < 5; i++) assert.deepEqual(await getBlob(t, 'alice/app', b.digest), b.data);
      assert.equal(t.auth.tokenRequests, 1, 'the push token covers pull: reused, no 401');
      assert.equal(await metricCount(reg, /status="401"/), 1, 'a single 401 round trip');
      // A new repository: the token is fetched up front (the challenge is known), still no 401.
      const other = await t.request({
        method: 'GET',
        path: '/v2/alice/other/tags/list',
        scope: pull('alice/other'),
        accept: [404],
      });
      await other.dump();
      assert.equal(t.auth.tokenRequests, 2);
      assert.equal(await metricCount(reg, /status="401"/), 1);
      // The token server agrees: it saw exactly two token requests, with the scopes and Basic credentials.
      assert.equal(proxy.hits.length, 2);
      const [first, second] = proxy.hits.map((h) => new URL(h.url, 'http://x'));
      assert.deepEqual(first!.searchParams.getAll('scope'), ['repository:alice/app:pull,push']);
      assert.equal(first!.searchParams.get('service'), 'strata-registry');
      assert.equal(first!.searchParams.get('account'), 'alice');
      assert.deepEqual(second!.searchParams.getAll('scope'), ['repository:alice/other:pull']);
      for (const h of proxy.hits) assert.ok(h.authorization?.startsWith('Basic '));
    } finally {
      await t.close();
    }
  });

  it('concurrent requests of one scope share one token request', async () => {
    const t = createTransport(hostOf(reg.url), { credentials: aliceStore() });
    try {
      const b = blob();
      await upload(t, 'alice/par', b);
      const t2 = createTransport(hostOf(reg.url), { credentials: aliceStore() });
      try {
        // Learn the scheme first, then fire 8 pulls of a new scope at once.
        await t2.ping();
        const before = t2.auth.tokenRequests;
        const got = await Promise.all(Array.from({ length: 8 }, () => getBlob(t2, 'alice/par', b.digest)));
        for (const g of got) assert.deepEqual(g, b.data);
        assert.equal(t2.auth.tokenRequests - before, 1);
      } finally {
        await t2.close();
      }
    } finally {
      await t.close();
    }
  });

  it('a cross-repository mount asks one token for both repositories (RequestScope.also)', async () => {
    const t = createTransport(hostOf(reg.url), { credentials: aliceStore() });
    try {
      const b = blob();
      await upload(t, 'alice/src', b);
      const res = await t.request({
        method: 'POST',
        path: `/v2/alice/dst/blobs/uploads/?mount=${b.digest}&from=alice/src`,
        scope: { name: 'alice/dst', actions: ['pull', 'push'], also: [{ name: 'alice/src', actions: ['pull'] }] },
      });
      await res.dump();
      assert.equal(res.status, 201, 'mounted');
      assert.deepEqual(await getBlob(t, 'alice/dst', b.digest), b.data);
    } finally {
      await t.close();
    }
  });

  it('a streamed body meets no 401: the scheme is learned first and the token fetched up front', async () => {
    const t = createTransport(hostOf(reg.url), { credentials: aliceStore() });
    try {
      const before401 = await metricCount(reg, /status="401"/);
      const start = await t.request({ method: 'POST', path: '/v2/alice/s/blobs/uploads/', scope: push('alice/s') });
      await start.dump();
      const b = blob(100_000);
      const loc = new URL(String(start.headers.location), t.origin);
      loc.searchParams.set('digest', b.digest);
      const t3 = createTransport(hostOf(reg.url), { credentials: aliceStore() });
      try {
        // A fresh transport whose very first request streams its body.
        const put = await t3.request({
          method: 'PUT',
          path: loc.href,
          headers: { 'content-length': String(b.data.length), 'content-type': 'application/octet-stream' },
          body: Readable.from([b.data]),
          scope: push('alice/s'),
        });
        await put.dump();
        assert.equal(put.status, 201);
        assert.equal(t3.auth.tokenRequests, 1);
      } finally {
        await t3.close();
      }
      // The POST's 401 (t) and the ping's 401 (t3), no other.
      assert.equal((await metricCount(reg, /status="401"/)) - before401, 2);
    } finally {
      await t.close();
    }
  });

  it('anonymous tokens where anonymous access is allowed; denied otherwise, with a login hint', async () => {
    const t = createTransport(hostOf(reg.url));
    try {
      const res = await t.request({
        method: 'GET',
        path: '/v2/public/app/tags/list',
        scope: pull('public/app'),
        accept: [404],
      });
      await res.dump();
      assert.equal(res.status, 404, 'authorized (the repository just does not exist)');
      await assert.rejects(
        t.request({ method: 'GET', path: '/v2/alice/app/tags/list', scope: pull('alice/app') }),
        (err: RegistryError) => {
          assert.equal(err.code, 'UNAUTHENTICATED');
          assert.match(err.hint ?? '', /strata login/);
          return true;
        },
      );
    } finally {
      await t.close();
    }
  });

  it('wrong password: the token server refuses, UNAUTHENTICATED "unauthorized", no secret in the message', async () => {
    const t = createTransport(hostOf(reg.url), {
      credentials: new StaticCredentialStore({ [hostOf(reg.url)]: { username: 'alice', password: 'Wrong-pass-9876' } }),
    });
    try {
      await assert.rejects(
        t.request({ method: 'GET', path: '/v2/alice/app/tags/list', scope: pull('alice/app') }),
        (err: Error & { code?: string; hint?: string }) => {
          assert.equal(err.code, 'UNAUTHENTICATED');
          assert.match(err.message, /unauthorized/);
          assert.match(err.hint ?? '', /strata login/);
          assertNoSecrets(`${err.message} ${err.hint}`, 'Wrong-pass-9876');
          return true;
        },
      );
    } finally {
      await t.close();
    }
  });

  it('a token that was revoked or expired early is replaced once (401 -> new token -> retry)', async () => {
    const reg2 = await startTestRegistry({ auth: { htpasswd: { path: htpasswd }, token: {}, access: RULES } });
    const t = createTransport(hostOf(reg2.url), {
      credentials: new StaticCredentialStore({ [hostOf(reg2.url)]: { username: 'alice', password: PASSWORDS.alice } }),
    });
    try {
      const b = blob();
      await upload(t, 'alice/x', b);
      // Restart the registry on the same storage: a new signing key, so every cached token is now invalid.
      const host = hostOf(reg2.url);
      await reg2.close();
      const port = Number(host.split(':')[1]);
      const reg3 = await startTestRegistry(
        { addr: `127.0.0.1:${port}`, auth: { htpasswd: { path: htpasswd }, token: {}, access: RULES } },
        reg2.root,
      );
      try {
        const before = t.auth.tokenRequests;
        assert.deepEqual(await getBlob(t, 'alice/x', b.digest), b.data);
        assert.equal(t.auth.tokenRequests - before, 1);
      } finally {
        await reg3.close();
      }
    } finally {
      await t.close();
      await reg2.stop().catch(() => {});
    }
  });
});

describe('transport: identity tokens and token expiry (tiny token server)', () => {
  /** A registry whose token server accepts the OAuth2 refresh-token grant, and tokens that live `ttl` seconds. */
  async function oauthRegistry(ttl: number) {
    let issued = 0;
    const grants: Record<string, string>[] = [];
    const live = new Map<string, number>();
    const srv = await tinyServer((req, res, _n, body) => {
      if (req.url === '/token') {
        const form = Object.fromEntries(new URLSearchParams(body.toString()));
        grants.push(form);
        if (req.method !== 'POST' || form['grant_type'] !== 'refresh_token' || form['refresh_token'] !== 'RT-good-1') {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'invalid_grant', error_description: 'refresh token rejected' }));
          return;
        }
        const token = `AT-${++issued}-xxxxxxxx`;
        live.set(token, Date.now() + ttl * 1000);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: token, expires_in: ttl, scope: form['scope'] }));
        return;
      }
      const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!m || (live.get(m[1]!) ?? 0) < Date.now()) {
        res.writeHead(401, {
          'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="tiny",scope="repository:x:pull"`,
        });
        res.end();
        return;
      }
      res.end('ok');
    });
    return { ...srv, grants };
  }

  it("docker's identitytoken: POST grant_type=refresh_token, then the access_token is used", async () => {
    const srv = await oauthRegistry(300);
    const t = createTransport(srv.host, {
      credentials: new StaticCredentialStore({ [srv.host]: { username: 'u', identityToken: 'RT-good-1' } }),
    });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await t.request({ method: 'GET', path: '/v2/x/tags/list', scope: pull('x') });
        assert.equal(await res.text(), 'ok');
      }
      assert.equal(srv.grants.length, 1);
      assert.deepEqual(srv.grants[0], {
        grant_type: 'refresh_token',
        refresh_token: 'RT-good-1',
        client_id: 'strata',
        service: 'tiny',
        scope: 'repository:x:pull',
      });
    } finally {
      await t.close();
      await closeServer(srv.server);
    }
  });

  it('a refused refresh token is UNAUTHENTICATED without the token in the message', async () => {
    const srv = await oauthRegistry(300);
    const t = createTransport(srv.host, {
      credentials: new StaticCredentialStore({ [srv.host]: { identityToken: 'RT-revoked-secret' } }),
    });
    try {
      await assert.rejects(
        t.request({ method: 'GET', path: '/v2/x/tags/list', scope: pull('x') }),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'UNAUTHENTICATED');
          assert.match(err.message, /invalid_grant: refresh token rejected/);
          assertNoSecrets(err.message, 'RT-revoked-secret');
          return true;
        },
      );
    } finally {
      await t.close();
      await closeServer(srv.server);
    }
  });

  it('a cached token is not used past expires_in (minus a margin): a new one is fetched up front', async () => {
    const srv = await oauthRegistry(1);
    const t = createTransport(srv.host, {
      credentials: new StaticCredentialStore({ [srv.host]: { identityToken: 'RT-good-1' } }),
    });
    try {
      const get = async () => (await t.request({ method: 'GET', path: '/v2/x/tags/list', scope: pull('x') })).text();
      assert.equal(await get(), 'ok');
      assert.equal(await get(), 'ok');
      assert.equal(srv.grants.length, 1);
      await new Promise((r) => setTimeout(r, 900));
      assert.equal(await get(), 'ok');
      assert.equal(srv.grants.length, 2);
      // One 401 in all: the first request's.
      assert.equal(srv.seen.filter((s) => s.url !== '/token' && !s.headers.authorization).length, 1);
    } finally {
      await t.close();
      await closeServer(srv.server);
    }
  });
});

describe('transport: retries (tiny http servers)', () => {
  it('429 with Retry-After: waits as told, then succeeds', async () => {
    const srv = await tinyServer((_req, res, n) => {
      if (n === 1) {
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }));
      } else res.end('ok');
    });
    const t = createTransport(srv.host);
    try {
      const t0 = Date.now();
      const res = await t.request({ method: 'GET', path: '/v2/x/manifests/a', scope: pull('x') });
      assert.equal(await res.text(), 'ok');
      assert.ok(Date.now() - t0 >= 950, `waited ${Date.now() - t0} ms`);
      assert.equal(t.stats.retries, 1);
      assert.equal(srv.seen.length, 2);
    } finally {
      await t.close();
      await closeServer(srv.server);
    }
  });

  it('a one-off 500 is retried with backoff; a PUT with a Buffer body is replayed whole', async () => {
    const bodies: string[] = [];
    const srv = await tinyServer((_req, res, n, body) => {
      bodies.push(body.toString());
      res.statusCode = n === 1 ? 500 : 201;
      res.end();
    });
    const retries: number[] = [];
    const t = createTransport(srv.host, { retryBaseMs: 20, onRetry: (i) => retries.push(i.attempt) });
    try {
      const res = await t.request({ method: 'PUT', path: '/v2/x/manifests/a', body: 'manifest', scope: push('x') });
      await res.dump();
      assert.equal(res.status, 201);
      assert.deepEqual(bodies, ['manifest', 'manifest']);
      assert.deepEqual(retries, [1]);
    } finally {
      await t.close();
      await closeServer(srv.server);
    }
  });

  it('gives up after maxRetries: UNAVAILABLE with the TOOMANYREQUESTS hint', async () => {
    const srv = await tinyServer((_req, res) => {
      res.writeHead(429, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'rate limited' }] }));
    });
    const t = createTransport(srv.host, { retryBaseMs: 5, maxRetries: 2 });
    try {
      await assert.rejects(
        t.request({ method: 'GET', path: '/v2/x/blobs/sha256:ab', scope: pull('x') }),
        (err: RegistryError) => {
          assert.equal(err.code, 'UNAVAILABLE');
          assert.match(err.message, /429 Too Many Requests: toomanyrequests: rate limited/);
          assert.match(err.hint ?? '', /TOOMANYREQUESTS/);
          return true;
        },
      );
      assert.equal(srv.seen.length, 3);
      assert.equal(t.stats.retries, 2);
    } finally {
      await t.close();
      await closeServer(srv.server);
    }
  });

  it('a Retry-After longer than maxRetryAfterMs is not waited for', async () => {
    const srv = await tinyServer((_req, res) => {
      res.writeHead(503, { 'retry-after': '3600' });
      res.end();
    });
    const t = createTransport(srv.host, { retryBaseMs: 5 });
    try {
      await assert.rejects(t.request({ method: 'GET', path: '/v2/', scope: pull('x') }), { code: 'UNAVAILABLE' });
      assert.equal(srv.seen.length, 1);
    } finally {
      await t.close();
      await closeServer(srv.server);
    }
  });

  it('a connection reset before any response is retried', async () => {
    let n = 0;
    const srv = await tinyServer((req, res) => {
      n++;
      if (n === 1) req.socket.destroy();
      else res.end('fine');
    });
    const t = createTransport(srv.host, { retryBaseMs: 5 });
    try {
      const res = await t.request({ method: 'GET', path: '/v2/x/tags/list', scope: pull('x') });
      assert.equal(await res.text(), 'fine');
      assert.equal(t.stats.retries, 1);
    } finally {
      await t.close();
      await closeServer(srv.server);
    }
  });

  it('a streamed body is never retried: the 500 goes to the caller (who resumes)', async () => {
    const srv = await tinyServer((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    const t = createTransport(srv.host, { retryBaseMs: 5 });
    try {
      await assert.rejects(
        t.request({
          method: 'PATCH',
          path: '/v2/x/blobs/uploads/u1',
          body: Readable.from([Buffer.alloc(1000, 1)]),
          scope: push('x'),
        }),
        (err: RegistryError) => err.status === 500 && err.code === 'UNAVAILABLE',
      );
      // The ping that learns the auth scheme (GET /v2/) and the one PATCH.
      assert.deepEqual(
        srv.seen.map((s) => s.method),
        ['GET', 'PATCH'],
      );
      assert.equal(t.stats.retries, 0);
    } finally {
      await t.close();
      await closeServer(srv.server);
    }
  });
});

describe('transport: redirects', () => {
  it("follows a blob redirect to another host without the registry's Authorization; query kept off errors", async () => {
    const cdn = await tinyServer((req, res) => {
      if (req.url!.includes('gone')) {
        res.statusCode = 403;
        res.end('<Error>AccessDenied</Error>');
      } else res.end('blob-bytes');
    });
    const registry = await tinyServer((req, res) => {
      if (req.headers.authorization !== `Basic ${Buffer.from('u:Secret-pw-42').toString('base64')}`) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' });
        res.end();
        return;
      }
      const target = req.url!.includes('gone') ? 'gone' : 'ok';
      res.writeHead(307, { location: `${cdn.url}/data/${target}?X-Amz-Signature=topsecretsig` });
      res.end();
    });
    const t = createTransport(registry.host, {
      credentials: new StaticCredentialStore({ [registry.host]: { username: 'u', password: 'Secret-pw-42' } }),
    });
    try {
      const res = await t.request({ method: 'GET', path: '/v2/x/blobs/sha256:aa', scope: pull('x') });
      assert.equal(await res.text(), 'blob-bytes');
      assert.equal(res.url, `${cdn.url}/data/ok?X-Amz-Signature=topsecretsig`);
      assert.equal(cdn.seen[0]!.headers.authorization, undefined);
      assert.ok(registry.seen.at(-1)!.headers.authorization?.startsWith('Basic '));
      await assert.rejects(
        t.request({ method: 'GET', path: '/v2/x/blobs/sha256:gone', scope: pull('x') }),
        (err: RegistryError) => {
          assert.equal(err.status, 403);
          assert.equal(err.url, `${cdn.url}/data/gone`);
          assertNoSecrets(err.message, 'topsecretsig', 'Secret-pw-42');
          return true;
        },
      );
      // An absolute URL on another host (a Location handed over by the caller) gets no Authorization either.
      const direct = await t.request({ method: 'GET', path: `${cdn.url}/data/ok`, scope: pull('x') });
      await direct.dump();
      assert.equal(cdn.seen.at(-1)!.headers.authorization, undefined);
    } finally {
      await t.close();
      await closeServer(cdn.server);
      await closeServer(registry.server);
    }
  });
});

describe("transport: Debian's docker-registry with htpasswd", () => {
  it('Basic auth: push and pull a blob; wrong password is UNAUTHENTICATED', async (t) => {
    if (!hasTool(DOCKER_REGISTRY)) {
      if (inCI) throw new Error('docker-registry is required in CI');
      t.skip('docker-registry not installed (apt-get install docker-registry)');
      return;
    }
    const dir = await tempDir('strata-distribution-');
    const reg = await startDockerRegistry(dir.path, { htpasswd });
    try {
      const good = createTransport(reg.host, {
        credentials: new StaticCredentialStore({ [reg.host]: { username: 'alice', password: PASSWORDS.alice } }),
      });
      try {
        await good.ping();
        assert.equal(good.auth.scheme, 'basic');
        const b = blob(50_000);
        await upload(good, 'team/app', b);
        await upload(good, 'team/app2', blob(70_000), true);
        assert.deepEqual(await getBlob(good, 'team/app', b.digest), b.data);
      } finally {
        await good.close();
      }
      const bad = createTransport(reg.host, {
        credentials: new StaticCredentialStore({ [reg.host]: { username: 'alice', password: 'Bad-pw-5555' } }),
      });
      try {
        await assert.rejects(bad.ping(), (err: RegistryError) => {
          assert.equal(err.code, 'UNAUTHENTICATED');
          assertNoSecrets(err.message, 'Bad-pw-5555');
          return true;
        });
      } finally {
        await bad.close();
      }
    } finally {
      await reg.stop();
      await dir.cleanup();
    }
  });
});

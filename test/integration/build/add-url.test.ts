// ADD <url>: downloads from a real HTTP and HTTPS server on 127.0.0.1 (this process), checked against --checksum; and
// the CA certificates of NODE_EXTRA_CA_CERTS, which the `strata` command hands on to be read at the first TLS
// connection instead of at every start (scripts/strata-loader.mjs, src/remote/agent.ts).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importBusybox, strata } from '../../helpers/cli.js';
import { hasTool, tempDir } from '../../helpers/env.js';
import { canRun } from '../container/helpers.js';

const payload = 'downloaded by ADD\n'.repeat(1000);
const payloadDigest = `sha256:${createHash('sha256').update(payload).digest('hex')}`;

function serve(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/payload.txt') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
  } else if (req.url === '/moved') {
    res.writeHead(302, { location: '/payload.txt' });
    res.end();
  } else {
    res.writeHead(404);
    res.end('not here\n');
  }
}

const listen = (server: Server): Promise<number> =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));

describe('the strata command defers NODE_EXTRA_CA_CERTS', () => {
  it('a command that opens no TLS connection does not read the file (Node would warn about a missing one)', async () => {
    const missing = '/nonexistent/strata-test-ca.pem';
    const r = await strata('/nonexistent-root', ['--version'], { env: { NODE_EXTRA_CA_CERTS: missing } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    // the same file given to Node directly is read at start-up: the warning this test would see without the sh line
    const direct = await strata('/nonexistent-root', ['--version'], {
      env: { NODE_EXTRA_CA_CERTS: missing },
      viaNode: true,
    });
    assert.match(direct.stderr, /Ignoring extra certs from `\/nonexistent\/strata-test-ca\.pem`/);
  });
});

describe('ADD <url>', {
  skip: canRun && hasTool('openssl') ? false : 'needs root, runc, busybox-static and openssl',
}, () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let root: string;
  let httpServer: Server;
  let httpsServer: Server;
  let httpPort: number;
  let httpsPort: number;
  let caFile: string;

  before(async () => {
    work = await tempDir('strata-add-url-');
    root = join(work.path, 'root');
    await importBusybox(root, work.path);
    // a CA of the test's own and a certificate it signs for 127.0.0.1
    const tls = join(work.path, 'tls');
    await mkdir(tls);
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: tls, stdio: 'pipe' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=strata test CA');
    ssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
    await writeFile(join(tls, 'ext'), 'subjectAltName=IP:127.0.0.1\n');
    const sign = ['-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext'];
    ssl('x509', '-req', '-in', 'server.csr', ...sign, '-out', 'server.pem');
    caFile = join(tls, 'ca.pem');
    httpServer = createHttpServer(serve);
    httpsServer = createHttpsServer(
      { key: await readFile(join(tls, 'server.key')), cert: await readFile(join(tls, 'server.pem')) },
      serve,
    );
    httpPort = await listen(httpServer);
    httpsPort = await listen(httpsServer);
  });
  after(async () => {
    httpServer?.close();
    httpsServer?.close();
    await work?.cleanup();
  });

  const context = async (name: string, dockerfile: string): Promise<string> => {
    const dir = join(work.path, name);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'Dockerfile'), dockerfile);
    return dir;
  };
  const fileIn = async (image: string, path: string) =>
    (await strata(root, ['run', '--rm', '--network', 'none', '--entrypoint', 'stat', image, '-c', '%a %u:%g %s', path]))
      .stdout;

  it('downloads over HTTP, checked against --checksum, as a 0600 file; a wrong checksum fails and tags nothing', async () => {
    const ok = await context(
      'http',
      `FROM busybox\nADD --checksum=${payloadDigest} http://127.0.0.1:${httpPort}/payload.txt /data/\n`,
    );
    const r = await strata(root, ['build', '-t', 'add:http', ok]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fileIn('add:http', '/data/payload.txt'), `600 0:0 ${Buffer.byteLength(payload)}\n`);
    const got = await strata(root, ['run', '--rm', '--entrypoint', 'cat', 'add:http', '/data/payload.txt']);
    assert.equal(got.stdout, payload);

    const wrong = `sha256:${'0'.repeat(64)}`;
    const bad = await context(
      'bad',
      `FROM busybox\nADD --checksum=${wrong} http://127.0.0.1:${httpPort}/payload.txt /x\n`,
    );
    const b = await strata(root, ['build', '-t', 'add:bad', bad]);
    assert.notEqual(b.code, 0);
    assert.match(b.stderr, /digest mismatch: expected sha256:0{64}, got sha256:[0-9a-f]{64}/);
    assert.equal((await strata(root, ['inspect', 'add:bad'])).code === 0, false);

    const missing = await context('404', `FROM busybox\nADD http://127.0.0.1:${httpPort}/nothing /x\n`);
    const m = await strata(root, ['build', missing]);
    assert.notEqual(m.code, 0);
    assert.match(m.stderr, /ADD http:\/\/127\.0\.0\.1:\d+\/nothing: HTTP 404/);
  });

  it('HTTPS: trusts the CA named by NODE_EXTRA_CA_CERTS (read when the connection is made); follows redirects', async () => {
    const dir = await context('https', `FROM busybox\nADD https://127.0.0.1:${httpsPort}/moved /data/payload.txt\n`);
    const viaCommand = await strata(root, ['build', '--no-cache', '-t', 'add:https', dir], {
      env: { NODE_EXTRA_CA_CERTS: caFile },
    });
    assert.equal(viaCommand.code, 0, viaCommand.stderr);
    const got = await strata(root, ['run', '--rm', '--entrypoint', 'cat', 'add:https', '/data/payload.txt']);
    assert.equal(got.stdout, payload);
    // Node loading the file itself (node strata.mjs) trusts it the same way
    const viaNode = await strata(root, ['build', '--no-cache', dir], {
      env: { NODE_EXTRA_CA_CERTS: caFile },
      viaNode: true,
    });
    assert.equal(viaNode.code, 0, viaNode.stderr);
    // without the CA the certificate is refused, with the way to fix it
    const untrusted = await strata(root, ['build', '--no-cache', dir], {
      env: { NODE_EXTRA_CA_CERTS: '/dev/null' },
    });
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.stderr, /ADD https:\/\/127\.0\.0\.1:\d+\/moved: .*certificate/i);
    assert.match(untrusted.stderr, /NODE_EXTRA_CA_CERTS/);
  });
});

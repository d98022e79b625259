import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import {
  authFilePath,
  createTransport,
  DOCKER_HUB_KEY,
  dockerConfigPath,
  FileCredentialStore,
} from '../../../src/remote/index.js';
import { strata } from '../../helpers/cli.js';
import { hasTool, inCI, tempDir } from '../../helpers/env.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';
import { DOCKER_REGISTRY, startDockerRegistry } from '../../helpers/registry-process.js';

/**
 * Credentials and `strata login` / `strata logout`, end to end: the built CLI against strata's registry (htpasswd
 * and token auth) and Debian's docker-registry, with HOME, STRATA_CONFIG_DIR and DOCKER_CONFIG in temp dirs.
 *
 * The credential-helper tests put a real program, `docker-credential-test` (a small sh script speaking docker's
 * credential-helper protocol: `get`, server URL on stdin, JSON on stdout), on PATH in a temp dir. It is a stand-in
 * for docker-credential-pass/-secretservice, which need a keyring; the protocol and the process boundary are real.
 */

const PASSWORD = 'alice-Pa55word!';
const WRONG = 'Wrong-Pa55word-77';
let work: { path: string; cleanup: () => Promise<void> };
let htpasswd: string;
let binDir: string;

before(async () => {
  work = await tempDir('strata-login-');
  htpasswd = join(work.path, 'htpasswd');
  await writeFile(htpasswd, `alice:${bcrypt.hashSync(PASSWORD, 5)}\n`);
  binDir = join(work.path, 'bin');
  await mkdir(binDir);
  const helper = join(binDir, 'docker-credential-test');
  // Answers for the servers listed in $HELPER_DB (lines "server user secret"); logs each request to $HELPER_LOG.
  await writeFile(
    helper,
    [
      '#!/bin/sh',
      '[ "$1" = get ] || { echo "unsupported action $1" >&2; exit 1; }',
      'read -r server',
      'echo "$server" >> "$HELPER_LOG"',
      'while read -r s u p; do',
      '  if [ "$s" = "$server" ]; then',
      '    printf \'{"ServerURL":"%s","Username":"%s","Secret":"%s"}\\n\' "$s" "$u" "$p"',
      '    exit 0',
      '  fi',
      'done < "$HELPER_DB"',
      'echo "credentials not found in native keychain"',
      'exit 1',
      '',
    ].join('\n'),
  );
  await chmod(helper, 0o755);
});
after(() => work?.cleanup());

const hostOf = (url: string) => new URL(url).host;

/** A fresh HOME with strata's config dir and docker's config dir, as the CLI's environment. */
async function home(name: string): Promise<{ env: Record<string, string>; root: string; authFile: string }> {
  const dir = join(work.path, name);
  await mkdir(join(dir, 'docker'), { recursive: true });
  const env = {
    HOME: dir,
    STRATA_CONFIG_DIR: join(dir, 'config', 'strata'),
    STRATA_AUTH_FILE: '',
    DOCKER_CONFIG: join(dir, 'docker'),
    XDG_CONFIG_HOME: '',
  };
  return { env, root: join(dir, 'root'), authFile: join(dir, 'config', 'strata', 'auth.json') };
}

async function readAuth(path: string): Promise<{ auths: Record<string, { auth?: string }> }> {
  return JSON.parse(await readFile(path, 'utf8')) as { auths: Record<string, { auth?: string }> };
}

async function missing(path: string): Promise<boolean> {
  return stat(path).then(
    () => false,
    () => true,
  );
}

describe('credentials: files and helpers', () => {
  it('auth file paths: $STRATA_AUTH_FILE, $STRATA_CONFIG_DIR, XDG, ~/.config; docker: $DOCKER_CONFIG, ~/.docker', () => {
    assert.equal(authFilePath({ STRATA_AUTH_FILE: '/a/auth.json', STRATA_CONFIG_DIR: '/c' }), '/a/auth.json');
    assert.equal(authFilePath({ STRATA_CONFIG_DIR: '/c' }), '/c/auth.json');
    assert.equal(authFilePath({ XDG_CONFIG_HOME: '/x', HOME: '/h' }), '/x/strata/auth.json');
    assert.equal(authFilePath({ HOME: '/h' }), '/h/.config/strata/auth.json');
    assert.equal(dockerConfigPath({ DOCKER_CONFIG: '/d', HOME: '/h' }), '/d/config.json');
    assert.equal(dockerConfigPath({ HOME: '/h' }), '/h/.docker/config.json');
  });

  it("strata's file first, then docker's auths (by host; Docker Hub as https://index.docker.io/v1/)", async () => {
    const h = await home('files');
    await mkdir(h.env.STRATA_CONFIG_DIR, { recursive: true });
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    await writeFile(h.authFile, JSON.stringify({ auths: { 'both.example': { auth: b64('mine:pw1') } } }));
    await writeFile(
      join(h.env.DOCKER_CONFIG, 'config.json'),
      JSON.stringify({
        auths: {
          'both.example': { auth: b64('docker:pw2') },
          'https://only-docker.example:5000/v1/': { auth: b64('dk:pw:with:colons') },
          [DOCKER_HUB_KEY]: { auth: b64('hubuser:hubpw') },
          'fields.example': { username: 'u3', password: 'p3' },
          'token.example': { auth: b64('tu:'), identitytoken: 'refresh-abc' },
          'empty.example': {},
        },
      }),
    );
    const store = new FileCredentialStore({ env: h.env });
    assert.deepEqual(await store.get('both.example'), { username: 'mine', password: 'pw1' });
    assert.deepEqual(await store.get('only-docker.example:5000'), { username: 'dk', password: 'pw:with:colons' });
    for (const hub of ['docker.io', 'index.docker.io', 'registry-1.docker.io']) {
      assert.deepEqual(await store.get(hub), { username: 'hubuser', password: 'hubpw' });
    }
    assert.deepEqual(await store.get('fields.example'), { username: 'u3', password: 'p3' });
    assert.deepEqual(await store.get('token.example'), { username: 'tu', identityToken: 'refresh-abc' });
    assert.equal(await store.get('empty.example'), undefined);
    assert.equal(await store.get('nowhere.example'), undefined);
  });

  it('credHelpers per registry and credsStore, through docker-credential-<name> get', async () => {
    const h = await home('helpers');
    const db = join(h.env.HOME, 'helper-db');
    const log = join(h.env.HOME, 'helper-log');
    await writeFile(db, ['helped.example:5000 hu hsecret', `${DOCKER_HUB_KEY} hub hubsecret`, ''].join('\n'));
    await writeFile(
      join(h.env.DOCKER_CONFIG, 'config.json'),
      JSON.stringify({ auths: { 'helped.example:5000': {} }, credHelpers: { 'helped.example:5000': 'test' } }),
    );
    const env = { ...h.env, PATH: `${binDir}:${process.env['PATH']}`, HELPER_DB: db, HELPER_LOG: log };
    const store = new FileCredentialStore({ env });
    assert.deepEqual(await store.get('helped.example:5000'), { username: 'hu', password: 'hsecret' });
    assert.equal(await store.get('other.example'), undefined, 'no helper, no auths entry');
    // credsStore: every registry goes through the helper; a miss is "credentials not found", not an error.
    await writeFile(join(h.env.DOCKER_CONFIG, 'config.json'), JSON.stringify({ auths: {}, credsStore: 'test' }));
    assert.deepEqual(await store.get('docker.io'), { username: 'hub', password: 'hubsecret' });
    assert.equal(await store.get('unknown.example'), undefined);
    assert.deepEqual((await readFile(log, 'utf8')).trim().split('\n'), [
      'helped.example:5000',
      DOCKER_HUB_KEY,
      'unknown.example',
    ]);
  });

  it('a credential helper that is not installed is skipped with a warning', async () => {
    const h = await home('nohelper');
    await writeFile(join(h.env.DOCKER_CONFIG, 'config.json'), JSON.stringify({ credsStore: 'nonexistent-xyz' }));
    const warnings: string[] = [];
    const store = new FileCredentialStore({ env: h.env, warn: (m) => warnings.push(m) });
    assert.equal(await store.get('example.com'), undefined);
    assert.equal(await store.get('example.org'), undefined);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /docker-credential-nonexistent-xyz .*not installed; skipping it/);
  });

  it('store and erase: mode 0600 in a 0700 directory, other entries and fields kept', async () => {
    const h = await home('store');
    const store = new FileCredentialStore({ env: h.env });
    await store.store('a.example', { username: 'ua', password: 'pa' });
    await store.store('docker.io', { username: 'uh', password: 'ph' });
    await store.store('http://a.example/', { username: 'ua2', password: 'pa2' });
    assert.equal((await stat(h.authFile)).mode & 0o777, 0o600);
    assert.equal((await stat(h.env.STRATA_CONFIG_DIR)).mode & 0o777, 0o700);
    const auth = await readAuth(h.authFile);
    assert.deepEqual(Object.keys(auth.auths).sort(), ['a.example', DOCKER_HUB_KEY]);
    assert.deepEqual(await store.get('a.example'), { username: 'ua2', password: 'pa2' });
    assert.equal(await store.erase('a.example'), true);
    assert.equal(await store.erase('a.example'), false);
    assert.deepEqual(Object.keys((await readAuth(h.authFile)).auths), [DOCKER_HUB_KEY]);
  });
});

describe('strata login / logout (CLI, strata registry with htpasswd)', () => {
  let reg: TestRegistry;
  let host: string;
  before(async () => {
    reg = await startTestRegistry({
      auth: { htpasswd: { path: htpasswd }, access: [{ repository: '**', users: ['alice'], actions: ['*'] }] },
    });
    host = hostOf(reg.url);
  });
  after(() => reg?.stop());

  it('--password-stdin: verifies, stores (0600) and prints Login Succeeded; logout removes the entry', async () => {
    const h = await home('cli-basic');
    const r = await strata(h.root, ['login', '-u', 'alice', '--password-stdin', host], {
      input: `${PASSWORD}\n`,
      env: h.env,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Login Succeeded\n');
    assert.ok(!r.stderr.includes(PASSWORD));
    assert.equal((await stat(h.authFile)).mode & 0o777, 0o600);
    const auth = await readAuth(h.authFile);
    assert.equal(Buffer.from(auth.auths[host]!.auth!, 'base64').toString(), `alice:${PASSWORD}`);

    // The stored credentials are what the client uses.
    const t = createTransport(host, { credentials: new FileCredentialStore({ env: h.env }) });
    try {
      const res = await t.request({ method: 'GET', path: '/v2/_catalog', scope: { name: '', actions: [] } });
      assert.equal(res.status, 200);
      await res.dump();
    } finally {
      await t.close();
    }

    // Without -u: the stored credentials are checked again.
    const again = await strata(h.root, ['login', host], { env: h.env });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'Authenticating with existing credentials...\nLogin Succeeded\n');

    const out = await strata(h.root, ['logout', host], { env: h.env });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, `Removing login credentials for ${host}\n`);
    assert.deepEqual((await readAuth(h.authFile)).auths, {});
    const out2 = await strata(h.root, ['logout', host], { env: h.env });
    assert.equal(out2.code, 0, out2.stderr);
    assert.equal(out2.stdout, `Not logged in to ${host}\n`);
  });

  it('wrong password: "Error: ... unauthorized", exit 1, nothing stored, no secret printed', async () => {
    const h = await home('cli-wrong');
    const r = await strata(h.root, ['login', '-u', 'alice', '--password-stdin', host], { input: WRONG, env: h.env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Error: .*unauthorized/m);
    assert.match(r.stderr, /Hint: check the user name and password/);
    assert.ok(!`${r.stdout}${r.stderr}`.includes(WRONG));
    assert.ok(!r.stdout.includes('Login Succeeded'));
    assert.ok(await missing(h.authFile), 'nothing stored');
  });

  it("-p works with docker's warning; no TTY without a password is a clear error; flag conflicts", async () => {
    const h = await home('cli-p');
    const r = await strata(h.root, ['login', '-u', 'alice', '-p', PASSWORD, host], { env: h.env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /WARNING! Using --password via the CLI is insecure\. Use --password-stdin\./);
    assert.equal(r.stdout, 'Login Succeeded\n');

    const h2 = await home('cli-notty');
    const n = await strata(h2.root, ['login', host], { env: h2.env });
    assert.equal(n.code, 1);
    assert.match(n.stderr, /Error: cannot perform an interactive login from a non TTY device/);
    assert.match(n.stderr, /--password-stdin/);
    const n2 = await strata(h2.root, ['login', '-u', 'alice', host], { env: h2.env });
    assert.equal(n2.code, 1);
    assert.match(n2.stderr, /non TTY device/);
    const c = await strata(h2.root, ['login', '-u', 'alice', '-p', 'x', '--password-stdin', host], { env: h2.env });
    assert.equal(c.code, 1);
    assert.match(c.stderr, /mutually exclusive/);
    const u = await strata(h2.root, ['login', '--password-stdin', host], { env: h2.env, input: 'x' });
    assert.equal(u.code, 1);
    assert.match(u.stderr, /must provide --username with --password-stdin/);
    assert.ok(await missing(h2.authFile));
  });

  it("credentials from docker's config.json and from a credential helper authenticate the client", async () => {
    const h = await home('cli-docker');
    const db = join(h.env.HOME, 'db');
    await writeFile(db, `${host} alice ${PASSWORD}\n`);
    await writeFile(join(h.env.DOCKER_CONFIG, 'config.json'), JSON.stringify({ credHelpers: { [host]: 'test' } }));
    const env = {
      ...h.env,
      PATH: `${binDir}:${process.env['PATH']}`,
      HELPER_DB: db,
      HELPER_LOG: join(h.env.HOME, 'log'),
    };
    // `strata login HOST` with nothing but the helper: checked, and not copied into strata's file.
    const r = await strata(h.root, ['login', host], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Authenticating with existing credentials...\nLogin Succeeded\n');
    assert.ok(await missing(h.authFile));
    const t = createTransport(host, { credentials: new FileCredentialStore({ env }) });
    try {
      const res = await t.request({ method: 'GET', path: '/v2/_catalog', scope: { name: '', actions: [] } });
      assert.equal(res.status, 200);
      await res.dump();
    } finally {
      await t.close();
    }
  });
});

describe('strata login (CLI, strata registry with token auth)', () => {
  it('follows the Bearer challenge to the token server with the credentials', async () => {
    const reg = await startTestRegistry({
      auth: {
        htpasswd: { path: htpasswd },
        token: {},
        access: [{ repository: '**', users: ['alice'], actions: ['*'] }],
      },
    });
    try {
      const host = hostOf(reg.url);
      const h = await home('cli-token');
      const ok = await strata(h.root, ['login', '-u', 'alice', '--password-stdin', host], {
        input: PASSWORD,
        env: h.env,
      });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, 'Login Succeeded\n');
      const h2 = await home('cli-token-wrong');
      const bad = await strata(h2.root, ['login', '-u', 'alice', '--password-stdin', host], {
        input: WRONG,
        env: h2.env,
      });
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^Error: .*unauthorized/m);
      assert.ok(!bad.stderr.includes(WRONG));
      assert.ok(await missing(h2.authFile));
      const nobody = await strata(h2.root, ['login', '-u', 'mallory', '--password-stdin', host], {
        input: WRONG,
        env: h2.env,
      });
      assert.equal(nobody.code, 1);
      assert.match(nobody.stderr, /unauthorized/);
    } finally {
      await reg.stop();
    }
  });
});

describe("strata login (CLI, Debian's docker-registry with htpasswd)", () => {
  it('logs in with the right password, refuses the wrong one', async (t) => {
    if (!hasTool(DOCKER_REGISTRY)) {
      if (inCI) throw new Error('docker-registry is required in CI');
      t.skip('docker-registry not installed (apt-get install docker-registry)');
      return;
    }
    const dir = await tempDir('strata-login-distribution-');
    const reg = await startDockerRegistry(dir.path, { htpasswd });
    try {
      const h = await home('cli-distribution');
      const ok = await strata(h.root, ['login', '-u', 'alice', '--password-stdin', reg.host], {
        input: PASSWORD,
        env: h.env,
      });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, 'Login Succeeded\n');
      const h2 = await home('cli-distribution-wrong');
      const bad = await strata(h2.root, ['login', '-u', 'alice', '--password-stdin', reg.host], {
        input: WRONG,
        env: h2.env,
      });
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^Error: .*unauthorized/m);
      assert.ok(await missing(h2.authFile));
    } finally {
      await reg.stop();
      await dir.cleanup();
    }
  });
});

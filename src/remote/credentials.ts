/**
 * Registry credentials: where `strata login` keeps them and where the client finds them.
 *
 * Lookup order for a registry host:
 *  1. strata's own auth file: `$STRATA_AUTH_FILE`, else `$STRATA_CONFIG_DIR/auth.json`, else
 *     `$XDG_CONFIG_HOME/strata/auth.json`, else `~/.config/strata/auth.json` (mode 0600, in a 0700 directory). The
 *     format is docker's: `{"auths":{"<host>":{"auth":"base64(user:password)"}}}` (an `identitytoken` member is
 *     read too). `strata login` writes here; docker's files are only read.
 *  2. docker's config, `$DOCKER_CONFIG/config.json` else `~/.docker/config.json`: `credHelpers[<host>]`, then
 *     `auths[<host>]`, then `credsStore`. A helper is the program `docker-credential-<name>` run as `get` with the
 *     server URL on stdin, answering `{"Username":..,"Secret":..}` (`Username` `<token>`: Secret is an identity
 *     token). A missing helper program is skipped with a warning.
 *
 * Keys are compared by host (`https://host/v1/`, `http://host` and `host` are one key). Docker Hub (`docker.io`,
 * `index.docker.io`, `registry-1.docker.io`) is also looked up as `https://index.docker.io/v1/`, docker's key.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { errnoCode, StrataError } from '../errors/index.js';
import { withLock, writeFileAtomic } from '../util/index.js';

export interface AuthConfig {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (docker's `identitytoken`): exchanged for bearer tokens with grant_type=refresh_token. */
  identityToken?: string;
}

export interface CredentialStore {
  /** Credentials for a registry host as references name it (`docker.io`, `127.0.0.1:5000`); undefined: anonymous. */
  get(registry: string): Promise<AuthConfig | undefined>;
}

export const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

type Env = Record<string, string | undefined>;

/** strata's auth file (see the module comment for the order). */
export function authFilePath(env: Env = process.env): string {
  if (env['STRATA_AUTH_FILE']) return env['STRATA_AUTH_FILE'];
  if (env['STRATA_CONFIG_DIR']) return join(env['STRATA_CONFIG_DIR'], 'auth.json');
  const home = env['HOME'] || homedir();
  return join(env['XDG_CONFIG_HOME'] || join(home, '.config'), 'strata', 'auth.json');
}

/** docker's config.json: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: Env = process.env): string {
  if (env['DOCKER_CONFIG']) return join(env['DOCKER_CONFIG'], 'config.json');
  return join(env['HOME'] || homedir(), '.docker', 'config.json');
}

/** The host a credentials key names: `https://index.docker.io/v1/` -> `docker.io`, `http://h:5000/x` -> `h:5000`. */
export function credentialKey(key: string): string {
  const host = key
    .trim()
    .toLowerCase()
    .replace(/^[a-z][a-z0-9+.-]*:\/\//, '')
    .replace(/\/.*$/, '');
  return HUB_HOSTS.has(host) ? 'docker.io' : host;
}

/** What credential helpers and docker's files call the registry (docker.io as docker does). */
function serverUrls(registry: string): string[] {
  return credentialKey(registry) === 'docker.io' ? [DOCKER_HUB_KEY, 'docker.io'] : [registry];
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [k: string]: unknown;
}

function decodeEntry(e: AuthEntry | undefined): AuthConfig | undefined {
  if (!e || typeof e !== 'object') return undefined;
  let username = typeof e.username === 'string' ? e.username : undefined;
  let password = typeof e.password === 'string' ? e.password : undefined;
  if (typeof e.auth === 'string' && e.auth) {
    const text = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = text.indexOf(':');
    if (i > 0) {
      username = text.slice(0, i);
      password = text.slice(i + 1);
    }
  }
  const identityToken = typeof e.identitytoken === 'string' && e.identitytoken ? e.identitytoken : undefined;
  if (identityToken) return { ...(username ? { username } : {}), identityToken };
  if (username !== undefined && password !== undefined && (username || password)) return { username, password };
  return undefined;
}

function findEntry(auths: Record<string, AuthEntry> | undefined, registry: string): AuthEntry | undefined {
  if (!auths || typeof auths !== 'object') return undefined;
  const want = credentialKey(registry);
  if (auths[registry]) return auths[registry];
  for (const [k, v] of Object.entries(auths)) if (credentialKey(k) === want) return v;
  return undefined;
}

async function readJson(path: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw new StrataError('FAILED_PRECONDITION', `cannot read ${path}: ${(err as Error).message}`);
  }
  if (!text.trim()) return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as DockerConfig;
  } catch (err) {
    // The message names the file and the problem, never its content (it holds secrets).
    throw new StrataError('INVALID_ARGUMENT', `${path} is not a valid auth file: ${(err as Error).name}`, {
      hint: `fix or remove ${path}`,
    });
  }
}

/** Run `docker-credential-<helper> get` (the docker credential-helper protocol). Undefined: no credentials. */
export function runCredentialHelper(
  helper: string,
  serverUrl: string,
  opts: { env?: Env; timeoutMs?: number } = {},
): Promise<AuthConfig | undefined | 'missing'> {
  if (!/^[A-Za-z0-9._-]+$/.test(helper)) {
    return Promise.reject(new StrataError('INVALID_ARGUMENT', `invalid credential helper name "${helper}"`));
  }
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: (opts.env ?? process.env) as NodeJS.ProcessEnv,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => {});
    child.on('error', (e) => {
      clearTimeout(timer);
      if (errnoCode(e) === 'ENOENT') resolve('missing');
      else reject(new StrataError('UNAVAILABLE', `${program}: ${(e as Error).message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      if (code !== 0) {
        // "credentials not found in native keychain" is the protocol's way to say: none for this server.
        if (/credentials not found/i.test(stdout) || /credentials not found/i.test(Buffer.concat(err).toString())) {
          resolve(undefined);
          return;
        }
        reject(
          new StrataError('UNAVAILABLE', `${program} get failed (${signal ?? `exit ${code}`})`, {
            hint: `check the credential helper "${helper}" named in docker's config.json`,
          }),
        );
        return;
      }
      try {
        const v = JSON.parse(stdout) as { Username?: unknown; Secret?: unknown };
        const username = typeof v.Username === 'string' ? v.Username : '';
        const secret = typeof v.Secret === 'string' ? v.Secret : '';
        if (!secret) resolve(undefined);
        else if (username === '<token>') resolve({ identityToken: secret });
        else resolve({ username, password: secret });
      } catch {
        reject(new StrataError('UNAVAILABLE', `${program} get printed something that is not JSON`));
      }
    });
    child.stdin.end(`${serverUrl}\n`);
  });
}

export interface FileCredentialStoreOptions {
  /** strata's auth file (default `authFilePath()`). */
  authFile?: string;
  /** docker's config.json (default `dockerConfigPath()`); `false`: do not read docker's config. */
  dockerConfig?: string | false;
  env?: Env;
  /** Non-fatal problems (a missing credential helper); default: `process.emitWarning`. */
  warn?: (message: string) => void;
  helperTimeoutMs?: number;
}

/** strata's auth file plus docker's config.json (read-only): see the module comment. */
export class FileCredentialStore implements CredentialStore {
  readonly authFile: string;
  readonly dockerConfig: string | false;
  readonly #o: FileCredentialStoreOptions;
  readonly warnings: string[] = [];

  constructor(opts: FileCredentialStoreOptions = {}) {
    const env = opts.env ?? process.env;
    this.authFile = opts.authFile ?? authFilePath(env);
    this.dockerConfig = opts.dockerConfig ?? dockerConfigPath(env);
    this.#o = opts;
  }

  /** Each problem once per store; to `opts.warn`, else as a Node process warning (stderr, never stdout). */
  #warn(message: string): void {
    if (this.warnings.includes(message)) return;
    this.warnings.push(message);
    if (this.#o.warn) this.#o.warn(message);
    else process.emitWarning(message, { code: 'STRATA_CREDENTIALS' });
  }

  async #helper(helper: string, registry: string): Promise<AuthConfig | undefined> {
    for (const url of serverUrls(registry)) {
      const r = await runCredentialHelper(helper, url, {
        ...(this.#o.env ? { env: this.#o.env } : {}),
        ...(this.#o.helperTimeoutMs ? { timeoutMs: this.#o.helperTimeoutMs } : {}),
      });
      if (r === 'missing') {
        this.#warn(
          `credential helper docker-credential-${helper} (named in ${this.dockerConfig}) is not installed; skipping it`,
        );
        return undefined;
      }
      if (r) return r;
    }
    return undefined;
  }

  async get(registry: string): Promise<AuthConfig | undefined> {
    const own = await readJson(this.authFile);
    const mine = decodeEntry(findEntry(own?.auths, registry));
    if (mine) return mine;
    if (this.dockerConfig === false) return undefined;
    const docker = await readJson(this.dockerConfig);
    if (!docker) return undefined;
    const helpers = docker.credHelpers && typeof docker.credHelpers === 'object' ? docker.credHelpers : {};
    const want = credentialKey(registry);
    const helper = Object.entries(helpers).find(([k]) => credentialKey(k) === want)?.[1];
    if (typeof helper === 'string' && helper) return this.#helper(helper, registry);
    const entry = decodeEntry(findEntry(docker.auths, registry));
    if (entry) return entry;
    if (typeof docker.credsStore === 'string' && docker.credsStore) return this.#helper(docker.credsStore, registry);
    return undefined;
  }

  /** The key an entry is stored under in strata's file (docker's key for Docker Hub). */
  static keyFor(registry: string): string {
    return credentialKey(registry) === 'docker.io' ? DOCKER_HUB_KEY : credentialKey(registry);
  }

  async #update(fn: (auths: Record<string, AuthEntry>) => boolean): Promise<boolean> {
    const dir = dirname(this.authFile);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return withLock(`${this.authFile}.lock`, async () => {
      const cfg = (await readJson(this.authFile)) ?? {};
      const auths = cfg.auths && typeof cfg.auths === 'object' ? { ...cfg.auths } : {};
      if (!fn(auths)) return false;
      await writeFileAtomic(this.authFile, `${JSON.stringify({ ...cfg, auths }, null, 2)}\n`, 0o600);
      return true;
    });
  }

  /** Save credentials in strata's auth file (atomically, mode 0600), replacing any entry for the same host. */
  async store(registry: string, creds: { username: string; password: string }): Promise<void> {
    const want = credentialKey(registry);
    await this.#update((auths) => {
      for (const k of Object.keys(auths)) if (credentialKey(k) === want) delete auths[k];
      auths[FileCredentialStore.keyFor(registry)] = {
        auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64'),
      };
      return true;
    });
  }

  /** Remove the registry's entry from strata's auth file; false when there was none. */
  async erase(registry: string): Promise<boolean> {
    const own = await readJson(this.authFile);
    const want = credentialKey(registry);
    if (!own?.auths || !Object.keys(own.auths).some((k) => credentialKey(k) === want)) return false;
    return this.#update((auths) => {
      let removed = false;
      for (const k of Object.keys(auths)) {
        if (credentialKey(k) === want) {
          delete auths[k];
          removed = true;
        }
      }
      return removed;
    });
  }
}

/** Credentials held in memory (a library caller's, or `login` checking a password before storing it). */
export class StaticCredentialStore implements CredentialStore {
  readonly #m = new Map<string, AuthConfig>();
  constructor(entries: Record<string, AuthConfig> = {}) {
    for (const [k, v] of Object.entries(entries)) this.#m.set(credentialKey(k), v);
  }
  set(registry: string, creds: AuthConfig): void {
    this.#m.set(credentialKey(registry), creds);
  }
  async get(registry: string): Promise<AuthConfig | undefined> {
    return this.#m.get(credentialKey(registry));
  }
}

export function defaultCredentialStore(opts: FileCredentialStoreOptions = {}): FileCredentialStore {
  return new FileCredentialStore(opts);
}

/**
 * The registry client's HTTP layer: one `RegistryTransport` per registry host, on an undici Agent (a keep-alive
 * Pool per origin: the registry, a blob CDN it redirects to, its token server). Requests and responses stream;
 * nothing here buffers a blob. On top of the wire:
 *
 * - **auth** (auth.ts): anonymous, Basic, docker's Bearer token flow with a token cache per scope;
 * - **retries**: 429 and 5xx (not 501/505) and connection failures before a response are retried with exponential
 *   backoff and jitter, honouring `Retry-After`, when the body can be replayed (none, a Buffer or a string). A
 *   streamed body is sent once: the caller resumes (upload status GET, Range).
 * - **errors**: a status the caller does not accept becomes a `RegistryError` (a StrataError) with the registry's
 *   error codes, the method and URL (query dropped: presigned CDN URLs carry signatures) and a hint. No header,
 *   token or password ever appears in a message.
 *
 *   const t = createTransport('127.0.0.1:5000');
 *   const res = await t.request({ method: 'GET', path: '/v2/app/manifests/v1', scope: { name: 'app', actions: ['pull'] } });
 */
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import { httpAgent } from './agent.js';
import { type ErrorEntry, parseErrorBody } from '../distribution/index.js';
import { type ErrorCode, errnoCode, StrataError } from '../errors/index.js';
import { type HttpExchange, RegistryAuth } from './auth.js';
import { type AuthConfig, type CredentialStore, StaticCredentialStore } from './credentials.js';
import type { RegistryTransport, RequestScope, TransportRequest, TransportResponse } from './types.js';

export const DEFAULT_USER_AGENT = `strata/0.1.0 node/${process.version}`;
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const MAX_REDIRECTS = 10;
/** Error bodies are read up to this much (a registry's `{"errors":[...]}` is small). */
const MAX_ERROR_BODY = 64 * 1024;
/** A `dump()` drains a body this small to keep the connection; a larger one closes it instead. */
const MAX_DRAIN = 256 * 1024;

export interface RetryInfo {
  attempt: number;
  delayMs: number;
  reason: string;
  method: string;
  url: string;
}

export interface TransportOptions {
  /** Where credentials come from (default: none, anonymous; the facade passes `defaultCredentialStore()`). */
  credentials?: CredentialStore;
  /** Hosts (`host[:port]`, or IPv4 CIDR like `10.0.0.0/8`) spoken to over plain HTTP, as docker's insecure-registries. */
  insecureRegistries?: string[];
  userAgent?: string;
  /** Retries of a replayable request after 429/5xx or a connection failure (default 5). */
  maxRetries?: number;
  /** First backoff delay (default 250 ms), doubled per attempt, up to `maxBackoffMs` (default 10 s), with jitter. */
  retryBaseMs?: number;
  maxBackoffMs?: number;
  /** A `Retry-After` longer than this (default 60 s) is not waited for: the error is returned. */
  maxRetryAfterMs?: number;
  /** Aborts every request of this transport. */
  signal?: AbortSignal;
  /** Told before each retry (the CLI can show "retrying"). */
  onRetry?: (info: RetryInfo) => void;
  /** Use this dispatcher instead of a private Agent (it is not closed by `close()`). */
  dispatcher?: Dispatcher;
}

/** The origin a registry host is spoken to at: https by default, plain http for loopback and insecure hosts. */
export function registryOrigin(registry: string, insecureRegistries: readonly string[] = []): string {
  const host = registry.toLowerCase();
  if (DOCKER_HUB_HOSTS.has(host)) return 'https://registry-1.docker.io';
  return `${isInsecureRegistry(host, insecureRegistries) ? 'http' : 'https'}://${host}`;
}

/** Split `host[:port]`, `[v6]:port`, `v6` into host and port. */
function splitHost(hostport: string): { host: string; port: string | undefined } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(hostport);
  if (v6) return { host: v6[1]!, port: v6[2] };
  if (isIP(hostport) === 6) return { host: hostport, port: undefined };
  const i = hostport.lastIndexOf(':');
  return i < 0 ? { host: hostport, port: undefined } : { host: hostport.slice(0, i), port: hostport.slice(i + 1) };
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((n, p) => n * 256 + Number(p), 0);
}

/** docker's rule: localhost, 127.0.0.0/8 and ::1 are insecure (plain HTTP), and so is every listed host or CIDR. */
export function isInsecureRegistry(registry: string, insecureRegistries: readonly string[] = []): boolean {
  const hostport = registry.toLowerCase();
  const { host } = splitHost(hostport);
  if (host === 'localhost' || host === '::1') return true;
  if (isIP(host) === 4 && host.startsWith('127.')) return true;
  for (const raw of insecureRegistries) {
    const entry = raw
      .toLowerCase()
      .replace(/^https?:\/\//, '')
      .replace(/\/+$/, '');
    if (entry === hostport || entry === host) return true;
    const cidr = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(entry);
    if (cidr && isIP(host) === 4) {
      const bits = Number(cidr[2]);
      const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
      if ((ipv4ToInt(host) & mask) >>> 0 === (ipv4ToInt(cidr[1]!) & mask) >>> 0) return true;
    }
  }
  return false;
}

/** A URL for messages: no query (presigned URLs carry signatures), no user info. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return url.replace(/[?#].*$/, '');
  }
}

/** A registry answered with a status the caller did not accept. */
export class RegistryError extends StrataError {
  readonly status: number;
  readonly errors: ErrorEntry[];
  readonly method: string;
  readonly url: string;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { status: number; errors: ErrorEntry[]; method: string; url: string; hint?: string },
  ) {
    super(code, message, {
      ...(opts.hint === undefined ? {} : { hint: opts.hint }),
      details: { status: opts.status, method: opts.method, url: opts.url, errors: opts.errors.map((e) => e.code) },
    });
    this.name = 'RegistryError';
    this.status = opts.status;
    this.errors = opts.errors;
    this.method = opts.method;
    this.url = opts.url;
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

function codeForStatus(status: number): ErrorCode {
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'PERMISSION_DENIED';
  if (status === 404) return 'NOT_FOUND';
  if (status === 405 || status === 501) return 'UNIMPLEMENTED';
  if (status === 409 || status === 412) return 'FAILED_PRECONDITION';
  if (status === 429 || status >= 500) return 'UNAVAILABLE';
  if (status >= 400) return 'INVALID_ARGUMENT';
  return 'INTERNAL';
}

function hintFor(status: number, registry: string, errors: ErrorEntry[]): string | undefined {
  const codes = new Set(errors.map((e) => e.code));
  if (status === 401 || codes.has('UNAUTHORIZED'))
    return `run \`strata login ${registry}\` with an account that may do this`;
  if (status === 403 || codes.has('DENIED')) return 'access denied: the account has no permission for this repository';
  if (status === 429 || codes.has('TOOMANYREQUESTS')) {
    return 'the registry limits requests (TOOMANYREQUESTS): wait and try again, or log in for a higher limit';
  }
  if (status === 404) return 'check the repository name and tag or digest';
  if (status >= 500) return 'the registry failed; try again later';
  return undefined;
}

/** `Retry-After`: delta seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

const RETRY_NET_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
]);

function isRetryableNetworkError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = errnoCode(e);
    if (code && RETRY_NET_CODES.has(code)) return true;
    if (e instanceof Error && /other side closed|socket hang up/i.test(e.message)) return true;
  }
  return false;
}

function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

class Counter extends Transform {
  constructor(private readonly add: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.add(chunk.length);
    cb(null, chunk);
  }
}

/** A response: the body is wrapped (counted) lazily, so `dump()` of an untouched body can reuse the connection. */
class Response implements TransportResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly url: string;
  #raw: Dispatcher.ResponseData['body'];
  #body: Readable | undefined;
  #count: (n: number) => void;

  constructor(data: Dispatcher.ResponseData, url: string, count: (n: number) => void) {
    this.status = data.statusCode;
    this.headers = data.headers as IncomingHttpHeaders;
    this.url = url;
    this.#raw = data.body;
    this.#count = count;
  }

  get body(): Readable {
    if (!this.#body) {
      const counter = new Counter(this.#count);
      const raw = this.#raw;
      raw.on('error', (err) => counter.destroy(err));
      counter.on('close', () => {
        if (!raw.readableEnded) raw.destroy();
      });
      raw.pipe(counter);
      this.#body = counter;
    }
    return this.#body;
  }

  async text(): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of this.body) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  async json<T = unknown>(): Promise<T> {
    const text = await this.text();
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new StrataError('INVALID_ARGUMENT', `${redactUrl(this.url)}: response is not valid JSON`, { cause: err });
    }
  }

  /** Up to `limit` bytes of the body as text (the rest is discarded), for error messages. */
  async head(limit: number): Promise<string> {
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of this.body) {
        chunks.push(c as Buffer);
        n += (c as Buffer).length;
        if (n >= limit) break;
      }
    } catch {
      // an error body cut short still tells the status
    }
    return Buffer.concat(chunks).toString('utf8').slice(0, limit);
  }

  async dump(): Promise<void> {
    if (this.#body) {
      if (this.#body.readableEnded || this.#body.destroyed) return;
      const len = Number(this.headers['content-length']);
      if (Number.isFinite(len) && len <= MAX_DRAIN) {
        this.#body.resume();
        await finished(this.#body).catch(() => {});
      } else {
        this.#body.destroy();
      }
      return;
    }
    try {
      await this.#raw.dump({ limit: MAX_DRAIN });
    } catch {
      // a body that fails while being discarded is of no interest
    }
  }
}

type Body = Buffer | string | Readable | undefined;

function isReplayable(body: Body): body is Buffer | string | undefined {
  return body === undefined || typeof body === 'string' || Buffer.isBuffer(body);
}

export class Transport implements RegistryTransport {
  readonly registry: string;
  readonly origin: string;
  readonly stats = { bytesIn: 0, bytesOut: 0, requests: 0, retries: 0 };
  readonly #agent: Dispatcher;
  readonly #ownAgent: boolean;
  readonly #auth: RegistryAuth;
  readonly #opts: TransportOptions;
  readonly #userAgent: string;
  readonly #maxRetries: number;

  constructor(registry: string, opts: TransportOptions = {}) {
    this.registry = registry;
    this.origin = registryOrigin(registry, opts.insecureRegistries);
    this.#opts = opts;
    this.#userAgent = opts.userAgent ?? DEFAULT_USER_AGENT;
    this.#maxRetries = opts.maxRetries ?? 5;
    this.#ownAgent = !opts.dispatcher;
    this.#agent =
      opts.dispatcher ?? httpAgent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 300_000, connectTimeout: 30_000 });
    const exchange: HttpExchange = (url, init) => this.#exchange(url, init);
    this.#auth = new RegistryAuth({
      registry,
      origin: this.origin,
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      exchange,
    });
  }

  /** The auth state (token cache), for tests and login. */
  get auth(): RegistryAuth {
    return this.#auth;
  }

  #signal(req?: AbortSignal): AbortSignal | undefined {
    const s = [this.#opts.signal, req].filter((x): x is AbortSignal => !!x);
    return s.length === 0 ? undefined : s.length === 1 ? s[0] : AbortSignal.any(s);
  }

  #resolve(path: string): URL {
    return new URL(path, `${this.origin}/`);
  }

  /** One HTTP exchange with small bodies (token server, /v2/ ping): used by auth. Counted, not retried. */
  async #exchange(
    url: string,
    init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string; signal?: AbortSignal },
  ): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
    const signal = this.#signal(init.signal);
    let res: Response;
    try {
      res = await this.#send(new URL(url), init.method, init.headers, init.body, signal, true);
    } catch (err) {
      if (signal?.aborted || err instanceof StrataError) throw err;
      throw new StrataError('UNAVAILABLE', `${init.method} ${redactUrl(url)}: ${(err as Error).message}`, {
        hint: `check that ${new URL(url).host} is reachable`,
        cause: err,
      });
    }
    const text = await res.head(1 << 20);
    return { status: res.status, headers: res.headers, text };
  }

  /** One request, following redirects of GET/HEAD (the registry's Authorization never goes to another origin). */
  async #send(
    url: URL,
    method: TransportRequest['method'] | 'POST',
    headers: Record<string, string>,
    body: Body,
    signal: AbortSignal | undefined,
    followRedirects: boolean,
  ): Promise<Response> {
    let current = url;
    let hdrs = headers;
    for (let hop = 0; ; hop++) {
      let sendBody: Dispatcher.DispatchOptions['body'] = null;
      if (typeof body === 'string' || Buffer.isBuffer(body)) {
        sendBody = body;
        this.stats.bytesOut += Buffer.byteLength(body);
      } else if (body) {
        const stats = this.stats;
        const src = body;
        sendBody = Readable.from(
          (async function* () {
            for await (const chunk of src) {
              stats.bytesOut += (chunk as Buffer).length;
              yield chunk as Buffer;
            }
          })(),
          { objectMode: false },
        );
      }
      this.stats.requests++;
      const data = await this.#agent.request({
        origin: current.origin,
        path: `${current.pathname}${current.search}`,
        method,
        headers: { 'user-agent': this.#userAgent, ...hdrs },
        body: sendBody,
        ...(signal ? { signal } : {}),
      });
      const res = new Response(data, current.href, (n) => {
        this.stats.bytesIn += n;
      });
      const location = res.headers.location;
      const redirect = [301, 302, 303, 307, 308].includes(res.status) && typeof location === 'string';
      if (!redirect || !followRedirects || (method !== 'GET' && method !== 'HEAD')) return res;
      if (hop >= MAX_REDIRECTS) {
        await res.dump();
        throw new StrataError('UNAVAILABLE', `${method} ${redactUrl(url.href)}: more than ${MAX_REDIRECTS} redirects`);
      }
      await res.dump();
      const next = new URL(location, current);
      if (next.origin !== current.origin) {
        // Credentials are for the registry (or the token server) only: a CDN gets a presigned URL instead.
        hdrs = Object.fromEntries(Object.entries(hdrs).filter(([k]) => k.toLowerCase() !== 'authorization'));
      }
      current = next;
    }
  }

  async request(req: TransportRequest): Promise<TransportResponse> {
    const signal = this.#signal(req.signal);
    const replayable = isReplayable(req.body);
    const url = this.#resolve(req.path);
    const toRegistry = url.origin === this.origin;
    const accept = req.accept ?? [];
    let authRetried = false;
    let attempt = 0;
    if (toRegistry && !replayable) {
      // A streamed body is sent once: learn the auth scheme first so it does not meet a 401.
      await this.#auth.prepare(req.scope, signal);
    }
    for (;;) {
      const authorization = toRegistry ? await this.#auth.authorization(req.scope, signal) : undefined;
      const headers: Record<string, string> = { ...req.headers };
      if (authorization) headers['authorization'] = authorization;
      let res: Response;
      try {
        res = await this.#send(url, req.method, headers, req.body, signal, true);
      } catch (err) {
        if (signal?.aborted) throw signal.reason ?? err;
        if (replayable && attempt < this.#maxRetries && isRetryableNetworkError(err)) {
          attempt++;
          await this.#backoff(attempt, undefined, req, `${errnoCode(err) ?? (err as Error).message}`, signal);
          continue;
        }
        if (err instanceof StrataError) throw err;
        throw new StrataError(
          'UNAVAILABLE',
          `${req.method} ${redactUrl(url.href)}: ${errnoCode(err) ?? ''} ${(err as Error).message}`.replace(
            /\s+/g,
            ' ',
          ),
          { hint: `check that ${this.registry} is reachable`, cause: err },
        );
      }
      if (accept.includes(res.status) || (res.status >= 200 && res.status < 300)) return res;
      if (res.status === 401 && new URL(res.url).origin === this.origin) {
        const challenge = res.headers['www-authenticate'];
        const retry = await this.#auth.challenged(challenge, req.scope, authorization, signal);
        if (retry && replayable && !authRetried) {
          await res.dump();
          authRetried = true;
          continue;
        }
      }
      if (replayable && isRetryableStatus(res.status) && attempt < this.#maxRetries) {
        const after = parseRetryAfter(res.headers['retry-after']);
        if (after === undefined || after <= (this.#opts.maxRetryAfterMs ?? 60_000)) {
          await res.dump();
          attempt++;
          await this.#backoff(attempt, after, req, `${res.status}`, signal);
          continue;
        }
      }
      throw await this.#error(req.method, res);
    }
  }

  async #backoff(
    attempt: number,
    retryAfterMs: number | undefined,
    req: TransportRequest,
    reason: string,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const base = this.#opts.retryBaseMs ?? 250;
    const cap = this.#opts.maxBackoffMs ?? 10_000;
    const exp = Math.min(cap, base * 2 ** (attempt - 1));
    const jittered = exp / 2 + Math.random() * (exp / 2);
    const delayMs = retryAfterMs === undefined ? jittered : Math.max(retryAfterMs, 0);
    this.stats.retries++;
    this.#opts.onRetry?.({
      attempt,
      delayMs,
      reason,
      method: req.method,
      url: redactUrl(this.#resolve(req.path).href),
    });
    await sleep(delayMs, signal);
  }

  async #error(method: string, res: Response): Promise<RegistryError> {
    const text = method === 'HEAD' ? '' : await res.head(MAX_ERROR_BODY);
    await res.dump();
    const errors = parseErrorBody(text);
    const status = res.status;
    const what = errors.length
      ? errors.map((e) => `${e.code.toLowerCase()}${e.message ? `: ${e.message}` : ''}`).join('; ')
      : (STATUS_TEXT[status] ?? `HTTP ${status}`).toLowerCase();
    const url = redactUrl(res.url);
    const message = this.#auth.redact(`${method} ${url}: ${status} ${STATUS_TEXT[status] ?? ''}: ${what}`);
    const hint = hintFor(status, this.registry, errors);
    return new RegistryError(codeForStatus(status), message.replace(/ {2,}/g, ' '), {
      status,
      errors,
      method,
      url,
      ...(hint === undefined ? {} : { hint }),
    });
  }

  /**
   * GET /v2/ with auth: the registry speaks the API and (with credentials) accepts them. A Bearer challenge is
   * followed to the token server with the credentials (no scope), as `docker login` does.
   */
  async ping(opts: { signal?: AbortSignal } = {}): Promise<void> {
    const scope: RequestScope = { name: '', actions: [] };
    const res = await this.request({
      method: 'GET',
      path: '/v2/',
      scope,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    await res.dump();
  }

  async close(): Promise<void> {
    if (this.#ownAgent) await this.#agent.close();
  }
}

/** A transport for one registry host (`docker.io`, `ghcr.io`, `127.0.0.1:5000`). */
export function createTransport(registry: string, opts: TransportOptions = {}): Transport {
  return new Transport(registry, opts);
}

/**
 * What `strata login` checks before storing anything: `GET /v2/` with these credentials, following a Bearer
 * challenge to the token server (which checks the password) as `docker login` does. Throws UNAUTHENTICATED
 * ("unauthorized: ...") for wrong credentials; resolves when the registry accepts them (or needs none).
 */
export async function verifyCredentials(
  registry: string,
  creds: AuthConfig,
  opts: Pick<TransportOptions, 'insecureRegistries' | 'userAgent' | 'signal' | 'dispatcher'> = {},
): Promise<void> {
  const t = createTransport(registry, {
    ...opts,
    credentials: new StaticCredentialStore({ [registry]: creds }),
    maxRetries: 2,
  });
  try {
    await t.ping();
  } catch (err) {
    if (err instanceof StrataError && err.code === 'UNAUTHENTICATED') {
      throw new StrataError('UNAUTHENTICATED', `login to ${registry} failed: ${err.message}`, {
        hint: 'check the user name and password (or access token); nothing was stored',
        cause: err,
        ...(err.details ? { details: err.details } : {}),
      });
    }
    throw err;
  } finally {
    await t.close();
  }
}

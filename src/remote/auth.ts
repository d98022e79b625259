/**
 * Registry auth, client side: what `Authorization` a request carries, learned from the registry's 401 challenges.
 *
 * - no challenge seen: anonymous;
 * - `Basic realm=...`: the stored user name and password, on every later request to the registry;
 * - `Bearer realm=...,service=...`: docker's token flow. A token for `repository:NAME:ACTIONS` (one scope per
 *   repository the request touches, the mount source included) comes from `GET realm?service=&scope=` with Basic
 *   credentials when known (anonymous otherwise), or from `POST realm` with `grant_type=refresh_token` when the
 *   credentials are an identity token (docker's `identitytoken`). Tokens are cached per (realm, service, scope set)
 *   until `expires_in` (default 60 s) minus a margin and reused for any request they cover, so only the first
 *   request of a scope meets a 401; once the challenge is known, tokens for new scopes are fetched up front.
 *
 * Secrets (passwords, identity tokens, bearer tokens) are kept here and nowhere else; `redact()` removes them
 * from any text before it becomes a message.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { type Challenge, parseChallenges, parseErrorBody, parseScope } from '../distribution/index.js';
import { StrataError } from '../errors/index.js';
import type { AuthConfig, CredentialStore } from './credentials.js';
import type { RequestScope } from './types.js';

/** One small HTTP exchange (the transport provides it, on its connection pool). */
export type HttpExchange = (
  url: string,
  init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string; signal?: AbortSignal },
) => Promise<{ status: number; headers: IncomingHttpHeaders; text: string }>;

export interface RegistryAuthOptions {
  registry: string;
  origin: string;
  credentials?: CredentialStore;
  exchange: HttpExchange;
  /** Sent as `client_id` in OAuth requests (default `strata`). */
  clientId?: string;
}

type Scheme = { kind: 'none' } | { kind: 'basic' } | { kind: 'bearer'; realm: string; service: string | undefined };

interface CachedToken {
  token: string;
  /** ms since epoch after which the token is not used any more. */
  expires: number;
  realm: string;
  service: string | undefined;
  /** `type:name` -> actions the token was requested for. */
  scopes: Map<string, Set<string>>;
}

const ACTION_ORDER = ['pull', 'push', 'delete', '*'];

/** The token-server scopes of a request: `repository:NAME:ACTIONS`, one per repository (mount sources included). */
export function scopeStrings(scope: RequestScope): string[] {
  const byName = new Map<string, Set<string>>();
  const add = (name: string, actions: readonly string[]) => {
    if (!name || actions.length === 0) return;
    const set = byName.get(name) ?? new Set<string>();
    for (const a of actions) set.add(a);
    byName.set(name, set);
  };
  add(scope.name, scope.actions);
  for (const a of scope.also ?? []) add(a.name, a.actions);
  return [...byName].map(
    ([name, actions]) =>
      `repository:${name}:${[...actions].sort((a, b) => ACTION_ORDER.indexOf(a) - ACTION_ORDER.indexOf(b)).join(',')}`,
  );
}

function scopeMap(scopes: readonly string[]): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>();
  for (const s of scopes) {
    const p = parseScope(s);
    if (!p) continue;
    const key = `${p.type}:${p.name}`;
    const set = m.get(key) ?? new Set<string>();
    for (const a of p.actions) set.add(a);
    m.set(key, set);
  }
  return m;
}

function covers(have: Map<string, Set<string>>, want: Map<string, Set<string>>): boolean {
  for (const [k, actions] of want) {
    const h = have.get(k);
    if (!h) return false;
    if (h.has('*')) continue;
    for (const a of actions) if (!h.has(a)) return false;
  }
  return true;
}

function header(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h.join(', ') : h;
}

function basicHeader(c: AuthConfig): string | undefined {
  if (c.username === undefined || c.password === undefined) return undefined;
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

export class RegistryAuth {
  readonly #o: RegistryAuthOptions;
  #scheme: Scheme | undefined;
  #prepared: Promise<void> | undefined;
  #creds: Promise<AuthConfig | undefined> | undefined;
  readonly #tokens = new Map<string, CachedToken>();
  readonly #pending = new Map<string, Promise<CachedToken>>();
  readonly #secrets = new Set<string>();
  /** Token requests sent (for tests). */
  tokenRequests = 0;

  constructor(o: RegistryAuthOptions) {
    this.#o = o;
  }

  /** The scheme learned so far (`undefined` until the registry answered a request). */
  get scheme(): Scheme['kind'] | undefined {
    return this.#scheme?.kind;
  }

  #secret(s: string | undefined): void {
    if (s && s.length >= 4) this.#secrets.add(s);
  }

  /** `text` with every secret this auth has seen replaced by `***`. */
  redact(text: string): string {
    let out = text;
    for (const s of this.#secrets) out = out.split(s).join('***');
    return out;
  }

  credentials(): Promise<AuthConfig | undefined> {
    this.#creds ??= (async () => {
      const c = await this.#o.credentials?.get(this.#o.registry);
      if (c) {
        this.#secret(c.password);
        this.#secret(c.identityToken);
        const b = basicHeader(c);
        if (b) this.#secret(b.slice(6));
      }
      return c;
    })();
    return this.#creds;
  }

  /** Learn the registry's auth scheme with an unauthenticated `GET /v2/` (once), before a request that cannot replay. */
  async prepare(_scope: RequestScope, signal?: AbortSignal): Promise<void> {
    if (this.#scheme) return;
    this.#prepared ??= (async () => {
      const res = await this.#o.exchange(`${this.#o.origin}/v2/`, {
        method: 'GET',
        headers: {},
        ...(signal ? { signal } : {}),
      });
      if (res.status === 401) this.#learn(header(res.headers['www-authenticate']));
      else if (res.status >= 200 && res.status < 300) this.#scheme ??= { kind: 'none' };
    })().finally(() => {
      this.#prepared = undefined;
    });
    await this.#prepared;
  }

  #learn(wwwAuthenticate: string | undefined): Challenge | undefined {
    const challenges = parseChallenges(wwwAuthenticate ?? '');
    const bearer = challenges.find((c) => c.scheme.toLowerCase() === 'bearer' && c.params['realm']);
    if (bearer) {
      this.#scheme = { kind: 'bearer', realm: bearer.params['realm']!, service: bearer.params['service'] };
      return bearer;
    }
    const basic = challenges.find((c) => c.scheme.toLowerCase() === 'basic');
    if (basic) {
      this.#scheme = { kind: 'basic' };
      return basic;
    }
    return undefined;
  }

  /** The Authorization header for a request (undefined: anonymous), fetching a token when the scheme is Bearer. */
  async authorization(scope: RequestScope, signal?: AbortSignal): Promise<string | undefined> {
    const scheme = this.#scheme;
    if (!scheme || scheme.kind === 'none') return undefined;
    const creds = await this.credentials();
    if (scheme.kind === 'basic') return creds ? basicHeader(creds) : undefined;
    const wanted = scopeStrings(scope);
    const cached = this.#cached(scheme.realm, scheme.service, scopeMap(wanted));
    if (cached) return `Bearer ${cached.token}`;
    const t = await this.#token(scheme.realm, scheme.service, wanted, signal);
    return `Bearer ${t.token}`;
  }

  #cached(realm: string, service: string | undefined, want: Map<string, Set<string>>): CachedToken | undefined {
    const now = Date.now();
    for (const [key, t] of this.#tokens) {
      if (t.expires <= now) {
        this.#tokens.delete(key);
        continue;
      }
      if (t.realm === realm && t.service === service && covers(t.scopes, want)) return t;
    }
    return undefined;
  }

  /**
   * A 401 from the registry: learn its challenge, forget the credentials that failed, and say whether the request
   * is worth sending again (a new token was fetched, or Basic credentials exist that were not sent yet).
   */
  async challenged(
    wwwAuthenticate: string | string[] | undefined,
    scope: RequestScope,
    sent: string | undefined,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const challenge = this.#learn(header(wwwAuthenticate));
    if (sent?.startsWith('Bearer ')) {
      const token = sent.slice(7);
      for (const [key, t] of this.#tokens) if (t.token === token) this.#tokens.delete(key);
    }
    if (!challenge || !this.#scheme) return false;
    if (this.#scheme.kind === 'basic') {
      const b = basicHeader((await this.credentials()) ?? {});
      return b !== undefined && b !== sent;
    }
    if (this.#scheme.kind !== 'bearer') return false;
    const asked = (challenge.params['scope'] ?? '').split(' ').filter(Boolean);
    const wanted = [...new Set([...scopeStrings(scope), ...asked])];
    await this.#token(this.#scheme.realm, this.#scheme.service, wanted, signal, true);
    return true;
  }

  /** A token for `scopes` from the token server; concurrent requests for the same scopes share one fetch. */
  #token(
    realm: string,
    service: string | undefined,
    scopes: string[],
    signal: AbortSignal | undefined,
    fresh = false,
  ): Promise<CachedToken> {
    const key = `${realm}\n${service ?? ''}\n${[...scopes].sort().join(' ')}`;
    const pending = this.#pending.get(key);
    if (pending) return pending;
    if (!fresh) {
      const t = this.#tokens.get(key);
      if (t && t.expires > Date.now()) return Promise.resolve(t);
    }
    const p = this.#fetchToken(realm, service, scopes, signal)
      .then((t) => {
        this.#tokens.set(key, t);
        return t;
      })
      .finally(() => this.#pending.delete(key));
    this.#pending.set(key, p);
    return p;
  }

  async #fetchToken(
    realm: string,
    service: string | undefined,
    scopes: string[],
    signal: AbortSignal | undefined,
  ): Promise<CachedToken> {
    let url: URL;
    try {
      url = new URL(realm);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('not http(s)');
    } catch {
      throw new StrataError('UNAVAILABLE', `registry ${this.#o.registry} names an invalid token realm "${realm}"`);
    }
    const creds = await this.credentials();
    const sig = signal ? { signal } : {};
    this.tokenRequests++;
    let res: Awaited<ReturnType<HttpExchange>>;
    if (creds?.identityToken) {
      // OAuth2 refresh-token grant, as docker does with the identity token `docker login` stored.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken });
      form.set('client_id', this.#o.clientId ?? 'strata');
      if (service) form.set('service', service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await this.#o.exchange(url.href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        ...sig,
      });
    } else {
      if (service) url.searchParams.set('service', service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      const basic = creds ? basicHeader(creds) : undefined;
      if (basic && creds?.username) {
        url.searchParams.set('account', creds.username);
        headers['authorization'] = basic;
      }
      res = await this.#o.exchange(url.href, { method: 'GET', headers, ...sig });
    }
    const where = `token server ${url.origin}${url.pathname}`;
    if (res.status === 401 || res.status === 403) {
      const entries = parseErrorBody(res.text);
      let detail = entries.map((e) => `${e.code.toLowerCase()}: ${e.message}`).join('; ');
      if (!detail) {
        try {
          const v = JSON.parse(res.text) as { error?: string; error_description?: string; details?: string };
          detail = [v.error, v.error_description ?? v.details].filter(Boolean).join(': ');
        } catch {
          // not JSON
        }
      }
      throw new StrataError(
        'UNAUTHENTICATED',
        this.redact(
          `${this.#o.registry}: unauthorized: ${where} refused the ${creds ? 'credentials' : 'anonymous request'} (${res.status}${detail ? `: ${detail}` : ''})`,
        ),
        {
          hint: creds
            ? `the stored credentials for ${this.#o.registry} are wrong or expired: run \`strata login ${this.#o.registry}\``
            : `run \`strata login ${this.#o.registry}\``,
          details: { status: res.status, registry: this.#o.registry },
        },
      );
    }
    if (res.status < 200 || res.status >= 300) {
      throw new StrataError('UNAVAILABLE', this.redact(`${where}: status ${res.status}`), {
        hint: 'the registry token server failed; try again later',
        details: { status: res.status },
      });
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(res.text) as typeof body;
    } catch {
      throw new StrataError('UNAVAILABLE', `${where}: answer is not JSON`);
    }
    const token =
      typeof body.token === 'string' && body.token
        ? body.token
        : typeof body.access_token === 'string'
          ? body.access_token
          : '';
    if (!token) throw new StrataError('UNAVAILABLE', `${where}: answer has no token`);
    this.#secret(token);
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    const margin = Math.min(30_000, (seconds * 1000) / 5);
    return {
      token,
      expires: Date.now() + seconds * 1000 - margin,
      realm,
      service,
      scopes: scopeMap(scopes),
    };
  }

  /** Forget cached tokens (tests; after logout). */
  clear(): void {
    this.#tokens.clear();
  }
}

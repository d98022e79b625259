import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { DistributionError, formatChallenge, isValidName, parseScope } from '../../distribution/index.js';
import { describeAccess } from './basic.js';
import type { Htpasswd } from './htpasswd.js';
import type { AccessPolicy } from './rules.js';
import { covers } from './rules.js';
import type { TokenIssuer } from './token.js';
import type { Access, Authenticator, Grant } from './types.js';

/** Where the built-in token endpoint listens. */
export const TOKEN_PATH = '/token';

const MAX_SCOPES = 64;
const MAX_FORM_BYTES = 64 << 10;
const HOST_RE = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const ACTIONS = new Set(['pull', 'push', 'delete', '*']);

export interface BearerOptions {
  issuer: TokenIssuer;
  policy: AccessPolicy;
  /** Users for the token endpoint's Basic credentials; without it every token is issued to anonymous. */
  users: Htpasswd | undefined;
  /** Configured realm; default: this server's own URL (protocol + Host header) + /token. */
  realm: string | undefined;
  tls: boolean;
  /** Fallback host for the default realm when a request has no usable Host header. */
  addr: string;
  /** Realm of the Basic challenge the token endpoint answers wrong credentials with. */
  basicRealm: string;
  log: Logger;
}

/**
 * Parse the scopes of a token request (each `scope` parameter may hold several, space-separated) into access
 * requests; malformed scopes, unknown resource types and invalid names are dropped (nothing to grant), and the
 * actions of a resource named twice are merged.
 */
export function parseRequestedScopes(values: readonly string[]): Access[] {
  const byKey = new Map<string, Access>();
  for (const value of values) {
    for (const text of value.split(' ')) {
      if (!text || byKey.size >= MAX_SCOPES) continue;
      const s = parseScope(text);
      if (!s) continue;
      // docker asks for `repository(plugin):name:pull` for plugins: the class does not change the rules.
      const type = s.type.replace(/\(.*\)$/, '');
      if (type === 'repository' ? !isValidName(s.name) : !(type === 'registry' && s.name === 'catalog')) continue;
      const actions = s.actions.filter((a): a is Access['actions'][number] => ACTIONS.has(a));
      const key = `${type}:${s.name}`;
      const prev = byKey.get(key);
      if (prev) {
        for (const a of actions) if (!prev.actions.includes(a)) prev.actions.push(a);
      } else byKey.set(key, { type: type as Access['type'], name: s.name, actions: [...new Set(actions)] });
    }
  }
  return [...byKey.values()];
}

async function readForm(raw: IncomingMessage): Promise<URLSearchParams> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) {
      throw new DistributionError('UNSUPPORTED', undefined, {
        status: 413,
        message: `token request body is larger than ${MAX_FORM_BYTES} bytes`,
      });
    }
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * docker's token auth (what Docker Hub does): registry requests need `Authorization: Bearer <JWT>`; without one
 * they get 401 with `WWW-Authenticate: Bearer realm="<token endpoint>",service="...",scope="repository:x:pull"`,
 * the client fetches a token for that scope from the realm and retries. A token that does not cover the request
 * gets the same challenge with `error="insufficient_scope"` (the client asks for a new token); a bad or expired
 * one `error="invalid_token"`. The built-in endpoint grants the requested actions the access rules allow.
 */
export class BearerAuthenticator implements Authenticator {
  constructor(private readonly o: BearerOptions) {}

  /** The realm clients are sent to: the configured one, or this server's own /token as the client reached it. */
  realm(headers: IncomingHttpHeaders): string {
    if (this.o.realm) return this.o.realm;
    const host = headers.host && HOST_RE.test(headers.host) ? headers.host : this.o.addr;
    return `${this.o.tls ? 'https' : 'http'}://${host}${TOKEN_PATH}`;
  }

  private challenge(
    headers: IncomingHttpHeaders,
    access: readonly Access[],
    error: 'invalid_token' | 'insufficient_scope' | undefined,
    message: string,
  ): DistributionError {
    const header = formatChallenge('Bearer', {
      realm: this.realm(headers),
      service: this.o.issuer.service,
      scope: access.length ? describeAccess(access) : undefined,
      error,
    });
    return new DistributionError('UNAUTHORIZED', access.length ? access : undefined, {
      message,
      headers: { 'WWW-Authenticate': header },
    });
  }

  async authorize(req: { headers: IncomingHttpHeaders; ip: string }, access: readonly Access[]): Promise<Grant> {
    const m = /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) {
      throw this.challenge(req.headers, access, undefined, 'authentication required: get a token from the realm');
    }
    let claims: Awaited<ReturnType<TokenIssuer['verify']>>;
    try {
      claims = await this.o.issuer.verify(m[1]!);
    } catch (err) {
      // The reason (jose's error code: ERR_JWT_EXPIRED, ERR_JWS_SIGNATURE_VERIFICATION_FAILED, ...), never the token.
      const reason = (err as { code?: string }).code ?? (err as Error).message;
      this.o.log.info({ ip: req.ip, reason }, 'bearer token rejected');
      throw this.challenge(
        req.headers,
        access,
        'invalid_token',
        `authentication required: bearer token rejected (${reason}); get a new token from the realm`,
      );
    }
    const missing = access.filter((a) => !covers(claims.access, a));
    if (missing.length > 0) {
      throw this.challenge(
        req.headers,
        access,
        'insufficient_scope',
        `insufficient_scope: the token does not grant ${describeAccess(missing)}`,
      );
    }
    return { subject: claims.subject, allows: (a) => covers(claims.access, a) };
  }

  register(app: FastifyInstance): void {
    app.route({ method: ['GET', 'POST'], url: TOKEN_PATH, handler: (req, reply) => this.tokenEndpoint(req, reply) });
  }

  /**
   * GET /token?service=&scope=&account= with optional Basic credentials (docker, podman, skopeo), and the OAuth2
   * form POST with grant_type=password (containerd tries it first). Answers {token, access_token, expires_in,
   * issued_at}. Refresh tokens are not issued: clients keep their credentials and ask again.
   */
  private async tokenEndpoint(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    const q = request.url.indexOf('?');
    let params = new URLSearchParams(q < 0 ? '' : request.url.slice(q + 1));
    let authorization = request.headers.authorization;
    let oauth = false;
    if (request.method === 'POST') {
      oauth = true;
      params = await readForm(request.raw);
      const grantType = params.get('grant_type');
      if (grantType !== 'password') {
        reply.code(400).header('content-type', 'application/json');
        return reply.send(
          JSON.stringify({
            error: 'unsupported_grant_type',
            error_description: `grant_type ${JSON.stringify(grantType)} is not supported: use password, or GET with Basic credentials`,
          }),
        );
      }
      // The form's credentials go through the same check (and cache) as a Basic header; no username: anonymous.
      const username = params.get('username');
      authorization =
        username === null
          ? undefined
          : `Basic ${Buffer.from(`${username}:${params.get('password') ?? ''}`).toString('base64')}`;
    }

    const service = params.get('service');
    if (service !== null && service !== this.o.issuer.service) {
      throw new DistributionError(
        'UNSUPPORTED',
        { service },
        {
          status: 400,
          message: `unknown service "${service}": this token endpoint issues tokens for "${this.o.issuer.service}"`,
        },
      );
    }

    let subject: string | undefined;
    if (this.o.users) {
      const user = await this.o.users.check(authorization);
      if (user === false) {
        this.o.log.info(
          { user: oauth ? params.get('username') : undefined, ip: request.ip },
          'token request with wrong user name or password',
        );
        throw new DistributionError('UNAUTHORIZED', undefined, {
          message: 'authentication required: wrong user name or password',
          headers: { 'WWW-Authenticate': formatChallenge('Basic', { realm: this.o.basicRealm }) },
        });
      }
      subject = user;
    }
    const account = params.get('account');
    if (subject !== undefined && account && account !== subject) {
      throw new DistributionError(
        'DENIED',
        { account },
        {
          status: 400,
          message: `account "${account}" does not match the user name of the credentials`,
        },
      );
    }

    const requested = parseRequestedScopes(params.getAll('scope'));
    const access = this.o.policy.intersect(subject, requested);
    const { token, expiresIn, issuedAt } = await this.o.issuer.issue(subject, access);
    this.o.log.debug(
      { user: subject ?? 'anonymous', requested: describeAccess(requested), granted: describeAccess(access) },
      'token issued',
    );
    reply.code(200).header('content-type', 'application/json');
    return reply.send(
      JSON.stringify({
        token,
        access_token: token,
        expires_in: expiresIn,
        issued_at: issuedAt.toISOString(),
        ...(oauth ? { scope: access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' ') } : {}),
      }),
    );
  }
}

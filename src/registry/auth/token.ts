import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, exportJWK, jwtVerify, SignJWT } from 'jose';
import { StrataError } from '../../errors/index.js';
import type { Access } from './types.js';

const KEY_HINT =
  'use an unencrypted PEM private key (EC P-256 recommended): ' +
  '`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out token.key`';

/** A signing key and the JWS algorithm it implies. */
export interface TokenKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  alg: 'ES256' | 'ES384' | 'ES512' | 'RS256' | 'EdDSA';
}

function algFor(key: KeyObject, where: string): TokenKey['alg'] {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'ec') {
    const alg = ({ prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' } as const)[
      details.namedCurve as 'prime256v1'
    ];
    if (alg) return alg;
  } else if (type === 'rsa') {
    if ((details.modulusLength ?? 0) >= 2048) return 'RS256';
    throw new StrataError('INVALID_ARGUMENT', `${where}: RSA key of ${details.modulusLength} bits is too short`, {
      hint: `use at least 2048 bits, or ${KEY_HINT}`,
    });
  } else if (type === 'ed25519') return 'EdDSA';
  throw new StrataError(
    'INVALID_ARGUMENT',
    `${where}: unsupported key type ${type}${details.namedCurve ? ` (${details.namedCurve})` : ''}`,
    { hint: `supported: EC P-256/P-384/P-521, RSA >= 2048 bits, Ed25519; ${KEY_HINT}` },
  );
}

/** The key from `auth.token.key`, or a fresh P-256 key (its tokens die with the process) when no path is given. */
export function loadTokenKey(path: string | undefined): TokenKey {
  if (path === undefined) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    return { privateKey, publicKey, alg: 'ES256' };
  }
  const where = `token signing key ${path}`;
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (err) {
    throw new StrataError('NOT_FOUND', `cannot read ${where}: ${(err as Error).message}`, {
      hint: `fix auth.token.key, or leave it out to sign with a key generated at start; ${KEY_HINT}`,
      cause: err,
    });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new StrataError('INVALID_ARGUMENT', `${where} is not a usable PEM private key: ${(err as Error).message}`, {
      hint: KEY_HINT,
      cause: err,
    });
  }
  return { privateKey, publicKey: createPublicKey(privateKey), alg: algFor(privateKey, where) };
}

export interface TokenClaims {
  subject: string | undefined;
  access: Access[];
  /** Expiry, epoch seconds. */
  exp: number;
}

function parseAccessClaim(value: unknown): Access[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const out: Access[] = [];
  for (const e of value) {
    if (!e || typeof e !== 'object') return undefined;
    const { type, name, actions } = e as Record<string, unknown>;
    if ((type !== 'repository' && type !== 'registry') || typeof name !== 'string' || !Array.isArray(actions)) {
      return undefined;
    }
    out.push({ type, name, actions: actions.filter((a): a is Access['actions'][number] => typeof a === 'string') });
  }
  return out;
}

const VERIFIED_MAX = 10_000;

/**
 * Issues and verifies the JWTs of docker's token auth (distribution's token spec): `iss`, `sub`, `aud` = the
 * service, `exp`/`nbf`/`iat`, `jti` and `access: [{type, name, actions}]`, signed with the configured key.
 */
export class TokenIssuer {
  private kid: Promise<string> | undefined;
  /** Verified tokens, so a busy client does not pay a signature check per request. Entries die at `exp`. */
  private readonly verified = new Map<string, TokenClaims>();

  constructor(
    private readonly key: TokenKey,
    readonly issuer: string,
    readonly service: string,
    readonly expiration: number,
  ) {}

  private keyId(): Promise<string> {
    this.kid ??= exportJWK(this.key.publicKey).then((jwk) => calculateJwkThumbprint(jwk));
    return this.kid;
  }

  async issue(
    subject: string | undefined,
    access: Access[],
  ): Promise<{ token: string; expiresIn: number; issuedAt: Date }> {
    const now = Date.now();
    const iat = Math.floor(now / 1000);
    // Round the expiry up: a token lives at least `expiration` seconds, never less than announced in expires_in.
    const exp = Math.ceil(now / 1000) + this.expiration;
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: this.key.alg, typ: 'JWT', kid: await this.keyId() })
      .setIssuer(this.issuer)
      .setSubject(subject ?? '')
      .setAudience(this.service)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(this.key.privateKey);
    return { token, expiresIn: this.expiration, issuedAt: new Date(iat * 1000) };
  }

  /** The token's claims, or a thrown error (bad signature, wrong issuer or audience, expired, malformed). */
  async verify(token: string): Promise<TokenClaims> {
    const now = Date.now() / 1000;
    const hit = this.verified.get(token);
    if (hit) {
      if (hit.exp > now) return hit;
      this.verified.delete(token);
    }
    const { payload } = await jwtVerify(token, this.key.publicKey, {
      algorithms: [this.key.alg],
      issuer: this.issuer,
      audience: this.service,
      requiredClaims: ['exp', 'iat'],
    });
    const access = parseAccessClaim(payload['access'] ?? []);
    if (!access) throw new Error('token has a malformed access claim');
    const claims: TokenClaims = { subject: payload.sub || undefined, access, exp: payload.exp! };
    if (this.verified.size >= VERIFIED_MAX) {
      const first = this.verified.keys().next();
      if (!first.done) this.verified.delete(first.value);
    }
    this.verified.set(token, claims);
    return claims;
  }
}

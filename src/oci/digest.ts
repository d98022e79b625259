import { createHash } from 'node:crypto';
import { InvalidDocumentError, StrataError } from '../errors/index.js';

/** "sha256:<64 hex>" (or sha512:<128 hex>): made only by parseDigest() / digestOf(), so a Digest is always valid. */
export type Digest = string & { readonly __brand: 'Digest' };
export type DigestAlgorithm = 'sha256' | 'sha512';

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const DIGEST_RE = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** Why `value` is not a valid digest (a phrase to follow a field name), or undefined when it is one. */
export function digestProblem(value: unknown): string | undefined {
  return inspectDigest(value)?.problem;
}

/** A value quoted for an error message: escaped, and cut short so hostile input cannot flood a log. */
export function quoted(value: string, max = 100): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}...` : value);
}

function inspectDigest(value: unknown): { problem: string; unsupported?: string } | undefined {
  if (typeof value !== 'string') return { problem: `expected a string, got ${value === null ? 'null' : typeof value}` };
  const m = DIGEST_RE.exec(value);
  if (!m) return { problem: `${quoted(value)} is not of the form algorithm:hex` };
  const alg = m[1] as string;
  const hex = m[2] as string;
  if (alg !== 'sha256' && alg !== 'sha512') {
    return { problem: `${quoted(value)} uses unsupported digest algorithm ${quoted(alg)}`, unsupported: alg };
  }
  if (hex.length !== HEX_LENGTH[alg] || !/^[a-f0-9]+$/.test(hex)) {
    return { problem: `${quoted(value)} must be ${alg}: followed by ${HEX_LENGTH[alg]} lowercase hex characters` };
  }
  return undefined;
}

/** Parse and validate a digest string; `where` names the field or argument for the error message. */
export function parseDigest(value: unknown, where = 'digest'): Digest {
  const bad = inspectDigest(value);
  if (bad === undefined) return value as Digest;
  if (bad.unsupported !== undefined) {
    throw new StrataError('UNIMPLEMENTED', `unsupported digest algorithm ${quoted(bad.unsupported)} in ${where}`, {
      hint: 'strata supports sha256 and sha512 digests',
    });
  }
  throw new InvalidDocumentError('digest', where, bad.problem);
}

export function isDigest(value: unknown): value is Digest {
  return inspectDigest(value) === undefined;
}

export function digestAlgorithm(d: Digest): DigestAlgorithm {
  return d.slice(0, d.indexOf(':')) as DigestAlgorithm;
}

export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

export function digestFromHex(hex: string, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return parseDigest(`${algorithm}:${hex}`);
}

/** The digest of in-memory bytes (manifests, configs: small documents). */
export function digestOf(data: string | Uint8Array, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest;
}

/** A short image/layer id as docker prints it: the first 12 hex characters. */
export function shortId(d: Digest | string): string {
  const s = String(d);
  return s.slice(s.indexOf(':') + 1, s.indexOf(':') + 13);
}

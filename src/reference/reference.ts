import { StrataError } from '../errors/index.js';
import { type Digest, parseDigest } from '../oci/index.js';

export const DEFAULT_REGISTRY = 'docker.io';
const LEGACY_REGISTRY = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';

// The grammar of distribution/reference (reference.go): path components, domain, tag.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const MAX_NAME = 255;

/** A parsed, normalized image reference: registry/repository[:tag][@digest]. */
export interface Reference {
  readonly registry: string;
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: Digest | undefined;
  /** registry/repository, without tag or digest. */
  readonly name: string;
  /** The full normalized form: docker.io/library/busybox:latest. */
  toString(): string;
  /** docker's short form: busybox:latest, user/app:1, localhost:5000/a@sha256:... */
  familiar(): string;
}

function refError(input: string, problem: string): StrataError {
  return new StrataError('INVALID_ARGUMENT', `invalid reference "${input}": ${problem}`, {
    hint: 'use [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST], lowercase, for example busybox:1.36 or localhost:5000/team/app:v1',
  });
}

function validDomain(domain: string): boolean {
  let host = domain;
  let port: string | undefined;
  const v6 = /^\[([0-9a-fA-F:]+)\](?::(\d+))?$/.exec(domain);
  if (v6) return v6[2] === undefined || /^\d+$/.test(v6[2]);
  const colon = domain.lastIndexOf(':');
  if (colon >= 0) {
    host = domain.slice(0, colon);
    port = domain.slice(colon + 1);
    if (!/^\d+$/.test(port)) return false;
  }
  return host.split('.').every((c) => DOMAIN_COMPONENT.test(c));
}

class Ref implements Reference {
  constructor(
    readonly registry: string,
    readonly repository: string,
    readonly tag: string | undefined,
    readonly digest: Digest | undefined,
  ) {}
  get name(): string {
    return `${this.registry}/${this.repository}`;
  }
  #suffix(): string {
    return `${this.tag ? `:${this.tag}` : ''}${this.digest ? `@${this.digest}` : ''}`;
  }
  toString(): string {
    return `${this.name}${this.#suffix()}`;
  }
  familiar(): string {
    let n = this.name;
    if (this.registry === DEFAULT_REGISTRY) {
      n =
        this.repository.startsWith(OFFICIAL_PREFIX) && !this.repository.slice(OFFICIAL_PREFIX.length).includes('/')
          ? this.repository.slice(OFFICIAL_PREFIX.length)
          : this.repository;
    }
    return `${n}${this.#suffix()}`;
  }
}

/**
 * Parse and normalize a reference as docker does: `busybox` → docker.io/library/busybox:latest; the first path
 * component is a registry only when it has a `.` or `:` or is `localhost`; `:latest` is added only when there is
 * neither tag nor digest (unless `defaultTag` is ''), and a reference may carry both.
 */
export function parseReference(input: string, opts: { defaultTag?: string } = {}): Reference {
  if (typeof input !== 'string' || input === '') throw refError(String(input), 'it is empty');
  if (input !== input.trim()) throw refError(input, 'it has leading or trailing spaces');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    try {
      digest = parseDigest(rest.slice(at + 1), 'digest');
    } catch (err) {
      throw refError(input, (err as Error).message.replace(/^invalid digest: field "digest" /, 'digest '));
    }
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag))
      throw refError(
        input,
        tag === ''
          ? 'the tag is empty'
          : `"${tag}" is not a valid tag (letters, digits, _ . -; at most 128; not starting with . or -)`,
      );
  }
  if (rest === '') throw refError(input, 'the repository name is empty');
  let registry = DEFAULT_REGISTRY;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      if (!validDomain(first)) throw refError(input, `"${first}" is not a valid registry host`);
      registry = first === LEGACY_REGISTRY ? DEFAULT_REGISTRY : first;
      path = rest.slice(slash + 1);
    }
  }
  const components = path.split('/');
  for (const c of components) {
    if (c === '') throw refError(input, 'the repository name has an empty path component');
    if (!COMPONENT.test(c)) {
      if (COMPONENT.test(c.toLowerCase())) throw refError(input, 'repository name must be lowercase');
      throw refError(
        input,
        `"${c}" is not a valid repository path component (lowercase letters, digits and . _ __ - between them)`,
      );
    }
  }
  if (registry === DEFAULT_REGISTRY && components.length === 1) path = `${OFFICIAL_PREFIX}${path}`;
  if (`${registry}/${path}`.length > MAX_NAME)
    throw refError(input, `the repository name is longer than ${MAX_NAME} characters`);
  if (tag === undefined && digest === undefined && opts.defaultTag !== '') tag = opts.defaultTag ?? 'latest';
  return new Ref(registry, path, tag, digest);
}

/** A repository name alone (no tag, no digest), normalized. */
export function parseRepositoryName(input: string): Reference {
  const r = parseReference(input, { defaultTag: '' });
  if (r.tag !== undefined || r.digest !== undefined) throw refError(input, 'a repository name takes no tag or digest');
  return r;
}

export function withTag(ref: Reference, tag: string): Reference {
  if (!TAG.test(tag)) throw refError(`${ref.name}:${tag}`, `"${tag}" is not a valid tag`);
  return new Ref(ref.registry, ref.repository, tag, undefined);
}

export function withDigest(ref: Reference, digest: Digest): Reference {
  return new Ref(ref.registry, ref.repository, undefined, digest);
}

export function familiarName(ref: Reference): string {
  return new Ref(ref.registry, ref.repository, undefined, undefined).familiar();
}

export function isDigestReference(ref: Reference): boolean {
  return ref.digest !== undefined;
}

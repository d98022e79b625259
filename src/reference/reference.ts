import { StrataError } from '../errors/index.js';
import { type Digest, digestProblem, quoted } from '../oci/index.js';

export const DEFAULT_REGISTRY = 'docker.io';
const LEGACY_REGISTRY = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';

// The grammar of distribution/reference (regexp.go): domain[:port], path components, tag.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const IMAGE_ID = /^[a-f0-9]{64}$/;
const MAX_NAME = 255;

/** A parsed, normalized image reference: registry/repository[:tag][@digest]. */
export interface Reference {
  /** docker.io for Docker Hub (index.docker.io is normalized to it), else host[:port] as written. */
  readonly registry: string;
  /** The path in the registry: library/busybox, user/app, a/b/c. */
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

const HINT =
  'use [REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST] with a lowercase repository, for example busybox:1.36 or localhost:5000/team/app:v1';

const IMAGE_ID_HINT = 'commands that take an image accept its ID as is; a reference needs a repository name';

function refError(input: string, problem: string, hint = HINT): StrataError {
  return new StrataError('INVALID_ARGUMENT', `invalid reference ${quoted(input)}: ${problem}`, {
    hint,
    details: { reference: input },
  });
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
    return `${this.tag === undefined ? '' : `:${this.tag}`}${this.digest === undefined ? '' : `@${this.digest}`}`;
  }
  toString(): string {
    return `${this.name}${this.#suffix()}`;
  }
  /** So a Reference inside JSON (inspect output, records) is its string, as distribution's Field marshals. */
  toJSON(): string {
    return this.toString();
  }
  familiar(): string {
    return `${familiarRepository(this.registry, this.repository)}${this.#suffix()}`;
  }
}

/** distribution's familiarizeName: Docker Hub drops its domain, and official images their library/ prefix. */
function familiarRepository(registry: string, repository: string): string {
  if (registry !== DEFAULT_REGISTRY) return `${registry}/${repository}`;
  const rest = repository.startsWith(OFFICIAL_PREFIX) ? repository.slice(OFFICIAL_PREFIX.length) : '';
  return rest && !rest.includes('/') ? rest : repository;
}

/**
 * distribution's splitDockerDomain: the first component is a registry when it is `localhost`, has a `.` or `:`,
 * or has an uppercase letter (Docker Hub namespaces cannot), and otherwise is part of a Docker Hub path.
 */
function splitRegistry(name: string): [string, string] {
  const slash = name.indexOf('/');
  if (slash < 0) return [DEFAULT_REGISTRY, `${OFFICIAL_PREFIX}${name}`];
  const first = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  let registry = DEFAULT_REGISTRY;
  let path = name;
  if (first === LEGACY_REGISTRY) [registry, path] = [DEFAULT_REGISTRY, rest];
  else if (first === 'localhost' || /[.:]/.test(first) || first !== first.toLowerCase())
    [registry, path] = [first, rest];
  if (registry === DEFAULT_REGISTRY && !path.includes('/')) path = `${OFFICIAL_PREFIX}${path}`;
  return [registry, path];
}

function checkTag(input: string, tag: string): void {
  if (tag === '') throw refError(input, 'the tag is empty');
  if (!TAG.test(tag)) {
    throw refError(
      input,
      `${quoted(tag, 40)} is not a valid tag: up to 128 letters, digits, _ . and -, not starting with . or -`,
    );
  }
}

/**
 * Parse and normalize a reference as docker does (distribution/reference ParseNormalizedNamed): `busybox` is
 * docker.io/library/busybox:latest, `user/app` is docker.io/user/app:latest. A reference may carry a tag and a
 * digest together; `latest` (or `defaultTag`; '' for none) is added only when it has neither.
 */
export function parseReference(input: string, opts: { defaultTag?: string } = {}): Reference {
  if (typeof input !== 'string' || input === '') throw refError(String(input ?? ''), 'the reference is empty');
  if (/\s/.test(input)) throw refError(input, 'it contains spaces or other whitespace');
  if (IMAGE_ID.test(input)) {
    throw refError(input, 'a 64-character hex string is an image ID, not a repository name', IMAGE_ID_HINT);
  }
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    const problem = digestProblem(d);
    if (problem !== undefined) throw refError(input, `the digest ${problem}`);
    digest = d as Digest;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    checkTag(input, tag);
  }
  if (rest === '') throw refError(input, 'the repository name is empty');
  const [registry, repository] = splitRegistry(rest);
  if (!DOMAIN.test(registry)) throw refError(input, `${quoted(registry, 60)} is not a valid registry host[:port]`);
  if (repository !== repository.toLowerCase()) throw refError(input, 'repository name must be lowercase');
  for (const c of repository.split('/')) {
    if (c === '') throw refError(input, 'the repository name has an empty path component');
    if (!COMPONENT.test(c)) {
      throw refError(
        input,
        `${quoted(c, 60)} is not a valid repository path component: lowercase letters and digits, separated by one . or _, two _, or any number of -`,
      );
    }
  }
  if (registry.length + 1 + repository.length > MAX_NAME) {
    throw refError(input, `the repository name is longer than ${MAX_NAME} characters`);
  }
  if (tag === undefined && digest === undefined && opts.defaultTag !== '') tag = opts.defaultTag ?? 'latest';
  return new Ref(registry, repository, tag, digest);
}

/** A repository name alone (no tag, no digest), normalized: what `strata images REPOSITORY` or a push target names. */
export function parseRepositoryName(input: string): Reference {
  const r = parseReference(input, { defaultTag: '' });
  if (r.tag !== undefined || r.digest !== undefined) {
    throw refError(input, 'a repository name takes no tag or digest', 'drop the :TAG and @DIGEST');
  }
  return r;
}

/** The reference with `tag`; a digest it has is kept, as distribution's WithTag does. */
export function withTag(ref: Reference, tag: string): Reference {
  checkTag(`${ref.name}:${tag}`, tag);
  return new Ref(ref.registry, ref.repository, tag, ref.digest);
}

/** The reference pinned to `digest`; a tag it has is kept, as distribution's WithDigest does. */
export function withDigest(ref: Reference, digest: Digest): Reference {
  const problem = digestProblem(digest);
  if (problem !== undefined) throw refError(`${ref.name}@${digest}`, `the digest ${problem}`);
  return new Ref(ref.registry, ref.repository, ref.tag, digest);
}

/** The familiar repository name, without tag or digest: busybox, user/app, localhost:5000/a/b. */
export function familiarName(ref: Reference): string {
  return familiarRepository(ref.registry, ref.repository);
}

export function isDigestReference(ref: Reference): boolean {
  return ref.digest !== undefined;
}

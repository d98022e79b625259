import { type Digest, isDigest } from '../oci/index.js';

/** Repository names as the distribution spec's grammar allows them: path components joined by `/`. */
export const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
export const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
export const MAX_NAME_LENGTH = 255;

export type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'referrers'; name: string; digest: string };

/**
 * Map a request path (without query) to a route. Names contain slashes, so the path is matched from its end:
 * `/v2/<name>/manifests/<ref>`, `/v2/<name>/blobs/uploads/<id>`, ... The name is returned unvalidated: handlers
 * answer NAME_INVALID for a bad one, so a client learns why.
 */
export function matchRoute(path: string): Route | undefined {
  if (path === '/v2/' || path === '/v2') return { kind: 'base' };
  if (path === '/v2/_catalog') return { kind: 'catalog' };
  if (!path.startsWith('/v2/')) return undefined;
  const rest = path.slice(4);
  let m = /^(.+)\/tags\/list$/.exec(rest);
  if (m) return { kind: 'tags', name: m[1]! };
  m = /^(.+)\/manifests\/([^/]+)$/.exec(rest);
  if (m) return { kind: 'manifest', name: m[1]!, reference: decodeComponent(m[2]!) };
  m = /^(.+)\/blobs\/uploads\/?$/.exec(rest);
  if (m) return { kind: 'uploads', name: m[1]! };
  m = /^(.+)\/blobs\/uploads\/([^/]+)$/.exec(rest);
  if (m) return { kind: 'upload', name: m[1]!, id: m[2]! };
  m = /^(.+)\/blobs\/([^/]+)$/.exec(rest);
  if (m) return { kind: 'blob', name: m[1]!, digest: decodeComponent(m[2]!) };
  m = /^(.+)\/referrers\/([^/]+)$/.exec(rest);
  if (m) return { kind: 'referrers', name: m[1]!, digest: decodeComponent(m[2]!) };
  return undefined;
}

/** A percent-decoded path component; as it came when it is not valid percent-encoding (its check then refuses it). */
function decodeComponent(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function isTag(reference: string): boolean {
  return TAG_RE.test(reference);
}

export function isDigestReference(reference: string): reference is Digest {
  return isDigest(reference);
}

export const paths = {
  base: () => '/v2/',
  blob: (name: string, digest: string) => `/v2/${name}/blobs/${digest}`,
  uploads: (name: string) => `/v2/${name}/blobs/uploads/`,
  upload: (name: string, id: string) => `/v2/${name}/blobs/uploads/${id}`,
  manifest: (name: string, reference: string) => `/v2/${name}/manifests/${reference}`,
  tags: (name: string) => `/v2/${name}/tags/list`,
  catalog: () => '/v2/_catalog',
  referrers: (name: string, digest: string) => `/v2/${name}/referrers/${digest}`,
};

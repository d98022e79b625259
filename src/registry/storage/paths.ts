import { StrataError } from '../../errors/index.js';

/**
 * The registry's storage tree, drawn once (as distribution's paths.go). No other code joins storage paths.
 *
 *   /docker/registry/v2/
 *     blobs/<alg>/<hex[0:2]>/<hex>/data                       every blob once, for all repositories
 *     blobs/<alg>/<hex[0:2]>/<hex>/touched                    refreshed when a known blob is used again (GC age)
 *     repositories/<name>/
 *       _layers/<alg>/<hex>/link                              the repository may read this blob
 *       _manifests/revisions/<alg>/<hex>/link                 a manifest pushed to the repository
 *       _manifests/tags/<tag>/current/link                    tag -> manifest digest
 *       _referrers/<alg>/<subject hex>/<alg>/<hex>/link       manifests whose subject is this digest
 *       _uploads/<id>/{data,startedat}                        uploads in progress
 */
export type PathSpec =
  | { kind: 'root' }
  | { kind: 'blobs' }
  | { kind: 'blobData'; digest: string }
  | { kind: 'blobDir'; digest: string }
  | { kind: 'blobTouched'; digest: string }
  | { kind: 'repositories' }
  | { kind: 'repository'; name: string }
  | { kind: 'layerLink'; name: string; digest: string }
  | { kind: 'layers'; name: string }
  | { kind: 'revisionLink'; name: string; digest: string }
  | { kind: 'revisions'; name: string }
  | { kind: 'tags'; name: string }
  | { kind: 'tag'; name: string; tag: string }
  | { kind: 'tagCurrentLink'; name: string; tag: string }
  | { kind: 'referrers'; name: string; subject: string }
  | { kind: 'referrerLink'; name: string; subject: string; digest: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'uploadData'; name: string; id: string }
  | { kind: 'uploadStartedAt'; name: string; id: string };

const ROOT = '/docker/registry/v2';

function split(digest: string): [string, string] {
  const i = digest.indexOf(':');
  const alg = digest.slice(0, i);
  const hex = digest.slice(i + 1);
  if (i <= 0 || !/^[a-z0-9]+$/.test(alg) || !/^[a-f0-9]{32,}$/.test(hex)) {
    throw new StrataError('INVALID_ARGUMENT', `not a digest: ${digest}`);
  }
  return [alg, hex];
}

/** `reserved`: a leading `_` is refused (names the registry's own directories); tags may start with one. */
function safe(component: string, what: string, reserved = true): string {
  if (
    !component ||
    component.split('/').some((c) => c === '' || c === '.' || c === '..' || (reserved && c.startsWith('_')))
  ) {
    throw new StrataError('INVALID_ARGUMENT', `invalid ${what} for a storage path: ${component}`);
  }
  return component;
}

export function pathFor(spec: PathSpec): string {
  switch (spec.kind) {
    case 'root':
      return ROOT;
    case 'blobs':
      return `${ROOT}/blobs`;
    case 'blobDir': {
      const [alg, hex] = split(spec.digest);
      return `${ROOT}/blobs/${alg}/${hex.slice(0, 2)}/${hex}`;
    }
    case 'blobData':
      return `${pathFor({ kind: 'blobDir', digest: spec.digest })}/data`;
    case 'blobTouched':
      return `${pathFor({ kind: 'blobDir', digest: spec.digest })}/touched`;
    case 'repositories':
      return `${ROOT}/repositories`;
    case 'repository':
      return `${ROOT}/repositories/${safe(spec.name, 'repository name')}`;
    case 'layers':
      return `${pathFor({ kind: 'repository', name: spec.name })}/_layers`;
    case 'layerLink': {
      const [alg, hex] = split(spec.digest);
      return `${pathFor({ kind: 'layers', name: spec.name })}/${alg}/${hex}/link`;
    }
    case 'revisions':
      return `${pathFor({ kind: 'repository', name: spec.name })}/_manifests/revisions`;
    case 'revisionLink': {
      const [alg, hex] = split(spec.digest);
      return `${pathFor({ kind: 'revisions', name: spec.name })}/${alg}/${hex}/link`;
    }
    case 'tags':
      return `${pathFor({ kind: 'repository', name: spec.name })}/_manifests/tags`;
    case 'tag':
      return `${pathFor({ kind: 'tags', name: spec.name })}/${safe(spec.tag, 'tag', false)}`;
    case 'tagCurrentLink':
      return `${pathFor({ kind: 'tag', name: spec.name, tag: spec.tag })}/current/link`;
    case 'referrers': {
      const [alg, hex] = split(spec.subject);
      return `${pathFor({ kind: 'repository', name: spec.name })}/_referrers/${alg}/${hex}`;
    }
    case 'referrerLink': {
      const [alg, hex] = split(spec.digest);
      return `${pathFor({ kind: 'referrers', name: spec.name, subject: spec.subject })}/${alg}/${hex}/link`;
    }
    case 'uploads':
      return `${pathFor({ kind: 'repository', name: spec.name })}/_uploads`;
    case 'upload':
      return `${pathFor({ kind: 'uploads', name: spec.name })}/${safe(spec.id, 'upload id')}`;
    case 'uploadData':
      return `${pathFor({ kind: 'upload', name: spec.name, id: spec.id })}/data`;
    case 'uploadStartedAt':
      return `${pathFor({ kind: 'upload', name: spec.name, id: spec.id })}/startedat`;
  }
}

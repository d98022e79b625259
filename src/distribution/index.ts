/**
 * Distribution: the OCI Distribution Spec as pure protocol, shared by the registry server and the client: routes,
 * the error-code table, headers, ranges, pagination links, auth challenges and scopes. No I/O.
 *
 *   const route = matchRoute('/v2/library/busybox/manifests/latest');  // { kind: 'manifest', name, reference }
 *   throw new DistributionError('MANIFEST_UNKNOWN', { tag: 'latest' });
 */
export {
  type Action,
  type Challenge,
  formatChallenge,
  formatScope,
  parseChallenges,
  parseScope,
  type Scope,
} from './auth.js';
export {
  DistributionError,
  type DistributionErrorCode,
  type ErrorEntry,
  ErrorCodes,
  errorBody,
  parseErrorBody,
} from './errors.js';
export { API_VERSION, Header, nextLink, parseContentRange, parseNextLink, parseRangeHeader } from './http.js';
export {
  isDigestReference,
  isTag,
  isValidName,
  MAX_NAME_LENGTH,
  matchRoute,
  NAME_RE,
  paths,
  type Route,
  TAG_RE,
} from './routes.js';

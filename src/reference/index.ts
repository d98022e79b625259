/**
 * References: image names (registry/repository[:tag][@digest]) parsed and normalized exactly as docker's
 * distribution/reference does. Bad input throws StrataError INVALID_ARGUMENT saying what is wrong, with a hint.
 *
 *   parseReference('busybox').toString()                  // docker.io/library/busybox:latest
 *   parseReference('localhost:5000/a/b:v1').familiar()    // localhost:5000/a/b:v1
 *   parseReference('Foo:bar')                             // invalid reference "Foo:bar": repository name must be lowercase
 */
export {
  DEFAULT_REGISTRY,
  familiarName,
  isDigestReference,
  parseReference,
  parseRepositoryName,
  type Reference,
  withDigest,
  withTag,
} from './reference.js';

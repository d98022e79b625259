/**
 * References: image names parsed and normalized exactly as docker does, with errors that say what is wrong.
 *
 *   parseReference('busybox').toString()        // docker.io/library/busybox:latest
 *   parseReference('localhost:5000/a/b:v1').familiar()   // localhost:5000/a/b:v1
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

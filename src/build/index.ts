/**
 * Build: a Dockerfile and a context to an image. Stages the target needs run in order; RUN steps run in runc
 * containers over overlays of the stage's layers, COPY/ADD copy into such overlays, every step is keyed for the
 * cache (parent key, expanded instruction, build args it uses, checksum of the files it reads) and timestamps are
 * the SOURCE_DATE_EPOCH (0 by default), so the same inputs give the same digest.
 *
 *   const b = new Builder({ root, content, snapshots, names, baseImage });
 *   const { descriptor, id } = await b.build({ context: '.', dockerfile: { text, path: 'Dockerfile' } });
 */
export { type BuiltLayer, BuildCache, type CacheRecord, cacheKey } from './cache.js';
export {
  type BuildDeps,
  type BuildEvent,
  Builder,
  type BuildOptions,
  type BuildResult,
  BuildStepError,
} from './builder.js';
export { globToRegExp, openContext, SourceTree } from './context.js';

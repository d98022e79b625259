/**
 * The registry server: the OCI Distribution Spec over fastify, storage through a StorageDriver (filesystem by
 * default), auth, GC and metrics. Imports only L0 and `distribution`: it meets strata's client only on the wire.
 *
 *   const reg = await startRegistry({ config: parseRegistryConfig({ addr: '127.0.0.1:0' }), root: dir });
 *   // docker push 127.0.0.1:${reg.port}/app:1 ...
 *   await reg.close();
 */
export { type Access, type Authenticator, createAuthenticator, type Grant } from './auth/index.js';
export {
  loadRegistryConfig,
  parseRegistryConfig,
  type RegistryConfig,
  type RegistryConfigInput,
  registryConfigSchema,
} from './config.js';
export {
  type RegistryGcDeletion,
  type RegistryGcOptions,
  type RegistryGcResult,
  registryGc,
} from './gc.js';
export { RegistryMetrics } from './metrics.js';
export {
  buildRegistryApp,
  parseAddr,
  type RegistryServerOptions,
  type RunningRegistry,
  startRegistry,
} from './server.js';
export { FilesystemDriver, isNotFound, pathFor, type StorageDriver } from './storage/index.js';
export { RegistryStore } from './store.js';

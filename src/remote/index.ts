/**
 * Remote: the registry client. `createTransport()` speaks to one registry (auth, bearer tokens, retries, streaming
 * bodies); the puller, pusher and copy use it; credentials come from strata's auth file and docker's config.json.
 *
 *   const t = createTransport('127.0.0.1:5000', { credentials: defaultCredentialStore() });
 *   const res = await t.request({ method: 'GET', path: '/v2/', scope: { name: 'app', actions: ['pull'] } });
 */
export { DEFERRED_CA_ENV, deferredCaCertificates, httpAgent } from './agent.js';
export { type HttpExchange, RegistryAuth, scopeStrings } from './auth.js';
export {
  type AuthConfig,
  authFilePath,
  type CredentialStore,
  credentialKey,
  DOCKER_HUB_KEY,
  defaultCredentialStore,
  dockerConfigPath,
  FileCredentialStore,
  type FileCredentialStoreOptions,
  runCredentialHelper,
  StaticCredentialStore,
} from './credentials.js';
export {
  type FetchedManifest,
  type FetchManifestOptions,
  fetchBlobBytes,
  fetchManifest,
  MANIFEST_ACCEPT,
  readLimited,
} from './manifest.js';
export {
  type DownloadOptions,
  downloadBlob,
  isTransient,
  listTags,
  type PulledLayer,
  type PullOptions,
  type PullResult,
  pullImage,
} from './puller.js';
export {
  createTransport,
  DEFAULT_USER_AGENT,
  isInsecureRegistry,
  parseRetryAfter,
  RegistryError,
  type RetryInfo,
  redactUrl,
  registryOrigin,
  Transport,
  type TransportOptions,
  verifyCredentials,
} from './transport.js';
export { BLOB_SOURCES_FILE, blobSources, blobSourcesFor, recordBlobSource } from './blob-sources.js';
export {
  type CopiedBlob,
  type CopyEnvironment,
  type CopyOptions,
  type CopyResult,
  copyImage,
  formatImageName,
  type ImageName,
  parseImageName,
} from './copy.js';
export { type PushedBlob, type PushOptions, type PushResult, pushImage } from './pusher.js';
export type { CopyManifest, ImageDestination, ImageSource } from './sources.js';
export {
  type BlobOpener,
  type BlobPushOptions,
  type BlobPushResult,
  blobExists,
  pushBlob,
  putManifest,
} from './upload.js';
export type {
  ProgressEvent,
  ProgressFn,
  ProgressState,
  RegistryTransport,
  RemoteOptions,
  RequestScope,
  TransportRequest,
  TransportResponse,
} from './types.js';

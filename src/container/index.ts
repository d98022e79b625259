/**
 * Containers: records under `<root>/containers/<id>/` (state.json, the runtime bundle, the /etc files, the JSON-lines
 * log), a writable snapshot over the image's layers, and runc/crun (through runtime/) to run them; diff, export and
 * commit read the writable snapshot.
 *
 *   const containers = new ContainerManager({ root, content, snapshots, names, resolveImage, monitorCommand });
 *   const rec = await containers.create({ image: 'busybox', cmd: ['echo', 'hi'], autoRemove: true });
 *   const code = await containers.runAttached(rec.id, { stdout, stderr });
 */
export { readFileInRoot, resolveInRoot, walkInRoot, writeInitLayer } from './files.js';
export { type ReadLogOptions, readLog } from './logs.js';
export {
  type AttachIO,
  type CommitOptions,
  ContainerManager,
  type ContainerManagerOptions,
  type CreateContainerOptions,
  type ExecContainerOptions,
  type MonitorMessage,
  type RunHooks,
} from './manager.js';
export { randomName } from './names.js';
export { processAlive, processStartTime } from './proc.js';
export {
  mergeEnv,
  parseCpus,
  parseEnv,
  parseEnvFile,
  parseMemory,
  parsePidsLimit,
  parseVolume,
  validateSignal,
} from './options.js';
export { ContainerStore } from './store.js';
export type {
  BindMount,
  ContainerChange,
  ContainerRecord,
  ContainerState,
  ContainerStatus,
  ContainerSummary,
  HostConfig,
  LogEntry,
  ProcessConfig,
} from './types.js';

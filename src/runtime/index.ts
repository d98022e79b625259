/**
 * The OCI runtime: the runtime spec (config.json) made from an image config, the way docker makes it (pure), the
 * user lookup, runtime detection, and the runc/crun driver (the only code that spawns them).
 *
 *   const user = resolveUser(opts.user ?? config.config?.User, passwd, group);
 *   const spec = runtimeSpecFromImage(config, { id, rootfs: 'rootfs', user, hostLimits: await readHostLimits() });
 *   const rt = await OciRuntime.open(stateRoot);
 *   const { exitCode } = await (await rt.run(id, bundle, { stdio: 'inherit' })).wait();
 */
export {
  type CgroupMode,
  cgroupMode,
  crunHostProblem,
  type DetectOptions,
  detectRuntime,
  findOnPath,
  type HostLimits,
  parseProcLimits,
  parseRuntimeVersion,
  readHostLimits,
  type RuntimeInfo,
  type RuntimeName,
} from './detect.js';
export {
  ContainerExecError,
  type ContainerProcess,
  type ContainerState,
  type ContainerStatus,
  type CreateOptions,
  type ExecOptions,
  type ExitStatus,
  execErrorExitCode,
  OciRuntime,
  type RunOptions,
  RuntimeError,
  runtimeErrorMessages,
} from './driver.js';
export {
  type BindMount,
  CPU_PERIOD,
  capabilitySet,
  commandFromImage,
  DEFAULT_CAPABILITIES,
  DEFAULT_DEVICE_RULES,
  DEFAULT_MASKED_PATHS,
  DEFAULT_MOUNTS,
  DEFAULT_NOFILE,
  DEFAULT_PATH,
  DEFAULT_READONLY_PATHS,
  environment,
  MIN_MEMORY,
  NETNS_SYSCTLS,
  OCI_VERSION,
  type RunSpecOptions,
  type RuntimeSpec,
  runtimeSpecFromImage,
  type SpecCapabilities,
  type SpecDeviceCgroup,
  type SpecMount,
  type SpecNamespace,
  type SpecProcess,
  type SpecResources,
  type SpecRlimit,
  type SpecUser,
  validateContainerId,
} from './spec.js';
export { parseGroup, parsePasswd, type ResolvedUser, resolveUser } from './user.js';

import type { Digest } from '../oci/index.js';

export type ContainerStatus = 'created' | 'running' | 'exited';

/** What changes while a container lives; kept in `containers/<id>/state.json` with the rest of the record. */
export interface ContainerState {
  status: ContainerStatus;
  /** The container's init process as the host sees it; 0 when not running. */
  pid: number;
  exitCode: number;
  /** ISO times; absent when the container never started / never finished. */
  startedAt?: string;
  finishedAt?: string;
  /** Why the last start failed, or why the exit status is unknown. */
  error?: string;
  /** The process supervising the container (strata's monitor), or the one starting it. */
  monitorPid?: number;
  /** Its start time (/proc/<pid>/stat), so a recycled pid is not taken for it. */
  monitorStart?: string;
}

/** A bind mount as given with -v SRC:DST[:ro]. */
export interface BindMount {
  source: string;
  destination: string;
  readOnly: boolean;
}

/** How the container was asked to run: docker's HostConfig, the part strata supports. */
export interface HostConfig {
  binds: BindMount[];
  network: 'none' | 'host';
  readOnlyRootfs: boolean;
  /** Bytes; 0 = no limit. */
  memory: number;
  /** CPUs (1.5 = one and a half); 0 = no limit. */
  cpus: number;
  /** 0 = no limit. */
  pidsLimit: number;
  autoRemove: boolean;
  /** The OCI runtime chosen at create time (runc or crun). */
  runtime: string;
  interactive: boolean;
  tty: boolean;
}

/** The process and environment: docker's container Config (image defaults merged with the run options). */
export interface ProcessConfig {
  hostname: string;
  user: string;
  env: string[];
  /** The command as given (after the image): replaces the image's CMD when not empty. */
  cmd: string[] | null;
  /** The entrypoint override; null = the image's. */
  entrypoint: string[] | null;
  workingDir: string;
  labels: Record<string, string>;
  stopSignal: string;
}

/** One container: `containers/<id>/state.json`. */
export interface ContainerRecord {
  id: string;
  name: string;
  created: string;
  /** The image as the user named it (busybox, or an ID). */
  image: string;
  /** Config digest (IMAGE ID) and manifest digest of the image. */
  imageId: Digest;
  imageDigest: Digest;
  /** The image's top layer chainId: the parent of the container's writable snapshot ('' for an empty image). */
  chainId: string;
  /** The writable snapshot's key. */
  snapshotKey: string;
  /** The process that runs: argv[0] and the rest, as `ps` shows them (from entrypoint + cmd). */
  path: string;
  args: string[];
  config: ProcessConfig;
  hostConfig: HostConfig;
  state: ContainerState;
}

/** A container as listings show it. */
export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  imageId: Digest;
  command: string;
  created: string;
  state: ContainerStatus;
  exitCode: number;
  startedAt: string | undefined;
  finishedAt: string | undefined;
  pid: number;
}

export interface LogEntry {
  stream: 'stdout' | 'stderr';
  /** The text, newline included when the line had one. */
  log: string;
  time: string;
}

export type ChangeKind = 'A' | 'C' | 'D';

export interface ContainerChange {
  kind: ChangeKind;
  path: string;
}

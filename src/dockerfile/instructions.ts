import type { HealthConfig } from '../oci/index.js';
import type { SourceLocation } from './errors.js';
import type { Heredoc } from './heredoc.js';
import type { EscapeToken } from './shell-lex.js';

// The typed instructions: what each Dockerfile line says, with its words still unexpanded (variables are
// substituted per stage by evaluateStage, which knows the ARG and ENV values in effect).

interface Base {
  /** The keyword as written (`copy`, `Copy`): the lint casing checks use it. */
  readonly keyword: string;
  /** The logical source line (continuations joined, heredoc bodies excluded). */
  readonly original: string;
  readonly location: SourceLocation;
}

/** Shell form (one string run by the stage's SHELL) or exec form (a JSON array run as is). */
export type CommandLine =
  | { readonly form: 'shell'; readonly command: string }
  | { readonly form: 'exec'; readonly args: readonly string[] };

export interface KeyValue {
  readonly key: string;
  readonly value: string;
}

export type MountType = 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';

/** A `RUN --mount=...` as written: the CSV fields are validated and typed per stage, after expansion. */
export interface MountSpec {
  /** The flag value as written (`type=cache,target=/root/.cache`). */
  readonly raw: string;
  readonly type: MountType;
  /** `from=` (a stage name or an image), which BuildKit does not expand. */
  readonly from?: string;
}

export interface FromInstruction extends Base {
  readonly kind: 'FROM';
  /** The base: an image reference, `scratch` or an earlier stage name; may hold global ARG references. */
  readonly image: string;
  /** The stage name after AS, lower-cased as BuildKit does. */
  readonly name?: string;
  readonly platform?: string;
}

export interface RunInstruction extends Base {
  readonly kind: 'RUN';
  readonly command: CommandLine;
  readonly heredocs: readonly Heredoc[];
  readonly mounts: readonly MountSpec[];
  readonly network?: 'default' | 'none' | 'host';
  readonly security?: 'sandbox' | 'insecure';
}

export interface CmdInstruction extends Base {
  readonly kind: 'CMD';
  readonly command: CommandLine;
}

export interface EntrypointInstruction extends Base {
  readonly kind: 'ENTRYPOINT';
  /** An empty command (`ENTRYPOINT []` or a bare `ENTRYPOINT`) resets the base image's entrypoint. */
  readonly command: CommandLine;
}

export interface EnvInstruction extends Base {
  readonly kind: 'ENV';
  readonly pairs: readonly KeyValue[];
  /** Written in the legacy `ENV key value` form. */
  readonly legacy: boolean;
}

export interface ArgDefinition {
  readonly name: string;
  /** The default as written (quotes and variables unprocessed); absent for `ARG NAME`. */
  readonly default?: string;
}

export interface ArgInstruction extends Base {
  readonly kind: 'ARG';
  readonly args: readonly ArgDefinition[];
}

export interface LabelInstruction extends Base {
  readonly kind: 'LABEL';
  readonly pairs: readonly KeyValue[];
  readonly legacy: boolean;
}

export interface ExposeInstruction extends Base {
  readonly kind: 'EXPOSE';
  /** The words as written (`80/tcp`, `8000-8010`, `$PORT`). */
  readonly ports: readonly string[];
}

export interface VolumeInstruction extends Base {
  readonly kind: 'VOLUME';
  readonly volumes: readonly string[];
  readonly json: boolean;
}

export interface WorkdirInstruction extends Base {
  readonly kind: 'WORKDIR';
  readonly path: string;
}

export interface UserInstruction extends Base {
  readonly kind: 'USER';
  readonly user: string;
}

export interface StopSignalInstruction extends Base {
  readonly kind: 'STOPSIGNAL';
  readonly signal: string;
}

export interface HealthcheckInstruction extends Base {
  readonly kind: 'HEALTHCHECK';
  /**
   * As the image config stores it: Test is ["NONE"], ["CMD", ...args] or ["CMD-SHELL", command]; durations in
   * nanoseconds, absent (inherit) when not given.
   */
  readonly health: HealthConfig;
}

export interface ShellInstruction extends Base {
  readonly kind: 'SHELL';
  readonly shell: readonly string[];
}

export interface OnbuildInstruction extends Base {
  readonly kind: 'ONBUILD';
  /** The trigger text stored in the image config's OnBuild list (heredoc bodies included). */
  readonly expression: string;
  /** The trigger, typed; absent when it does not parse (it fails only in the image that inherits it). */
  readonly trigger?: Instruction;
}

export interface MaintainerInstruction extends Base {
  readonly kind: 'MAINTAINER';
  readonly maintainer: string;
}

/** A COPY/ADD source: a path (or URL, for ADD) as written, or a heredoc whose body becomes a file. */
export type CopySource =
  | { readonly kind: 'path'; readonly path: string }
  | { readonly kind: 'heredoc'; readonly heredoc: Heredoc };

interface CopyCommon extends Base {
  readonly sources: readonly CopySource[];
  readonly dest: string;
  readonly chown?: string;
  readonly chmod?: string;
  readonly link: boolean;
  readonly exclude: readonly string[];
  /** Written as a JSON array (which allows whitespace in paths and takes no heredocs). */
  readonly json: boolean;
}

export interface CopyInstruction extends CopyCommon {
  readonly kind: 'COPY';
  /** A stage name, a stage index or an image; not expanded (as in BuildKit). */
  readonly from?: string;
  readonly parents: boolean;
}

export interface AddInstruction extends CopyCommon {
  readonly kind: 'ADD';
  readonly checksum?: string;
  readonly keepGitDir: boolean;
}

/** Every instruction but FROM, which opens a Stage. */
export type Instruction =
  | RunInstruction
  | CmdInstruction
  | EntrypointInstruction
  | EnvInstruction
  | ArgInstruction
  | LabelInstruction
  | ExposeInstruction
  | VolumeInstruction
  | WorkdirInstruction
  | UserInstruction
  | StopSignalInstruction
  | HealthcheckInstruction
  | ShellInstruction
  | OnbuildInstruction
  | MaintainerInstruction
  | CopyInstruction
  | AddInstruction;

export type InstructionKind = Instruction['kind'] | 'FROM';

export const INSTRUCTION_KEYWORDS: readonly InstructionKind[] = [
  'ADD',
  'ARG',
  'CMD',
  'COPY',
  'ENTRYPOINT',
  'ENV',
  'EXPOSE',
  'FROM',
  'HEALTHCHECK',
  'LABEL',
  'MAINTAINER',
  'ONBUILD',
  'RUN',
  'SHELL',
  'STOPSIGNAL',
  'USER',
  'VOLUME',
  'WORKDIR',
];

export interface Stage {
  /** Position in the file, from 0: what `COPY --from=1` names. */
  readonly index: number;
  readonly name?: string;
  readonly from: FromInstruction;
  readonly instructions: readonly Instruction[];
  /** From the FROM line to the stage's last instruction. */
  readonly location: SourceLocation;
  /** The file's escape token, which expansion in this stage uses. */
  readonly escape: EscapeToken;
}

/** A lint finding, named and worded as BuildKit's build checks. */
export interface Warning {
  readonly rule: string;
  readonly message: string;
  readonly location: SourceLocation;
  readonly url: string;
}

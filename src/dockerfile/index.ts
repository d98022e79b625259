/**
 * Dockerfiles, read as BuildKit's frontend reads them, with no I/O: text to typed instructions grouped in stages
 * (parseDockerfile: directives, continuations, heredocs, exec/shell forms, flags, lint warnings), words expanded
 * per stage with the ARG and ENV values in effect (evaluateMetaArgs, evaluateStage: the shell lexer's $v, ${v:-w},
 * ${v#p}, ${v/p/r}), the stages a target needs (stageDependencies), and .dockerignore matching. Errors are
 * DockerfileSyntaxError (INVALID_ARGUMENT) located as `Dockerfile:7: ...`, with a hint.
 *
 *   const df = parseDockerfile(text, { file: 'Dockerfile' });
 *   const globalArgs = evaluateMetaArgs(df, { buildArgs, platform: { target, build } });
 *   const graph = stageDependencies(df, { target: 'release', globalArgs });
 *   for (const i of graph.order) {
 *     const base = graph.stages[i].base;          // scratch, an image to pull, or an earlier stage's result
 *     const st = evaluateStage(df.stages[i], { globalArgs, buildArgs, baseEnv });
 *     for (const step of st.instructions) step.expanded;   // e.g. { kind: 'COPY', sources, dest, chmod, ... }
 *   }
 *   const ignore = parseDockerignore(ignoreText);   // ignore.matches('node_modules/x') -> true
 */
export {
  cleanPath,
  type IgnoreMatcher,
  type IgnorePattern,
  ignoreFileCandidates,
  parseDockerignore,
  readDockerignore,
} from './dockerignore.js';
export { DockerfileSyntaxError, type SourceLocation } from './errors.js';
export {
  type EvaluatedFrom,
  type EvaluatedInstruction,
  type EvaluatedStage,
  type EvaluateMetaArgsOptions,
  type EvaluateStageOptions,
  type ExpandedAdd,
  type ExpandedArg,
  type ExpandedCopy,
  type ExpandedCopySource,
  type ExpandedEnv,
  type ExpandedExpose,
  type ExpandedInstruction,
  type ExpandedLabel,
  type ExpandedRun,
  type ExpandedStopSignal,
  type ExpandedUser,
  type ExpandedVolume,
  type ExpandedWorkdir,
  evaluateFrom,
  evaluateMetaArgs,
  evaluateStage,
  type FileMode,
  type GlobalArgs,
  PROXY_ARGS,
  type PlatformInfo,
  parseFileMode,
  parsePortSpec,
  platformArgs,
} from './evaluate.js';
export type { Heredoc } from './heredoc.js';
export {
  type AddInstruction,
  type ArgDefinition,
  type ArgInstruction,
  type CmdInstruction,
  type CommandLine,
  type CopyInstruction,
  type CopySource,
  type EntrypointInstruction,
  type EnvInstruction,
  type ExposeInstruction,
  type FromInstruction,
  type HealthcheckInstruction,
  INSTRUCTION_KEYWORDS,
  type Instruction,
  type InstructionKind,
  type KeyValue,
  type LabelInstruction,
  type MaintainerInstruction,
  type MountSpec,
  type MountType,
  type OnbuildInstruction,
  type RunInstruction,
  type ShellInstruction,
  type Stage,
  type StopSignalInstruction,
  type UserInstruction,
  type VolumeInstruction,
  type Warning,
  type WorkdirInstruction,
} from './instructions.js';
export { MOUNT_TYPES, type Mount, parseMount } from './mounts.js';
export { applyCheckDirective, type Dockerfile, PLATFORM_ARGS, type ParseOptions, parseDockerfile } from './parse.js';
export type { CheckDirective, Directives } from './parser.js';
export {
  type EscapeToken,
  type ExpandOptions,
  type ExpandResult,
  type ExpandWordsResult,
  expandWord,
  expandWords,
  lookupFrom,
  type VariableLookup,
} from './shell-lex.js';
export {
  resolveBase,
  resolveStageReference,
  type StageDependenciesOptions,
  type StageDependency,
  type StageGraph,
  type StageNode,
  type StageSource,
  stageDependencies,
} from './stages.js';

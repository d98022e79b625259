import { DEFAULT_PATH_ENV, digestProblem, formatPlatform, type Platform, parsePlatform } from '../oci/index.js';
import { located, problem } from './errors.js';
import type {
  AddInstruction,
  CmdInstruction,
  CommandLine,
  CopyInstruction,
  EntrypointInstruction,
  FromInstruction,
  HealthcheckInstruction,
  Instruction,
  KeyValue,
  MaintainerInstruction,
  OnbuildInstruction,
  ShellInstruction,
  Stage,
  Warning,
} from './instructions.js';
import type { Heredoc } from './heredoc.js';
import { RULES, warning } from './lint.js';
import { type Mount, parseMount } from './mounts.js';
import type { Dockerfile } from './parse.js';
import { type EscapeToken, expandWord, expandWords, type VariableLookup } from './shell-lex.js';
import { goQuote } from './text.js';

// Stage 3: the words of a stage's instructions expanded with the ARG and ENV values in effect at each one, as
// BuildKit's dispatcher does: global ARGs for FROM, build args over ARG defaults, ENV over ARG of the same name.

/** The platforms of a build: what it targets and what it runs on (they differ when cross-building). */
export interface PlatformInfo {
  readonly target: Platform;
  readonly build: Platform;
}

/** The build args BuildKit gives RUN without an ARG declaration, and keeps out of the cache key and history. */
export const PROXY_ARGS = [
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
] as const;

/** TARGETPLATFORM, TARGETOS, ... BUILDVARIANT for a build (a variant-less platform gives an empty variant). */
export function platformArgs(p: PlatformInfo): Record<string, string> {
  return {
    TARGETPLATFORM: formatPlatform(p.target),
    TARGETOS: p.target.os,
    TARGETARCH: p.target.architecture,
    TARGETVARIANT: p.target.variant ?? '',
    BUILDPLATFORM: formatPlatform(p.build),
    BUILDOS: p.build.os,
    BUILDARCH: p.build.architecture,
    BUILDVARIANT: p.build.variant ?? '',
  };
}

/** The global scope: what FROM lines see, and what `ARG NAME` inside a stage imports. */
export interface GlobalArgs {
  /** The platform ARGs (when a platform was given) plus every global ARG that has a value. */
  readonly values: ReadonlyMap<string, string>;
  /** The names declared by ARG before the first FROM. */
  readonly declared: ReadonlySet<string>;
  /** The build args the global ARGs took. */
  readonly consumedBuildArgs: ReadonlySet<string>;
}

export interface EvaluateMetaArgsOptions {
  /** `--build-arg` values; they override defaults of the ARGs that declare them. */
  buildArgs?: Readonly<Record<string, string>>;
  /** Defines the automatic platform ARGs. */
  platform?: PlatformInfo;
}

const has = (r: Readonly<Record<string, string>> | undefined, k: string): r is Readonly<Record<string, string>> =>
  r !== undefined && Object.hasOwn(r, k);

/**
 * Evaluate the ARGs before the first FROM, in order: a build arg wins, else the default expanded with the global
 * values so far. Throws DockerfileSyntaxError when a default does not expand (`${X:?}`).
 */
export function evaluateMetaArgs(
  dockerfile: Pick<Dockerfile, 'metaArgs' | 'directives'>,
  opts: EvaluateMetaArgsOptions = {},
): GlobalArgs {
  const values = new Map<string, string>(opts.platform ? Object.entries(platformArgs(opts.platform)) : []);
  const declared = new Set<string>();
  const consumed = new Set<string>();
  const lookup: VariableLookup = (n) => values.get(n);
  for (const ins of dockerfile.metaArgs) {
    located(ins.location, 'ARG', () => {
      for (const def of ins.args) {
        declared.add(def.name);
        if (has(opts.buildArgs, def.name)) {
          values.set(def.name, opts.buildArgs[def.name]!);
          consumed.add(def.name);
        } else if (def.default !== undefined) {
          values.set(def.name, expandWord(def.default, lookup, { escape: dockerfile.directives.escape }).value);
        }
      }
    });
  }
  return { values, declared, consumedBuildArgs: consumed };
}

/** A FROM line with its global ARGs substituted. */
export interface EvaluatedFrom {
  /** The base as expanded: an image reference, `scratch`, or a stage name (see resolveBase). */
  readonly image: string;
  readonly platform?: Platform;
  /** The global ARGs it used. */
  readonly usedArgs: readonly string[];
}

export function evaluateFrom(
  from: FromInstruction,
  globalArgs: GlobalArgs,
  escapeToken: EscapeToken = '\\',
): EvaluatedFrom {
  return located(from.location, 'FROM', () => {
    const used = new Set<string>();
    const lookup: VariableLookup = (n) => globalArgs.values.get(n);
    const image = expandWord(from.image, lookup, { escape: escapeToken });
    for (const n of image.matched) used.add(n);
    if (image.value === '') {
      throw problem(
        `base name (${from.image}) should not be blank`,
        'give the ARG it uses a default, or pass it with --build-arg',
      );
    }
    let platform: Platform | undefined;
    if (from.platform !== undefined) {
      const p = expandWord(from.platform, lookup, { escape: escapeToken });
      for (const n of p.matched) used.add(n);
      // an empty platform (e.g. $BUILDPLATFORM when none was given) means the build's default, as in BuildKit
      if (p.value !== '') platform = parsePlatform(p.value);
    }
    return { image: image.value, ...(platform ? { platform } : {}), usedArgs: [...used].sort() };
  });
}

/** A chmod value: octal bits, or a symbolic expression (u+x,go-w) as newer BuildKit accepts. */
export type FileMode =
  | { readonly kind: 'octal'; readonly mode: number }
  | { readonly kind: 'symbolic'; readonly expression: string };

export type ExpandedCopySource =
  | { readonly kind: 'path'; readonly path: string }
  | { readonly kind: 'heredoc'; readonly name: string; readonly content: string };

interface ExpandedCopyCommon {
  readonly sources: readonly ExpandedCopySource[];
  readonly dest: string;
  readonly chown?: string;
  readonly chmod?: FileMode;
  readonly link: boolean;
  readonly exclude: readonly string[];
}

export interface ExpandedCopy extends ExpandedCopyCommon {
  readonly kind: 'COPY';
  /** As written: BuildKit does not expand --from (see resolveStageReference). */
  readonly from?: string;
  readonly parents: boolean;
}

export interface ExpandedAdd extends ExpandedCopyCommon {
  readonly kind: 'ADD';
  readonly checksum?: string;
  readonly keepGitDir: boolean;
}

export interface ExpandedRun {
  readonly kind: 'RUN';
  /** Not expanded: the shell does that, with runEnv. */
  readonly command: CommandLine;
  readonly heredocs: readonly Heredoc[];
  readonly mounts: readonly Mount[];
  readonly network?: 'default' | 'none' | 'host';
  readonly security?: 'sandbox' | 'insecure';
}

export interface ExpandedEnv {
  readonly kind: 'ENV';
  readonly pairs: readonly KeyValue[];
}

export interface ExpandedLabel {
  readonly kind: 'LABEL';
  readonly pairs: readonly KeyValue[];
}

export interface ExpandedArg {
  readonly kind: 'ARG';
  /** Each declared name with the value it took (absent: declared without one). */
  readonly args: readonly { readonly name: string; readonly value?: string }[];
}

export interface ExpandedExpose {
  readonly kind: 'EXPOSE';
  /** Normalized as the image config keys them: `80/tcp`, one entry per port of a range. */
  readonly ports: readonly string[];
}

export interface ExpandedVolume {
  readonly kind: 'VOLUME';
  readonly volumes: readonly string[];
}

export interface ExpandedWorkdir {
  readonly kind: 'WORKDIR';
  /** As expanded; a relative path is relative to the previous working directory (the build resolves it). */
  readonly path: string;
}

export interface ExpandedUser {
  readonly kind: 'USER';
  readonly user: string;
}

export interface ExpandedStopSignal {
  readonly kind: 'STOPSIGNAL';
  readonly signal: string;
}

/** An instruction with its words expanded; the ones BuildKit does not expand are passed through unchanged. */
export type ExpandedInstruction =
  | ExpandedRun
  | ExpandedCopy
  | ExpandedAdd
  | ExpandedEnv
  | ExpandedLabel
  | ExpandedArg
  | ExpandedExpose
  | ExpandedVolume
  | ExpandedWorkdir
  | ExpandedUser
  | ExpandedStopSignal
  | CmdInstruction
  | EntrypointInstruction
  | ShellInstruction
  | HealthcheckInstruction
  | OnbuildInstruction
  | MaintainerInstruction;

export interface EvaluatedInstruction {
  readonly instruction: Instruction;
  readonly expanded: ExpandedInstruction;
  /** The image's ENV (KEY=VALUE) in effect when the instruction runs, before its own effect. */
  readonly env: readonly string[];
  /** What RUN gets: the ENV entries, then the ARG values in scope that no ENV of the same name overrides. */
  readonly runEnv: readonly string[];
  /**
   * Proxy build args (HTTP_PROXY ...) given but not declared: RUN gets them too, but BuildKit keeps them out of the
   * cache key and the history.
   */
  readonly proxyEnv: readonly string[];
  /**
   * The ARGs (by name) whose values this instruction depends on, for its cache key: those its words used, and for
   * RUN every ARG in runEnv.
   */
  readonly usedArgs: readonly string[];
}

export interface EvaluateStageOptions {
  /** From evaluateMetaArgs. */
  globalArgs: GlobalArgs;
  /** `--build-arg` values. */
  buildArgs?: Readonly<Record<string, string>>;
  /**
   * The base image config's Env (KEY=VALUE); for `FROM <stage>`, that stage's final `env`. A PATH is added when it
   * has none, as BuildKit does.
   */
  baseEnv?: readonly string[];
}

export interface EvaluatedStage {
  readonly stage: Stage;
  readonly from: EvaluatedFrom;
  readonly instructions: readonly EvaluatedInstruction[];
  /** The Env the stage's image ends with. */
  readonly env: readonly string[];
  /** The ARG values in scope at the end of the stage. */
  readonly args: Readonly<Record<string, string>>;
  /** The build args ARGs in this stage took. */
  readonly consumedBuildArgs: readonly string[];
  /** UndefinedVar and WorkdirRelativePath findings. */
  readonly warnings: readonly Warning[];
}

const entries = (m: ReadonlyMap<string, string>) => [...m].map(([k, v]) => `${k}=${v}`);

/**
 * Expand a stage. Pure: the caller supplies the base image's Env (pulled, or a previous stage's result). Throws
 * DockerfileSyntaxError at the instruction whose words do not expand or whose expanded values are invalid.
 */
export function evaluateStage(stage: Stage, opts: EvaluateStageOptions): EvaluatedStage {
  const escapeToken = stage.escape;
  const from = evaluateFrom(stage.from, opts.globalArgs, escapeToken);
  const env = new Map<string, string>();
  for (const entry of opts.baseEnv ?? []) {
    const eq = entry.indexOf('=');
    env.set(eq < 0 ? entry : entry.slice(0, eq), eq < 0 ? '' : entry.slice(eq + 1));
  }
  if (!env.has('PATH')) {
    const eq = DEFAULT_PATH_ENV.indexOf('=');
    env.set('PATH', DEFAULT_PATH_ENV.slice(eq + 1));
  }
  const args = new Map<string, string>();
  const declared = new Set<string>();
  const consumed = new Set<string>();
  const warnings: Warning[] = [];
  const out: EvaluatedInstruction[] = [];
  let absoluteWorkdir = false;

  for (const ins of stage.instructions) {
    const used = new Set<string>();
    const lookup: VariableLookup = (n) => {
      if (env.has(n)) return env.get(n);
      const v = args.get(n);
      if (v !== undefined) used.add(n);
      return v;
    };
    const undefinedVars = new Set<string>();
    const note = (unmatched: Set<string>) => {
      for (const n of unmatched) if (!declared.has(n)) undefinedVars.add(n);
    };
    const word = (w: string): string => {
      const r = expandWord(w, lookup, { escape: escapeToken });
      note(r.unmatched);
      return r.value;
    };
    const before = entries(env);
    const runEnv = [...before, ...entries(new Map([...args].filter(([k]) => !env.has(k))))];
    const proxyEnv = PROXY_ARGS.filter((k) => has(opts.buildArgs, k) && !declared.has(k) && !env.has(k)).map(
      (k) => `${k}=${opts.buildArgs![k]}`,
    );

    const expanded = located(ins.location, ins.kind, (): ExpandedInstruction => {
      switch (ins.kind) {
        case 'ARG': {
          const results: { name: string; value?: string }[] = [];
          for (const def of ins.args) {
            declared.add(def.name);
            let value: string | undefined;
            if (has(opts.buildArgs, def.name)) {
              value = opts.buildArgs[def.name]!;
              consumed.add(def.name);
            } else if (def.default !== undefined) value = word(def.default);
            else value = opts.globalArgs.values.get(def.name);
            if (value !== undefined) args.set(def.name, value);
            results.push(value === undefined ? { name: def.name } : { name: def.name, value });
          }
          return { kind: 'ARG', args: results };
        }
        case 'ENV': {
          // every word is expanded with the values before this line, then all are applied
          const pairs = ins.pairs.map((p) => ({ key: word(p.key), value: word(p.value) }));
          for (const p of pairs) env.set(p.key, p.value);
          return { kind: 'ENV', pairs };
        }
        case 'LABEL':
          return { kind: 'LABEL', pairs: ins.pairs.map((p) => ({ key: word(p.key), value: word(p.value) })) };
        case 'EXPOSE': {
          const ports: string[] = [];
          for (const raw of ins.ports) {
            const r = expandWords(raw, lookup, { escape: escapeToken });
            note(r.unmatched);
            for (const spec of r.words) for (const p of parsePortSpec(spec)) if (!ports.includes(p)) ports.push(p);
          }
          return { kind: 'EXPOSE', ports };
        }
        case 'VOLUME':
          return {
            kind: 'VOLUME',
            volumes: ins.volumes.map((v) => {
              const x = word(v);
              if (x === '') throw problem('VOLUME specified can not be an empty string');
              return x;
            }),
          };
        case 'WORKDIR': {
          const path = word(ins.path);
          if (path.startsWith('/')) absoluteWorkdir = true;
          else if (!absoluteWorkdir) {
            warnings.push(warning('WorkdirRelativePath', RULES.WorkdirRelativePath(path), ins.location));
          }
          return { kind: 'WORKDIR', path };
        }
        case 'USER':
          return { kind: 'USER', user: word(ins.user) };
        case 'STOPSIGNAL': {
          const signal = word(ins.signal);
          checkSignal(signal);
          return { kind: 'STOPSIGNAL', signal };
        }
        case 'COPY':
        case 'ADD':
          return expandCopy(ins, word, lookup, note);
        case 'RUN': {
          const mounts = ins.mounts.map((m) => parseMount(m.raw, word));
          for (const k of args.keys()) if (!env.has(k)) used.add(k);
          return {
            kind: 'RUN',
            command: ins.command,
            heredocs: ins.heredocs,
            mounts,
            ...(ins.network === undefined ? {} : { network: ins.network }),
            ...(ins.security === undefined ? {} : { security: ins.security }),
          };
        }
        default:
          return ins;
      }
    });
    for (const n of undefinedVars) warnings.push(warning('UndefinedVar', RULES.UndefinedVar(n), ins.location));
    out.push({ instruction: ins, expanded, env: before, runEnv, proxyEnv, usedArgs: [...used].sort() });
  }
  for (const k of PROXY_ARGS) if (has(opts.buildArgs, k)) consumed.add(k);
  return {
    stage,
    from,
    instructions: out,
    env: entries(env),
    args: Object.fromEntries(args),
    consumedBuildArgs: [...consumed].sort(),
    warnings,
  };
}

const SYMBOLIC_MODE = /^[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+(?:,[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+)*$/;

/** Parse a --chmod value as BuildKit does: octal up to 07777, or a symbolic expression. */
export function parseFileMode(value: string): FileMode {
  if (/^[0-7]+$/.test(value)) {
    const mode = Number.parseInt(value, 8);
    if (mode <= 0o7777) return { kind: 'octal', mode };
  } else if (SYMBOLIC_MODE.test(value)) {
    return { kind: 'symbolic', expression: value };
  }
  throw problem(
    `invalid chmod parameter: '${value}'. it should be octal string and between 0 and 07777`,
    'for example --chmod=0755 or --chmod=u+x',
  );
}

function expandCopy(
  ins: CopyInstruction | AddInstruction,
  word: (w: string) => string,
  lookup: VariableLookup,
  note: (unmatched: Set<string>) => void,
): ExpandedCopy | ExpandedAdd {
  const sources: ExpandedCopySource[] = ins.sources.map((s) => {
    if (s.kind === 'path') return { kind: 'path', path: word(s.path) };
    if (!s.heredoc.expand) return { kind: 'heredoc', name: s.heredoc.name, content: s.heredoc.content };
    // heredoc bodies: variables and `\` escapes, but quotes are literal text
    const r = expandWord(s.heredoc.content, lookup, { escape: '\\', skipProcessQuotes: true });
    note(r.unmatched);
    return { kind: 'heredoc', name: s.heredoc.name, content: r.value };
  });
  const chown = ins.chown === undefined ? undefined : word(ins.chown);
  const chmodText = ins.chmod === undefined ? undefined : word(ins.chmod);
  const common = {
    sources,
    dest: word(ins.dest),
    ...(chown === undefined || chown === '' ? {} : { chown }),
    ...(chmodText === undefined || chmodText === '' ? {} : { chmod: parseFileMode(chmodText) }),
    link: ins.link,
    exclude: ins.exclude.map(word),
  };
  if (ins.kind === 'COPY') {
    return { kind: 'COPY', ...common, ...(ins.from === undefined ? {} : { from: ins.from }), parents: ins.parents };
  }
  const checksum = ins.checksum === undefined ? undefined : word(ins.checksum);
  if (checksum !== undefined && checksum !== '') {
    const bad = digestProblem(checksum);
    if (bad !== undefined)
      throw problem(`invalid checksum digest format ${goQuote(checksum)}: ${bad}`, 'use --checksum=sha256:<64 hex>');
  }
  return {
    kind: 'ADD',
    ...common,
    ...(checksum === undefined || checksum === '' ? {} : { checksum }),
    keepGitDir: ins.keepGitDir,
  };
}

const SIGNALS = new Set([
  'ABRT',
  'ALRM',
  'BUS',
  'CHLD',
  'CLD',
  'CONT',
  'FPE',
  'HUP',
  'ILL',
  'INT',
  'IO',
  'IOT',
  'KILL',
  'PIPE',
  'POLL',
  'PROF',
  'PWR',
  'QUIT',
  'SEGV',
  'STKFLT',
  'STOP',
  'SYS',
  'TERM',
  'TRAP',
  'TSTP',
  'TTIN',
  'TTOU',
  'URG',
  'USR1',
  'USR2',
  'VTALRM',
  'WINCH',
  'XCPU',
  'XFSZ',
  'RTMIN',
  'RTMAX',
  ...Array.from({ length: 15 }, (_, i) => `RTMIN+${i + 1}`),
  ...Array.from({ length: 14 }, (_, i) => `RTMAX-${i + 1}`),
]);

/** moby's signal.ParseSignal: a non-zero number, or a Linux signal name with or without SIG. */
function checkSignal(raw: string): void {
  if (/^[+-]?\d+$/.test(raw)) {
    if (Number(raw) !== 0) return;
  } else if (SIGNALS.has(raw.toUpperCase().replace(/^SIG/, ''))) return;
  throw problem(`Invalid signal: ${raw}`, 'use a signal name (SIGTERM, SIGINT, SIGRTMIN+3) or number');
}

function isIp(s: string): boolean {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (v4) return v4.slice(1).every((o) => Number(o) <= 255);
  return s.includes(':') && /^[0-9a-fA-F:.]+$/.test(s) && (s.match(/::/g) ?? []).length <= 1;
}

function parsePortRange(s: string): [number, number] | undefined {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  return start > 65535 || end > 65535 || end < start ? undefined : [start, end];
}

/**
 * One EXPOSE word to the image config's port keys, as BuildKit reads `[ip:][hostPort:]containerPort[/proto]`:
 * `8000-8002/udp` is three keys; the protocol defaults to tcp and is lower-cased.
 */
export function parsePortSpec(raw: string): string[] {
  const parts = raw.split(':');
  const n = parts.length;
  const containerPart = parts[n - 1]!;
  const hostPort = n >= 2 ? parts[n - 2]! : '';
  let ip = n >= 3 ? parts.slice(0, n - 2).join(':') : '';
  const slash = containerPart.split('/');
  let proto = 'tcp';
  let container = containerPart;
  if (containerPart === '' || slash[0] === '') container = '';
  else if (slash.length > 1) {
    container = slash[0]!;
    if (slash[1] !== '') proto = slash[1]!;
  }
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  if (ip !== '' && !isIp(ip)) throw problem(`invalid IP address: ${ip}`);
  if (container === '')
    throw problem(`no port specified: ${raw}<empty>`, 'write EXPOSE <port>[/<protocol>], for example 80/tcp');
  const range = parsePortRange(container);
  if (!range) throw problem(`invalid containerPort: ${container}`, 'a port is 0-65535, a range is <start>-<end>');
  if (hostPort !== '' && !parsePortRange(hostPort)) throw problem(`invalid hostPort: ${hostPort}`);
  const p = proto.toLowerCase();
  if (p !== 'tcp' && p !== 'udp' && p !== 'sctp')
    throw problem(`invalid proto: ${proto}`, 'the protocol is tcp, udp or sctp');
  const out: string[] = [];
  for (let port = range[0]; port <= range[1]; port++) out.push(`${port}/${p}`);
  return out;
}

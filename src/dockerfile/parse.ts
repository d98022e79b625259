import { DockerfileSyntaxError, located, problem, type SourceLocation } from './errors.js';
import { type FlagType, type ParsedFlags, parseFlags } from './flags.js';
import { parseGoDuration } from './duration.js';
import { parseHeredocWord } from './heredoc.js';
import {
  type ArgDefinition,
  type ArgInstruction,
  type CommandLine,
  type CopySource,
  type FromInstruction,
  INSTRUCTION_KEYWORDS,
  type Instruction,
  type KeyValue,
  type MountSpec,
  type Stage,
  type Warning,
} from './instructions.js';
import { looksSecret, type RuleName, RULES, warning } from './lint.js';
import { parseMountSpec } from './mounts.js';
import { type Directives, type Node, parseJsonArray, parseLines } from './parser.js';
import { type EscapeToken, expandWord } from './shell-lex.js';
import { closest, goQuote, isSpace, trimSpace, WHITESPACE_RUN } from './text.js';

/** A parsed Dockerfile: directives, the ARGs before the first FROM, the stages, and lint warnings. */
export interface Dockerfile {
  /** The name used in messages (`Dockerfile`, `build/app.Dockerfile`). */
  readonly file: string;
  readonly directives: Directives;
  /** Global ARGs: usable in FROM lines, and imported into a stage by `ARG NAME` without a value. */
  readonly metaArgs: readonly ArgInstruction[];
  readonly stages: readonly Stage[];
  readonly warnings: readonly Warning[];
}

export interface ParseOptions {
  /** The name errors and locations use (default `Dockerfile`). */
  file?: string;
}

/** The automatic platform ARGs BuildKit defines in the global scope. */
export const PLATFORM_ARGS = [
  'TARGETPLATFORM',
  'TARGETOS',
  'TARGETARCH',
  'TARGETVARIANT',
  'BUILDPLATFORM',
  'BUILDOS',
  'BUILDARCH',
  'BUILDVARIANT',
] as const;

const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;
const RESERVED_STAGE_NAMES = ['context', 'scratch'];
const NO_FLAGS: Record<string, FlagType> = {};
const COPY_FLAGS: Record<string, FlagType> = {
  from: 'string',
  chown: 'string',
  chmod: 'string',
  link: 'bool',
  parents: 'bool',
  exclude: 'strings',
};
const ADD_FLAGS: Record<string, FlagType> = {
  chown: 'string',
  chmod: 'string',
  checksum: 'string',
  link: 'bool',
  'keep-git-dir': 'bool',
  exclude: 'strings',
};
const HEALTHCHECK_FLAGS: Record<string, FlagType> = {
  interval: 'string',
  timeout: 'string',
  'start-period': 'string',
  'start-interval': 'string',
  retries: 'string',
};

type Warn = (rule: RuleName, message: string) => void;

const atLeastOne = (k: string) => problem(`${k} requires at least one argument`);
const exactlyOne = (k: string) => problem(`${k} requires exactly one argument`);

function splitWhitespace(rest: string): string[] {
  return rest === '' ? [] : rest.split(WHITESPACE_RUN);
}

/** RUN, CMD, ENTRYPOINT, SHELL: a JSON array of strings is exec form; anything else (even broken JSON) is shell. */
function maybeJson(rest: string): { json: true; args: string[] } | { json: false; text: string } {
  const parsed = parseJsonArray(rest);
  if (parsed === 'not-strings') throw problem('when using JSON array syntax, arrays must be comprised of strings only');
  return parsed === undefined ? { json: false, text: rest } : { json: true, args: parsed };
}

/** COPY, ADD, VOLUME: a JSON array, else whitespace-separated words. */
function maybeJsonList(rest: string): { json: boolean; args: string[] } {
  const parsed = parseJsonArray(rest);
  if (parsed === 'not-strings') throw problem('when using JSON array syntax, arrays must be comprised of strings only');
  return parsed === undefined ? { json: false, args: splitWhitespace(rest) } : { json: true, args: parsed };
}

function commandLine(rest: string): CommandLine {
  const p = maybeJson(rest);
  return p.json ? { form: 'exec', args: p.args } : { form: 'shell', command: p.text };
}

/**
 * Split ENV/LABEL/ARG text into words on unquoted whitespace, keeping quotes and escapes for expansion to process
 * (BuildKit's parseWords).
 */
export function parseWords(rest: string, escapeToken: EscapeToken): string[] {
  const chars = Array.from(rest);
  const words: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= chars.length; pos++) {
    let ch = chars[pos] ?? '';
    if (phase === 'spaces') {
      if (pos === chars.length) break;
      if (isSpace(ch)) continue;
      phase = 'word';
    }
    if (pos === chars.length) {
      if (blankOK || word.length > 0) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
      }
      if (ch === escapeToken) {
        if (pos + 1 === chars.length) continue; // an escapeToken at the end of the line is dropped
        // outside quotes an escapeToken always keeps the next character, even a quote
        word += ch;
        ch = chars[++pos]!;
      }
      word += ch;
      continue;
    }
    if (ch === quote) phase = 'word';
    if (ch === escapeToken && quote !== "'") {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      word += ch;
      ch = chars[++pos]!;
    }
    word += ch;
  }
  return words;
}

/** ENV and LABEL: `key=value ...`, or the legacy `key value` (the rest of the line is the value). */
function parseNameVal(rest: string, keyword: string, escapeToken: EscapeToken): { pairs: KeyValue[]; legacy: boolean } {
  const words = parseWords(rest, escapeToken);
  if (words.length === 0) throw atLeastOne(keyword);
  if (!words[0]!.includes('=')) {
    const m = WHITESPACE_RUN.exec(rest);
    if (!m) throw problem(`${keyword} must have two arguments`, `write ${keyword} key=value`);
    const key = rest.slice(0, m.index);
    return { pairs: [{ key, value: rest.slice(m.index + m[0].length) }], legacy: true };
  }
  const pairs = words.map((word) => {
    const eq = word.indexOf('=');
    if (eq < 0) {
      throw problem(
        `Syntax error - can't find = in ${goQuote(word)}. Must be of the form: name=value`,
        'quote values that contain spaces: KEY="a value"',
      );
    }
    return { key: word.slice(0, eq), value: word.slice(eq + 1) };
  });
  if (pairs.some((p) => p.key === '')) throw problem(`${keyword} names can not be blank`);
  return { pairs, legacy: false };
}

function parseArgs(rest: string, escapeToken: EscapeToken): ArgDefinition[] {
  const words = parseWords(rest, escapeToken);
  if (words.length === 0) throw atLeastOne('ARG');
  return words.map((word) => {
    const eq = word.indexOf('=');
    const name = eq < 0 ? word : word.slice(0, eq);
    if (name === '') throw problem('ARG names can not be blank');
    return eq < 0 ? { name } : { name, default: word.slice(eq + 1) };
  });
}

function singleArg(node: Node): string {
  if (node.rest === '') throw exactlyOne(node.command.toUpperCase());
  return node.rest;
}

function parseOptDuration(flags: ParsedFlags, name: string): number | undefined {
  const s = flags.string(name);
  if (s === undefined || s === '') return undefined;
  const ns = parseGoDuration(s);
  if (ns === 0) return 0;
  if (ns < 1e6) throw problem(`Interval ${goQuote(name)} cannot be less than 1ms`);
  return ns;
}

function parseHealthcheck(node: Node): Instruction {
  const rest = node.rest;
  let sep = 0;
  while (sep < rest.length && !isSpace(rest[sep])) sep++;
  if (sep === 0) throw atLeastOne('HEALTHCHECK');
  let next = sep;
  while (next < rest.length && isSpace(rest[next])) next++;
  const type = rest.slice(0, sep).toUpperCase();
  const cmd = maybeJson(rest.slice(next));
  const base = {
    kind: 'HEALTHCHECK' as const,
    keyword: node.keyword,
    original: node.original,
    location: node.location,
  };
  if (type === 'NONE') {
    if (rest.slice(next) !== '') throw problem('HEALTHCHECK NONE takes no arguments');
    return { ...base, health: { Test: ['NONE'] } };
  }
  const flags = parseFlags(node.flags, HEALTHCHECK_FLAGS);
  if (type !== 'CMD')
    throw problem(
      `Unknown type ${goQuote(type)} in HEALTHCHECK (try CMD)`,
      'write HEALTHCHECK CMD <command> or HEALTHCHECK NONE',
    );
  const test = cmd.json ? ['CMD', ...cmd.args] : cmd.text === '' ? [] : ['CMD-SHELL', cmd.text];
  if (test.length <= 1) throw problem('Missing command after HEALTHCHECK CMD');
  const health: {
    Test: string[];
    Interval?: number;
    Timeout?: number;
    StartPeriod?: number;
    StartInterval?: number;
    Retries?: number;
  } = { Test: test };
  const interval = parseOptDuration(flags, 'interval');
  const timeout = parseOptDuration(flags, 'timeout');
  const startPeriod = parseOptDuration(flags, 'start-period');
  const startInterval = parseOptDuration(flags, 'start-interval');
  if (interval !== undefined) health.Interval = interval;
  if (timeout !== undefined) health.Timeout = timeout;
  if (startPeriod !== undefined) health.StartPeriod = startPeriod;
  if (startInterval !== undefined) health.StartInterval = startInterval;
  const retries = flags.string('retries');
  if (retries !== undefined && retries !== '') {
    if (!/^[+-]?\d+$/.test(retries)) throw problem(`strconv.ParseInt: parsing ${goQuote(retries)}: invalid syntax`);
    const n = Number(retries);
    if (n > 2 ** 31 - 1 || n < -(2 ** 31))
      throw problem(`strconv.ParseInt: parsing ${goQuote(retries)}: value out of range`);
    if (n < 0) throw problem(`--retries cannot be negative (${n})`);
    health.Retries = n;
  }
  return { ...base, health };
}

function parseCopyLike(node: Node, keyword: 'COPY' | 'ADD'): Instruction {
  const list = maybeJsonList(node.rest);
  if (list.args.length < 2) {
    throw problem(
      `${keyword} requires at least two arguments, but only one was provided. Destination could not be determined`,
      `write ${keyword} <src>... <dest>`,
    );
  }
  const flags = parseFlags(node.flags, keyword === 'COPY' ? COPY_FLAGS : ADD_FLAGS);
  const dest = list.args[list.args.length - 1]!;
  if (!list.json && parseHeredocWord(dest)) throw problem(`${keyword} cannot accept a heredoc as a destination`);
  const heredocs = [...node.heredocs];
  const sources: CopySource[] = list.args.slice(0, -1).map((src) => {
    if (!list.json && parseHeredocWord(src)) {
      const heredoc = heredocs.shift();
      if (heredoc) return { kind: 'heredoc', heredoc };
    }
    return { kind: 'path', path: src };
  });
  const chown = flags.string('chown');
  const chmod = flags.string('chmod');
  const common = {
    keyword: node.keyword,
    original: node.original,
    location: node.location,
    sources,
    dest,
    ...(chown === undefined ? {} : { chown }),
    ...(chmod === undefined ? {} : { chmod }),
    link: flags.bool('link'),
    exclude: flags.strings('exclude'),
    json: list.json,
  };
  if (keyword === 'COPY') {
    const from = flags.string('from');
    return { kind: 'COPY', ...common, ...(from === undefined ? {} : { from }), parents: flags.bool('parents') };
  }
  const checksum = flags.string('checksum');
  return {
    kind: 'ADD',
    ...common,
    ...(checksum === undefined ? {} : { checksum }),
    keepGitDir: flags.bool('keep-git-dir'),
  };
}

function parseFrom(node: Node, warn: Warn): FromInstruction {
  const args = splitWhitespace(node.rest);
  let name: string | undefined;
  if (args.length === 3 && args[1]!.toLowerCase() === 'as') {
    name = args[2]!.toLowerCase();
    if (!STAGE_NAME.test(name)) {
      throw problem(
        `invalid name for build stage: ${goQuote(args[2]!)}, name can't start with a number or contain symbols`,
        'stage names start with a letter and hold letters, digits, -, _ and .',
      );
    }
  } else if (args.length !== 1) {
    throw problem('FROM requires either one or three arguments', 'write FROM <image> [AS <name>]');
  }
  const flags = parseFlags(node.flags, { platform: 'string' });
  if (name !== undefined) {
    if (args[2] !== name) warn('StageNameCasing', RULES.StageNameCasing(args[2]!));
    const kw = node.keyword;
    const fromLower = kw.toLowerCase() === kw;
    const fromUpper = kw.toUpperCase() === kw;
    if (
      (fromLower && args[1]!.toLowerCase() !== args[1]) ||
      (fromUpper && !fromLower && args[1]!.toUpperCase() !== args[1])
    ) {
      warn('FromAsCasing', RULES.FromAsCasing(args[1]!, kw));
    }
    if (RESERVED_STAGE_NAMES.includes(name)) warn('ReservedStageName', RULES.ReservedStageName(name));
  }
  const platform = flags.string('platform');
  return {
    kind: 'FROM',
    keyword: node.keyword,
    original: node.original,
    location: node.location,
    image: args[0]!,
    ...(name === undefined ? {} : { name }),
    ...(platform === undefined ? {} : { platform }),
  };
}

function parseInstruction(node: Node, escapeToken: EscapeToken, warn: Warn): Instruction | FromInstruction {
  const base = { keyword: node.keyword, original: node.original, location: node.location };
  const noFlags = () => parseFlags(node.flags, NO_FLAGS);
  switch (node.command) {
    case 'from':
      return parseFrom(node, warn);
    case 'run': {
      const flags = parseFlags(node.flags, { mount: 'strings', network: 'string', security: 'string' });
      const command = commandLine(node.rest);
      if (command.form === 'shell' && command.command === '') throw atLeastOne('RUN');
      const network = flags.string('network');
      if (network !== undefined && network !== 'default' && network !== 'none' && network !== 'host') {
        throw problem(`unsupported network mode ${goQuote(network)}`, 'use --network=default, none or host');
      }
      const security = flags.string('security');
      if (security !== undefined && security !== 'sandbox' && security !== 'insecure') {
        throw problem(`unsupported security mode ${goQuote(security)}`, 'use --security=sandbox or insecure');
      }
      const mounts: MountSpec[] = flags.strings('mount').map((m) => parseMountSpec(m));
      return {
        kind: 'RUN',
        ...base,
        command,
        heredocs: node.heredocs,
        mounts,
        ...(network === undefined ? {} : { network }),
        ...(security === undefined ? {} : { security }),
      };
    }
    case 'cmd':
    case 'entrypoint': {
      noFlags();
      const kind = node.command === 'cmd' ? 'CMD' : 'ENTRYPOINT';
      const command = commandLine(node.rest);
      if (command.form === 'shell' && command.command !== '')
        warn('JSONArgsRecommended', RULES.JSONArgsRecommended(kind));
      return { kind, ...base, command };
    }
    case 'shell': {
      noFlags();
      const p = maybeJson(node.rest);
      if (!p.json) throw problem('SHELL requires the arguments to be in JSON form', 'write SHELL ["/bin/bash", "-c"]');
      if (p.args.length === 0) throw atLeastOne('SHELL');
      return { kind: 'SHELL', ...base, shell: p.args };
    }
    case 'env':
    case 'label': {
      noFlags();
      const kind = node.command === 'env' ? 'ENV' : 'LABEL';
      const { pairs, legacy } = parseNameVal(node.rest, kind, escapeToken);
      if (legacy) warn('LegacyKeyValueFormat', RULES.LegacyKeyValueFormat(kind));
      if (kind === 'ENV') {
        for (const p of pairs)
          if (looksSecret(p.key)) warn('SecretsUsedInArgOrEnv', RULES.SecretsUsedInArgOrEnv('ENV', p.key));
      }
      return { kind, ...base, pairs, legacy };
    }
    case 'arg': {
      noFlags();
      const args = parseArgs(node.rest, escapeToken);
      for (const a of args)
        if (looksSecret(a.name)) warn('SecretsUsedInArgOrEnv', RULES.SecretsUsedInArgOrEnv('ARG', a.name));
      return { kind: 'ARG', ...base, args };
    }
    case 'expose': {
      noFlags();
      const ports = splitWhitespace(node.rest);
      if (ports.length === 0) throw atLeastOne('EXPOSE');
      for (const p of ports) {
        if (p.includes(':')) warn('ExposeInvalidFormat', RULES.ExposeInvalidFormat(p));
        const slash = p.lastIndexOf('/');
        if (slash >= 0 && p.slice(slash).toLowerCase() !== p.slice(slash))
          warn('ExposeProtoCasing', RULES.ExposeProtoCasing(p));
      }
      return { kind: 'EXPOSE', ...base, ports };
    }
    case 'volume': {
      noFlags();
      const list = maybeJsonList(node.rest);
      if (list.args.length === 0) throw atLeastOne('VOLUME');
      const volumes = list.args.map((v) => {
        const t = trimSpace(v);
        if (t === '') throw problem('VOLUME specified can not be an empty string');
        return t;
      });
      return { kind: 'VOLUME', ...base, volumes, json: list.json };
    }
    case 'workdir':
      noFlags();
      return { kind: 'WORKDIR', ...base, path: singleArg(node) };
    case 'user':
      noFlags();
      return { kind: 'USER', ...base, user: singleArg(node) };
    case 'stopsignal':
      noFlags();
      return { kind: 'STOPSIGNAL', ...base, signal: singleArg(node) };
    case 'maintainer':
      noFlags();
      warn('MaintainerDeprecated', RULES.MaintainerDeprecated());
      return { kind: 'MAINTAINER', ...base, maintainer: singleArg(node) };
    case 'healthcheck':
      return parseHealthcheck(node);
    case 'copy':
      return parseCopyLike(node, 'COPY');
    case 'add':
      return parseCopyLike(node, 'ADD');
    case 'onbuild': {
      if (!node.child) throw atLeastOne('ONBUILD');
      noFlags();
      const trigger = node.child.keyword.toUpperCase();
      if (trigger === 'ONBUILD') throw problem("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
      if (trigger === 'MAINTAINER' || trigger === 'FROM')
        throw problem(`${trigger} isn't allowed as an ONBUILD trigger`);
      let expression = node.original.replace(/^\s*ONBUILD\s*/i, '');
      node.child.heredocs.forEach((h, i) => {
        expression += `\n${node.rawHeredocBodies[i] ?? h.content}${h.name}`;
      });
      let parsed: Instruction | FromInstruction | undefined;
      try {
        parsed = parseInstruction(node.child, escapeToken, () => {});
      } catch {
        parsed = undefined; // BuildKit accepts it; it fails in the image that runs the trigger
      }
      return { kind: 'ONBUILD', ...base, expression, ...(parsed && parsed.kind !== 'FROM' ? { trigger: parsed } : {}) };
    }
    default: {
      const suggestion = closest(node.keyword.toUpperCase(), INSTRUCTION_KEYWORDS);
      throw problem(
        `unknown instruction: ${node.keyword}${suggestion ? ` (did you mean ${suggestion}?)` : ''}`,
        `instructions are ${INSTRUCTION_KEYWORDS.join(', ')}`,
      );
    }
  }
}

const PLATFORM_ARG_SET = new Set<string>(PLATFORM_ARGS);

/** Names a FROM line refers to, for the UndefinedArgInFrom check (expansion errors surface at evaluation). */
function referencedNames(word: string, escapeToken: EscapeToken): string[] {
  const seen = new Set<string>();
  try {
    const r = expandWord(
      word,
      (n) => {
        seen.add(n);
        return undefined;
      },
      { escape: escapeToken },
    );
    for (const n of r.unmatched) seen.add(n);
  } catch {
    return [];
  }
  return [...seen];
}

/**
 * Parse a Dockerfile into directives, global ARGs, stages of typed instructions and lint warnings. Nothing is
 * expanded yet (see evaluateStage). Throws DockerfileSyntaxError, located, worded as BuildKit:
 *
 *   parseDockerfile('FROM alpine\nCOPPY . /app\n')
 *   // Dockerfile:2: unknown instruction: COPPY (did you mean COPY?)
 */
export function parseDockerfile(text: string, opts: ParseOptions = {}): Dockerfile {
  const file = opts.file ?? 'Dockerfile';
  const { directives, nodes, notes } = parseLines(text, file);
  const warnings: Warning[] = notes.map((n) => warning(n.rule, RULES.NoEmptyContinuation(), n.location));
  if (nodes.length === 0) {
    throw new DockerfileSyntaxError(
      'file with no instructions',
      { file, startLine: 1, endLine: 1 },
      {
        hint: 'a Dockerfile needs at least a FROM instruction',
      },
    );
  }
  const escapeToken = directives.escape;
  const metaArgs: ArgInstruction[] = [];
  const stages: { from: FromInstruction; instructions: Instruction[]; endLine: number }[] = [];
  const keywords: { keyword: string; location: SourceLocation }[] = [];

  for (const node of nodes) {
    const warn: Warn = (rule, message) => warnings.push(warning(rule, message, node.location));
    const instruction = located(node.location, node.keyword.toUpperCase(), () =>
      parseInstruction(node, escapeToken, warn),
    );
    if (instruction.kind === 'ARG' && stages.length === 0) {
      metaArgs.push(instruction);
      continue;
    }
    keywords.push({ keyword: node.keyword, location: node.location });
    if (instruction.kind === 'FROM') {
      stages.push({ from: instruction, instructions: [], endLine: node.location.endLine });
      continue;
    }
    const current = stages[stages.length - 1];
    if (!current) {
      throw new DockerfileSyntaxError('no build stage in current context', node.location, {
        instruction: instruction.kind,
        hint: 'only ARG may come before the first FROM',
      });
    }
    current.instructions.push(instruction);
    current.endLine = node.location.endLine;
  }
  if (stages.length === 0) {
    throw new DockerfileSyntaxError('dockerfile contains no stages to build', metaArgs[0]!.location, {
      hint: 'add a FROM instruction after the global ARGs',
    });
  }

  lintCasing(keywords, warnings);
  const declaredGlobal = new Set([...PLATFORM_ARG_SET, ...metaArgs.flatMap((a) => a.args.map((d) => d.name))]);
  const byName = new Map<string, number>();
  const result: Stage[] = stages.map((s, index) => {
    const { from } = s;
    if (from.name !== undefined) {
      if (byName.has(from.name)) {
        throw new DockerfileSyntaxError(`duplicate stage name ${goQuote(from.name)}`, from.location, {
          instruction: 'FROM',
          hint: `stage ${byName.get(from.name)} already uses this name; give each stage its own name`,
        });
      }
      byName.set(from.name, index);
    }
    for (const word of [from.image, from.platform ?? '']) {
      for (const name of referencedNames(word, escapeToken)) {
        if (!declaredGlobal.has(name))
          warnings.push(warning('UndefinedArgInFrom', RULES.UndefinedArgInFrom(name), from.location));
      }
    }
    const seen = new Map<string, SourceLocation>();
    for (const ins of s.instructions) {
      if (ins.kind === 'CMD' || ins.kind === 'ENTRYPOINT' || ins.kind === 'HEALTHCHECK') {
        const previous = seen.get(ins.kind);
        if (previous)
          warnings.push(
            warning('MultipleInstructionsDisallowed', RULES.MultipleInstructionsDisallowed(ins.kind), previous),
          );
        seen.set(ins.kind, ins.location);
      }
    }
    return {
      index,
      ...(from.name === undefined ? {} : { name: from.name }),
      from,
      instructions: s.instructions,
      location: { file, startLine: from.location.startLine, endLine: s.endLine },
      escape: escapeToken,
    };
  });

  const kept = applyCheckDirective(directives, warnings);
  return { file, directives, metaArgs, stages: result, warnings: kept };
}

/** ConsistentInstructionCasing: every keyword in the case most keywords use (mixed-case keywords always warn). */
function lintCasing(keywords: { keyword: string; location: SourceLocation }[], warnings: Warning[]): void {
  let lower = 0;
  let upper = 0;
  for (const { keyword } of keywords) {
    if (keyword.toLowerCase() === keyword) lower++;
    else if (keyword.toUpperCase() === keyword) upper++;
  }
  const majorityLower = lower > upper;
  for (const { keyword, location } of keywords) {
    let casing = '';
    if (majorityLower && keyword.toLowerCase() !== keyword) casing = 'lowercase';
    else if (!majorityLower && keyword.toUpperCase() !== keyword) casing = 'uppercase';
    if (casing)
      warnings.push(
        warning('ConsistentInstructionCasing', RULES.ConsistentInstructionCasing(keyword, casing), location),
      );
  }
}

/** Drop skipped rules; with `error=true`, any remaining warning fails the parse as BuildKit fails the build. */
export function applyCheckDirective(directives: Directives, warnings: readonly Warning[]): Warning[] {
  const check = directives.check;
  if (!check) return [...warnings];
  if (check.skip === 'all') return [];
  const skip = new Set(check.skip.map((s) => s.toLowerCase()));
  const kept = warnings.filter((w) => !skip.has(w.rule.toLowerCase()));
  if (check.error && kept.length > 0) {
    const rules = [...new Set(kept.map((w) => w.rule))];
    throw new DockerfileSyntaxError(`lint violation found for rules: ${rules.join(', ')}`, kept[0]!.location, {
      hint: `${kept[0]!.message}; fix it, or skip the rule with # check=skip=${rules[0]}`,
      details: { warnings: kept },
    });
  }
  return kept;
}

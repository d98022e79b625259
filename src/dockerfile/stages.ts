import { StrataError } from '../errors/index.js';
import { parseReference } from '../reference/index.js';
import { DockerfileSyntaxError, located, problem, type SourceLocation } from './errors.js';
import { type EvaluatedFrom, evaluateFrom, evaluateMetaArgs, type GlobalArgs } from './evaluate.js';
import type { Dockerfile } from './parse.js';
import { goQuote } from './text.js';

/** What a FROM, COPY --from or --mount from= names. */
export type StageSource =
  | { readonly kind: 'stage'; readonly index: number }
  /** An image reference as written (normalize it with parseReference). */
  | { readonly kind: 'image'; readonly reference: string }
  | { readonly kind: 'scratch' };

function stageByName(dockerfile: Dockerfile, name: string, before: number): number | undefined {
  const lower = name.toLowerCase();
  const stage = dockerfile.stages.find((s) => s.index < before && s.name === lower);
  return stage?.index;
}

function image(reference: string): StageSource {
  try {
    parseReference(reference);
  } catch (err) {
    if (err instanceof StrataError) {
      throw problem(
        `${goQuote(reference)} is neither a build stage nor a valid image reference: ${err.message}`,
        err.hint,
      );
    }
    throw err;
  }
  return { kind: 'image', reference };
}

/**
 * The base of stage `index`: FROM expanded with the global ARGs, then `scratch`, an earlier stage's name
 * (case-insensitive; a later stage's name means an image, as in BuildKit), or an image reference.
 */
export function resolveBase(
  dockerfile: Dockerfile,
  index: number,
  globalArgs: GlobalArgs = evaluateMetaArgs(dockerfile),
): { source: StageSource; from: EvaluatedFrom } {
  const stage = dockerfile.stages[index];
  if (!stage) throw new StrataError('INVALID_ARGUMENT', `stage ${index} does not exist`);
  const from = evaluateFrom(stage.from, globalArgs, dockerfile.directives.escape);
  return located(stage.from.location, 'FROM', () => {
    if (from.image === 'scratch') return { source: { kind: 'scratch' } as const, from };
    const byName = stageByName(dockerfile, from.image, index);
    return { source: byName === undefined ? image(from.image) : { kind: 'stage', index: byName }, from };
  });
}

/**
 * What `COPY --from=<value>` (`via: 'copy'`) or `RUN --mount=from=<value>` (`via: 'mount'`) names: a stage index
 * (COPY only, any stage), a stage name (any stage, case-insensitive), or an image. Forward references are allowed,
 * as in BuildKit; cycles are caught by stageDependencies. Throws StrataError for an index out of range or a value
 * that is not a valid image reference either.
 */
export function resolveStageReference(
  dockerfile: Dockerfile,
  value: string,
  via: 'copy' | 'mount' = 'copy',
): StageSource {
  if (via === 'copy' && /^[+-]?\d+$/.test(value)) {
    const n = Number(value);
    if (n < 0 || n >= dockerfile.stages.length) {
      throw problem(`invalid stage index ${n}`, `this Dockerfile has stages 0 to ${dockerfile.stages.length - 1}`);
    }
    return { kind: 'stage', index: n };
  }
  const byName = stageByName(dockerfile, value, Number.POSITIVE_INFINITY);
  if (byName !== undefined) return { kind: 'stage', index: byName };
  return value === 'scratch' ? { kind: 'scratch' } : image(value);
}

export interface StageDependency {
  readonly index: number;
  readonly via: 'FROM' | 'COPY --from' | 'RUN --mount';
  readonly location: SourceLocation;
}

export interface StageNode {
  readonly index: number;
  readonly base: StageSource;
  readonly from: EvaluatedFrom;
  /** Stages this one needs (its base, COPY --from, RUN --mount from=), each with the line that needs it. */
  readonly dependsOn: readonly StageDependency[];
  /** Images (other than the base) its COPY --from and mounts read. */
  readonly images: readonly string[];
}

export interface StageGraph {
  /** The stage to build: `--target`, else the last. */
  readonly target: number;
  /** The stages the target needs, each after the stages it depends on, the target last; others are skipped. */
  readonly order: readonly number[];
  /** Every stage, resolved (unused ones too: BuildKit rejects a cycle anywhere). */
  readonly stages: readonly StageNode[];
}

export interface StageDependenciesOptions {
  /** The stage name to build (case-insensitive); default the last stage. */
  target?: string;
  /** From evaluateMetaArgs, for FROM lines that use ARGs; default: the global ARG defaults. */
  globalArgs?: GlobalArgs;
}

/**
 * Resolve every stage's references and find what the target needs. Throws StrataError for an unknown target
 * (listing the stage names) and DockerfileSyntaxError for `circular dependency detected on stage: <name>`, an
 * out-of-range index or an invalid reference.
 */
export function stageDependencies(dockerfile: Dockerfile, opts: StageDependenciesOptions = {}): StageGraph {
  const globalArgs = opts.globalArgs ?? evaluateMetaArgs(dockerfile);
  const nodes: StageNode[] = dockerfile.stages.map((stage) => {
    const { source, from } = resolveBase(dockerfile, stage.index, globalArgs);
    const dependsOn: StageDependency[] = [];
    const images: string[] = [];
    if (source.kind === 'stage') dependsOn.push({ index: source.index, via: 'FROM', location: stage.from.location });
    const add = (value: string, via: 'copy' | 'mount', location: SourceLocation) => {
      const ref = located(location, via === 'copy' ? 'COPY' : 'RUN', () =>
        resolveStageReference(dockerfile, value, via),
      );
      if (ref.kind === 'stage')
        dependsOn.push({ index: ref.index, via: via === 'copy' ? 'COPY --from' : 'RUN --mount', location });
      else if (ref.kind === 'image' && !images.includes(ref.reference)) images.push(ref.reference);
    };
    for (const ins of stage.instructions) {
      if (ins.kind === 'COPY' && ins.from !== undefined && ins.from !== '') add(ins.from, 'copy', ins.location);
      if (ins.kind === 'RUN') {
        for (const m of ins.mounts) {
          if (m.from !== undefined && m.from !== '' && (m.type === 'bind' || m.type === 'cache'))
            add(m.from, 'mount', ins.location);
        }
      }
    }
    return { index: stage.index, base: source, from, dependsOn, images };
  });

  // A cycle anywhere is an error, as in BuildKit, even among stages the target does not need.
  const state = new Map<number, 'visiting' | 'done'>();
  const visit = (i: number, via?: StageDependency) => {
    const s = state.get(i);
    if (s === 'done') return;
    if (s === 'visiting') {
      const stage = dockerfile.stages[i]!;
      throw new DockerfileSyntaxError(
        `circular dependency detected on stage: ${stage.name ?? String(i)}`,
        via?.location ?? stage.from.location,
        {
          instruction: via?.via.split(' ')[0],
          hint: 'a stage cannot use its own result, directly or through other stages',
        },
      );
    }
    state.set(i, 'visiting');
    for (const d of nodes[i]!.dependsOn) visit(d.index, d);
    state.set(i, 'done');
  };
  for (const n of nodes) visit(n.index);

  let target = dockerfile.stages.length - 1;
  if (opts.target !== undefined && opts.target !== '') {
    const found = dockerfile.stages.find((s) => s.name === opts.target!.toLowerCase());
    if (!found) {
      const names = dockerfile.stages.flatMap((s) => (s.name === undefined ? [] : [s.name]));
      throw new StrataError('INVALID_ARGUMENT', `target stage ${goQuote(opts.target)} could not be found`, {
        hint:
          names.length === 0
            ? 'this Dockerfile names no stages (use FROM <image> AS <name>)'
            : `the stages are: ${names.join(', ')}`,
        details: { target: opts.target, stages: names },
      });
    }
    target = found.index;
  }

  const order: number[] = [];
  const seen = new Set<number>();
  const walk = (i: number) => {
    if (seen.has(i)) return;
    seen.add(i);
    for (const d of nodes[i]!.dependsOn) walk(d.index);
    order.push(i);
  };
  walk(target);
  return { target, order, stages: nodes };
}

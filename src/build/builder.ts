import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import {
  chmod,
  chown,
  copyFile,
  lstat,
  mkdir,
  readdir,
  readFile,
  rm,
  rmdir,
  stat,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { packChanges, packOverlayUpper, settleUpperAsLayer } from '../archive/index.js';
import { processAlive, processStartTime, readFileInRoot, resolveInRoot, writeInitLayer } from '../container/index.js';
import type { ContentStore } from '../content/index.js';
import {
  type Dockerfile,
  DockerfileSyntaxError,
  type EvaluatedInstruction,
  type EvaluatedStage,
  evaluateMetaArgs,
  evaluateStage,
  type ExpandedAdd,
  type ExpandedCopy,
  type ExpandedRun,
  type GlobalArgs,
  parseDockerfile,
  parseDockerignore,
  resolveStageReference,
  type StageGraph,
  type Warning,
  type StageSource,
  stageDependencies,
} from '../dockerfile/index.js';
import { StrataError } from '../errors/index.js';
import { type Image, unpackLayers } from '../image/index.js';
import { type NameStore, withLease } from '../metadata/index.js';
import {
  chainIds,
  type ContainerConfig,
  type Descriptor,
  type Digest,
  type HistoryEntry,
  type ImageConfig,
  MediaType,
  type Platform,
} from '../oci/index.js';
import { DEFAULT_PATH, OciRuntime, readHostLimits, resolveUser, runtimeSpecFromImage } from '../runtime/index.js';
import type { Snapshotter } from '../snapshot/index.js';
import { type BuiltLayer, BuildCache, type CacheRecord, cacheKey, type StepInputs } from './cache.js';
import { checksumEntries, FileHashCache, openContext, type SourceEntry, SourceTree } from './context.js';
import { type CopyAttributes, copiedMode, copyInto, extractArchive, isTarArchive, mkdirInRoot } from './fs-ops.js';

/** What the build reports as it goes (the CLI renders it BuildKit's way). */
export type BuildEvent =
  | { type: 'step'; id: number; stage: string; index: number; total: number; text: string }
  | { type: 'cached'; id: number }
  | { type: 'output'; id: number; stream: 'stdout' | 'stderr'; line: string }
  | { type: 'done'; id: number; seconds: number }
  | { type: 'warning'; message: string }
  /** `--explain-cache`: why a step missed the cache. */
  | { type: 'explain'; id: number; reasons: string[] };

export interface BuildDeps {
  root: string;
  content: ContentStore;
  snapshots: Snapshotter;
  names: NameStore;
  /** A base image by reference: the local one, or pulled when missing or when `pull` is set. */
  baseImage(ref: string, opts: { pull: boolean; platform?: Platform }): Promise<Image>;
}

export interface BuildOptions {
  /** The context directory. */
  context: string;
  /** The Dockerfile's text and its name (for messages, and for `<name>.dockerignore`). */
  dockerfile: { text: string; path: string };
  buildArgs?: Record<string, string>;
  target?: string;
  noCache?: boolean;
  pull?: boolean;
  /** `--label`: added to the final image's config. */
  labels?: Record<string, string>;
  /** Seconds since the epoch for every timestamp the build writes (config, history, clamped file times); default 0. */
  sourceDateEpoch?: number;
  /** `--secret id=X,...` values by id, for `RUN --mount=type=secret`. */
  secrets?: Record<string, Buffer>;
  /** `--ssh ID=SOCKET`: ssh-agent sockets by id, for `RUN --mount=type=ssh`. */
  ssh?: Record<string, string>;
  /** Report, for each step that missed the cache, which of its inputs changed since the last build. */
  explainCache?: boolean;
  /** `--network` default for RUN steps (BuildKit's sandbox has a network; here: the host's). */
  network?: 'host' | 'none';
  onEvent?: (e: BuildEvent) => void;
  signal?: AbortSignal;
}

export interface BuildResult {
  descriptor: Descriptor;
  id: Digest;
  /** Steps run and steps taken from the cache. */
  ran: number;
  cached: number;
}

/** A failed RUN: its exit code and the tail of its output are in the message. */
export class BuildStepError extends StrataError {
  constructor(message: string, details: Record<string, unknown>, hint: string) {
    super('FAILED_PRECONDITION', message, { details, hint });
    this.name = 'BuildStepError';
  }
}

/** The image a stage is building: config (with history) and layers, plus the cache key of its last step. */
interface State {
  config: ImageConfig;
  layers: BuiltLayer[];
  key: string;
}

const EMPTY_CONFIG = (platform: Platform): ImageConfig => ({
  architecture: platform.architecture,
  os: platform.os,
  config: { Env: [`PATH=${DEFAULT_PATH}`] },
  rootfs: { type: 'layers', diff_ids: [] },
  history: [],
});

function hostPlatform(): Platform {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'ia32' ? '386' : process.arch;
  return { os: 'linux', architecture: arch };
}

/** BuildKit's history wording: `RUN /bin/sh -c make # buildkit`, `COPY src/ /app/ # buildkit`, `ENV A=b`. */
function createdBy(ins: EvaluatedInstruction, shell: string[], usedArgs: Record<string, string>): string {
  const e = ins.expanded;
  switch (e.kind) {
    case 'RUN': {
      const cmd = e.command.form === 'shell' ? [...shell, e.command.command] : [...e.command.args];
      const args = Object.entries(usedArgs);
      const prefix = args.length > 0 ? `|${args.length} ${args.map(([k, v]) => `${k}=${v}`).join(' ')} ` : '';
      return `RUN ${prefix}${cmd.join(' ')} # buildkit`;
    }
    case 'COPY':
    case 'ADD': {
      const srcs = e.sources.map((x) => (x.kind === 'path' ? x.path : `<<${x.name}`));
      return `${e.kind} ${[...srcs, e.dest].join(' ')} # buildkit`;
    }
    case 'ENV':
      return `ENV ${e.pairs.map((p) => `${p.key}=${p.value}`).join(' ')}`;
    case 'LABEL':
      return `LABEL ${e.pairs.map((p) => `${p.key}=${p.value}`).join(' ')}`;
    case 'ARG':
      return `ARG ${e.args.map((a) => (a.value === undefined ? a.name : `${a.name}=${a.value}`)).join(' ')}`;
    case 'WORKDIR':
      return `WORKDIR ${e.path}`;
    case 'USER':
      return `USER ${e.user}`;
    case 'STOPSIGNAL':
      return `STOPSIGNAL ${e.signal}`;
    case 'EXPOSE':
      return `EXPOSE map[${e.ports.map((p) => `${p}:{}`).join(' ')}]`;
    case 'VOLUME':
      return `VOLUME [${e.volumes.join(' ')}]`;
    case 'CMD':
    case 'ENTRYPOINT': {
      const args = e.command.form === 'shell' ? [...shell, e.command.command] : [...e.command.args];
      return `${e.kind} [${args.map((a) => JSON.stringify(a)).join(' ')}]`;
    }
    case 'SHELL':
      return `SHELL [${e.shell.map((a) => JSON.stringify(a)).join(' ')}]`;
    default:
      return ins.instruction.original.replace(/\s+/g, ' ').trim();
  }
}

function envKey(e: string): string {
  const i = e.indexOf('=');
  return i < 0 ? e : e.slice(0, i);
}

function setEnv(env: readonly string[], key: string, value: string): string[] {
  const out = env.filter((e) => envKey(e) !== key);
  const at = env.findIndex((e) => envKey(e) === key);
  if (at < 0) return [...out, `${key}=${value}`];
  const copy = [...env];
  copy[at] = `${key}=${value}`;
  return copy;
}

const iso = (epoch: number) => new Date(epoch * 1000).toISOString().replace('.000Z', 'Z');

/**
 * `strata build`: parse, plan the stages the target needs, and run each step (RUN in a runc container over an overlay
 * of the stage's layers, COPY/ADD into such an overlay from the context or another stage, the rest as config
 * changes), each keyed for the cache. The result is written to the store untagged; the caller tags it.
 */
export class Builder {
  readonly #d: BuildDeps;
  readonly #cache: BuildCache;
  #runtime: Promise<OciRuntime> | undefined;
  #stepId = 0;

  constructor(deps: BuildDeps) {
    this.#d = deps;
    this.#cache = new BuildCache(deps.root);
  }

  get cache(): BuildCache {
    return this.#cache;
  }

  /**
   * What a killed build left: its step and view overlays (still mounted under tmp/), their init snapshots and
   * directories, found by the owner recorded in each one's directory under tmp/ (owner.json).
   */
  async repair(): Promise<void> {
    const s = this.#d.snapshots;
    const tmp = join(this.#d.root, 'tmp');
    const dead = new Set<string>();
    // A step's or view's active snapshot has the key of its directory under tmp/, made (with owner.json) before the
    // snapshot is prepared and removed after it: the directories name every snapshot a dead build left, and reading
    // them costs nothing like reading every snapshot's info.json (which grows with the store) at each build.
    for (const name of await readdir(tmp).catch(() => [] as string[])) {
      if (!/^build-(view-)?[0-9a-f]{16}$/.test(name)) continue;
      if (!(await ownerAlive(join(tmp, name)))) dead.add(name);
    }
    if (dead.size === 0) return;
    // A RUN of a killed build may still run: its runtime container's bundle is the dead step's directory.
    this.#runtime ??= OciRuntime.open(this.#d.root);
    const rt = await this.#runtime.catch(() => undefined);
    for (const id of (await rt?.ids()) ?? []) {
      if (!id.startsWith('strata-build-')) continue;
      const st = await rt!.state(id).catch(() => undefined);
      if (st && ![...dead].some((k) => st.bundle === join(tmp, k))) continue;
      await rt!.kill(id, 'SIGKILL', { all: true }).catch(() => {});
      await rt!.delete(id, { force: true }).catch(() => {});
    }
    for (const key of dead) {
      const dir = join(tmp, key);
      // the step's rootfs, and any writable view of a RUN --mount=type=bind,rw
      await s.unmountUnder(dir).catch(() => {});
      await s.removeActive(key).catch(() => {});
      await s.remove(`${key}-init`).catch(() => {});
      await s.remove(`${key}-init-prep`).catch(() => {});
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    }
  }

  async build(opts: BuildOptions): Promise<BuildResult> {
    await this.repair();
    const df = parseDockerfile(opts.dockerfile.text, { file: opts.dockerfile.path });
    for (const w of df.warnings) opts.onEvent?.({ type: 'warning', message: formatWarning(w) });
    const platform = hostPlatform();
    const buildArgs = opts.buildArgs ?? {};
    const globalArgs = evaluateMetaArgs(df, {
      buildArgs,
      platform: { target: platform, build: platform },
    });
    const graph = stageDependencies(df, {
      ...(opts.target !== undefined ? { target: opts.target } : {}),
      globalArgs,
    });
    const context = await openContext(opts.context, opts.dockerfile.path);
    const hashes = new FileHashCache(this.#cache.dir);
    await hashes.load();
    const epoch = opts.sourceDateEpoch ?? 0;
    const results = new Map<number, { state: State; stage: EvaluatedStage }>();
    const run: RunContext = {
      df,
      results,
      hashes,
      opts,
      globalArgs,
      graph,
      buildArgs,
      context,
      epoch,
      platform,
      ran: 0,
      cached: 0,
    };
    return withLease(this.#d.root, async () => {
      // Stages whose dependencies are built run together (independent stages build concurrently); a failure waits
      // for the others to stop before it is reported, so nothing is left mounted.
      const pending = new Set(graph.order);
      while (pending.size > 0) {
        const ready = [...pending].filter((i) =>
          graph.stages[i]!.dependsOn.every((d) => d.index === i || results.has(d.index) || !pending.has(d.index)),
        );
        if (ready.length === 0) throw new StrataError('INTERNAL', 'no stage can be built: the stage graph is cyclic');
        const settled = await Promise.allSettled(
          ready.map(async (i) => {
            results.set(i, await this.#buildStage(run, i, results));
          }),
        );
        const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
        for (const i of ready) pending.delete(i);
      }
      const final = results.get(graph.target)!.state;
      const config = structuredClone(final.config);
      if (opts.labels && Object.keys(opts.labels).length > 0) {
        config.config = { ...config.config, Labels: { ...config.config?.Labels, ...opts.labels } };
      }
      config.created = iso(epoch);
      const { writeImage, openImage } = await import('../image/index.js');
      const descriptor = await writeImage(
        this.#d.content,
        config,
        final.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
        'oci',
      );
      const made = await openImage(this.#d.content, descriptor);
      await hashes.save().catch(() => {});
      return { descriptor, id: made.id, ran: run.ran, cached: run.cached };
    });
  }

  async #baseState(run: RunContext, source: StageSource, results: Map<number, { state: State }>, name: string) {
    if (source.kind === 'scratch') return { config: EMPTY_CONFIG(run.platform), layers: [], key: 'scratch' };
    if (source.kind === 'stage') {
      const r = results.get(source.index);
      if (!r) throw new StrataError('INTERNAL', `stage ${source.index} was not built before ${name}`);
      return structuredClone(r.state);
    }
    const image = await this.#d.baseImage(source.reference, { pull: !!run.opts.pull });
    const config = structuredClone(image.config);
    return { config, layers: builtLayers(image), key: image.digest as string };
  }

  async #buildStage(
    run: RunContext,
    index: number,
    results: Map<number, { state: State; stage: EvaluatedStage }>,
  ): Promise<{ state: State; stage: EvaluatedStage }> {
    const stage = run.df.stages[index]!;
    const label = stage.name ?? `stage-${index}`;
    const node = run.graph.stages[index]!;
    const fromId = ++this.#stepId;
    run.opts.onEvent?.({
      type: 'step',
      id: fromId,
      stage: label,
      index: 1,
      total: stage.instructions.length + 1,
      text: `FROM ${node.from.image}`,
    });
    const t0 = performance.now();
    let state: State = await this.#baseState(run, node.base, results, label);
    // BuildKit gives every image a PATH: the default one when the base has none.
    state.config.config ??= {};
    const baseConfig = state.config.config;
    if (!(baseConfig.Env ?? []).some((e) => envKey(e) === 'PATH')) {
      baseConfig.Env = [`PATH=${DEFAULT_PATH}`, ...(baseConfig.Env ?? [])];
    }
    // The base image's ONBUILD triggers run first, as instructions of this stage; they are not passed on further.
    let instructions = stage.instructions;
    const triggers = node.base.kind === 'image' ? (state.config.config?.OnBuild ?? []) : [];
    if (triggers.length > 0) {
      const parsed = parseDockerfile(`FROM scratch\n${triggers.join('\n')}\n`, {
        file: `${run.opts.dockerfile.path} (ONBUILD of ${node.from.image})`,
      });
      instructions = [...parsed.stages[0]!.instructions, ...stage.instructions];
    }
    if (triggers.length > 0 && state.config.config) delete state.config.config.OnBuild;
    run.opts.onEvent?.({ type: 'done', id: fromId, seconds: (performance.now() - t0) / 1000 });
    const baseEnv = state.config.config?.Env ?? [];
    const evaluated = evaluateStage(
      { ...stage, instructions },
      {
        globalArgs: run.globalArgs,
        buildArgs: run.buildArgs,
        baseEnv,
      },
    );
    for (const w of evaluated.warnings) run.opts.onEvent?.({ type: 'warning', message: formatWarning(w) });
    let shell = state.config.config?.Shell ?? ['/bin/sh', '-c'];
    let entrypointSet = false;
    for (const [i, ins] of evaluated.instructions.entries()) {
      run.opts.signal?.throwIfAborted();
      const e = ins.expanded;
      const config = structuredClone(state.config);
      config.config ??= {};
      const c: ContainerConfig = config.config;
      const workdir = e.kind === 'WORKDIR' ? posix.resolve(c.WorkingDir || '/', e.path) : undefined;
      const usedArgs: Record<string, string> = {};
      const argValues = new Map<string, string>();
      for (const x of ins.runEnv) argValues.set(envKey(x), x.slice(envKey(x).length + 1));
      for (const a of ins.usedArgs) {
        const v = argValues.get(a) ?? run.buildArgs[a] ?? run.globalArgs.values.get(a);
        if (v !== undefined) usedArgs[a] = v;
      }
      let layer: BuiltLayer | undefined;
      let key = state.key;
      // Steps that change files are vertices with cache keys, as in BuildKit; the others only edit the config.
      const changesFiles = e.kind === 'RUN' || e.kind === 'COPY' || e.kind === 'ADD' || (workdir ?? '/') !== '/';
      if (changesFiles) {
        const id = ++this.#stepId;
        const text = ins.instruction.original.replace(/\s+/g, ' ').trim();
        run.opts.onEvent?.({
          type: 'step',
          id,
          stage: label,
          index: i + 2,
          total: stage.instructions.length + 1,
          text,
        });
        const started = performance.now();
        // COPY --from is keyed by what it copies from (a stage's key, an image's digest): the same key means the same
        // files, so a hit needs no look at them. Other COPY/ADD are keyed by a checksum of the files they read.
        const fromKey =
          e.kind === 'COPY' && e.from !== undefined ? await this.#sourceKey(run, e.from, results) : undefined;
        let plan =
          (e.kind === 'COPY' || e.kind === 'ADD') && fromKey === undefined
            ? await this.#planCopy(run, e, results, ins)
            : undefined;
        try {
          // What the step's result depends on: its parent's files, the instruction, and the config it runs with.
          const material = {
            parent: state.key,
            instruction: { kind: e.kind, expanded: e },
            args: usedArgs,
            ...(plan ? { sources: plan.checksum } : fromKey ? { sources: `from:${fromKey}` } : {}),
            platform: `${run.platform.os}/${run.platform.architecture}`,
            config:
              e.kind === 'RUN'
                ? { env: ins.runEnv, user: c.User ?? '', workdir: c.WorkingDir ?? '', shell }
                : { user: c.User ?? '', workdir: c.WorkingDir ?? '' },
          };
          // COPY --link / ADD --link: the layer is made on an empty root, so it does not depend on the parent's files;
          // it is cached by everything but the parent (a new base reuses it), and the state after it by both.
          const linked = (e.kind === 'COPY' || e.kind === 'ADD') && e.link;
          const layerKey = linked ? cacheKey({ ...material, parent: 'link' }) : undefined;
          key = layerKey ? cacheKey({ parent: state.key, instruction: { link: layerKey } }) : cacheKey(material);
          const hit = run.opts.noCache ? undefined : await this.#cacheHit(layerKey ?? key);
          // Where this step stood last time (same Dockerfile, stage and position): what --explain-cache compares.
          const place = `${run.opts.dockerfile.path}\0${label}\0${i}`;
          const now: StepInputs = {
            key,
            parent: state.key,
            first: !evaluated.instructions.slice(0, i).some((x) => fileStepKinds.has(x.expanded.kind)),
            instruction: cacheKey({ parent: '', instruction: material.instruction }),
            args: usedArgs,
            config: cacheKey({ parent: '', instruction: null, config: material.config }),
            files: plan?.files ?? {},
            ...(fromKey ? { from: fromKey } : {}),
          };
          if (!hit && run.opts.explainCache) {
            const before = await this.#cache.getInputs(place);
            run.opts.onEvent?.({ type: 'explain', id, reasons: explainMiss(before, now) });
          }
          await this.#cache.putInputs(place, now);
          if (hit) {
            layer = hit.layer;
            run.cached++;
            run.opts.onEvent?.({ type: 'cached', id });
          } else {
            if (e.kind === 'RUN') {
              layer = await this.#fileStep(run, state, true, (rootfs, bundle) =>
                this.#run(run, id, state.config, rootfs, bundle, e, ins, shell, ins.instruction.location.startLine),
              );
            } else if (e.kind === 'COPY' || e.kind === 'ADD') {
              plan ??= await this.#planCopy(run, e, results, ins);
              const p = plan;
              const copy = (rootfs: string) => this.#copy(run, rootfs, state, e, p);
              layer = linked
                ? await this.#fileStep(run, { ...state, layers: [] }, false, copy, state.layers)
                : await this.#fileStep(run, state, false, copy);
            } else {
              layer = await this.#fileStep(run, state, false, async (rootfs) => {
                await mkdirInRoot(rootfs, workdir!, await userIn(rootfs, c.User));
              });
            }
            await this.#cache.put(layerKey ?? key, layer ? { layer } : {});
            run.ran++;
          }
        } finally {
          await plan?.release();
        }
        run.opts.onEvent?.({ type: 'done', id, seconds: (performance.now() - started) / 1000 });
      }
      switch (e.kind) {
        case 'WORKDIR':
          c.WorkingDir = workdir!;
          break;
        case 'ENV': {
          let env = c.Env ?? [];
          for (const p of e.pairs) env = setEnv(env, p.key, p.value);
          c.Env = env;
          break;
        }
        case 'LABEL':
          c.Labels = { ...c.Labels };
          for (const p of e.pairs) c.Labels[p.key] = p.value;
          break;
        case 'USER':
          c.User = e.user;
          break;
        case 'EXPOSE':
          c.ExposedPorts = { ...c.ExposedPorts };
          for (const p of e.ports) c.ExposedPorts[p] = {};
          break;
        case 'VOLUME':
          c.Volumes = { ...c.Volumes };
          for (const v of e.volumes) c.Volumes[v] = {};
          break;
        case 'STOPSIGNAL':
          c.StopSignal = e.signal;
          break;
        case 'CMD':
          c.Cmd = e.command.form === 'shell' ? [...shell, e.command.command] : [...e.command.args];
          break;
        case 'ENTRYPOINT':
          c.Entrypoint = e.command.form === 'shell' ? [...shell, e.command.command] : [...e.command.args];
          if (c.Entrypoint.length === 0) c.Entrypoint = null;
          // An ENTRYPOINT resets a CMD inherited from the base (not one set in this stage), as docker does.
          if (!entrypointSet && !evaluated.instructions.slice(0, i).some((x) => x.expanded.kind === 'CMD')) {
            c.Cmd = null;
          }
          entrypointSet = true;
          break;
        case 'SHELL':
          c.Shell = [...e.shell];
          break;
        case 'HEALTHCHECK':
          c.Healthcheck = { ...e.health };
          break;
        case 'ONBUILD':
          c.OnBuild = [...(c.OnBuild ?? []), e.expression];
          break;
        case 'MAINTAINER':
          config.author = e.maintainer;
          break;
        default:
          break;
      }
      const history: HistoryEntry = {
        created: iso(run.epoch),
        created_by: createdBy(ins, shell, e.kind === 'RUN' ? usedArgs : {}),
        comment: 'buildkit.dockerfile.v0',
        ...(layer ? {} : { empty_layer: true }),
      };
      config.history = [...(config.history ?? []), history];
      if (layer) config.rootfs = { type: 'layers', diff_ids: [...config.rootfs.diff_ids, layer.diffId] };
      config.created = iso(run.epoch);
      state = { config, layers: layer ? [...state.layers, layer] : state.layers, key };
      if (e.kind === 'SHELL') shell = [...e.shell];
    }
    return { state, stage: evaluated };
  }

  async #cacheHit(key: string): Promise<CacheRecord | undefined> {
    const rec = await this.#cache.get(key);
    if (!rec) return undefined;
    if (rec.layer && !(await this.#d.content.has(rec.layer.digest))) return undefined;
    return rec;
  }

  /** What `COPY --from=<value>` copies from, as a key: the stage's cache key, the image's digest, or scratch. */
  async #sourceKey(run: RunContext, from: string, results: Map<number, { state: State }>): Promise<string> {
    const src = resolveStageReference(run.df, from, 'copy');
    if (src.kind === 'scratch') return 'scratch';
    if (src.kind === 'stage') {
      const r = results.get(src.index);
      if (!r) throw new StrataError('INTERNAL', `stage ${from} was not built before it is copied from`);
      return `stage:${r.state.key}`;
    }
    return `image:${(await this.#d.baseImage(src.reference, { pull: !!run.opts.pull })).digest}`;
  }

  /** The files a COPY/ADD reads, resolved now so their checksum can key the cache. */
  async #planCopy(
    run: RunContext,
    e: ExpandedCopy | ExpandedAdd,
    results: Map<number, { state: State }>,
    ins: EvaluatedInstruction,
  ): Promise<CopyPlan> {
    const where = `${run.opts.dockerfile.path}:${ins.instruction.location.startLine}: ${e.kind}`;
    let tree = run.context;
    let view: (() => Promise<void>) | undefined;
    if (e.kind === 'COPY' && e.from !== undefined) {
      const src = resolveStageReference(run.df, e.from, 'copy');
      let layers: BuiltLayer[];
      if (src.kind === 'stage') {
        const r = results.get(src.index);
        if (!r) throw new StrataError('INTERNAL', `stage ${e.from} was not built before it is copied from`);
        layers = r.state.layers;
      } else if (src.kind === 'scratch') {
        layers = [];
      } else {
        const img = await this.#d.baseImage(src.reference, { pull: !!run.opts.pull });
        layers = builtLayers(img);
      }
      // The source's files (their checksum) key the step, so the source's own key need not.
      const mounted = await this.#view(run, layers);
      tree = new SourceTree(mounted.rootfs);
      view = mounted.release;
    }
    try {
      const excluded = e.exclude.length > 0 ? parseDockerignore([...e.exclude]) : undefined;
      const groups: CopySourcePlan[] = [];
      for (const s of e.sources) {
        if (s.kind === 'heredoc') {
          groups.push({ kind: 'heredoc', name: s.name, content: s.content });
          continue;
        }
        if (e.kind === 'ADD' && /^https?:\/\//.test(s.path)) {
          groups.push({ kind: 'url', url: s.path });
          continue;
        }
        const m = await tree.match(s.path, where);
        for (const entry of m.entries) {
          if (excluded?.matches(entry.rel)) continue;
          const below = entry.st.isDirectory()
            ? await tree.walk(entry.rel, excluded ? (r) => excluded.matches(r) : undefined, entry.abs)
            : [];
          groups.push({ kind: 'path', entry, below, pattern: s.path });
        }
      }
      const sum = await checksumEntries(
        groups.map((g) =>
          g.kind === 'path'
            ? { base: g.entry.rel, entries: [g.entry, ...g.below] }
            : { base: g.kind === 'url' ? g.url : `heredoc:${g.name}:${g.content}`, entries: [] },
        ),
        // remembered hashes only for the context: a stage's view is a fresh overlay mount each time
        tree === run.context ? run.hashes : undefined,
      );
      return { groups, checksum: sum.checksum, files: sum.files, tree, release: view ?? (async () => {}) };
    } catch (err) {
      await view?.();
      throw err;
    }
  }

  /** A read-only look at a layer stack (COPY --from): an overlay mounted under tmp/, released by the caller. */
  async #view(run: RunContext, layers: BuiltLayer[]): Promise<{ rootfs: string; release: () => Promise<void> }> {
    await this.#unpack(layers, run.opts.signal);
    const key = `build-view-${randomBytes(8).toString('hex')}`;
    const ids = chainIds(layers.map((l) => l.diffId));
    const dir = join(this.#d.root, 'tmp', key);
    await makeOwnedDir(dir);
    if (ids.length === 0) {
      await mkdir(join(dir, 'rootfs'));
      return { rootfs: join(dir, 'rootfs'), release: () => rm(dir, { recursive: true, force: true }) };
    }
    await this.#d.snapshots.prepareActive(key, ids.at(-1)!, { scratch: true });
    const rootfs = await this.#d.snapshots.mountActive(key, join(dir, 'rootfs'));
    return {
      rootfs,
      release: async () => {
        await this.#d.snapshots.unmount(rootfs, key).catch(() => {});
        await this.#d.snapshots.removeActive(key);
        await rm(dir, { recursive: true, force: true });
      },
    };
  }

  async #unpack(layers: BuiltLayer[], signal?: AbortSignal): Promise<void> {
    await unpackLayers(
      this.#d.snapshots,
      layers.map((l) => ({
        diffId: l.diffId,
        open: () => this.#d.content.read(l.digest, signal ? { signal } : {}),
        what: `layer ${l.digest}`,
      })),
      signal ? { signal } : {},
    );
  }

  /**
   * A step that changes files: an overlay over the stage's layers (with the mount points as the topmost lower for
   * RUN, so they never reach the layer), `mutate` on the mounted root, then the upper directory as the new layer;
   * undefined when nothing changed (an empty layer, as BuildKit omits). The upper is packed into the layer blob and
   * then, renamed, becomes the layer's snapshot: the next step mounts it without unpacking what was just packed.
   */
  async #fileStep(
    run: RunContext,
    state: State,
    withInit: boolean,
    mutate: (rootfs: string, bundle: string) => Promise<void>,
    /** The layers the new one goes on in the image, when not the ones it is made on (COPY --link: none). */
    stackOn: BuiltLayer[] = state.layers,
  ): Promise<BuiltLayer | undefined> {
    const s = this.#d.snapshots;
    await this.#unpack(stackOn, run.opts.signal);
    if (stackOn !== state.layers) await this.#unpack(state.layers, run.opts.signal);
    const ids = chainIds(state.layers.map((l) => l.diffId));
    const stackIds = chainIds(stackOn.map((l) => l.diffId));
    const key = `build-${randomBytes(8).toString('hex')}`;
    const bundle = join(this.#d.root, 'tmp', key);
    await makeOwnedDir(bundle);
    const parent: string | undefined = ids.at(-1);
    try {
      // RUN's mount points (/proc, /etc/hosts...) where the image lacks them: a plain directory in the step's own
      // directory, the topmost lower, so they never reach the upper (the layer).
      const extraLowers: string[] = [];
      if (withInit) {
        const init = join(bundle, 'init');
        await mkdir(init, { mode: 0o755 });
        await writeInitLayer(init, parent ? (await s.chain(parent)).map((c) => s.fsDir(c.name)) : []);
        extraLowers.push(init);
      }
      await s.prepareActive(key, parent, { extraLowers, scratch: true });
      const rootfs = await s.mountActive(key, join(bundle, 'rootfs'));
      try {
        await mutate(rootfs, bundle);
      } finally {
        await s.unmount(rootfs, key);
      }
      const src = await s.layerSource(key);
      const packOpts = { compression: 'gzip' as const, mediaType: 'oci' as const, sourceDateEpoch: run.epoch };
      let packed: ReturnType<typeof packOverlayUpper>;
      if (src.kind === 'overlay-upper') {
        if ((await readdir(src.upperDir)).length === 0) return undefined;
        // The upper becomes the new layer's snapshot as it is (no unpacking of what was just packed): first it is
        // made to hold exactly what the packed layer holds.
        settleUpperAsLayer(src.upperDir, run.epoch);
        packed = packOverlayUpper(src.upperDir, packOpts);
      } else {
        if (src.changes.length === 0) return undefined;
        packed = packChanges(src.root, src.changes, packOpts);
      }
      const ingested = await this.#d.content.ingest(packed.stream, { what: 'build step layer' }, run.opts.signal);
      let layer: BuiltLayer;
      let uncompressed: number;
      try {
        const info = await packed.info;
        await ingested.commit();
        layer = {
          digest: ingested.digest,
          size: ingested.size,
          mediaType: MediaType.OciLayerGzip,
          diffId: info.diffId,
        };
        uncompressed = info.uncompressedSize;
      } catch (err) {
        await ingested.abort();
        throw err;
      }
      if (src.kind === 'overlay-upper') {
        // (A --link layer, made on an empty root, holds no whiteouts: as it is, it is also its snapshot on stackOn.)
        const name = chainIds([...stackOn.map((l) => l.diffId), layer.diffId]).at(-1)!;
        const opts = { size: uncompressed, ...(stackIds.length > 0 ? { parent: stackIds.at(-1)! } : {}) };
        await s.commitUpper(key, name, opts);
      }
      return layer;
    } finally {
      await s.removeActive(key).catch(() => {});
      await rm(bundle, { recursive: true, force: true });
    }
  }

  /** RUN: the command in a runc container on the mounted root, with the stage's config and the step's env. */
  async #run(
    run: RunContext,
    stepId: number,
    image: ImageConfig,
    rootfs: string,
    bundle: string,
    e: ExpandedRun,
    ins: EvaluatedInstruction,
    shell: string[],
    line: number,
  ): Promise<void> {
    const mounts = await this.#prepareMounts(run, rootfs, bundle, e, line);
    try {
      await this.#runIn(run, stepId, image, rootfs, bundle, e, ins, shell, line, mounts);
    } finally {
      await mounts.release();
    }
  }

  /**
   * `RUN --mount`s: cache directories kept under `buildcache/mounts/` (by id, else target), tmpfs, read-only binds of
   * the context or of a stage's / image's files, and secrets from `--secret` (a read-only file, or an environment
   * variable with `env=`). The mount points runc makes for them are removed afterwards, so none reaches the layer.
   */
  async #prepareMounts(
    run: RunContext,
    rootfs: string,
    bundle: string,
    e: ExpandedRun,
    line: number,
  ): Promise<RunMounts> {
    const where = `${run.opts.dockerfile.path}:${line}: RUN --mount`;
    const out: RunMounts = { binds: [], tmpfs: [], env: [], stubs: [], release: async () => {} };
    const releases: (() => Promise<void>)[] = [];
    out.release = async () => {
      for (const r of releases.reverse()) await r().catch(() => {});
    };
    let sshCount = 0;
    try {
      for (const m of e.mounts) {
        const target = posix.resolve('/', m.target || (m.type === 'secret' ? `/run/secrets/${m.id ?? ''}` : ''));
        if (m.type === 'ssh') {
          const id = m.id ?? 'default';
          const agent = run.opts.ssh?.[id];
          if (!agent) {
            if (m.required) {
              throw new StrataError('NOT_FOUND', `${where}: ssh agent ${id} is required but was not given`, {
                hint: `pass it with --ssh ${id}=$SSH_AUTH_SOCK (or --ssh ${id} to use $SSH_AUTH_SOCK)`,
              });
            }
            continue;
          }
          // A socket of the step's own (mode and owner as asked) that relays to the agent: the host's socket and
          // its directory stay out of the container.
          const sock = join(bundle, `ssh-${randomBytes(6).toString('hex')}.sock`);
          releases.push(await relaySocket(sock, agent, m.mode ?? 0o600, m.uid ?? 0, m.gid ?? 0));
          const at = m.target ? target : `/run/buildkit/ssh_agent.${sshCount++}`;
          out.binds.push({ source: sock, destination: at, readonly: false });
          out.stubs.push(await stubOf(rootfs, at));
          if (!out.env.some((v) => v.startsWith('SSH_AUTH_SOCK='))) out.env.push(`SSH_AUTH_SOCK=${at}`);
          continue;
        }
        if (m.type === 'secret') {
          const id = m.id ?? posix.basename(m.target ?? '');
          const secret = run.opts.secrets?.[id];
          if (!secret) {
            if (m.required) {
              throw new StrataError('NOT_FOUND', `${where}: secret ${id} is required but was not given`, {
                hint: `pass it with --secret id=${id},src=FILE or --secret id=${id},env=VARIABLE`,
              });
            }
            continue;
          }
          if (m.env) {
            out.env.push(`${m.env}=${secret.toString('utf8')}`);
            if (!m.target) continue;
          }
          const file = join(bundle, `secret-${randomBytes(6).toString('hex')}`);
          await writeFile(file, secret, { mode: m.mode ?? 0o400 });
          await chownPath(file, m.uid ?? 0, m.gid ?? 0);
          out.binds.push({ source: file, destination: target, readonly: true });
          out.stubs.push(await stubOf(rootfs, target));
          continue;
        }
        if (m.type === 'tmpfs') {
          out.tmpfs.push({ target, size: m.size });
          out.stubs.push(await stubOf(rootfs, target));
          continue;
        }
        if (m.type === 'cache') {
          const key = createHash('sha256')
            .update(m.id ?? target)
            .digest('hex')
            .slice(0, 32);
          const dir = join(this.#d.root, 'buildcache', 'mounts', key);
          const made = !(await stat(dir).catch(() => undefined));
          await mkdir(dir, { recursive: true, mode: m.mode ?? 0o755 });
          if (made) await chownPath(dir, m.uid ?? 0, m.gid ?? 0);
          out.binds.push({ source: dir, destination: target, readonly: m.readOnly });
          out.stubs.push(await stubOf(rootfs, target));
          continue;
        }
        // bind: the context, or a stage's or an image's files; read-only, or with rw a writable view of them whose
        // writes are thrown away after the step (BuildKit's semantics: never the source, never the layer)
        let tree = run.context.root;
        if (m.from !== undefined) {
          const src = resolveStageReference(run.df, m.from, 'mount');
          const layers =
            src.kind === 'stage'
              ? (run.results.get(src.index)?.state.layers ?? [])
              : src.kind === 'scratch'
                ? []
                : builtLayers(await this.#d.baseImage(src.reference, { pull: !!run.opts.pull }));
          const view = await this.#view(run, layers);
          releases.push(view.release);
          tree = view.rootfs;
        }
        const rel = posix.normalize(`/${m.source ?? '.'}`);
        const source = m.from === undefined ? join(tree, rel) : ((await resolveInRoot(tree, rel)) ?? join(tree, rel));
        if (!(await stat(source).catch(() => undefined))) {
          throw new StrataError(
            'NOT_FOUND',
            `${where}: source ${rel} does not exist${m.from ? ` in ${m.from}` : ' in the context'}`,
            {
              hint: 'check source= (relative to the context or the from= root)',
            },
          );
        }
        let bound = source;
        if (!m.readOnly) {
          const dir = join(bundle, `rw-${randomBytes(6).toString('hex')}`);
          if ((await stat(source)).isDirectory()) {
            const view = await this.#d.snapshots.writableView(source, dir);
            releases.push(view.release);
            bound = view.path;
          } else {
            await mkdir(dir, { mode: 0o700 });
            bound = join(dir, posix.basename(rel) || 'file');
            await copyFile(source, bound);
            await chmod(bound, (await stat(source)).mode & 0o7777);
          }
        }
        out.binds.push({ source: bound, destination: target, readonly: m.readOnly });
        out.stubs.push(await stubOf(rootfs, target));
      }
    } catch (err) {
      await out.release();
      throw err;
    }
    const stubs = out.stubs;
    releases.unshift(async () => {
      for (const st of stubs) await removeStub(rootfs, st);
    });
    return out;
  }

  async #runIn(
    run: RunContext,
    stepId: number,
    image: ImageConfig,
    rootfs: string,
    bundle: string,
    e: ExpandedRun,
    ins: EvaluatedInstruction,
    shell: string[],
    line: number,
    mounts: RunMounts,
  ): Promise<void> {
    this.#runtime ??= OciRuntime.open(this.#d.root);
    const rt = await this.#runtime;
    let args: string[];
    if (e.command.form === 'exec') args = [...e.command.args];
    else if (e.heredocs.length > 0 && /^\s*\d*<<-?\S+\s*$/.test(e.command.command)) {
      // `RUN <<EOF`: the heredoc is the script (with its own interpreter when it has a #! line).
      const body = e.heredocs[0]!.content;
      if (body.startsWith('#!')) {
        const inRoot = `/.strata-heredoc-${stepId}`;
        await writeFile(join(rootfs, inRoot), body, { mode: 0o755 });
        args = [inRoot];
      } else args = [...shell, body];
    } else {
      const docs = e.heredocs.map((h) => `${h.content}${h.name}\n`).join('');
      args = [...shell, e.heredocs.length > 0 ? `${e.command.command}\n${docs}` : e.command.command];
    }
    const passwd = (await readFileInRoot(rootfs, '/etc/passwd')) ?? '';
    const group = (await readFileInRoot(rootfs, '/etc/group')) ?? '';
    const user = resolveUser(image.config?.User ?? '', passwd, group);
    const etc = join(bundle, 'etc');
    await mkdir(etc, { recursive: true });
    const hosts = join(etc, 'hosts');
    const resolv = join(etc, 'resolv.conf');
    const hostname = join(etc, 'hostname');
    await writeFile(hosts, '127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n');
    await writeFile(resolv, (await readFile('/etc/resolv.conf', 'utf8').catch(() => '')) || 'nameserver 127.0.0.1\n');
    await writeFile(hostname, 'buildkitsandbox\n');
    const network = e.network === 'none' ? 'none' : e.network === 'host' ? 'host' : (run.opts.network ?? 'host');
    const id = `strata-build-${randomBytes(8).toString('hex')}`;
    const spec = runtimeSpecFromImage(
      { ...image, config: { ...image.config, Entrypoint: null, Cmd: null, Env: [] } },
      {
        id,
        rootfs: 'rootfs',
        user,
        entrypoint: args,
        env: [...ins.runEnv, ...ins.proxyEnv, ...mounts.env],
        ...(image.config?.WorkingDir ? { workdir: image.config.WorkingDir } : {}),
        hostname: 'buildkitsandbox',
        network,
        etcFiles: { hosts, resolvConf: resolv, hostname },
        binds: mounts.binds,
        hostLimits: await readHostLimits(),
      },
    );
    for (const t of mounts.tmpfs) {
      spec.mounts.push({
        destination: t.target,
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'nodev', 'mode=1777', ...(t.size ? [`size=${t.size}`] : [])],
      });
    }
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
    const proc = await rt.run(id, bundle, {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(run.opts.signal ? { signal: run.opts.signal } : {}),
    });
    const tail: string[] = [];
    const relay = (stream: 'stdout' | 'stderr') => {
      let pending = '';
      proc.child[stream]?.on('data', (d: Buffer) => {
        pending += d.toString();
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const l of lines) {
          tail.push(l);
          if (tail.length > 20) tail.shift();
          run.opts.onEvent?.({ type: 'output', id: stepId, stream, line: l });
        }
      });
      proc.child[stream]?.on('end', () => {
        if (pending !== '') {
          tail.push(pending);
          run.opts.onEvent?.({ type: 'output', id: stepId, stream, line: pending });
        }
      });
    };
    relay('stdout');
    relay('stderr');
    const st = await proc.wait();
    await rm(join(rootfs, `.strata-heredoc-${stepId}`), { force: true });
    if (st.exitCode !== 0 || st.error) {
      const what = e.command.form === 'shell' ? e.command.command : JSON.stringify(e.command.args);
      throw new BuildStepError(
        `${run.opts.dockerfile.path}:${line}: RUN ${what.split('\n')[0]}: process did not complete successfully: exit code: ${st.exitCode}${st.error ? ` (${st.error.message})` : ''}${tail.length > 0 ? `\n${tail.map((l) => `  > ${l}`).join('\n')}` : ''}`,
        { exitCode: st.exitCode, line },
        'fix the command (its output is above), then build again: the steps before it come from the cache',
      );
    }
  }

  /** COPY/ADD into the mounted root. */
  async #copy(
    run: RunContext,
    rootfs: string,
    state: State,
    e: ExpandedCopy | ExpandedAdd,
    plan: CopyPlan,
  ): Promise<void> {
    const c = state.config.config ?? {};
    const attrs: CopyAttributes = {};
    if (e.chown) {
      if (e.link && !/^(\d+|root)(:(\d+|root))?$/.test(e.chown)) {
        throw new StrataError('INVALID_ARGUMENT', `${e.kind} --link --chown=${e.chown}: names cannot be resolved`, {
          hint: 'a linked layer is made without the image, so its /etc/passwd is not there: give numeric ids (--chown=1000:1000)',
        });
      }
      // (a linked layer's root has no /etc/passwd: "root" is 0, as everywhere)
      const passwd = (await readFileInRoot(rootfs, '/etc/passwd')) ?? 'root:x:0:0::/:/bin/sh\n';
      const group = (await readFileInRoot(rootfs, '/etc/group')) ?? 'root:x:0:\n';
      const u = resolveUser(e.chown, passwd, group);
      attrs.uid = u.uid;
      attrs.gid = u.gid;
    }
    if (e.chmod?.kind === 'octal') attrs.mode = e.chmod.mode;
    else if (e.chmod?.kind === 'symbolic') attrs.symbolic = e.chmod.expression;
    const dest = posix.resolve(c.WorkingDir || '/', e.dest);
    const many = plan.groups.length > 1 || plan.groups.some((g) => g.kind === 'path' && g.entry.st.isDirectory());
    // A destination that exists in the image as a directory (or a link to one) is one, slash or not (docker).
    const existing = await resolveInRoot(rootfs, dest);
    const existingStat = existing ? await stat(existing).catch(() => undefined) : undefined;
    const destIsDir = e.dest.endsWith('/') || e.dest === '.' || many || !!existingStat?.isDirectory();
    const owner = attrs.uid !== undefined ? { uid: attrs.uid, gid: attrs.gid ?? 0 } : undefined;
    let destDir: string;
    let name: string | undefined;
    if (destIsDir) {
      destDir = await mkdirInRoot(rootfs, dest, owner);
    } else if (existing && existingStat?.isFile()) {
      // A file (or a link to one, resolved inside the root): it is overwritten where it really is.
      destDir = posix.dirname(existing);
      name = posix.basename(existing);
    } else {
      destDir = await mkdirInRoot(rootfs, posix.dirname(dest), owner);
      name = posix.basename(dest);
    }
    // Files from another stage or image keep their owners (docker); files from the context become root's.
    if (e.kind === 'COPY' && e.from !== undefined && attrs.uid === undefined) attrs.keepOwner = true;
    const links = new Map<string, string>();
    for (const g of plan.groups) {
      if (g.kind === 'heredoc') {
        const target = join(destDir, name ?? g.name);
        await rm(target, { recursive: true, force: true });
        await writeFile(target, g.content);
        await chown(target, attrs.uid ?? 0, attrs.gid ?? 0);
        await chmod(target, copiedMode(attrs, 0o644, false));
        await utimes(target, run.epoch, run.epoch);
        continue;
      }
      if (g.kind === 'url') {
        await this.#download(run, g.url, destDir, name, e.kind === 'ADD' ? e.checksum : undefined, attrs);
        continue;
      }
      if (e.kind === 'ADD' && g.entry.st.isFile() && (await isTarArchive(g.entry.abs))) {
        await extractArchive(g.entry.abs, destIsDir ? destDir : await mkdirInRoot(rootfs, dest), run.opts.signal);
        continue;
      }
      let target = destDir;
      if (e.kind === 'COPY' && e.parents && g.entry.rel !== '.') {
        const parentRel = posix.dirname(g.entry.rel);
        if (parentRel !== '.') target = await mkdirInRoot(destDir, parentRel, owner);
      }
      const below = g.below;
      await copyInto(target, name, g.entry, async () => below, attrs, links);
    }
  }

  /** ADD of an http(s) URL: downloaded (verified against --checksum when given) to the destination. */
  async #download(
    run: RunContext,
    url: string,
    destDir: string,
    name: string | undefined,
    checksum: string | undefined,
    attrs: CopyAttributes,
  ): Promise<void> {
    // undici's fetch (redirects followed) on strata's agent, which trusts the extra CA certificates the `strata`
    // command deferred (src/remote/agent.ts); loaded here, not at start-up, as only ADD of a URL needs it.
    const [{ fetch }, { httpAgent }] = await Promise.all([import('undici'), import('../remote/index.js')]);
    const agent = httpAgent();
    const file = join(destDir, name ?? (posix.basename(new URL(url).pathname) || 'download'));
    const h = createHash('sha256');
    try {
      const res = await fetch(url, {
        dispatcher: agent,
        ...(run.opts.signal ? { signal: run.opts.signal } : {}),
      }).catch((err: unknown) => {
        if (run.opts.signal?.aborted) throw err;
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        const tls = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(cause?.code ?? '');
        throw new StrataError('UNAVAILABLE', `ADD ${url}: ${cause?.message ?? (err as Error).message}`, {
          cause: err,
          hint: tls
            ? "the server's certificate is not trusted: name its CA's PEM file in NODE_EXTRA_CA_CERTS"
            : 'check the URL and that the server is reachable',
        });
      });
      if (!res.ok || !res.body) {
        throw new StrataError('UNAVAILABLE', `ADD ${url}: HTTP ${res.status}`, { hint: 'check the URL' });
      }
      const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
      body.on('data', (d: Buffer) => h.update(d));
      await pipeline(body, createWriteStream(file, { mode: 0o600 }));
    } finally {
      await agent.close();
    }
    const got = `sha256:${h.digest('hex')}`;
    if (checksum && checksum !== got) {
      await rm(file, { force: true });
      throw new StrataError('DATA_LOSS', `ADD ${url}: digest mismatch: expected ${checksum}, got ${got}`, {
        hint: 'the file changed at its source, or --checksum is wrong',
      });
    }
    await chown(file, attrs.uid ?? 0, attrs.gid ?? 0);
    await chmod(file, copiedMode(attrs, 0o600, false));
  }
}

/**
 * Listen on `path` (mode and owner set) and relay every connection to the unix socket `upstream`; returns the
 * function that stops it. The ssh-agent protocol needs nothing more than bytes passed both ways.
 */
async function relaySocket(
  path: string,
  upstream: string,
  mode: number,
  uid: number,
  gid: number,
): Promise<() => Promise<void>> {
  const conns = new Set<Socket>();
  const server = createServer((client) => {
    const agent = createConnection(upstream);
    conns.add(client).add(agent);
    const done = () => {
      client.destroy();
      agent.destroy();
      conns.delete(client);
      conns.delete(agent);
    };
    client.on('error', done).on('close', done);
    agent.on('error', done).on('close', done);
    client.pipe(agent).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  server.unref();
  await chmod(path, mode);
  await chownPath(path, uid, gid);
  return async () => {
    for (const c of conns) c.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(path, { force: true });
  };
}

/** An image's layers as the build keeps them. */
function builtLayers(image: Image): BuiltLayer[] {
  return image.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: l.diffId }));
}

/** A build's working directory under tmp/, with `owner.json` naming this process (for `Builder.repair`). */
async function makeOwnedDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const start = processStartTime(process.pid);
  await writeFile(join(dir, 'owner.json'), JSON.stringify({ pid: process.pid, ...(start ? { start } : {}) }));
}

/** Whether the process that made a build directory still runs (a directory without an owner file: not yet written, so alive). */
async function ownerAlive(dir: string): Promise<boolean> {
  const text = await readFile(join(dir, 'owner.json'), 'utf8').catch(() => undefined);
  if (text === undefined) {
    // made but not yet claimed (a moment) or by an older strata: only an old one is taken for dead
    const st = await stat(dir).catch(() => undefined);
    return !st || Date.now() - st.mtimeMs < 60_000;
  }
  try {
    const o = JSON.parse(text) as { pid?: number; start?: string };
    return processAlive(o.pid, o.start);
  } catch {
    return false;
  }
}

const fileStepKinds = new Set(['RUN', 'COPY', 'ADD', 'WORKDIR']);

/** Why a step missed: what differs between its inputs last time at the same place and now. */
function explainMiss(before: StepInputs | undefined, now: StepInputs): string[] {
  if (!before) return ['no earlier build of this step (new step, or the first build)'];
  if (before.key === now.key) return ['its result was removed from the store (image prune) or the cache was pruned'];
  const reasons: string[] = [];
  if (before.parent !== now.parent) {
    reasons.push(now.first ? 'the base image changed' : 'an earlier step changed (its parent layer is different)');
  }
  if (before.instruction !== now.instruction) reasons.push('the instruction changed (after expansion)');
  if (before.from !== now.from) reasons.push('the stage or image it copies from changed');
  for (const k of new Set([...Object.keys(before.args), ...Object.keys(now.args)])) {
    if (before.args[k] !== now.args[k]) {
      reasons.push(
        `build argument ${k}: ${JSON.stringify(before.args[k] ?? null)} -> ${JSON.stringify(now.args[k] ?? null)}`,
      );
    }
  }
  if (before.config !== now.config)
    reasons.push('the environment, user, working directory or shell it runs with changed');
  const files: string[] = [];
  for (const f of new Set([...Object.keys(before.files), ...Object.keys(now.files)])) {
    const a = before.files[f];
    const b = now.files[f];
    if (a === b) continue;
    files.push(`${a === undefined ? 'added' : b === undefined ? 'removed' : 'changed'}: ${f}`);
  }
  if (files.length > 0) {
    reasons.push(
      `files it copies: ${files.slice(0, 10).join(', ')}${files.length > 10 ? `, and ${files.length - 10} more` : ''}`,
    );
  }
  return reasons.length > 0 ? reasons : ['an input not recorded changed (platform or cache format)'];
}

interface RunMounts {
  binds: { source: string; destination: string; readonly: boolean }[];
  tmpfs: { target: string; size: number | undefined }[];
  /** `--mount=type=secret,env=NAME`: variables only the step's process sees (never in the config or history). */
  env: string[];
  stubs: Stub[];
  release: () => Promise<void>;
}

/** A mount target and the first of its path components that did not exist before the step (what runc creates). */
interface Stub {
  target: string;
  firstMissing?: string;
}

async function stubOf(rootfs: string, target: string): Promise<Stub> {
  const parts = target.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const p = `/${parts.slice(0, i).join('/')}`;
    if ((await resolveInRoot(rootfs, p)) === undefined) return { target, firstMissing: p };
  }
  return { target };
}

/**
 * Remove what runc created for a mount point: the target (an empty file or directory) and then each parent up to the
 * first missing component while it is empty, so files the step itself wrote there stay.
 */
async function removeStub(rootfs: string, stub: Stub): Promise<void> {
  if (!stub.firstMissing) return;
  let path = stub.target;
  for (;;) {
    const host = await resolveInRoot(rootfs, path);
    if (host?.startsWith(`${rootfs}/`)) {
      const st = await lstat(host).catch(() => undefined);
      if (st?.isDirectory()) await rmdir(host).catch(() => {});
      else if (st?.isFile() && st.size === 0) await unlink(host).catch(() => {});
    }
    if (path === stub.firstMissing || path === '/') return;
    path = posix.dirname(path);
  }
}

async function chownPath(path: string, uid: number, gid: number): Promise<void> {
  await chown(path, uid, gid);
}

type CopySourcePlan =
  | { kind: 'path'; entry: SourceEntry; below: SourceEntry[]; pattern: string }
  | { kind: 'heredoc'; name: string; content: string }
  | { kind: 'url'; url: string };

interface CopyPlan {
  groups: CopySourcePlan[];
  checksum: string;
  /** Per path, a hash of what the step reads there (for --explain-cache). */
  files: Record<string, string>;
  tree: SourceTree;
  release: () => Promise<void>;
}

interface RunContext {
  df: Dockerfile;
  hashes: FileHashCache;
  results: Map<number, { state: State; stage: EvaluatedStage }>;
  opts: BuildOptions;
  globalArgs: GlobalArgs;
  graph: StageGraph;
  buildArgs: Record<string, string>;
  context: SourceTree;
  epoch: number;
  platform: Platform;
  ran: number;
  cached: number;
}

async function userIn(rootfs: string, spec: string | undefined): Promise<{ uid: number; gid: number } | undefined> {
  if (!spec) return undefined;
  const passwd = (await readFileInRoot(rootfs, '/etc/passwd')) ?? '';
  const group = (await readFileInRoot(rootfs, '/etc/group')) ?? '';
  const u = resolveUser(spec, passwd, group);
  return { uid: u.uid, gid: u.gid };
}

function formatWarning(w: Warning): string {
  return `${w.location.file}:${w.location.startLine}: ${w.rule}: ${w.message}`;
}

export { DockerfileSyntaxError };

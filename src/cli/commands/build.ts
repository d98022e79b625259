import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { type BuildEvent, StrataError } from '../../index.js';
import { collect, openStrata } from '../context.js';
import { print, writeFileAtomically } from '../output.js';

function keyValues(list: string[] | undefined, flag: string, fromEnv: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    if (eq === 0) throw new StrataError('INVALID_ARGUMENT', `invalid ${flag} "${item}": the name is empty`);
    if (eq < 0) {
      // docker: `--build-arg NAME` takes NAME from the environment (and is ignored when unset there)
      const v = fromEnv ? process.env[item] : '';
      if (v !== undefined) out[item] = v;
      continue;
    }
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** BuildKit's plain progress: `#N [stage i/n] STEP`, output lines with their time, `#N CACHED`, `#N DONE 0.1s`. */
function plainProgress(quiet: boolean): (e: BuildEvent) => void {
  const started = new Map<number, number>();
  const out = (s: string) => {
    if (!quiet) process.stderr.write(`${s}\n`);
  };
  return (e) => {
    switch (e.type) {
      case 'step':
        started.set(e.id, performance.now());
        out(`#${e.id} [${e.stage} ${e.index}/${e.total}] ${e.text}`);
        break;
      case 'cached':
        out(`#${e.id} CACHED`);
        break;
      case 'output': {
        const t = ((performance.now() - (started.get(e.id) ?? performance.now())) / 1000).toFixed(3);
        out(`#${e.id} ${t} ${e.line}`);
        break;
      }
      case 'done':
        out(`#${e.id} DONE ${e.seconds.toFixed(1)}s`);
        break;
      case 'warning':
        out(`WARN: ${e.message}`);
        break;
      case 'explain':
        for (const r of e.reasons) out(`#${e.id} MISS ${r}`);
        break;
    }
  };
}

/** `--output type=oci|docker,dest=FILE` (BuildKit's CSV form; `-o FILE` alone means a docker archive). */
function parseOutput(spec: string): { type: 'oci' | 'docker'; dest: string } {
  if (!spec.includes('=')) return { type: 'docker', dest: spec };
  const fields = new Map(
    spec.split(',').map((kv) => {
      const i = kv.indexOf('=');
      return [kv.slice(0, i).trim(), kv.slice(i + 1).trim()] as const;
    }),
  );
  const type = fields.get('type') ?? 'docker';
  const dest = fields.get('dest');
  if (type !== 'oci' && type !== 'docker') {
    throw new StrataError('UNIMPLEMENTED', `--output type=${type} is not supported`, {
      hint: 'use type=oci or type=docker with dest=FILE',
    });
  }
  if (!dest || dest === '-') {
    throw new StrataError('INVALID_ARGUMENT', `--output ${spec}: give dest=FILE`, {
      hint: 'e.g. type=oci,dest=app.tar',
    });
  }
  return { type, dest };
}

/**
 * `--ssh default|ID[=SOCKET]` (docker's forms): an ssh-agent socket for RUN --mount=type=ssh; without a path, the
 * one in $SSH_AUTH_SOCK. Key files (BuildKit loads them into its own agent) are refused with a way round.
 */
async function readSshAgents(specs: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const spec of specs) {
    const i = spec.indexOf('=');
    const id = (i < 0 ? spec : spec.slice(0, i)).trim();
    if (!/^[A-Za-z0-9_.-]+$/.test(id)) {
      throw new StrataError('INVALID_ARGUMENT', `invalid --ssh "${spec}": "${id}" is not an id`, {
        hint: 'give --ssh default, or --ssh ID=/path/to/agent.sock',
      });
    }
    const path = i < 0 ? process.env['SSH_AUTH_SOCK'] : spec.slice(i + 1).trim();
    if (!path) {
      throw new StrataError('NOT_FOUND', `--ssh ${id}: no agent socket given and SSH_AUTH_SOCK is not set`, {
        hint: 'start an agent (eval $(ssh-agent); ssh-add), or give --ssh ID=/path/to/agent.sock',
      });
    }
    if (path.includes(',')) {
      throw new StrataError('UNIMPLEMENTED', `--ssh ${id}: only one agent socket per id is supported`, {
        hint: 'load the keys into one agent with ssh-add and give its socket',
      });
    }
    const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
      throw new StrataError('NOT_FOUND', `--ssh ${id}: cannot use ${path}: ${err.code ?? err.message}`);
    });
    if (!st.isSocket()) {
      throw new StrataError(
        'UNIMPLEMENTED',
        `--ssh ${id}: ${path} is not an agent socket (key files are not supported)`,
        {
          hint: `load the key into an agent (eval $(ssh-agent); ssh-add ${path}) and give --ssh ${id}=$SSH_AUTH_SOCK`,
        },
      );
    }
    out[id] = path;
  }
  return out;
}

/** `--secret id=X,src=FILE|env=VAR` (docker's forms; `type=file|env` accepted; `id=X` alone: the variable X). */
async function readSecrets(specs: string[]): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const spec of specs) {
    const fields = new Map<string, string>();
    for (const kv of spec.split(',')) {
      const i = kv.indexOf('=');
      if (i < 0) throw new StrataError('INVALID_ARGUMENT', `invalid --secret "${spec}": "${kv}" is not key=value`);
      fields.set(kv.slice(0, i).trim(), kv.slice(i + 1).trim());
    }
    const id = fields.get('id');
    if (!id) throw new StrataError('INVALID_ARGUMENT', `invalid --secret "${spec}": id= is required`);
    const src = fields.get('src') ?? fields.get('source');
    const env = fields.get('env') ?? (src === undefined ? id : undefined);
    if (src !== undefined) {
      out[id] = await readFile(src).catch((err: NodeJS.ErrnoException) => {
        throw new StrataError('NOT_FOUND', `--secret ${id}: cannot read ${src}: ${err.code ?? err.message}`);
      });
    } else if (env !== undefined) {
      const v = process.env[env];
      if (v === undefined) {
        throw new StrataError('NOT_FOUND', `--secret ${id}: the environment variable ${env} is not set`, {
          hint: `export ${env}=... first, or give src=FILE`,
        });
      }
      out[id] = Buffer.from(v);
    }
  }
  return out;
}

interface TtyStep {
  title: string;
  state: 'running' | 'cached' | 'done';
  started: number;
  seconds: number;
  lines: string[];
}

/**
 * BuildKit's terminal view: a block redrawn in place (at most ten times a second) with the elapsed time, one line per
 * step (`=> CACHED [stage 2/5] COPY ...  0.0s`) and the last lines of output under each running step.
 */
function ttyProgress(out: NodeJS.WriteStream): { onEvent: (e: BuildEvent) => void; close: () => void } {
  const t0 = performance.now();
  const steps = new Map<number, TtyStep>();
  const warnings: string[] = [];
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;
  const width = () => Math.max(40, (out.columns ?? 100) - 1);
  const fit = (s: string) => (s.length > width() ? `${s.slice(0, width() - 1)}…` : s);
  const draw = (final: boolean) => {
    const all = [...steps.values()];
    const done = all.filter((x) => x.state !== 'running').length;
    const lines = [
      `[+] Building ${((performance.now() - t0) / 1000).toFixed(1)}s (${done}/${all.length})${final ? ' FINISHED' : ''}`,
    ];
    for (const st of all) {
      const secs = st.state === 'running' ? (performance.now() - st.started) / 1000 : st.seconds;
      const head = ` => ${st.state === 'cached' ? 'CACHED ' : ''}${st.title}`;
      const time = `${secs.toFixed(1)}s`;
      const room = width() - time.length - 1;
      const shown = head.length > room ? `${head.slice(0, room - 1)}…` : head;
      lines.push(`${shown.padEnd(room)} ${time}`);
      if (st.state === 'running' && !final) for (const l of st.lines.slice(-6)) lines.push(fit(` => => # ${l}`));
    }
    for (const w of warnings) lines.push(fit(` WARN: ${w}`));
    out.write(`${drawn > 0 ? `\x1b[${drawn}F` : ''}${lines.map((l) => `${l}\x1b[K`).join('\n')}\n\x1b[J`);
    drawn = lines.length;
  };
  const schedule = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      draw(false);
    }, 100);
  };
  return {
    onEvent: (e) => {
      switch (e.type) {
        case 'step':
          steps.set(e.id, {
            title: `[${e.stage} ${e.index}/${e.total}] ${e.text}`,
            state: 'running',
            started: performance.now(),
            seconds: 0,
            lines: [],
          });
          break;
        case 'cached':
          steps.get(e.id)!.state = 'cached';
          break;
        case 'output':
          steps.get(e.id)?.lines.push(e.line);
          break;
        case 'done': {
          const st = steps.get(e.id);
          if (st) {
            if (st.state === 'running') st.state = 'done';
            st.seconds = e.seconds;
          }
          break;
        }
        case 'warning':
          warnings.push(e.message);
          break;
        case 'explain':
          for (const r of e.reasons) steps.get(e.id)?.lines.push(`MISS ${r}`);
          break;
      }
      schedule();
    },
    close: () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      draw(true);
    },
  };
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export function registerBuildCommands(program: Command): void {
  const build = (c: Command) =>
    c
      .argument('<CONTEXT>', 'context directory, or - to read a tar (or a Dockerfile) from standard input')
      .option('-t, --tag <name:tag>', 'name the image (repeatable)', collect)
      .option('-f, --file <path>', "the Dockerfile (default: CONTEXT/Dockerfile; '-' reads it from standard input)")
      .option('--build-arg <key=value>', 'set a build argument (repeatable)', collect)
      .option('--target <stage>', 'build this stage and the stages it needs')
      .option('--no-cache', 'run every step, ignoring the build cache')
      .option('--explain-cache', 'for each step that misses the cache, say which input changed')
      .option('--pull', 'pull base images even when they are in the store')
      .option('--label <key=value>', 'set a label on the image (repeatable)', collect)
      .option('--iidfile <file>', 'write the image ID to this file')
      .option('--progress <mode>', 'auto (tty on a terminal, else plain), plain, tty or quiet', 'auto')
      .option('--platform <os/arch>', 'target platform (only the host platform is supported)')
      .option('--network <mode>', 'network for RUN steps: host (default) or none')
      .option('-q, --quiet', 'print only the image ID')
      .option('--push', 'push the tagged image(s) to their registries after the build')
      .option('-o, --output <spec>', 'also write the image as an archive: type=oci|docker,dest=FILE')
      .option('--secret <spec>', 'a secret for RUN --mount=type=secret: id=X,src=FILE or id=X,env=VARIABLE', collect)
      .option('--ssh <spec>', 'an ssh-agent for RUN --mount=type=ssh: default or ID[=SOCKET] (repeatable)', collect)
      .action(async (contextArg: string, opts: Record<string, unknown>, cmd: Command) => {
        const secrets = await readSecrets((opts['secret'] as string[] | undefined) ?? []);
        const ssh = await readSshAgents((opts['ssh'] as string[] | undefined) ?? []);
        const network = opts['network'] as string | undefined;
        if (network !== undefined && network !== 'host' && network !== 'none' && network !== 'default') {
          throw new StrataError('INVALID_ARGUMENT', `network "${network}" is not supported for RUN steps`, {
            hint: 'use --network host or --network none (strata creates no bridges)',
          });
        }
        const platform = opts['platform'] as string | undefined;
        if (
          platform !== undefined &&
          platform !== 'linux/amd64' &&
          platform !== `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`
        ) {
          throw new StrataError('UNIMPLEMENTED', `--platform ${platform}: only the host platform can be built here`, {
            hint: 'leave --platform out',
          });
        }
        const output = opts['output'] !== undefined ? parseOutput(opts['output'] as string) : undefined;
        const tagsGiven = (opts['tag'] as string[] | undefined) ?? [];
        if (opts['push'] && tagsGiven.length === 0) {
          throw new StrataError('INVALID_ARGUMENT', '--push needs a name to push to', {
            hint: 'name the image with -t REGISTRY/REPOSITORY:TAG',
          });
        }
        const strata = await openStrata(cmd);
        let spool: string | undefined;
        try {
          let context = resolve(contextArg);
          const file = opts['file'] as string | undefined;
          let dockerfileText: string;
          let dockerfilePath: string;
          if (contextArg === '-') {
            if (file === '-')
              throw new StrataError('INVALID_ARGUMENT', 'the context and the Dockerfile cannot both be -');
            // A tar on stdin is the context; anything else is a Dockerfile with an empty context (docker's rule).
            const input = await readStdin();
            await mkdir(join(strata.root, 'tmp'), { recursive: true });
            spool = await mkdtemp(join(strata.root, 'tmp', 'build-context-'));
            context = spool;
            const looksTar =
              (input[0] === 0x1f && input[1] === 0x8b) || input.subarray(257, 262).toString('latin1') === 'ustar';
            if (looksTar) {
              await strata.unpackBuildContext(Readable.from([input]), spool);
              dockerfilePath = file ?? 'Dockerfile';
              dockerfileText = await readFile(join(spool, dockerfilePath), 'utf8').catch(() => {
                throw new StrataError('NOT_FOUND', `the context tar has no ${dockerfilePath}`, {
                  hint: 'put a Dockerfile at the top of the tar, or name it with -f',
                });
              });
            } else {
              dockerfilePath = 'Dockerfile';
              dockerfileText = input.toString('utf8');
            }
          } else if (file === '-') {
            dockerfilePath = 'Dockerfile';
            dockerfileText = (await readStdin()).toString('utf8');
          } else {
            const path = resolve(file ?? join(context, 'Dockerfile'));
            dockerfilePath = relative(context, path).startsWith('..') ? path : relative(context, path);
            dockerfileText = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
              throw new StrataError('NOT_FOUND', `cannot read the Dockerfile ${path}: ${err.code ?? err.message}`, {
                hint: 'give its path with -f, or run from the directory that has it',
              });
            });
          }
          const sde = process.env['SOURCE_DATE_EPOCH'];
          if (sde !== undefined && !/^\d+$/.test(sde)) {
            throw new StrataError('INVALID_ARGUMENT', `SOURCE_DATE_EPOCH="${sde}" is not a number of seconds`);
          }
          const quiet = !!opts['quiet'];
          const mode = opts['progress'] as string;
          if (!['auto', 'plain', 'tty', 'quiet'].includes(mode)) {
            throw new StrataError('INVALID_ARGUMENT', `invalid --progress "${mode}"`, {
              hint: 'use auto, plain, tty or quiet',
            });
          }
          const tty = !quiet && mode !== 'quiet' && (mode === 'tty' || (mode === 'auto' && process.stderr.isTTY));
          const progress = tty
            ? ttyProgress(process.stderr)
            : { onEvent: plainProgress(quiet || mode === 'quiet'), close: () => {} };
          let res: Awaited<ReturnType<typeof strata.build>>;
          try {
            res = await strata.build({
              context,
              dockerfile: { text: dockerfileText, path: dockerfilePath },
              tags: (opts['tag'] as string[] | undefined) ?? [],
              buildArgs: keyValues(opts['buildArg'] as string[] | undefined, '--build-arg', true),
              labels: keyValues(opts['label'] as string[] | undefined, '--label', false),
              ...(opts['target'] !== undefined ? { target: opts['target'] as string } : {}),
              noCache: opts['cache'] === false,
              explainCache: !!opts['explainCache'],
              pull: !!opts['pull'],
              ...(sde !== undefined ? { sourceDateEpoch: Number(sde) } : {}),
              ...(network === 'none' ? { network: 'none' as const } : {}),
              secrets,
              ssh,
              onEvent: progress.onEvent,
            });
          } finally {
            progress.close();
          }
          if (!quiet) {
            process.stderr.write(`writing image ${res.id} done\n`);
            for (const t of res.tags) process.stderr.write(`naming to ${t} done\n`);
          }
          if (quiet) print(res.id);
          if (opts['iidfile']) await writeFile(opts['iidfile'] as string, res.id);
          if (output) {
            const ref = res.tags[0] ?? res.id;
            await writeFileAtomically(output.dest, (out) => strata.save([ref], out, { format: output.type }));
            if (!quiet) process.stderr.write(`exporting to ${output.type} archive ${output.dest} done\n`);
          }
          if (opts['push']) {
            for (const t of res.tags) {
              const pushed = await strata.push(t);
              if (!quiet) process.stderr.write(`pushed ${t}@${pushed.digest}\n`);
            }
          }
        } finally {
          if (spool) await rm(spool, { recursive: true, force: true });
        }
      });
  build(program.command('build').description('Build an image from a Dockerfile'));
  const builder = program.command('builder').description('Manage the build cache');
  build(builder.command('build').description('Build an image from a Dockerfile'));
  builder
    .command('prune')
    .description('Remove the build cache')
    .option('-f, --force', 'do not prompt for confirmation (accepted for docker compatibility)')
    .option('-a, --all', 'remove all of it (the only mode)')
    .action(async (_o, cmd: Command) => {
      const strata = await openStrata(cmd);
      const n = await strata.pruneBuildCache();
      print(`Deleted build cache objects: ${n}`);
      print('Total reclaimed space: 0B');
    });
}

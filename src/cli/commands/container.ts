import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  type ContainerSummary,
  type CreateContainerOptions,
  isStrataError,
  type MonitorMessage,
  mergeEnv,
  parseCpus,
  parseEnv,
  parseEnvFile,
  parseMemory,
  parsePidsLimit,
  parseVolume,
  StrataError,
  type Strata,
} from '../../index.js';
import { collect, openStrata } from '../context.js';
import { humanAgo, print, printFormatted, printJson, table, writeFileAtomically } from '../output.js';
import { renderTemplate } from '../template.js';

/** docker's exit status when the container could not be run because of strata itself. */
const EXIT_STRATA = 125;

function reportError(err: unknown): void {
  if (isStrataError(err)) {
    if (!err.details?.['reported']) {
      process.stderr.write(`Error: ${err.message}\n`);
      if (err.hint) process.stderr.write(`Hint: ${err.hint}\n`);
    }
  } else {
    process.stderr.write(`Error: ${(err as Error)?.message ?? String(err)}\n`);
    if (process.env['STRATA_DEBUG']) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
  }
}

/**
 * `run`, `create`, `start` and `exec` exit as docker's do: 125 when strata fails (bad flags too), 126/127 when the
 * command cannot be executed, else the container's own status.
 */
function dockerExit(c: Command): Command {
  return c.exitOverride((err) => {
    if (err.exitCode === 0) throw err;
    process.exit(EXIT_STRATA);
  });
}

function withRunExit<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      reportError(err);
      const code = isStrataError(err) ? err.details?.['exitCode'] : undefined;
      process.exitCode = typeof code === 'number' ? code : EXIT_STRATA;
    }
  };
}

function createOptions(c: Command): Command {
  return c
    .helpOption('--help', 'display help for command')
    .option('--name <name>', 'assign a name to the container')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (KEY alone: take it from this environment)', collect)
    .option('--env-file <file>', 'read environment variables from a file', collect)
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user name or uid (and group name or gid)')
    .option('-v, --volume <src:dst[:ro]>', 'bind mount a host path (absolute) into the container', collect)
    .option('--entrypoint <command>', 'overwrite the image\'s ENTRYPOINT ("" clears it)')
    .option('-h, --hostname <name>', 'container host name')
    .option('--network <mode>', 'none (loopback only) or host', 'none')
    .option('--net <mode>', 'alias of --network')
    .option('--read-only', "mount the container's root filesystem read-only")
    .option('-m, --memory <bytes>', 'memory limit (512m, 1g)')
    .option('--cpus <n>', 'number of CPUs (1.5)')
    .option('--pids-limit <n>', 'process limit (-1: unlimited)')
    .option('--runtime <name>', 'OCI runtime: runc or crun (default: runc if installed)')
    .option('--rm', 'remove the container when it exits')
    .option('-i, --interactive', "keep stdin open and pass it to the container's process")
    .option('-t, --tty', 'allocate a terminal (from a terminal, in the foreground)')
    .option('-l, --label <key=value>', 'set a label', collect)
    .argument('<IMAGE>')
    .argument('[COMMAND...]', 'command and arguments (replace the image CMD)')
    .passThroughOptions();
}

/** `-e` and `--env-file` values, in docker's order (files first, then -e; later entries win). */
async function readEnvOptions(opts: Record<string, unknown>): Promise<string[]> {
  const envFiles: string[] = [];
  for (const f of (opts['envFile'] as string[] | undefined) ?? []) {
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (err) {
      throw new StrataError('NOT_FOUND', `cannot read env file ${f}: ${(err as Error).message}`, {
        hint: 'give an existing file of KEY=VALUE lines',
      });
    }
    envFiles.push(...parseEnv(parseEnvFile(text, f), process.env));
  }
  return mergeEnv(envFiles, parseEnv((opts['env'] as string[] | undefined) ?? [], process.env));
}

async function toCreateOptions(
  image: string,
  command: string[],
  opts: Record<string, unknown>,
): Promise<CreateContainerOptions> {
  const env = await readEnvOptions(opts);
  const network = (opts['net'] as string | undefined) ?? (opts['network'] as string);
  if (network !== 'none' && network !== 'host') {
    throw new StrataError('INVALID_ARGUMENT', `network "${network}" is not supported`, {
      hint: 'strata creates no bridges: use --network none (loopback only, the default) or --network host',
    });
  }
  const labels: Record<string, string> = {};
  for (const l of (opts['label'] as string[] | undefined) ?? []) {
    const eq = l.indexOf('=');
    labels[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? '' : l.slice(eq + 1);
  }
  const out: CreateContainerOptions = {
    image,
    env,
    network,
    binds: ((opts['volume'] as string[] | undefined) ?? []).map(parseVolume),
    readOnly: !!opts['readOnly'],
    autoRemove: !!opts['rm'],
    interactive: !!opts['interactive'],
    tty: !!opts['tty'],
    labels,
  };
  if (command.length > 0) out.cmd = command;
  if (opts['name'] !== undefined) out.name = opts['name'] as string;
  if (opts['workdir'] !== undefined) out.workdir = opts['workdir'] as string;
  if (opts['user'] !== undefined) out.user = opts['user'] as string;
  if (opts['hostname'] !== undefined) out.hostname = opts['hostname'] as string;
  if (opts['entrypoint'] !== undefined) out.entrypoint = [opts['entrypoint'] as string];
  if (opts['memory'] !== undefined) out.memory = parseMemory(opts['memory'] as string);
  if (opts['cpus'] !== undefined) out.cpus = parseCpus(opts['cpus'] as string);
  if (opts['pidsLimit'] !== undefined) out.pidsLimit = parsePidsLimit(opts['pidsLimit'] as string);
  if (opts['runtime'] !== undefined) out.runtime = opts['runtime'] as string;
  return out;
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/** Run a created container in the foreground, forwarding this process's signals to it; its exit code. */
async function runAttached(strata: Strata, id: string, interactive: boolean, tty: boolean): Promise<number> {
  let started = false;
  const pending: NodeJS.Signals[] = [];
  // At a terminal (without -t), ^C and ^\ go to the whole foreground process group: the runtime gets them too and
  // passes them on itself, so forwarding them again would deliver them twice. (With -t the terminal is raw: they
  // reach the container through its own terminal.)
  const fromTerminal: NodeJS.Signals[] = !tty && process.stdin.isTTY ? ['SIGINT', 'SIGQUIT'] : [];
  const forward = (sig: NodeJS.Signals) => {
    if (fromTerminal.includes(sig)) return;
    if (!started) pending.push(sig);
    else strata.killContainer(id, sig).catch(() => {});
  };
  const handlers = FORWARDED.map((sig) => {
    const h = () => forward(sig);
    process.on(sig, h);
    return [sig, h] as const;
  });
  const ignoreEpipe = () => {};
  process.stdout.on('error', ignoreEpipe);
  process.stderr.on('error', ignoreEpipe);
  try {
    return await strata.runContainer(
      id,
      { stdin: interactive ? 'inherit' : 'ignore', stdout: process.stdout, stderr: process.stderr },
      {
        onStarted: () => {
          started = true;
          for (const sig of pending.splice(0)) strata.killContainer(id, sig).catch(() => {});
        },
      },
    );
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}

function shortId(id: string): string {
  return id.slice(0, 12);
}

function statusText(c: ContainerSummary, now = Date.now()): string {
  const since = (iso: string | undefined) => humanAgo(iso, now).replace(/ ago$/, '');
  if (c.state === 'running') return `Up ${since(c.startedAt)}`;
  if (c.state === 'exited') return `Exited (${c.exitCode}) ${humanAgo(c.finishedAt, now)}`;
  return 'Created';
}

function ellipsis(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/** Run `fn` for each container; report failures as docker does (go on, fail at the end). */
async function eachContainer(refs: string[], fn: (ref: string) => Promise<void>): Promise<void> {
  let failed = false;
  for (const ref of refs) {
    try {
      await fn(ref);
    } catch (err) {
      reportError(err);
      failed = true;
    }
  }
  if (failed) throw new StrataError('FAILED_PRECONDITION', 'some containers failed', { details: { reported: true } });
}

export function registerContainerCommands(program: Command): void {
  const container = program.command('container').description('Manage containers');

  const run = (c: Command) =>
    dockerExit(createOptions(c))
      .option('-d, --detach', 'run in the background and print the container ID')
      .action(
        withRunExit(async (image: string, command: string[], opts: Record<string, unknown>, cmd: Command) => {
          if (opts['detach'] && (opts['interactive'] || opts['tty'])) {
            throw new StrataError('UNIMPLEMENTED', '-i and -t cannot be combined with -d yet', {
              hint: 'run in the foreground to pass stdin or a terminal through',
            });
          }
          const strata = await openStrata(cmd);
          const rec = await strata.createContainer(await toCreateOptions(image, command, opts));
          if (opts['detach']) {
            await strata.startContainer(rec.id);
            print(rec.id);
            return;
          }
          process.exitCode = await runAttached(strata, rec.id, !!opts['interactive'], !!opts['tty']);
        }),
      );
  run(program.command('run').description('Create and run a container from an image'));
  run(container.command('run').description('Create and run a container from an image'));

  const exec = (c: Command) =>
    dockerExit(c.helpOption('--help', 'display help for command'))
      .option('-d, --detach', 'run the command in the background')
      .option(
        '-e, --env <KEY=VALUE>',
        'set an environment variable (KEY alone: take it from this environment)',
        collect,
      )
      .option('--env-file <file>', 'read environment variables from a file', collect)
      .option('-i, --interactive', 'keep stdin open and pass it to the command')
      .option('-t, --tty', 'allocate a terminal (from a terminal)')
      .option('-u, --user <user[:group]>', 'user name or uid (and group name or gid)')
      .option('-w, --workdir <dir>', 'working directory inside the container')
      .argument('<CONTAINER>')
      .argument('<COMMAND...>', 'command and arguments')
      .passThroughOptions()
      .action(
        withRunExit(async (ref: string, command: string[], opts: Record<string, unknown>, cmd: Command) => {
          if (opts['tty'] && !opts['detach'] && !process.stdin.isTTY) {
            throw new StrataError('FAILED_PRECONDITION', 'the input device is not a TTY', {
              hint: '-t needs a terminal: run from one, or leave -t out',
            });
          }
          const env = await readEnvOptions(opts);
          const strata = await openStrata(cmd);
          let runtime: ChildProcess | undefined;
          const pending: NodeJS.Signals[] = [];
          const fromTerminal: NodeJS.Signals[] = !opts['tty'] && process.stdin.isTTY ? ['SIGINT', 'SIGQUIT'] : [];
          const handlers = FORWARDED.map((sig) => {
            const h = () => {
              if (fromTerminal.includes(sig)) return;
              if (runtime) runtime.kill(sig);
              else pending.push(sig);
            };
            process.on(sig, h);
            return [sig, h] as const;
          });
          try {
            process.exitCode = await strata.execContainer(
              ref,
              {
                cmd: command,
                env,
                interactive: !!opts['interactive'],
                tty: !!opts['tty'],
                detach: !!opts['detach'],
                ...(opts['user'] !== undefined ? { user: opts['user'] as string } : {}),
                ...(opts['workdir'] !== undefined ? { workdir: opts['workdir'] as string } : {}),
                onStarted: (_pid, child) => {
                  runtime = child;
                  for (const sig of pending.splice(0)) child.kill(sig);
                },
              },
              { stdin: 'inherit', stdout: process.stdout, stderr: process.stderr },
            );
          } finally {
            for (const [sig, h] of handlers) process.off(sig, h);
          }
        }),
      );
  exec(program.command('exec').description('Run a command in a running container'));
  exec(container.command('exec').description('Run a command in a running container'));

  const create = (c: Command) =>
    dockerExit(createOptions(c)).action(
      withRunExit(async (image: string, command: string[], opts: Record<string, unknown>, cmd: Command) => {
        const strata = await openStrata(cmd);
        const rec = await strata.createContainer(await toCreateOptions(image, command, opts));
        print(rec.id);
      }),
    );
  create(program.command('create').description('Create a container (start it with `strata start`)'));
  create(container.command('create').description('Create a container'));

  const start = (c: Command) =>
    dockerExit(c)
      .argument('<CONTAINER...>')
      .option('-a, --attach', "attach: stream the container's output and exit with its status")
      .option('-i, --interactive', 'pass stdin to the container (with -a)')
      .action(
        withRunExit(async (refs: string[], opts: { attach?: boolean; interactive?: boolean }, cmd: Command) => {
          const strata = await openStrata(cmd);
          if (opts.attach) {
            if (refs.length !== 1) {
              throw new StrataError('INVALID_ARGUMENT', 'you cannot start and attach multiple containers at once');
            }
            const rec = await strata.getContainer(refs[0]!);
            process.exitCode = await runAttached(strata, rec.id, !!opts.interactive, rec.hostConfig.tty);
            return;
          }
          await eachContainer(refs, async (ref) => {
            await strata.startContainer(ref);
            print(ref);
          });
        }),
      );
  start(program.command('start').description('Start one or more stopped containers'));
  start(container.command('start').description('Start one or more stopped containers'));

  const stop = (c: Command) =>
    c
      .argument('<CONTAINER...>')
      .option('-t, --time <seconds>', 'seconds to wait for the stop signal to work before SIGKILL', '10')
      .option('-s, --signal <signal>', 'signal to send (default: the image STOPSIGNAL, else SIGTERM)')
      .action(async (refs: string[], opts: { time: string; signal?: string }, cmd: Command) => {
        const timeout = Number(opts.time);
        if (!/^-?\d+$/.test(opts.time)) {
          throw new StrataError('INVALID_ARGUMENT', `invalid argument "${opts.time}" for "-t, --time"`, {
            hint: 'give whole seconds',
          });
        }
        const strata = await openStrata(cmd);
        await eachContainer(refs, async (ref) => {
          await strata.stopContainer(ref, {
            timeout: timeout < 0 ? 3600 * 24 : timeout,
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
          print(ref);
        });
      });
  stop(program.command('stop').description('Stop one or more running containers'));
  stop(container.command('stop').description('Stop one or more running containers'));

  const kill = (c: Command) =>
    c
      .argument('<CONTAINER...>')
      .option('-s, --signal <signal>', 'signal to send', 'SIGKILL')
      .action(async (refs: string[], opts: { signal: string }, cmd: Command) => {
        const strata = await openStrata(cmd);
        await eachContainer(refs, async (ref) => {
          await strata.killContainer(ref, opts.signal);
          print(ref);
        });
      });
  kill(program.command('kill').description('Send a signal to one or more running containers'));
  kill(container.command('kill').description('Send a signal to one or more running containers'));

  const rmCmd = (c: Command) =>
    c
      .argument('<CONTAINER...>')
      .option('-f, --force', 'kill and remove a running container')
      .action(async (refs: string[], opts: { force?: boolean }, cmd: Command) => {
        const strata = await openStrata(cmd);
        await eachContainer(refs, async (ref) => {
          await strata.removeContainer(ref, { force: !!opts.force });
          print(ref);
        });
      });
  rmCmd(program.command('rm').description('Remove one or more containers'));
  rmCmd(container.command('rm').alias('remove').description('Remove one or more containers'));

  const ps = (c: Command) =>
    c
      .option('-a, --all', 'show all containers (default: running ones)')
      .option('-q, --quiet', 'only show container IDs')
      .option('--no-trunc', 'do not truncate output')
      .option('--format <format>', "'table', 'json' (one object per line) or a Go template such as '{{.Names}}'")
      .action(async (opts: { all?: boolean; quiet?: boolean; trunc: boolean; format?: string }, cmd: Command) => {
        const strata = await openStrata(cmd);
        const list = await strata.listContainers({ all: !!opts.all });
        const id = (s: string) => (opts.trunc ? shortId(s) : s);
        if (opts.quiet) {
          if (list.length > 0) print(list.map((c) => id(c.id)).join('\n'));
          return;
        }
        const now = Date.now();
        const rows = list.map((c) => ({
          Command: `"${opts.trunc ? ellipsis(c.command, 20) : c.command}"`,
          CreatedAt: c.created,
          ID: id(c.id),
          Image: c.image,
          Labels: '',
          LocalVolumes: '0',
          Mounts: '',
          Names: c.name,
          Networks: '',
          Ports: '',
          RunningFor: humanAgo(c.created, now),
          Size: '',
          State: c.state,
          Status: statusText(c, now),
        }));
        if (printFormatted(rows, opts.format)) return;
        print(
          table(
            ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'],
            rows.map((r) => [r.ID, r.Image, r.Command, r.RunningFor, r.Status, r.Ports, r.Names]),
          ),
        );
      });
  ps(program.command('ps').description('List containers'));
  ps(container.command('ls').alias('list').alias('ps').description('List containers'));

  const logs = (c: Command) =>
    c
      .argument('<CONTAINER>')
      .option('-f, --follow', 'follow the log until the container stops')
      .option('-n, --tail <n>', 'number of lines to show from the end ("all")', 'all')
      .option('-t, --timestamps', 'show timestamps')
      .option('--since <time>', 'only entries since this RFC 3339 time')
      .option('--until <time>', 'only entries before this RFC 3339 time')
      .action(
        async (
          ref: string,
          opts: { follow?: boolean; tail: string; timestamps?: boolean; since?: string; until?: string },
          cmd: Command,
        ) => {
          if (opts.tail !== 'all' && !/^\d+$/.test(opts.tail)) {
            throw new StrataError('INVALID_ARGUMENT', `invalid --tail "${opts.tail}"`, { hint: 'a number or "all"' });
          }
          const strata = await openStrata(cmd);
          const ac = new AbortController();
          const stopFollowing = () => ac.abort();
          process.once('SIGINT', stopFollowing);
          process.stdout.on('error', stopFollowing);
          try {
            // Consecutive entries of one stream are written together (a log can hold millions of lines).
            let pending = '';
            let pendingStream: 'stdout' | 'stderr' = 'stdout';
            const flush = () => {
              if (pending !== '') (pendingStream === 'stderr' ? process.stderr : process.stdout).write(pending);
              pending = '';
            };
            for await (const e of strata.containerLogs(ref, {
              follow: !!opts.follow,
              signal: ac.signal,
              ...(opts.tail !== 'all' ? { tail: Number(opts.tail) } : {}),
              ...(opts.since ? { since: new Date(opts.since).toISOString() } : {}),
              ...(opts.until ? { until: new Date(opts.until).toISOString() } : {}),
            })) {
              if (e.stream !== pendingStream || pending.length > 64 * 1024) flush();
              pendingStream = e.stream;
              pending += opts.timestamps ? `${e.time} ${e.log}` : e.log;
              if (opts.follow) flush();
            }
            flush();
          } finally {
            process.off('SIGINT', stopFollowing);
          }
        },
      );
  logs(program.command('logs').description("Show a container's output"));
  logs(container.command('logs').description("Show a container's output"));

  const wait = (c: Command) =>
    c.argument('<CONTAINER...>').action(async (refs: string[], _o, cmd: Command) => {
      const strata = await openStrata(cmd);
      await eachContainer(refs, async (ref) => {
        print(String(await strata.waitContainer(ref)));
      });
    });
  wait(program.command('wait').description('Block until containers stop, then print their exit codes'));
  wait(container.command('wait').description('Block until containers stop, then print their exit codes'));

  container
    .command('inspect')
    .description('Show low-level information on containers (a JSON array)')
    .argument('<CONTAINER...>')
    .option('-f, --format <format>', "'json' or a Go template such as '{{.State.Status}}'")
    .action(async (refs: string[], opts: { format?: string }, cmd: Command) => {
      const strata = await openStrata(cmd);
      const out = [];
      for (const r of refs) out.push(await strata.inspectContainer(r));
      if (opts.format && opts.format !== 'json') for (const o of out) print(renderTemplate(opts.format, o));
      else printJson(out);
    });

  const exportCmd = (c: Command) =>
    c
      .argument('<CONTAINER>')
      .option('-o, --output <file>', 'write to a file instead of standard output')
      .action(async (ref: string, opts: { output?: string }, cmd: Command) => {
        const strata = await openStrata(cmd);
        if (!opts.output) {
          if (process.stdout.isTTY) {
            throw new StrataError('INVALID_ARGUMENT', 'cowardly refusing to save to a terminal', {
              hint: 'use the -o flag or redirect standard output',
            });
          }
          await strata.exportContainer(ref, process.stdout);
          return;
        }
        await writeFileAtomically(opts.output, (out) => strata.exportContainer(ref, out));
      });
  exportCmd(program.command('export').description("Export a container's filesystem as a tar archive"));
  exportCmd(container.command('export').description("Export a container's filesystem as a tar archive"));

  const diff = (c: Command) =>
    c.argument('<CONTAINER>').action(async (ref: string, _o, cmd: Command) => {
      const changes = await (await openStrata(cmd)).diffContainer(ref);
      if (changes.length > 0) print(changes.map((ch) => `${ch.kind} ${ch.path}`).join('\n'));
    });
  diff(program.command('diff').description("Inspect changes to files on a container's filesystem"));
  diff(container.command('diff').description("Inspect changes to files on a container's filesystem"));

  const commit = (c: Command) =>
    c
      .argument('<CONTAINER>')
      .argument('[REPOSITORY[:TAG]]')
      .option('-m, --message <message>', 'commit message')
      .option('-a, --author <author>', 'author (e.g. "Jane Doe <jane@example.com>")')
      .option('-c, --change <instruction>', 'apply a Dockerfile instruction to the image config', collect)
      .option('-p, --pause', 'accepted for docker compatibility (the container is not paused)')
      .action(
        async (
          ref: string,
          repo: string | undefined,
          opts: { message?: string; author?: string; change?: string[] },
          cmd: Command,
        ) => {
          const strata = await openStrata(cmd);
          const res = await strata.commitContainer(ref, {
            ...(repo ? { reference: repo } : {}),
            ...(opts.message !== undefined ? { message: opts.message } : {}),
            ...(opts.author !== undefined ? { author: opts.author } : {}),
            changes: opts.change ?? [],
          });
          print(res.id);
        },
      );
  commit(program.command('commit').description("Create a new image from a container's changes"));
  commit(container.command('commit').description("Create a new image from a container's changes"));

  container
    .command('prune')
    .description('Remove all stopped containers')
    .option('-f, --force', 'do not prompt for confirmation (accepted for docker compatibility)')
    .action(async (_o, cmd: Command) => {
      const strata = await openStrata(cmd);
      const removed: string[] = [];
      for (const c of await strata.listContainers({ all: true })) {
        if (c.state === 'running') continue;
        await strata.removeContainer(c.id);
        removed.push(c.id);
      }
      if (removed.length > 0) print(`Deleted Containers:\n${removed.join('\n')}\n`);
      print(`Total reclaimed space: 0B`);
    });

  // The detached monitor of one container (spawned by `run -d` / `start`): not for users.
  container
    .command('monitor', { hidden: true })
    .argument('<ID>')
    .action(async (id: string, _o, cmd: Command) => {
      const strata = await openStrata(cmd);
      const send = (m: MonitorMessage) => {
        if (process.send && process.connected) {
          process.send(m, () => {
            if (process.connected) process.disconnect();
          });
        }
      };
      process.exitCode = await strata.monitorContainer(id, send);
    });
}

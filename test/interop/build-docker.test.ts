import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, chown, cp, link, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { importBusybox, strata } from '../helpers/cli.js';
import { type Dockerd, DOCKER_CLIENT, startDockerd } from '../helpers/dockerd.js';
import { hasTool, inCI, needRoot, needTool, repoRoot, tempDir } from '../helpers/env.js';

/**
 * `strata build` and `docker build` (BuildKit, as docker 20.10's daemon runs it) of the same Dockerfiles FROM the same
 * busybox base give the same image: the same file tree (paths, types, modes, owners, link counts, sizes, contents,
 * symlink targets; not mtimes), the same config fields and the same number of layers.
 *
 * The base: strata imports busybox, `strata save` + `docker load` give dockerd the identical image (same ID), and
 * BuildKit in dockerd resolves `FROM busybox` from its local image store (no pull, no --pull); the tests check that
 * every image docker built sits on that base's layer. The daemon has no bridge: builds run with `--network host`,
 * containers with `--network none`, and `docker run --pull never` never reaches for a registry.
 * Docker builds use `--no-cache`: BuildKit v0.8 answered a `COPY --from` from a cache entry of another build whose
 * source files had other owners.
 */

const fixtures = join(repoRoot, 'test/fixtures/build/equivalence');

/** Paths every engine provides itself at run time, left out of the listing. */
const PROVIDED = [
  './proc',
  './sys',
  './dev',
  './.dockerenv',
  './etc/hosts',
  './etc/hostname',
  './etc/resolv.conf',
  './etc/mtab',
];

/**
 * The whole tree as the image's own busybox sees it (as in container-commit.test.ts), without `extra` paths: the
 * image's VOLUMEs, which `docker run` creates as mount points and `strata run` does not.
 */
function listing(extra: string[]): string {
  const prune = [...PROVIDED, ...extra].map((p) => `-path '${p}'`).join(' -o ');
  return [
    `cd / && find . -xdev \\( ${prune} \\) -prune -o -print | sort |`,
    'while read -r p; do if [ -f "$p" ] && [ ! -L "$p" ]; then',
    'echo "$(stat -c \'%n %a %u %g %h %s\' "$p") $(md5sum < "$p" | cut -c1-32)";',
    'else stat -c \'%N %a %u %g %F\' "$p"; fi; done',
  ].join(' ');
}

/** The lines only one listing has (each line is one path, both sorted): what a failure shows instead of both trees. */
function treeDiff(ours: string, theirs: string): string[] {
  const a = new Set(ours.split('\n'));
  const b = new Set(theirs.split('\n'));
  return [
    ...[...b].filter((l) => !a.has(l)).map((l) => `docker: ${l}`),
    ...[...a].filter((l) => !b.has(l)).map((l) => `strata: ${l}`),
  ];
}

const CONFIG_FIELDS = [
  'Env',
  'Cmd',
  'Entrypoint',
  'WorkingDir',
  'User',
  'Labels',
  'ExposedPorts',
  'Volumes',
  'StopSignal',
  'Healthcheck',
  'OnBuild',
  'Shell',
] as const;

/**
 * The compared config fields. `docker image inspect` prints an unset string as "" and an unset list or map as null,
 * `strata inspect` leaves it out: both mean "not set".
 */
function configOf(config: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of CONFIG_FIELDS) {
    const v = config?.[f];
    out[f] = v === undefined || v === '' ? null : v;
  }
  return out;
}

interface Case {
  /** Fixture directory under test/fixtures/build/equivalence: the context, with its Dockerfile. */
  name: string;
  title: string;
  /** The Dockerfile docker builds, when it cannot read the one strata builds. */
  dockerfile?: string;
  args?: string[];
  /** Changes to the context copy that git cannot hold (owners, odd modes, hard links, empty directories). */
  prepare?: (ctx: string) => Promise<void>;
  /**
   * The one difference from docker 20.10 that strata keeps on purpose: a step that changes no file. docker commits a
   * layer for it anyway (WORKDIR of an existing directory: an empty tar; `RUN true`: /etc alone, whose mtime the
   * step's /etc/hosts and /etc/resolv.conf mount points moved); strata, as the issue asks, adds no layer and marks
   * the step's history entry empty_layer (its mount points live in an init layer that never reaches the image). The
   * count of such steps: docker has that many more layers, strata that many empty_layer entries, the trees and
   * configs are equal.
   */
  emptySteps?: number;
}

const CASES: Case[] = [
  {
    name: 'workdir',
    title: 'WORKDIR: new directories (with parents, relative, from ENV, under USER) and RUN/COPY relative to it',
  },
  {
    name: 'copy',
    title: 'COPY: files, directories, globs, --chown (ids and names), --chmod, into existing directories, symlinks',
    prepare: async (ctx) => {
      await chmod(join(ctx, 'odd-mode.txt'), 0o604);
      await chown(join(ctx, 'foreign-owner.txt'), 1234, 5678);
      await chmod(join(ctx, 'dir/sub/deeper'), 0o700);
      await mkdir(join(ctx, 'dir/really-empty'));
    },
  },
  {
    name: 'add',
    title: 'ADD: local .tar.gz into new and existing directories, a ./ archive, --chown, plain files',
  },
  {
    name: 'config',
    title: 'ARG (global, --build-arg), ENV, LABEL, EXPOSE, VOLUME, USER, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, CMD',
    args: ['--build-arg', 'VERSION=2.5'],
  },
  { name: 'entrypoint', title: 'ENTRYPOINT resets the CMD inherited from the base; HEALTHCHECK NONE' },
  { name: 'cmd-then-entrypoint', title: 'ENTRYPOINT keeps a CMD of the same stage; shell-form ENTRYPOINT' },
  {
    name: 'run',
    title: 'RUN: creates, modifies, deletes, re-creates, replaces files and directories; mode and owner changes',
  },
  { name: 'multistage', title: 'multi-stage: COPY --from a stage, an index and an image; an unused stage' },
  { name: 'dockerignore', title: '.dockerignore: patterns, exceptions, ** and the Dockerfile itself' },
  {
    // docker 20.10's built-in Dockerfile frontend (BuildKit v0.8) has no heredocs, and `# syntax=` would pull a
    // frontend image from Docker Hub: docker builds the same steps written without heredocs, as BuildKit 1.4+ runs
    // them (the document as the shell's script; a shebang document as a script file; COPY writes a 0644 file).
    name: 'heredoc',
    title: 'heredoc RUN and COPY (docker: the same steps without heredocs)',
    dockerfile: 'Dockerfile.buildkit-0.8',
    prepare: async (ctx) => {
      for (const f of ['inline.txt', 'literal.txt', 'script.sh', 'multi/A', 'multi/B']) {
        await chmod(join(ctx, 'as-files', f), 0o644);
      }
    },
  },
  { name: 'copy-symlink-source', title: 'COPY of a symlink named or matched by a glob copies what it points to' },
  { name: 'copy-dest-dir', title: 'COPY a.txt /etc: an existing directory is the destination directory, slash or not' },
  { name: 'copy-dest-symlink', title: 'COPY a.txt /link: a destination symlink is written through' },
  { name: 'copy-from-owner', title: "COPY --from without --chown keeps the stage's owners" },
  {
    name: 'copy-hardlinks',
    title: 'COPY . keeps hard links between context files',
    prepare: async (ctx) => {
      await link(join(ctx, 'a.txt'), join(ctx, 'hard-a.txt'));
    },
  },
  { name: 'add-gzip-file', title: 'ADD of a gzip file that is not a tar copies it as it is' },
  {
    name: 'workdir-existing',
    title: 'WORKDIR of existing directories: no layer (docker: empty ones), the same tree',
    emptySteps: 2,
  },
  {
    name: 'run-no-change',
    title: 'RUN that changes nothing: no layer (docker: one with /etc alone), the same tree',
    emptySteps: 1,
  },
];

const canDocker = process.getuid?.() === 0 && ['runc', 'busybox', 'dockerd', DOCKER_CLIENT].every(hasTool);

function ready(t: TestContext): boolean {
  return needRoot(t) && needTool(t, 'runc', 'busybox', 'dockerd', DOCKER_CLIENT);
}

describe('strata build and docker build (BuildKit) make the same images', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let root: string;
  let dockerd: Dockerd | undefined;
  /** The busybox layer both builders start from. */
  let baseLayer: string;

  before(async () => {
    work = await tempDir('strata-build-docker-');
    root = join(work.path, 'root');
    if (!canDocker && !inCI) return;
    await importBusybox(root, work.path);
    const base = join(work.path, 'busybox.tar');
    const saved = await strata(root, ['save', '-o', base, 'busybox']);
    assert.equal(saved.code, 0, saved.stderr);
    dockerd = await startDockerd(join(work.path, 'docker'));
    await dockerd.docker(['load', '-i', base]);
    const ours = JSON.parse((await strata(root, ['inspect', 'busybox'])).stdout)[0];
    const theirs = JSON.parse(await dockerd.docker(['image', 'inspect', 'busybox']))[0];
    assert.equal(theirs.Id, ours.Id, 'dockerd has the very image strata builds from');
    baseLayer = ours.RootFS.Layers[0];
  });

  after(async () => {
    await dockerd?.stop();
    if (root) {
      const ids = (await strata(root, ['ps', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await strata(root, ['rm', '-f', ...ids]);
    }
    if (work) {
      // Whatever a killed daemon left mounted under the work directory, deepest first, before removing it.
      const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
        .split('\n')
        .map((l) => l.split(' ')[4])
        .filter((m): m is string => m?.startsWith(`${work.path}/`) === true)
        .sort()
        .reverse();
      for (const m of mounts) execFileSync('umount', ['-l', m]);
      await work.cleanup();
    }
  });

  for (const c of CASES) {
    it(c.title, async (t) => {
      if (!ready(t)) return;
      const ctx = join(work.path, 'ctx', c.name);
      await cp(join(fixtures, c.name), ctx, { recursive: true, verbatimSymlinks: true });
      await c.prepare?.(ctx);
      const tag = `eq-${c.name}:1`;
      const args = c.args ?? [];
      const dockerBuild = [
        'build',
        '--no-cache',
        '--network',
        'host',
        '--progress',
        'plain',
        '-f',
        join(ctx, c.dockerfile ?? 'Dockerfile'),
        '-t',
        tag,
        ...args,
        ctx,
      ];
      // Both builds at once; a failed docker build is reported only after strata's has finished too.
      const [ours, theirs] = await Promise.all([
        strata(root, ['build', '-t', tag, ...args, ctx]),
        dockerd!.docker(dockerBuild, { env: { DOCKER_BUILDKIT: '1' } }).catch((e: Error) => e),
      ]);
      assert.equal(ours.code, 0, ours.stderr);
      if (theirs instanceof Error) throw theirs;

      const theirImage = JSON.parse(await dockerd!.docker(['image', 'inspect', tag]))[0];
      const ourImage = JSON.parse((await strata(root, ['inspect', tag])).stdout)[0];
      assert.equal(theirImage.RootFS.Layers[0], baseLayer, 'docker built FROM the loaded busybox');
      assert.equal(ourImage.RootFS.Layers[0], baseLayer);

      // The tree, listed as root by the image's own busybox, whatever its USER and ENTRYPOINT.
      const list = listing(Object.keys(theirImage.Config.Volumes ?? {}).map((v) => `.${v}`));
      const run = ['--rm', '--user', '0:0', '--entrypoint', 'sh', tag, '-c', list];
      const listed = await strata(root, ['run', ...run]);
      assert.equal(listed.code, 0, listed.stderr);
      const theirTree = await dockerd!.docker(['run', '--pull', 'never', '--network', 'none', ...run]);
      assert.ok(listed.stdout.includes('\n./bin/busybox 755 '), listed.stdout.slice(0, 2000));
      assert.deepEqual(treeDiff(listed.stdout, theirTree), [], 'the same file tree');

      assert.deepEqual(configOf(ourImage.Config), configOf(theirImage.Config), 'the same config');

      const ourLayers = ourImage.RootFS.Layers.length;
      let theirLayers = theirImage.RootFS.Layers.length;
      if (c.emptySteps !== undefined) {
        theirLayers -= c.emptySteps;
        // strata's config (the content store's blob named by the image ID) marks those steps empty_layer
        const config = JSON.parse(
          await readFile(join(root, 'blobs', 'sha256', String(ourImage.Id).slice('sha256:'.length)), 'utf8'),
        ) as { history: { created_by?: string; empty_layer?: boolean }[] };
        const marked = config.history.filter((h) => h.empty_layer && /^(RUN|WORKDIR) /.test(h.created_by ?? ''));
        assert.equal(marked.length, c.emptySteps, 'strata marks the steps empty_layer instead');
      }
      if (ourLayers !== theirLayers) {
        const ourHistory = (await strata(root, ['history', '--no-trunc', tag])).stdout;
        const theirHistory = await dockerd!.docker(['history', '--no-trunc', tag]);
        assert.fail(
          `layers: strata ${ourLayers}, docker ${theirLayers}\nstrata:\n${ourHistory}\ndocker:\n${theirHistory}`,
        );
      }
    });
  }

  it('every fixture directory is a case', async () => {
    const names = (await readdir(fixtures)).sort();
    assert.deepEqual(names, CASES.map((c) => c.name).sort());
  });
});

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createConnection } from 'node:net';
import { chmod, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { getAttributeSync, listAttributesSync } from '@napi-rs/xattr';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importBusybox, strata } from '../../helpers/cli.js';
import { cliPath, repoRoot, tempDir } from '../../helpers/env.js';
import { canRun } from '../container/helpers.js';

const fixtures = join(repoRoot, 'test/fixtures/build');

interface Built {
  code: number;
  stdout: string;
  stderr: string;
  /** Step lines `#N [stage i/n] TEXT` that ran (not CACHED). */
  ran: string[];
  cached: string[];
}

/** Run `strata build` and sort its steps into the ones that ran and the ones the cache answered. */
async function build(root: string, args: string[], input?: string | Buffer): Promise<Built> {
  const r = await strata(root, ['build', ...args], input !== undefined ? { input } : {});
  const steps = new Map<string, string>();
  const cachedIds = new Set<string>();
  for (const line of r.stderr.split('\n')) {
    const step = /^#(\d+) \[[^\]]+\] (.*)$/.exec(line);
    if (step) steps.set(step[1]!, step[2]!);
    const c = /^#(\d+) CACHED$/.exec(line);
    if (c) cachedIds.add(c[1]!);
  }
  const ran: string[] = [];
  const cached: string[] = [];
  for (const [id, text] of steps) {
    if (text.startsWith('FROM ')) continue;
    (cachedIds.has(id) ? cached : ran).push(text);
  }
  return { ...r, ran, cached };
}

/** Every entry under `dir` as one line: type, mode, owner, size, mtime in ns, link count, xattrs, target, content. */
function treeListing(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const abs = join(dir, r);
      const st = lstatSync(abs, { bigint: true });
      const xattrs = st.isSymbolicLink()
        ? []
        : listAttributesSync(abs)
            .sort()
            .map((x) => `${x}=${getAttributeSync(abs, x)?.toString('hex')}`);
      const what = st.isSymbolicLink()
        ? readlinkSync(abs)
        : st.isFile()
          ? createHash('sha256').update(readFileSync(abs)).digest('hex')
          : `rdev ${st.rdev}`;
      out.push(
        `${r} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeNs} ${st.nlink} [${xattrs}] ${what}`,
      );
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

/** Send ssh-agent's "request identities" message on `path` and return the answer as text. */
function askAgentForKeys(path: string): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const c = createConnection(path, () => c.write(Buffer.from([0, 0, 0, 1, 11])));
    c.on('data', (d: Buffer) => {
      chunks.push(d);
      const all = Buffer.concat(chunks);
      if (all.length >= 4 && all.length >= 4 + all.readUInt32BE(0)) c.end();
    });
    c.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    c.on('error', () => resolve(''));
  });
}

const inspect = async (root: string, ref: string) => JSON.parse((await strata(root, ['inspect', ref])).stdout)[0];

describe('strata build', { skip: canRun ? false : 'needs root, runc and busybox-static' }, () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let root: string;
  let app: string;

  before(async () => {
    work = await tempDir('strata-build-');
    root = join(work.path, 'root');
    await importBusybox(root, work.path);
    app = join(work.path, 'app');
    await cp(join(fixtures, 'app'), app, { recursive: true });
  });
  after(async () => work?.cleanup());

  it('builds every instruction: files, owners, modes, config and history as docker would', async () => {
    const b = await build(root, ['-t', 'app:1', app]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /naming to docker\.io\/library\/app:1 done/);
    const run = await strata(root, ['run', '--rm', 'app:1']);
    assert.equal(run.stdout, 'hello from build\n', run.stderr);
    const tree = await strata(root, [
      'run',
      '--rm',
      '--entrypoint',
      'sh',
      'app:1',
      '-c',
      'cd /app && find . | sort && stat -c "%n %a %u %g" owned.txt hello.txt && cat inline.txt unpacked/d/t.txt heredoc.txt && id -u && ls /app/ignored.log 2>&1 || true',
    ]);
    assert.equal(tree.code, 0, tree.stderr);
    assert.equal(
      tree.stdout + (tree.stdout === '' ? `(stderr: ${tree.stderr})` : ''),
      [
        '.',
        './hello.txt',
        './heredoc.txt',
        './inline.txt',
        './made.txt',
        './owned.txt',
        './sub',
        './sub/s.txt',
        './unpacked',
        './unpacked/d',
        './unpacked/d/t.txt',
        'owned.txt 640 1000 1000',
        'hello.txt 644 0 0',
        'inline test',
        'in-tar',
        'heredoc-ran',
        '65534',
        'ls: /app/ignored.log: No such file or directory',
        '',
      ].join('\n'),
    );
    const img = await inspect(root, 'app:1');
    const c = img.Config;
    assert.equal(c.User, 'nobody');
    assert.equal(c.WorkingDir, '/app');
    assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c']);
    assert.deepEqual(c.Cmd, ['cat /app/made.txt']);
    assert.deepEqual(c.ExposedPorts, { '8080/tcp': {}, '9000/udp': {} });
    assert.deepEqual(c.Volumes, { '/data': {} });
    assert.equal(c.StopSignal, 'SIGINT');
    assert.deepEqual(c.Labels, { 'org.example.k': 'v' });
    assert.deepEqual(c.Healthcheck, { Test: ['CMD', 'true'], Interval: 5_000_000_000 });
    assert.deepEqual(c.OnBuild, ['RUN echo child']);
    assert.deepEqual(c.Shell, ['/bin/sh', '-ec']);
    assert.ok(c.Env.includes('APP=/app') && c.Env.includes('MODE=test'));
    assert.ok(
      c.Env.some((e: string) => e.startsWith('PATH=')),
      'a PATH, as BuildKit gives',
    );
    // busybox's layer + WORKDIR, 3 COPY, ADD, COPY heredoc, 2 RUN with changes; `RUN true` changed nothing.
    assert.equal(img.RootFS.Layers.length, 1 + 1 + 3 + 1 + 1 + 2);
    const history = (await strata(root, ['history', '--no-trunc', '--format', 'json', 'app:1'])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    // every instruction after FROM has a history entry, newest first, over busybox's one
    assert.equal(history.length, 21 + 1);
    const by = history.map((h) => h.CreatedBy);
    assert.ok(
      by.includes(
        'RUN |1 GREETING=hello /bin/sh -c echo "$GREETING from build" > made.txt && rm /app/sub/gone.txt # buildkit',
      ),
    );
    assert.ok(by.includes('WORKDIR /app'));
    assert.ok(by.includes('ENV APP=/app MODE=test'));
    assert.ok(by.includes('COPY hello.txt ./ # buildkit'));
    const runTrue = history.find((h) => h.CreatedBy.startsWith('RUN |1 GREETING=hello /bin/sh -c true'));
    assert.equal(runTrue?.Size, '0B');
    assert.ok(history.every((h, i) => i === history.length - 1 || h.CreatedAt === '1970-01-01T00:00:00Z'));
  });

  it('a rebuild with no change runs no step and gives the same image', async () => {
    const first = await inspect(root, 'app:1');
    const b = await build(root, ['-t', 'app:1', app]);
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(b.ran, []);
    // the steps that change files (WORKDIR, COPY x3, ADD, COPY heredoc, RUN x3); config steps are no vertices
    assert.equal(b.cached.length, 9, b.cached.join(' | '));
    assert.equal((await inspect(root, 'app:1')).Id, first.Id);
  });

  it('changing a file re-runs only the steps from the first COPY that reads it; an ignored file changes nothing', async () => {
    await writeFile(join(app, 'ignored.log'), 'changed, but .dockerignore excludes it\n');
    const ignored = await build(root, ['-t', 'app:1', app]);
    assert.equal(ignored.code, 0, ignored.stderr);
    assert.deepEqual(ignored.ran, []);
    await writeFile(join(app, 'sub', 's.txt'), 'changed\n');
    const b = await build(root, ['--explain-cache', '-t', 'app:2', app]);
    assert.equal(b.code, 0, b.stderr);
    // --explain-cache names the input that changed: the file for the COPY, the parent for the steps after it
    assert.match(b.stderr, /^#\d+ MISS files it copies: changed: sub\/s\.txt$/m);
    assert.match(b.stderr, /^#\d+ MISS an earlier step changed/m);
    assert.deepEqual(b.cached, [
      'WORKDIR $APP',
      'COPY hello.txt ./',
      'COPY --chown=1000:1000 --chmod=0640 secret.txt /app/owned.txt',
    ]);
    assert.equal(b.ran[0], 'COPY sub/ ./sub/');
    assert.equal(b.ran.length, 6);
    const out = await strata(root, ['run', '--rm', '--entrypoint', 'cat', 'app:2', '/app/sub/s.txt']);
    assert.equal(out.stdout, 'changed\n');
    // --no-cache runs everything again
    const nc = await build(root, ['--no-cache', '-t', 'app:3', app]);
    assert.equal(nc.code, 0, nc.stderr);
    assert.equal(nc.cached.length, 0);
    assert.equal(
      (await inspect(root, 'app:3')).Id,
      (await inspect(root, 'app:2')).Id,
      'the same inputs, the same image',
    );
  });

  it('--progress tty draws the live view (a terminal is not needed to ask for it); a bad mode is refused', async () => {
    const r = await strata(root, ['build', '--progress', 'tty', '-t', 'app:1', app]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\[\+\] Building [\d.]+s \(\d+\/\d+\) FINISHED/);
    assert.match(r.stderr, / => CACHED \[base \d+\/22\] COPY hello\.txt \.\/ +\d+\.\ds\x1b\[K$/m);
    assert.match(r.stderr, /\x1b\[K/);
    const bad = await strata(root, ['build', '--progress', 'fancy', app]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid --progress "fancy"/);
  });

  it('a build arg that a step uses keys the cache: changing it re-runs that step', async () => {
    const b = await build(root, ['--explain-cache', '--build-arg', 'GREETING=hi', '-t', 'app:hi', app]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /MISS build argument GREETING: "hello" -> "hi"/);
    // COPY steps do not depend on the argument; every RUN sees it in its environment
    assert.equal(b.cached.length, 6, b.cached.join(' | '));
    assert.ok(b.ran[0]?.startsWith('RUN echo "$GREETING'), b.ran.join('|'));
    assert.equal(b.ran.length, 3);
    const out = await strata(root, ['run', '--rm', 'app:hi']);
    assert.equal(out.stdout, 'hi from build\n');
  });

  it('reproducible: two fresh roots build the same digest, also with SOURCE_DATE_EPOCH', async () => {
    const ids: string[] = [];
    // The same base in both roots (an import stamps the time, so the base is moved by save and load).
    const base = join(work.path, 'base.tar');
    assert.equal((await strata(root, ['save', '-o', base, 'busybox'])).code, 0);
    for (const n of [1, 2]) {
      const r2 = join(work.path, `repro-${n}`);
      assert.equal((await strata(r2, ['load', '-q', '-i', base])).code, 0);
      const b = await build(r2, ['-q', app]);
      assert.equal(b.code, 0, b.stderr);
      ids.push(b.stdout.trim());
      const sde = await strata(r2, ['build', '-q', app], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
      ids.push(sde.stdout.trim());
    }
    assert.match(ids[0]!, /^sha256:[0-9a-f]{64}$/);
    assert.equal(ids[0], ids[2]);
    assert.equal(ids[1], ids[3]);
    assert.notEqual(ids[0], ids[1], 'SOURCE_DATE_EPOCH is in the timestamps');
  });

  it("a step's snapshot (its upper kept as it is) equals what unpacking its layer in another root gives", async () => {
    const ctx = join(work.path, 'settle');
    await mkdir(ctx, { recursive: true });
    await writeFile(join(ctx, 'f.txt'), 'from the context\n');
    await writeFile(
      join(ctx, 'Dockerfile'),
      [
        'FROM busybox:latest',
        'RUN mkdir -p /d/sub && echo a > /d/sub/a && echo keep > /d/k && mkfifo /fifo && ln -s /d/k /link',
        // deletion (whiteout), copy-up of a base file (overlay records its origin), an emptied and re-made
        // directory (opaque), a hard link; the epoch is in the future, so every time is kept (in whole seconds)
        'RUN rm /etc/group && chmod 600 /etc/passwd && rm -rf /d && mkdir /d && echo b > /d/b && ln /d/b /d/b2 \\',
        '    && touch -d "2001-02-03 04:05:06" /d/old && echo x > /new',
        'COPY f.txt /d/',
        '',
      ].join('\n'),
    );
    const built = await strata(root, ['build', '-q', '-t', 'settle:1', ctx], {
      env: { SOURCE_DATE_EPOCH: '4000000000' },
    });
    assert.equal(built.code, 0, built.stderr);
    const archive = join(work.path, 'settle.tar');
    assert.equal((await strata(root, ['save', '-o', archive, 'settle:1'])).code, 0);
    const other = join(work.path, 'settle-root');
    const loaded = await strata(other, ['load', '-q', '-i', archive]);
    assert.equal(loaded.code, 0, loaded.stderr);
    const diffIds: string[] = (await inspect(root, 'settle:1')).RootFS.Layers;
    assert.equal(diffIds.length, 4);
    let chain = '';
    for (const diffId of diffIds) {
      chain = chain === '' ? diffId : `sha256:${createHash('sha256').update(`${chain} ${diffId}`).digest('hex')}`;
      const dir = (r: string) =>
        join(r, 'snapshots', createHash('sha256').update(chain).digest('hex').slice(0, 32), 'fs');
      assert.deepEqual(treeListing(dir(root)), treeListing(dir(other)), `snapshot of layer ${diffId}`);
    }
  });

  it('multi-stage: COPY --from a stage and an index, --target, unused stages are not built', async () => {
    const ms = join(fixtures, 'multistage');
    const b = await build(root, ['-t', 'ms:1', ms]);
    assert.equal(b.code, 0, b.stderr);
    assert.ok(!b.stderr.includes('exit 3'), 'the unused stage did not run');
    const img = await inspect(root, 'ms:1');
    assert.equal(img.RootFS.Layers.length, 3);
    const run = await strata(root, ['run', '--rm', 'ms:1', '/bin/busybox', 'cat', '/artifact', '/out-copy/artifact']);
    assert.equal(run.stdout, 'built\nbuilt\n', run.stderr);
    const t = await build(root, ['--target', 'final', '-t', 'ms:final', ms]);
    assert.equal(t.code, 0, t.stderr);
    assert.equal((await inspect(root, 'ms:final')).RootFS.Layers.length, 2);
    const bad = await build(root, ['--target', 'nope', ms]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /nope/);
    assert.match(bad.stderr, /builder/);
  });

  it('independent stages build at the same time (each waits for a file the other writes)', async () => {
    const dir = join(work.path, 'concurrent');
    await cp(join(fixtures, 'multistage'), dir, { recursive: true });
    const wait = (me: string, other: string) =>
      `RUN --mount=type=cache,id=sync-$RUN_ID,target=/sync touch /sync/${me} && for i in $(seq 300); do [ -f /sync/${other} ] && exit 0; sleep 0.1; done; echo "${other} never ran alongside"; exit 1`;
    await writeFile(
      join(dir, 'Dockerfile'),
      [
        'ARG RUN_ID',
        'FROM busybox AS a',
        'ARG RUN_ID',
        wait('a', 'b'),
        'RUN echo a > /a',
        'FROM busybox AS b',
        'ARG RUN_ID',
        wait('b', 'a'),
        'RUN echo b > /b',
        'FROM busybox',
        'COPY --from=a /a /a',
        'COPY --from=b /b /b',
        '',
      ].join('\n'),
    );
    const b = await build(root, ['--build-arg', `RUN_ID=${Date.now()}`, '-t', 'conc:1', dir]);
    assert.equal(b.code, 0, b.stderr);
    const out = await strata(root, ['run', '--rm', 'conc:1', 'cat', '/a', '/b']);
    assert.equal(out.stdout, 'a\nb\n');
  });

  it('the context as a tar on stdin, and the Dockerfile from stdin', async () => {
    const tar = execFileSync('tar', ['-C', join(fixtures, 'multistage'), '-c', '.']);
    const r = await strata(root, ['build', '-q', '--target', 'builder', '-'], { input: tar });
    assert.equal(r.code, 0, r.stderr);
    const df = await strata(root, ['build', '-q', '-f', '-', app], { input: 'FROM busybox\nCOPY hello.txt /h\n' });
    assert.equal(df.code, 0, df.stderr);
    const id = df.stdout.trim();
    const out = await strata(root, ['run', '--rm', id, 'cat', '/h']);
    assert.equal(out.stdout, 'hi\n');
  });

  it('bad input: clear errors with file and line, and no image tagged', async () => {
    const dir = join(work.path, 'bad');
    await cp(join(fixtures, 'app'), dir, { recursive: true });
    const cases: [string, RegExp][] = [
      ['FROM busybox\nCOPPY a b\n', /Dockerfile:2: unknown instruction: COPPY \(did you mean COPY\?\)/],
      ['FROM busybox\nCOPY missing.txt /x\n', /Dockerfile:2: COPY: "\/missing.txt": not found/],
      ['FROM busybox\nCOPY hello.txt\n', /Dockerfile:2/],
      ['FROM busybox\nRUN echo before-failing; exit 7\n', /Dockerfile:2: RUN .*exit code: 7[\s\S]*before-failing/],
      ['FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n', /circular dependency/],
      ['FROM no-such-image-here.invalid/x\n', /no-such-image-here/],
    ];
    for (const [text, re] of cases) {
      await writeFile(join(dir, 'Dockerfile'), text);
      const b = await build(root, ['-t', 'bad:1', dir]);
      assert.notEqual(b.code, 0, text);
      assert.match(b.stderr, re, text);
    }
    const images = await strata(root, ['images', '--format', 'json']);
    assert.ok(!images.stdout.includes('"bad"'), 'no image tagged by a failed build');
  });

  it("ONBUILD: a child of the built image runs the base's triggers first, and does not pass them on", async () => {
    const dir = join(work.path, 'child');
    await cp(join(fixtures, 'app'), dir, { recursive: true });
    await writeFile(join(dir, 'Dockerfile'), 'FROM app:1\nRUN echo child-step > /tmp/child\n');
    const b = await build(root, ['-t', 'child:1', dir]);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.ran[0], 'RUN echo child', b.ran.join(' | '));
    assert.match(b.stderr, /#\d+ [\d.]+ child$/m);
    const img = await inspect(root, 'child:1');
    assert.equal(img.Config.OnBuild ?? null, null);
  });

  it('--output writes an archive of the image and --iidfile its ID', async () => {
    const out = join(work.path, 'app-oci.tar');
    const iid = join(work.path, 'iid');
    const b = await build(root, ['-t', 'app:out', '--output', `type=oci,dest=${out}`, '--iidfile', iid, app]);
    assert.equal(b.code, 0, b.stderr);
    const id = (await readFile(iid, 'utf8')).trim();
    assert.equal(id, (await inspect(root, 'app:out')).Id);
    const r2 = join(work.path, 'from-archive');
    const l = await strata(r2, ['load', '-i', out]);
    assert.equal(l.code, 0, l.stderr);
    assert.equal((await inspect(r2, 'app:out')).Id, id);
  });

  it('RUN --mount: cache survives builds, tmpfs, read-only binds, secrets never reach the image', async () => {
    const dir = join(work.path, 'mounts');
    await cp(join(fixtures, 'app'), dir, { recursive: true });
    const secretFile = join(work.path, 'token.txt');
    await writeFile(secretFile, 's3cr3t-file\n');
    await writeFile(
      join(dir, 'Dockerfile'),
      [
        'FROM busybox',
        'ARG RUNS=1',
        'RUN --mount=type=cache,target=/var/cache/demo echo "run $RUNS" >> /var/cache/demo/log && cat /var/cache/demo/log > /seen-cache',
        'RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/x && grep -c tmpfs /proc/mounts > /tmpfs-count',
        'RUN --mount=type=bind,source=sub,target=/ctx cat /ctx/s.txt > /from-bind && ! touch /ctx/new 2> /dev/null',
        'RUN --mount=type=secret,id=token cat /run/secrets/token | wc -c > /secret-len',
        // (a shell length expansion, not a template placeholder)
        // biome-ignore lint/suspicious/noTemplateCurlyInString: Dockerfile text
        "RUN --mount=type=secret,id=envtok,env=TOKEN sh -c 'echo ${#TOKEN} > /env-secret-len'",
        '',
      ].join('\n'),
    );
    const env = { ENVTOK: 'from-env-123' };
    const args = ['--secret', `id=token,src=${secretFile}`, '--secret', 'id=envtok,env=ENVTOK', '-t', 'mounts:1', dir];
    const b = await strata(root, ['build', ...args], { env });
    assert.equal(b.code, 0, b.stderr);
    const b2 = await strata(root, ['build', '--build-arg', 'RUNS=2', ...args], { env });
    assert.equal(b2.code, 0, b2.stderr);
    const out = await strata(root, [
      'run',
      '--rm',
      'mounts:1',
      'sh',
      '-c',
      'cat /seen-cache /tmpfs-count /from-bind /secret-len /env-secret-len; ls -d /run/secrets /var/cache/demo /scratch /ctx 2>&1 | grep -c "No such file"',
    ]);
    assert.equal(out.code, 0, out.stderr);
    const lines = out.stdout.trim().split('\n');
    assert.deepEqual(lines.slice(0, 2), ['run 1', 'run 2'], "the cache mount kept the first build's line");
    assert.ok(Number(lines[2]) >= 1, 'a tmpfs was mounted');
    assert.equal(lines[3], 's');
    assert.equal(lines[4], '12');
    assert.equal(lines[5], '12');
    assert.equal(lines[6], '4', 'no mount point reached the image');
    // nothing of the secrets in the config, the history or any layer
    const saved = join(work.path, 'mounts.tar');
    assert.equal((await strata(root, ['save', '-o', saved, 'mounts:1'])).code, 0);
    const all = execFileSync(
      'sh',
      [
        '-c',
        `mkdir -p ${saved}.d && tar -xf ${saved} -C ${saved}.d && for f in $(find ${saved}.d -type f); do (gzip -dc "$f" 2>/dev/null || cat "$f"); done | strings`,
      ],
      {
        encoding: 'utf8',
        maxBuffer: 64 << 20,
      },
    );
    assert.ok(!all.includes('s3cr3t-file') && !all.includes('from-env-123'), 'a secret leaked into the image');
    await writeFile(join(dir, 'Dockerfile'), 'FROM busybox\nRUN --mount=type=secret,id=nope,required=true true\n');
    const missing = await strata(root, ['build', '-t', 'mounts:2', dir]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /secret nope is required/);
  });

  it('COPY --link: a new base reuses the layer (CACHED), the image has both; --chown by name is refused', async () => {
    const dir = join(work.path, 'link');
    await cp(join(fixtures, 'link'), dir, { recursive: true });
    assert.equal(
      (await strata(root, ['build', '-q', '-t', 'link-base:1', '-f', join(dir, 'base.Dockerfile'), dir])).code,
      0,
    );
    const first = await build(root, ['-t', 'link:1', dir]);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(first.cached, []);
    const second = await build(root, ['--build-arg', 'BASE=link-base:1', '-t', 'link:2', dir]);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(second.cached, ['COPY --link --chown=7:8 files/ /app/'], 'the linked layer came from the cache');
    assert.deepEqual(second.ran, ['RUN cat /app/a.txt > /app/seen']);
    const l1 = (await inspect(root, 'link:1')).RootFS.Layers;
    const l2 = (await inspect(root, 'link:2')).RootFS.Layers;
    assert.equal(l1[1], l2[2], 'the same COPY layer on both bases');
    const out = await strata(root, [
      'run',
      '--rm',
      'link:2',
      'sh',
      '-c',
      'cat /base-marker /app/seen; stat -c "%u:%g" /app/a.txt',
    ]);
    assert.equal(out.stdout, 'other-base\nlinked\n7:8\n', out.stderr);
    const named = await build(root, ['-f', join(dir, 'named.Dockerfile'), dir]);
    assert.notEqual(named.code, 0);
    assert.match(named.stderr, /--link --chown=nobody: names cannot be resolved[\s\S]*numeric ids/);
  });

  it('RUN --mount: a writable bind throws its writes away; an ssh agent is relayed; symbolic --chmod', async () => {
    const dir = join(work.path, 'mounts-more');
    await cp(join(fixtures, 'mounts-more'), dir, { recursive: true });
    await chmod(join(dir, 'mode.txt'), 0o666); // (git keeps no such mode)
    // A real ssh-agent holding a fresh key; the step waits until this test has spoken to the agent through the
    // socket the build made for it.
    const key = join(work.path, 'id_test');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'strata-test-key', '-f', key]);
    const agentSock = join(work.path, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(agentSock); i++) await new Promise((r) => setTimeout(r, 50));
      execFileSync('ssh-add', ['-q', key], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: 'ignore' });
      const building = strata(root, ['build', '--ssh', `default=${agentSock}`, '-t', 'more:1', dir]);
      // The relay socket appears in the step's directory; ask the agent for its keys through it.
      let answer = '';
      for (let i = 0; i < 600 && answer === ''; i++) {
        const list = (d: string) => (existsSync(d) ? readdirSync(d).map((n) => join(d, n)) : []);
        const socks = list(join(root, 'tmp'))
          .filter((d) => /\/build-[0-9a-f]+$/.test(d))
          .flatMap(list)
          .filter((f) => /\/ssh-[0-9a-f]+\.sock$/.test(f));
        if (socks.length > 0) answer = await askAgentForKeys(socks[0]!);
        else await new Promise((r) => setTimeout(r, 50));
      }
      await writeFile(join(dir, 'signal', 'checked'), '');
      const b = await building;
      assert.equal(b.code, 0, b.stderr);
      assert.match(answer, /strata-test-key/, 'the relayed socket reaches the agent');
    } finally {
      agent.kill();
    }
    assert.equal(await readFile(join(dir, 'sub', 's.txt'), 'utf8'), 's\n', 'the context is untouched');
    assert.ok(existsSync(join(dir, 'sub', 'gone.txt')));
    const out = await strata(root, [
      'run',
      '--rm',
      'more:1',
      'sh',
      '-c',
      'cat /rw-seen /ssh-info; stat -c "%n %a" /modes/a /modes/tree /modes/tree/inner /modes/tree/inner/f /modes/h; ls /ctx /signal /run/buildkit 2>&1 | grep -c "No such file"',
    ]);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(out.stdout.trim().split('\n'), [
      'changed',
      's.txt',
      'socket 660 5',
      '/run/buildkit/ssh_agent.0',
      '/modes/a 744',
      '/modes/tree 755',
      '/modes/tree/inner 700',
      '/modes/tree/inner/f 600',
      '/modes/h 600',
      '3',
    ]);
    // --ssh naming something that is no agent socket: a clear error before anything is built
    const noSocket = await strata(root, ['build', '--ssh', `default=${join(work.path, 'no-such.sock')}`, dir]);
    assert.equal(noSocket.code, 1, noSocket.stderr);
    assert.match(noSocket.stderr, /--ssh default: cannot use .*no-such\.sock: ENOENT/);
    const keyFile = await strata(root, ['build', '--ssh', `default=${key}`, dir]);
    assert.notEqual(keyFile.code, 0);
    assert.match(keyFile.stderr, /is not an agent socket \(key files are not supported\)[\s\S]*ssh-add/);
    // a required agent that was not given
    const missing = await strata(root, ['build', '-f', join(dir, 'ssh-required.Dockerfile'), dir]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /ssh agent default is required but was not given[\s\S]*--ssh default/);
  });

  it('a build killed during a RUN: the next build cleans up its container, mount and overlay', async () => {
    const dir = join(work.path, 'killed');
    await cp(join(fixtures, 'multistage'), dir, { recursive: true });
    await writeFile(join(dir, 'Dockerfile'), `FROM busybox\nRUN echo started-${Date.now()}; sleep 60\n`);
    const child = spawn(cliPath, ['build', dir], {
      env: { ...process.env, STRATA_ROOT: root },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const until = Date.now() + 30_000;
    // the RUN's own output line (`#2 0.093 started-...`), not the step's header
    const running = /^#\d+ [\d.]+ started-/m;
    while (!running.test(err) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.match(err, running);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    const mountsUnderRoot = () =>
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => l.split(' ')[4]?.startsWith(root));
    assert.ok(mountsUnderRoot().length > 0, 'the killed build left its overlay mounted');
    await writeFile(join(dir, 'Dockerfile'), 'FROM busybox\nRUN true\n');
    const next = await build(root, [dir]);
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual(mountsUnderRoot(), []);
    assert.deepEqual(
      readdirSync(join(root, 'runtime', 'runc')).filter((n) => n.startsWith('strata-build-')),
      [],
    );
  });

  it('leaves no mount, active snapshot or temporary directory behind', async () => {
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.split(' ')[4]?.startsWith(root));
    assert.deepEqual(mounts, []);
    assert.deepEqual(
      readdirSync(join(root, 'tmp')).filter((n) => n.startsWith('build-')),
      [],
    );
  });

  it('builder prune clears the cache: the next build runs every step', async () => {
    const p = await strata(root, ['builder', 'prune', '-f']);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /Deleted build cache objects: \d+/);
    const b = await build(root, ['-t', 'app:1', app]);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.cached.length, 0);
    assert.equal(b.ran.length, 9);
  });
});

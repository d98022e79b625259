/** biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are Dockerfile text, where ${VAR} is variable syntax. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  applyCheckDirective,
  DockerfileSyntaxError,
  type EvaluatedStage,
  type EvaluateStageOptions,
  type ExpandedInstruction,
  evaluateFrom,
  evaluateMetaArgs,
  evaluateStage,
  type GlobalArgs,
  parseDockerfile,
  parseFileMode,
  parsePortSpec,
  platformArgs,
} from '../../../src/dockerfile/index.js';

const PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const PLATFORM = {
  target: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  build: { os: 'linux', architecture: 'amd64' },
};

interface Run {
  globals: GlobalArgs;
  stages: EvaluatedStage[];
}

/** Parse and evaluate every stage, each with `baseEnv` (default: none). */
function evaluate(text: string, opts: Partial<EvaluateStageOptions> & { platform?: boolean } = {}): Run {
  const df = parseDockerfile(text);
  const globals = evaluateMetaArgs(df, {
    ...(opts.buildArgs ? { buildArgs: opts.buildArgs } : {}),
    ...(opts.platform ? { platform: PLATFORM } : {}),
  });
  const stages = df.stages.map((s) =>
    evaluateStage(s, {
      globalArgs: globals,
      ...(opts.buildArgs ? { buildArgs: opts.buildArgs } : {}),
      ...(opts.baseEnv ? { baseEnv: opts.baseEnv } : {}),
    }),
  );
  return { globals, stages };
}

function expanded(
  text: string,
  opts: Partial<EvaluateStageOptions> & { platform?: boolean } = {},
): ExpandedInstruction[] {
  return evaluate(text, opts)
    .stages.at(-1)!
    .instructions.map((i) => i.expanded);
}

function last<K extends ExpandedInstruction['kind']>(
  text: string,
  kind: K,
  opts: Partial<EvaluateStageOptions> & { platform?: boolean } = {},
): Extract<ExpandedInstruction, { kind: K }> {
  const all = expanded(text, opts);
  const e = all[all.length - 1]!;
  assert.equal(e.kind, kind);
  return e as Extract<ExpandedInstruction, { kind: K }>;
}

function evalError(text: string, opts: Partial<EvaluateStageOptions> = {}): DockerfileSyntaxError {
  try {
    evaluate(text, opts);
  } catch (err) {
    assert.ok(err instanceof DockerfileSyntaxError, `expected DockerfileSyntaxError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected evaluation to fail');
}

describe('global ARGs', () => {
  it('are evaluated in order, build args winning over defaults', () => {
    const df = parseDockerfile('ARG A=1\nARG B=${A}2 C\nARG D=$B-$C\nFROM x\n');
    const g = evaluateMetaArgs(df, { buildArgs: { C: 'c', UNDECLARED: 'u' } });
    assert.deepEqual(Object.fromEntries(g.values), { A: '1', B: '12', C: 'c', D: '12-c' });
    assert.deepEqual([...g.declared], ['A', 'B', 'C', 'D']);
    assert.deepEqual([...g.consumedBuildArgs], ['C']);
    const over = evaluateMetaArgs(df, { buildArgs: { A: '9' } });
    assert.equal(over.values.get('B'), '92');
  });

  it('include the automatic platform ARGs', () => {
    assert.deepEqual(platformArgs(PLATFORM), {
      TARGETPLATFORM: 'linux/arm64/v8',
      TARGETOS: 'linux',
      TARGETARCH: 'arm64',
      TARGETVARIANT: 'v8',
      BUILDPLATFORM: 'linux/amd64',
      BUILDOS: 'linux',
      BUILDARCH: 'amd64',
      BUILDVARIANT: '',
    });
  });

  it('are what FROM lines expand with (platform ARGs need no declaration there)', () => {
    const df = parseDockerfile(
      'ARG BASE=alpine\nARG TAG\nFROM --platform=$BUILDPLATFORM ${BASE}:${TAG:-3.19}-$TARGETARCH\n',
    );
    const g = evaluateMetaArgs(df, { platform: PLATFORM });
    const from = evaluateFrom(df.stages[0]!.from, g);
    assert.equal(from.image, 'alpine:3.19-arm64');
    assert.deepEqual(from.platform, { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(from.usedArgs, ['BASE', 'BUILDPLATFORM', 'TARGETARCH']);
    const withTag = evaluateFrom(
      df.stages[0]!.from,
      evaluateMetaArgs(df, { buildArgs: { TAG: 'edge' }, platform: PLATFORM }),
    );
    assert.equal(withTag.image, 'alpine:edge-arm64');
  });

  it('leave the platform to the build when --platform expands to nothing, and reject a bad one', () => {
    const df = parseDockerfile('FROM --platform=$BUILDPLATFORM a\nFROM --platform=linux a\n');
    assert.equal(evaluateFrom(df.stages[0]!.from, evaluateMetaArgs(df)).platform, undefined);
    assert.throws(() => evaluateFrom(df.stages[1]!.from, evaluateMetaArgs(df)), {
      message: /^Dockerfile:2: invalid platform "linux"/,
    });
  });

  it('refuse a FROM that expands to nothing', () => {
    const err = evalError('ARG IMAGE\nFROM $IMAGE\n');
    assert.equal(err.message, 'Dockerfile:2: base name ($IMAGE) should not be blank');
  });

  it('are not visible inside a stage unless re-declared there', () => {
    const { stages } = evaluate(
      'ARG V=3.19\nARG W=w\nFROM alpine:$V\nRUN echo\nCOPY ${V}x /\nARG V\nCOPY ${V}x $W /\n',
    );
    const [run, copy1, , copy2] = stages[0]!.instructions;
    assert.deepEqual(run!.runEnv, [PATH]);
    assert.deepEqual(copy1!.expanded.kind === 'COPY' && copy1!.expanded.sources, [{ kind: 'path', path: 'x' }]);
    assert.deepEqual(copy2!.expanded.kind === 'COPY' && copy2!.expanded.sources, [
      { kind: 'path', path: '3.19x' },
      { kind: 'path', path: '' },
    ]);
    assert.deepEqual(copy2!.usedArgs, ['V']);
  });

  it('give platform ARGs to a stage that declares them', () => {
    const { stages } = evaluate('FROM a\nRUN x\nARG TARGETARCH TARGETVARIANT\nRUN y\n', { platform: true });
    assert.deepEqual(stages[0]!.instructions[0]!.runEnv, [PATH]);
    assert.deepEqual(stages[0]!.instructions[2]!.runEnv, [PATH, 'TARGETARCH=arm64', 'TARGETVARIANT=v8']);
  });
});

describe('stage ARG and ENV scoping', () => {
  it('applies build args over ARG defaults and reports what the stage consumed', () => {
    const { stages } = evaluate('FROM a\nARG A=default B=b\nRUN x\n', { buildArgs: { A: 'given', Z: 'unused' } });
    assert.deepEqual(stages[0]!.instructions[1]!.runEnv, [PATH, 'A=given', 'B=b']);
    assert.deepEqual(stages[0]!.consumedBuildArgs, ['A']);
    assert.deepEqual(stages[0]!.args, { A: 'given', B: 'b' });
    assert.deepEqual(stages[0]!.instructions[0]!.expanded, {
      kind: 'ARG',
      args: [
        { name: 'A', value: 'given' },
        { name: 'B', value: 'b' },
      ],
    });
  });

  it('expands ARG defaults in order, seeing earlier ARGs on the same line and ENV', () => {
    const { stages } = evaluate('FROM a\nENV E=env\nARG A=1 B=$A-$E C\nRUN x\n');
    assert.deepEqual(stages[0]!.instructions[2]!.runEnv, [PATH, 'E=env', 'A=1', 'B=1-env']);
    assert.deepEqual(stages[0]!.instructions[1]!.expanded, {
      kind: 'ARG',
      args: [{ name: 'A', value: '1' }, { name: 'B', value: '1-env' }, { name: 'C' }],
    });
  });

  it('lets ENV override an ARG of the same name, whichever comes first', () => {
    const after = evaluate('FROM a\nARG V=arg\nENV V=env\nRUN x\nCOPY $V /\n', { buildArgs: { V: 'cli' } });
    const [, , run, copy] = after.stages[0]!.instructions;
    assert.deepEqual(run!.runEnv, [PATH, 'V=env']);
    assert.deepEqual(copy!.expanded.kind === 'COPY' && copy!.expanded.sources, [{ kind: 'path', path: 'env' }]);
    assert.deepEqual(copy!.usedArgs, [], 'a value that came from ENV is not a build-arg dependency');
    const before = evaluate('FROM a\nENV V=env\nARG V=arg\nRUN x\n');
    assert.deepEqual(before.stages[0]!.instructions[2]!.runEnv, [PATH, 'V=env']);
  });

  it('expands every ENV word with the values from before the line', () => {
    const { stages } = evaluate('FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n');
    assert.deepEqual(stages[0]!.env, [PATH, 'abc=bye', 'def=hello', 'ghi=bye']);
  });

  it('processes quotes and escapes in ENV and LABEL values and keys', () => {
    const { stages } = evaluate(
      'FROM a\nENV N=x A="two words" B=\'$N\' C=es\\ caped D="$N-q" E=\\$N\nENV ${N}key legacy "value"\nLABEL "k.$N"="v $N" plain=1\n',
    );
    // D sees N as it was before the line: unset
    assert.deepEqual(stages[0]!.env, [
      PATH,
      'N=x',
      'A=two words',
      'B=$N',
      'C=es caped',
      'D=-q',
      'E=$N',
      'xkey=legacy value',
    ]);
    assert.deepEqual(stages[0]!.instructions[2]!.expanded, {
      kind: 'LABEL',
      pairs: [
        { key: 'k.x', value: 'v x' },
        { key: 'plain', value: '1' },
      ],
    });
  });

  it('starts from the base image Env, adds PATH only when missing, and replaces keys in place', () => {
    const { stages } = evaluate('FROM a\nENV HOME=/home/app\nENV NEW=1\n', {
      baseEnv: ['PATH=/bin', 'HOME=/root', 'LANG=C.UTF-8'],
    });
    assert.deepEqual(stages[0]!.env, ['PATH=/bin', 'HOME=/home/app', 'LANG=C.UTF-8', 'NEW=1']);
    assert.deepEqual(stages[0]!.instructions[0]!.env, ['PATH=/bin', 'HOME=/root', 'LANG=C.UTF-8']);
    const scratch = evaluate('FROM scratch\nENV A=1\n');
    assert.deepEqual(scratch.stages[0]!.env, [PATH, 'A=1']);
  });

  it('does not carry ARGs into the next stage (ENV comes with the base Env the caller passes)', () => {
    const df = parseDockerfile('FROM a AS one\nARG X=1\nENV Y=2\nFROM one\nRUN x\n');
    const g = evaluateMetaArgs(df);
    const first = evaluateStage(df.stages[0]!, { globalArgs: g });
    const second = evaluateStage(df.stages[1]!, { globalArgs: g, baseEnv: first.env });
    assert.deepEqual(second.instructions[0]!.runEnv, [PATH, 'Y=2']);
  });

  it('gives RUN every ARG in scope as env and reports them as used; proxies separately', () => {
    const { stages } = evaluate('FROM a\nARG A=1 B\nENV A=2\nARG HTTP_PROXY\nRUN make\n', {
      buildArgs: { B: 'b', HTTPS_PROXY: 'http://p:3128', HTTP_PROXY: 'http://declared' },
    });
    const run = stages[0]!.instructions[3]!;
    assert.deepEqual(run.runEnv, [PATH, 'A=2', 'B=b', 'HTTP_PROXY=http://declared']);
    assert.deepEqual(run.usedArgs, ['B', 'HTTP_PROXY']);
    assert.deepEqual(run.proxyEnv, ['HTTPS_PROXY=http://p:3128']);
    assert.deepEqual(stages[0]!.consumedBuildArgs, ['B', 'HTTPS_PROXY', 'HTTP_PROXY']);
    assert.deepEqual(run.expanded.kind === 'RUN' && run.expanded.command, { form: 'shell', command: 'make' });
  });

  it('does not expand RUN, CMD, ENTRYPOINT, SHELL or HEALTHCHECK text', () => {
    const [, run, cmd, ep, hc] = expanded(
      'FROM a\nARG X=1\nRUN echo $X\nCMD echo $X\nENTRYPOINT ["$X"]\nHEALTHCHECK CMD test $X\n',
    );
    assert.deepEqual(run!.kind === 'RUN' && run!.command, { form: 'shell', command: 'echo $X' });
    assert.deepEqual(cmd!.kind === 'CMD' && cmd!.command, { form: 'shell', command: 'echo $X' });
    assert.deepEqual(ep!.kind === 'ENTRYPOINT' && ep!.command, { form: 'exec', args: ['$X'] });
    assert.deepEqual(hc!.kind === 'HEALTHCHECK' && hc!.health.Test, ['CMD-SHELL', 'test $X']);
  });
});

describe('expanded instructions', () => {
  it('COPY: sources, dest, chown, chmod and exclude expanded; --from kept as written', () => {
    const copy = last(
      'FROM a\nARG SRC=app DST=/srv U=1000 M=750 X=*.md\nCOPY --from=builder --chown=$U:$U --chmod=$M --exclude=$X --link ${SRC}/ $SRC.cfg $DST/\n',
      'COPY',
    );
    assert.deepEqual(copy, {
      kind: 'COPY',
      sources: [
        { kind: 'path', path: 'app/' },
        { kind: 'path', path: 'app.cfg' },
      ],
      dest: '/srv/',
      from: 'builder',
      chown: '1000:1000',
      chmod: { kind: 'octal', mode: 0o750 },
      link: true,
      exclude: ['*.md'],
      parents: false,
    });
  });

  it('COPY reports the ARGs it used for the cache key', () => {
    const { stages } = evaluate('FROM a\nARG A=1 B=2 C=3\nENV E=e\nCOPY $A ${C:-x} $E /\n');
    assert.deepEqual(stages[0]!.instructions[2]!.usedArgs, ['A', 'C']);
  });

  it('COPY heredocs: bodies expanded unless the delimiter was quoted, quotes kept literally', () => {
    const copy = last(
      "FROM a\nARG NAME=world\nCOPY <<EOF <<'RAW' /etc/\nhello \"$NAME\" '${NAME}' \\$NAME\nEOF\nhello $NAME\nRAW\n",
      'COPY',
    );
    assert.deepEqual(copy.sources, [
      { kind: 'heredoc', name: 'EOF', content: 'hello "world" \'world\' $NAME\n' },
      { kind: 'heredoc', name: 'RAW', content: 'hello $NAME\n' },
    ]);
  });

  it('chmod: octal up to 07777, symbolic expressions, anything else an error at the line', () => {
    assert.deepEqual(parseFileMode('644'), { kind: 'octal', mode: 0o644 });
    assert.deepEqual(parseFileMode('0755'), { kind: 'octal', mode: 0o755 });
    assert.deepEqual(parseFileMode('u+rwx,go-w'), { kind: 'symbolic', expression: 'u+rwx,go-w' });
    assert.deepEqual(parseFileMode('a=rX'), { kind: 'symbolic', expression: 'a=rX' });
    for (const bad of ['8', '17777', 'rwx', 'u+q', ''])
      assert.throws(() => parseFileMode(bad), { code: 'INVALID_ARGUMENT' });
    const err = evalError('FROM a\nARG M=999\nCOPY --chmod=$M x /\n');
    assert.equal(
      err.message,
      "Dockerfile:3: invalid chmod parameter: '999'. it should be octal string and between 0 and 07777",
    );
  });

  it('ADD: checksum expanded and checked, keep-git-dir kept', () => {
    const sum = `sha256:${'a'.repeat(64)}`;
    const add = last(`FROM a\nARG SUM=${sum}\nADD --checksum=$SUM --keep-git-dir https://x/y.tgz /\n`, 'ADD');
    assert.equal(add.checksum, sum);
    assert.equal(add.keepGitDir, true);
    assert.match(
      evalError('FROM a\nADD --checksum=md5:abc https://x /\n').message,
      /^Dockerfile:2: invalid checksum digest format "md5:abc"/,
    );
  });

  it('RUN --mount values are expanded and typed with BuildKit defaults', () => {
    const run = last(
      [
        'FROM a',
        'ARG CACHE=/root/.cache UID=1000 SIZE=64m NAME=npmrc',
        'RUN --mount=type=cache,target=$CACHE,uid=$UID,mode=0700,sharing=private \\',
        '    --mount=type=secret,id=$NAME --mount=type=secret,src=tok,env=TOKEN,required \\',
        '    --mount=type=ssh --mount=type=tmpfs,dst=/tmp,size=$SIZE \\',
        '    --mount=from=build,source=/out,target=/in,rw \\',
        '    --mount=type=bind,target=/ctx make',
        '',
      ].join('\n'),
      'RUN',
    );
    assert.deepEqual(run.mounts, [
      {
        type: 'cache',
        target: '/root/.cache',
        readOnly: false,
        id: '/root/.cache',
        sharing: 'private',
        mode: 0o700,
        uid: 1000,
        gid: 0,
      },
      {
        type: 'secret',
        target: '/run/secrets/npmrc',
        readOnly: true,
        id: 'npmrc',
        required: false,
        mode: 0o400,
        uid: 0,
        gid: 0,
      },
      {
        type: 'secret',
        target: '',
        readOnly: true,
        id: 'tok',
        env: 'TOKEN',
        required: true,
        mode: 0o400,
        uid: 0,
        gid: 0,
      },
      { type: 'ssh', target: '', readOnly: true, id: 'default', required: false, mode: 0o600, uid: 0, gid: 0 },
      { type: 'tmpfs', target: '/tmp', readOnly: false, size: 64 * 1024 * 1024 },
      { type: 'bind', target: '/in', source: '/out', from: 'build', readOnly: false },
      { type: 'bind', target: '/ctx', readOnly: true },
    ]);
  });

  it('RUN --mount value errors are reported at the RUN line', () => {
    const cases: [string, string][] = [
      ['type=cache,target=/c,uid=me', 'strconv.ParseUint: parsing "me": invalid syntax'],
      ['type=cache,target=/c,mode=999', 'strconv.ParseUint: parsing "999": invalid syntax'],
      ['type=cache,target=/c,sharing=all', 'unsupported sharing value "all"'],
      ['type=bind,target=/c,sharing=locked', 'invalid cache sharing set for bind mount'],
      ['type=bind,target=/c,mode=0700', 'mode not allowed for "bind" type mounts'],
      ['type=tmpfs,target=/t,size=lots', "invalid size: 'lots'"],
      ['type=bind,target=/c,size=1m', "unexpected key 'size' for mount type 'bind'"],
      ['type=secret', 'invalid secret mount. one of source, target required'],
      ['type=secret,id=a,src=b', "both source and id can't be set"],
      ['type=secret,id=a,from=x', 'secret mount should not have a from'],
      ['type=ssh,source=x', 'ssh does not support source'],
      ['type=cache,target=/c,tagret=/d', "unexpected key 'tagret' in 'tagret=/d' (did you mean target?)"],
      [
        'type=bind,tar\\"get=/a',
        'failed to parse csv mounts: parse error on line 1, column 14: bare " in non-quoted-field',
      ],
      ['type=cache,readonly=perhaps,target=/c', 'strconv.ParseBool: parsing "perhaps": invalid syntax'],
    ];
    for (const [mount, message] of cases) {
      const err = evalError(`FROM a\n\nRUN --mount=${mount} x\n`);
      assert.equal(err.message, `Dockerfile:3: ${message}`, mount);
      assert.equal(err.instruction, 'RUN');
    }
  });

  it('EXPOSE: words split after expansion, ranges expanded, protocols lower-cased', () => {
    const expose = last('FROM a\nARG PORTS="80 443"\nEXPOSE $PORTS 8000-8002/UDP 53/udp 80/tcp 9000/sctp\n', 'EXPOSE');
    assert.deepEqual(expose.ports, ['80/tcp', '443/tcp', '8000/udp', '8001/udp', '8002/udp', '53/udp', '9000/sctp']);
    assert.deepEqual(parsePortSpec('127.0.0.1:8080:80/udp'), ['80/udp']);
    assert.deepEqual(parsePortSpec('[::1]:80:81'), ['81/tcp']);
    assert.throws(() => parsePortSpec('http'), { message: 'invalid containerPort: http' });
    assert.throws(() => parsePortSpec('80/icmp'), { message: 'invalid proto: icmp' });
    assert.throws(() => parsePortSpec('90-80'), { message: 'invalid containerPort: 90-80' });
    assert.throws(() => parsePortSpec('70000'), { message: 'invalid containerPort: 70000' });
    assert.throws(() => parsePortSpec('999.1.1.1:80:80'), { message: 'invalid IP address: 999.1.1.1' });
    assert.equal(evalError('FROM a\nEXPOSE $NOPE/tcp\n').message, 'Dockerfile:2: no port specified: /tcp<empty>');
  });

  it('VOLUME, WORKDIR, USER and STOPSIGNAL are expanded; signals are checked', () => {
    const all = expanded(
      'FROM a\nARG D=/data U=app S=TERM\nVOLUME $D ["x"]\nVOLUME ["$D/logs"]\nWORKDIR /srv/$U\nUSER ${U}:${U}\nSTOPSIGNAL SIG$S\n',
    );
    assert.deepEqual(all.slice(1), [
      { kind: 'VOLUME', volumes: ['/data', '[x]'] }, // a shell-form word loses its quotes
      { kind: 'VOLUME', volumes: ['/data/logs'] },
      { kind: 'WORKDIR', path: '/srv/app' },
      { kind: 'USER', user: 'app:app' },
      { kind: 'STOPSIGNAL', signal: 'SIGTERM' },
    ]);
    for (const ok of ['9', 'KILL', 'sigusr1', 'SIGRTMIN+3', 'RTMAX-2']) {
      assert.doesNotThrow(() => evaluate(`FROM a\nSTOPSIGNAL ${ok}\n`), ok);
    }
    assert.equal(evalError('FROM a\nSTOPSIGNAL SIGNOPE\n').message, 'Dockerfile:2: Invalid signal: SIGNOPE');
    assert.equal(evalError('FROM a\nSTOPSIGNAL 0\n').message, 'Dockerfile:2: Invalid signal: 0');
    assert.equal(
      evalError('FROM a\nVOLUME $EMPTY\n').message,
      'Dockerfile:2: VOLUME specified can not be an empty string',
    );
  });

  it('locates expansion errors at the instruction', () => {
    const err = evalError('FROM a\nARG VERSION\nCOPY app-${VERSION:?required} /\n');
    assert.equal(err.message, 'Dockerfile:3: failed to process "app-${VERSION:?required}": VERSION: required');
    // shell-form COPY splits on whitespace before expanding, so a message with spaces breaks the word (as in BuildKit)
    assert.match(
      evalError('FROM a\nCOPY ${V:?set it} /\n').message,
      /^Dockerfile:2: failed to process "\$\{V:\?set": syntax error: missing '}'/,
    );
    assert.equal(err.line, 3);
    assert.equal(err.instruction, 'COPY');
    assert.doesNotThrow(() =>
      evaluate('FROM a\nARG VERSION\nCOPY app-${VERSION:?x} /\n', { buildArgs: { VERSION: '1' } }),
    );
  });

  it('warns about undefined variables, but not about declared ARGs or defaulted uses', () => {
    const { stages } = evaluate(
      'FROM a\nARG DECLARED\nCOPY $MISSING $DECLARED ${OTHER:-x} /\nWORKDIR rel\nWORKDIR /abs\nWORKDIR rel2\n',
    );
    assert.deepEqual(
      stages[0]!.warnings.map((w) => `${w.location.startLine} ${w.rule}: ${w.message}`),
      [
        "3 UndefinedVar: Usage of undefined variable '$MISSING'",
        '4 WorkdirRelativePath: Relative workdir "rel" can have unexpected results if the base image changes',
      ],
    );
  });

  it('lets # check= apply to evaluation warnings too', () => {
    const df = parseDockerfile('# check=skip=UndefinedVar;error=true\nFROM a\nCOPY $MISSING /\nWORKDIR rel\n');
    const st = evaluateStage(df.stages[0]!, { globalArgs: evaluateMetaArgs(df) });
    assert.throws(() => applyCheckDirective(df.directives, st.warnings), {
      message: 'Dockerfile:4: lint violation found for rules: WorkdirRelativePath',
    });
  });

  it('passes ONBUILD and MAINTAINER through unchanged', () => {
    const df = parseDockerfile('FROM a\nONBUILD RUN $X\nMAINTAINER $Y\n');
    const st = evaluateStage(df.stages[0]!, { globalArgs: evaluateMetaArgs(df) });
    assert.equal(st.instructions[0]!.expanded, df.stages[0]!.instructions[0]);
    assert.equal(st.instructions[1]!.expanded, df.stages[0]!.instructions[1]);
  });

  it('uses the backtick escape of the file when expanding', () => {
    const workdir = last('# escape=`\nFROM a\nARG D=app\nWORKDIR C:\\$D\\`$D\n', 'WORKDIR');
    assert.equal(workdir.path, 'C:\\app\\$D');
  });
});

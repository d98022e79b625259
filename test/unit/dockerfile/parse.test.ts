/** biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are Dockerfile text, where ${VAR} is variable syntax. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Dockerfile,
  DockerfileSyntaxError,
  type Instruction,
  parseDockerfile,
} from '../../../src/dockerfile/index.js';

/** Parse `FROM base` + body and return the first stage's instructions. */
function body(text: string): Instruction[] {
  return [...parseDockerfile(`FROM base\n${text}`).stages[0]!.instructions];
}

function one<K extends Instruction['kind']>(text: string, kind: K): Extract<Instruction, { kind: K }> {
  const [ins] = body(text);
  assert.ok(ins, 'no instruction parsed');
  assert.equal(ins.kind, kind);
  return ins as Extract<Instruction, { kind: K }>;
}

function parseError(text: string, file?: string): DockerfileSyntaxError {
  try {
    parseDockerfile(text, file === undefined ? {} : { file });
  } catch (err) {
    assert.ok(err instanceof DockerfileSyntaxError, `expected DockerfileSyntaxError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the parse to fail');
}

const rules = (df: Dockerfile) => df.warnings.map((w) => `${w.location.startLine}:${w.rule}`);

describe('parser directives', () => {
  it('reads syntax, escape and check at the top, case-insensitively and with blanks around =', () => {
    const df = parseDockerfile(
      '# SYNTAX = docker/dockerfile:1.7\n#\tEscape=`\n# check=skip=JSONArgsRecommended\nFROM a\n',
    );
    assert.equal(df.directives.syntax, 'docker/dockerfile:1.7');
    assert.equal(df.directives.escape, '`');
    assert.deepEqual(df.directives.check, { skip: ['JSONArgsRecommended'], error: false, experimental: [] });
  });

  it('defaults the escape token to backslash', () => {
    const df = parseDockerfile('FROM a\n');
    assert.equal(df.directives.escape, '\\');
    assert.equal(df.directives.syntax, undefined);
  });

  it('stops reading directives at a comment, a blank line, an unknown directive or an instruction', () => {
    assert.equal(parseDockerfile('# about this file\n# escape=`\nFROM a\n').directives.escape, '\\');
    assert.equal(parseDockerfile('\n# escape=`\nFROM a\n').directives.escape, '\\');
    assert.equal(parseDockerfile('# unknown=x\n# escape=`\nFROM a\n').directives.escape, '\\');
    assert.equal(parseDockerfile('FROM a\n# escape=`\n').directives.escape, '\\');
    assert.equal(parseDockerfile('# syntax=x\n# escape=`\nFROM a\n').directives.escape, '`');
  });

  it('skips a byte-order mark before the first directive', () => {
    assert.equal(parseDockerfile('\uFEFF# escape=`\nFROM a\n').directives.escape, '`');
  });

  it('rejects a repeated directive and an invalid escape token, at their line', () => {
    const dup = parseError('# escape=\\\n# escape=`\nFROM a\n');
    assert.equal(dup.message, 'Dockerfile:2: only one escape parser directive can be used');
    const bad = parseError('# escape=x\nFROM a\n');
    assert.match(bad.message, /^Dockerfile:1: invalid escape token 'x' does not match ` or \\/);
  });

  it('honours # check=skip=... and # check=error=true', () => {
    const text = 'FROM a AS Build\nCMD run me\n';
    assert.deepEqual(rules(parseDockerfile(text)), ['1:StageNameCasing', '2:JSONArgsRecommended']);
    assert.deepEqual(rules(parseDockerfile(`# check=skip=StageNameCasing\n${text}`)), ['3:JSONArgsRecommended']);
    assert.deepEqual(rules(parseDockerfile(`# check=skip=all\n${text}`)), []);
    const err = parseError(`# check=error=true;skip=JSONArgsRecommended\n${text}`);
    assert.equal(err.message, 'Dockerfile:2: lint violation found for rules: StageNameCasing');
    assert.doesNotThrow(() => parseDockerfile('# check=error=true\nFROM a AS b\nCMD ["x"]\n'));
    assert.match(parseError('# check=bogus\nFROM a\n').message, /^Dockerfile:1: invalid check option "bogus"/);
  });
});

describe('parser lines', () => {
  it('joins continuation lines, drops comment lines inside them and warns on empty ones', () => {
    const df = parseDockerfile(
      'FROM a\nRUN apt-get update && \\\n    # install tools\n  \\\n\n    apt-get install -y curl \\  \n    && true\nUSER me\n',
    );
    const [run, user] = df.stages[0]!.instructions;
    assert.equal(run!.kind, 'RUN');
    assert.equal(
      run!.kind === 'RUN' && run!.command.form === 'shell' && run!.command.command,
      'apt-get update &&       apt-get install -y curl     && true',
    );
    assert.deepEqual(run!.location, { file: 'Dockerfile', startLine: 2, endLine: 7 });
    assert.equal(user!.location.startLine, 8);
    assert.deepEqual(rules(df), ['2:NoEmptyContinuation']);
    assert.equal(df.warnings[0]!.url, 'https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/');
  });

  it('continues with the backtick after # escape=` and leaves backslashes literal', () => {
    const df = parseDockerfile('# escape=`\nFROM windows\nRUN dir `\n  c:\\\nWORKDIR c:\\app\\\n');
    const [run, workdir] = df.stages[0]!.instructions;
    assert.deepEqual(run!.kind === 'RUN' && run!.command, { form: 'shell', command: 'dir   c:\\' });
    assert.equal(workdir!.kind === 'WORKDIR' && workdir!.path, 'c:\\app\\');
  });

  it('ignores leading whitespace, comments and blank lines, and reads keywords in any case', () => {
    const df = parseDockerfile('  # comment\n\n   from a\n\t run  echo hi  \n  # another\ncopy x y\n');
    const [run, copy] = df.stages[0]!.instructions;
    assert.equal(df.stages[0]!.from.image, 'a');
    assert.equal(run!.kind, 'RUN');
    assert.equal(run!.location.startLine, 4);
    assert.equal(copy!.kind, 'COPY');
    assert.equal(run!.keyword, 'run');
  });

  it('keeps a CRLF file readable', () => {
    const df = parseDockerfile('FROM a\r\nRUN echo \\\r\n  hi\r\nENV A=1\r\n');
    const [run, env] = df.stages[0]!.instructions;
    assert.deepEqual(run!.kind === 'RUN' && run!.command, { form: 'shell', command: 'echo   hi' });
    assert.deepEqual(env!.kind === 'ENV' && env!.pairs, [{ key: 'A', value: '1' }]);
  });
});

describe('heredocs', () => {
  it('reads RUN <<EOF with its body and line range', () => {
    const run = one('RUN <<EOF\napt-get update\napt-get install -y vim\nEOF\nUSER x\n', 'RUN');
    assert.deepEqual(run.command, { form: 'shell', command: '<<EOF' });
    assert.deepEqual(run.heredocs, [
      {
        name: 'EOF',
        content: 'apt-get update\napt-get install -y vim\n',
        expand: true,
        chomp: false,
        fileDescriptor: 0,
      },
    ]);
    assert.deepEqual(run.location, { file: 'Dockerfile', startLine: 2, endLine: 5 });
  });

  it('strips leading tabs from the body and the terminator with <<-', () => {
    const run = one('RUN <<-EOT\n\techo a\n\t\techo b\n  echo c\n\tEOT\n', 'RUN');
    assert.equal(run.heredocs[0]!.content, 'echo a\necho b\n  echo c\n');
    assert.equal(run.heredocs[0]!.chomp, true);
  });

  it('marks quoted delimiters as not expanding', () => {
    const a = one('RUN <<"EOF"\necho $HOME\nEOF\n', 'RUN');
    const b = one("RUN <<'EOF'\necho $HOME\nEOF\n", 'RUN');
    const c = one('RUN <<E"O"F\necho $HOME\nEOF\n', 'RUN');
    assert.deepEqual(
      [a, b, c].map((r) => [r.heredocs[0]!.name, r.heredocs[0]!.expand, r.heredocs[0]!.content]),
      [
        ['EOF', false, 'echo $HOME\n'],
        ['EOF', false, 'echo $HOME\n'],
        ['EOF', false, 'echo $HOME\n'],
      ],
    );
  });

  it('reads several heredocs on one line, in order', () => {
    const run = one(
      "RUN <<FILE1 cat > f1 && <<-'FILE2' cat > f2\nI am\nfirst\nFILE1\n\tI am\n\tsecond\n\tFILE2\n",
      'RUN',
    );
    assert.deepEqual(
      run.heredocs.map((h) => [h.name, h.content, h.expand, h.chomp]),
      [
        ['FILE1', 'I am\nfirst\n', true, false],
        ['FILE2', 'I am\nsecond\n', false, true],
      ],
    );
    assert.deepEqual(run.command, { form: 'shell', command: "<<FILE1 cat > f1 && <<-'FILE2' cat > f2" });
    assert.equal(run.location.endLine, 8);
  });

  it('keeps a command before the heredoc (RUN python3 <<EOF) and a file descriptor', () => {
    const run = one('RUN python3 <<EOF\nprint("hi")\nEOF\n', 'RUN');
    assert.deepEqual(run.command, { form: 'shell', command: 'python3 <<EOF' });
    assert.equal(run.heredocs[0]!.content, 'print("hi")\n');
    assert.equal(one('RUN cat 3<<EOF\nx\nEOF\n', 'RUN').heredocs[0]!.fileDescriptor, 3);
  });

  it('makes COPY <<EOF sources files named by the delimiter', () => {
    const copy = one('COPY <<EOF /etc/motd\nhello $USER\nEOF\n', 'COPY');
    assert.deepEqual(copy.sources, [
      {
        kind: 'heredoc',
        heredoc: { name: 'EOF', content: 'hello $USER\n', expand: true, chomp: false, fileDescriptor: 0 },
      },
    ]);
    assert.equal(copy.dest, '/etc/motd');
    const two = one('COPY <<A <<B /dir/\n1\nA\n2\nB\n', 'COPY');
    assert.deepEqual(
      two.sources.map((s) => (s.kind === 'heredoc' ? [s.heredoc.name, s.heredoc.content] : s.path)),
      [
        ['A', '1\n'],
        ['B', '2\n'],
      ],
    );
    const mixed = one('ADD file.txt <<EOF /dst/\nx\nEOF\n', 'ADD');
    assert.deepEqual(
      mixed.sources.map((s) => s.kind),
      ['path', 'heredoc'],
    );
  });

  it('takes heredocs only for RUN, COPY and ADD, not in JSON form and not inside quotes', () => {
    const ins = body('CMD cat <<EOF\nRUN echo next\n');
    assert.deepEqual(
      ins.map((i) => i.kind),
      ['CMD', 'RUN'],
    );
    const json = body('RUN ["cat", "<<EOF"]\nRUN echo next\n');
    assert.equal(json.length, 2);
    const quoted = body('RUN echo "<<EOF"\nRUN echo next\n');
    assert.equal(quoted.length, 2);
    assert.deepEqual(quoted[0]!.kind === 'RUN' && quoted[0]!.heredocs, []);
  });

  it('reads heredocs of an ONBUILD trigger and keeps them in its expression', () => {
    const onbuild = one('ONBUILD RUN <<EOF\necho hi\nEOF\n', 'ONBUILD');
    assert.equal(onbuild.expression, 'RUN <<EOF\necho hi\nEOF');
    assert.equal(onbuild.trigger?.kind, 'RUN');
    assert.equal(onbuild.trigger?.kind === 'RUN' && onbuild.trigger.heredocs[0]!.content, 'echo hi\n');
  });

  it('rejects an unterminated heredoc and a heredoc destination', () => {
    const err = parseError('FROM a\nRUN <<EOF\necho\n');
    assert.equal(err.message, 'Dockerfile:2: unterminated heredoc EOF');
    assert.equal(err.endLine, 3);
    assert.equal(parseError('FROM a\nCOPY x <<EOF\ny\nEOF\n').problem, 'COPY cannot accept a heredoc as a destination');
  });
});

describe('exec and shell forms', () => {
  it('reads a JSON array of strings as exec form, anything else as shell form', () => {
    assert.deepEqual(one('RUN ["echo", "a b"]', 'RUN').command, { form: 'exec', args: ['echo', 'a b'] });
    assert.deepEqual(one('CMD [ "a" ,"b" ]  ', 'CMD').command, { form: 'exec', args: ['a', 'b'] });
    assert.deepEqual(one("CMD ['single', 'quotes']", 'CMD').command, {
      form: 'shell',
      command: "['single', 'quotes']",
    });
    assert.deepEqual(one('ENTRYPOINT ["broken",', 'ENTRYPOINT').command, { form: 'shell', command: '["broken",' });
    assert.deepEqual(one('ENTRYPOINT []', 'ENTRYPOINT').command, { form: 'exec', args: [] });
    assert.deepEqual(one('CMD ["a"] trailing', 'CMD').command, { form: 'shell', command: '["a"] trailing' });
  });

  it('rejects a JSON array holding non-strings', () => {
    assert.equal(
      parseError('FROM a\nCMD ["a", 1]\n').message,
      'Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only',
    );
  });

  it('reads COPY, ADD and VOLUME JSON arrays, keeping whitespace in paths', () => {
    const copy = one('COPY ["my file", "other file", "/dst dir/"]', 'COPY');
    assert.deepEqual(copy.sources, [
      { kind: 'path', path: 'my file' },
      { kind: 'path', path: 'other file' },
    ]);
    assert.equal(copy.dest, '/dst dir/');
    assert.equal(copy.json, true);
    assert.deepEqual(one('VOLUME ["/data", "/var/log"]', 'VOLUME').volumes, ['/data', '/var/log']);
    assert.deepEqual(one('VOLUME /data   /logs', 'VOLUME').volumes, ['/data', '/logs']);
  });

  it('requires SHELL in JSON form', () => {
    assert.deepEqual(one('SHELL ["/bin/bash", "-o", "pipefail", "-c"]', 'SHELL').shell, [
      '/bin/bash',
      '-o',
      'pipefail',
      '-c',
    ]);
    assert.equal(parseError('FROM a\nSHELL /bin/bash -c\n').problem, 'SHELL requires the arguments to be in JSON form');
    assert.equal(parseError('FROM a\nSHELL []\n').problem, 'SHELL requires at least one argument');
  });
});

describe('instruction flags', () => {
  it('FROM --platform and AS', () => {
    const df = parseDockerfile('FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\n');
    assert.deepEqual(
      { image: df.stages[0]!.from.image, platform: df.stages[0]!.from.platform, name: df.stages[0]!.name },
      { image: 'golang:1.22', platform: '$BUILDPLATFORM', name: 'build' },
    );
  });

  it('RUN --mount (repeatable), --network and --security', () => {
    const run = one(
      'RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=secret,id=npm --mount=from=build,src=/out,dst=/in --network=none --security=insecure make',
      'RUN',
    );
    assert.deepEqual(run.mounts, [
      { raw: 'type=cache,target=/root/.cache,sharing=locked', type: 'cache' },
      { raw: 'type=secret,id=npm', type: 'secret' },
      { raw: 'from=build,src=/out,dst=/in', type: 'bind', from: 'build' },
    ]);
    assert.equal(run.network, 'none');
    assert.equal(run.security, 'insecure');
    assert.deepEqual(run.command, { form: 'shell', command: 'make' });
  });

  it('rejects bad RUN flag values', () => {
    assert.equal(parseError('FROM a\nRUN --network=bridge x\n').problem, 'unsupported network mode "bridge"');
    assert.equal(parseError('FROM a\nRUN --security=root x\n').problem, 'unsupported security mode "root"');
    assert.equal(parseError('FROM a\nRUN --mount=type=volume x\n').problem, 'unsupported mount type "volume"');
    assert.equal(
      parseError('FROM a\nRUN --mount=type=bind,from=$STAGE x\n').problem,
      "'from' doesn't support variable expansion, define alias stage instead",
    );
    assert.equal(
      parseError('FROM a\nRUN --mount=type=bind,target x\n').problem,
      "invalid field 'target' must be a key=value pair",
    );
    assert.equal(
      parseError('FROM a\nRUN --mount=type=cache,required x\n').problem,
      "unexpected key 'required' for mount type 'cache'",
    );
  });

  it('COPY --from --chown --chmod --link --parents --exclude', () => {
    const copy = one(
      'COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=test/ a b /dst/',
      'COPY',
    );
    assert.deepEqual(
      {
        from: copy.from,
        chown: copy.chown,
        chmod: copy.chmod,
        link: copy.link,
        parents: copy.parents,
        exclude: copy.exclude,
        dest: copy.dest,
      },
      {
        from: 'build',
        chown: 'app:app',
        chmod: '0755',
        link: true,
        parents: true,
        exclude: ['*.md', 'test/'],
        dest: '/dst/',
      },
    );
    const plain = one('COPY a b', 'COPY');
    assert.deepEqual(
      [plain.link, plain.parents, plain.exclude, plain.from, plain.chown],
      [false, false, [], undefined, undefined],
    );
    assert.equal(one('COPY --link=false a b', 'COPY').link, false);
    assert.equal(one('COPY --chown="my user" a b', 'COPY').chown, 'my user');
  });

  it('ADD --checksum --keep-git-dir --chown --chmod --link --exclude', () => {
    const add = one(
      'ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d --keep-git-dir --link --chmod=644 --exclude=x https://example.com/a.tgz /a',
      'ADD',
    );
    assert.equal(add.checksum, 'sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d');
    assert.equal(add.keepGitDir, true);
    assert.equal(add.link, true);
    assert.equal(add.chmod, '644');
    assert.deepEqual(add.exclude, ['x']);
    assert.deepEqual(add.sources, [{ kind: 'path', path: 'https://example.com/a.tgz' }]);
  });

  it('names unknown flags (with a suggestion) and rejects bad values', () => {
    assert.equal(parseError('FROM a\nADD --from=x a b\n').problem, 'unknown flag: from');
    assert.equal(parseError('FROM a\nCOPY --chmown=1 a b\n').problem, 'unknown flag: chmown (did you mean chown?)');
    assert.equal(parseError('FROM --plataform=x a\n').problem, 'unknown flag: plataform (did you mean platform?)');
    const cmd = parseError('FROM a\nCMD --verbose x\n');
    assert.equal(cmd.problem, 'unknown flag: verbose');
    assert.equal(cmd.hint, 'this instruction takes no flags');
    assert.equal(parseError('FROM a\nCOPY --from=a --from=b x y\n').problem, 'duplicate flag specified: from');
    assert.equal(parseError('FROM a\nCOPY --chown x y\n').problem, 'missing a value on flag: chown');
    assert.equal(parseError('FROM a\nCOPY --link= x y\n').problem, 'missing a value on flag: link');
    assert.equal(
      parseError('FROM a\nCOPY --link=maybe x y\n').problem,
      'expecting boolean value for flag link, not: maybe',
    );
  });

  it('stops reading flags at --', () => {
    assert.deepEqual(one('RUN -- --not-a-flag', 'RUN').command, { form: 'shell', command: '--not-a-flag' });
  });

  it('HEALTHCHECK with every flag, CMD in both forms, and NONE', () => {
    const hc = one(
      'HEALTHCHECK --interval=30s --timeout=1m30s --start-period=1.5s --start-interval=500ms --retries=3 CMD curl -f http://localhost/',
      'HEALTHCHECK',
    );
    assert.deepEqual(hc.health, {
      Test: ['CMD-SHELL', 'curl -f http://localhost/'],
      Interval: 30e9,
      Timeout: 90e9,
      StartPeriod: 1.5e9,
      StartInterval: 500e6,
      Retries: 3,
    });
    assert.deepEqual(one('HEALTHCHECK cmd ["/bin/check", "-q"]', 'HEALTHCHECK').health, {
      Test: ['CMD', '/bin/check', '-q'],
    });
    assert.deepEqual(one('HEALTHCHECK NONE', 'HEALTHCHECK').health, { Test: ['NONE'] });
    assert.equal(parseError('FROM a\nHEALTHCHECK NONE x\n').problem, 'HEALTHCHECK NONE takes no arguments');
    assert.equal(parseError('FROM a\nHEALTHCHECK CMD\n').problem, 'Missing command after HEALTHCHECK CMD');
    assert.equal(parseError('FROM a\nHEALTHCHECK RUN x\n').problem, 'Unknown type "RUN" in HEALTHCHECK (try CMD)');
    assert.equal(parseError('FROM a\nHEALTHCHECK --interval=5 CMD x\n').problem, 'time: missing unit in duration "5"');
    assert.equal(
      parseError('FROM a\nHEALTHCHECK --interval=1us CMD x\n').problem,
      'Interval "interval" cannot be less than 1ms',
    );
    assert.equal(parseError('FROM a\nHEALTHCHECK --retries=-1 CMD x\n').problem, '--retries cannot be negative (-1)');
    assert.equal(
      parseError('FROM a\nHEALTHCHECK --timeout=3x CMD x\n').problem,
      'time: unknown unit "x" in duration "3x"',
    );
    assert.equal(parseError('FROM a\nHEALTHCHECK --bogus=1 CMD x\n').problem, 'unknown flag: bogus');
  });
});

describe('instructions', () => {
  it('FROM names stages in lower case and validates them', () => {
    const df = parseDockerfile('FROM a AS One\nFROM b\nFROM c as three\n');
    assert.deepEqual(
      df.stages.map((s) => [s.index, s.name, s.from.image]),
      [
        [0, 'one', 'a'],
        [1, undefined, 'b'],
        [2, 'three', 'c'],
      ],
    );
    assert.equal(parseError('FROM a b\n').problem, 'FROM requires either one or three arguments');
    assert.equal(parseError('FROM\n').problem, 'FROM requires either one or three arguments');
    assert.equal(
      parseError('FROM a AS 1st\n').problem,
      'invalid name for build stage: "1st", name can\'t start with a number or contain symbols',
    );
    assert.equal(parseError('FROM a AS x\nFROM b AS X\n').message, 'Dockerfile:2: duplicate stage name "x"');
  });

  it('ENV in key=value form keeps quotes and escapes for expansion, and the legacy form takes the rest of the line', () => {
    const env = one('ENV A=1 B="two words" C=\'single $quoted\' D=es\\ caped E=', 'ENV');
    assert.deepEqual(env.pairs, [
      { key: 'A', value: '1' },
      { key: 'B', value: '"two words"' },
      { key: 'C', value: "'single $quoted'" },
      { key: 'D', value: 'es\\ caped' },
      { key: 'E', value: '' },
    ]);
    assert.equal(env.legacy, false);
    const legacy = one('ENV GREETING hello   big world', 'ENV');
    assert.deepEqual(legacy.pairs, [{ key: 'GREETING', value: 'hello   big world' }]);
    assert.equal(legacy.legacy, true);
    assert.equal(parseError('FROM a\nENV\n').problem, 'ENV requires at least one argument');
    assert.equal(parseError('FROM a\nENV ONLYNAME\n').problem, 'ENV must have two arguments');
    assert.equal(parseError('FROM a\nENV =x\n').problem, 'ENV names can not be blank');
    assert.equal(
      parseError('FROM a\nENV A=1 B\n').problem,
      'Syntax error - can\'t find = in "B". Must be of the form: name=value',
    );
  });

  it('LABEL pairs with quotes and multi-line values', () => {
    const label = one(
      'LABEL "com.example.vendor"="ACME Inc" version=1.0 description="This text \\\n  spans lines"',
      'LABEL',
    );
    assert.deepEqual(label.pairs, [
      { key: '"com.example.vendor"', value: '"ACME Inc"' },
      { key: 'version', value: '1.0' },
      { key: 'description', value: '"This text   spans lines"' },
    ]);
    assert.equal(parseError('FROM a\nLABEL\n').problem, 'LABEL requires at least one argument');
  });

  it('ARG with names, defaults and several per line', () => {
    const arg = one('ARG A B=2 C="x y" D=', 'ARG');
    assert.deepEqual(arg.args, [
      { name: 'A' },
      { name: 'B', default: '2' },
      { name: 'C', default: '"x y"' },
      { name: 'D', default: '' },
    ]);
    assert.equal(parseError('FROM a\nARG\n').problem, 'ARG requires at least one argument');
  });

  it('EXPOSE, VOLUME, WORKDIR, USER, STOPSIGNAL, MAINTAINER', () => {
    assert.deepEqual(one('EXPOSE 80 443/tcp 53/udp 8000-8010', 'EXPOSE').ports, [
      '80',
      '443/tcp',
      '53/udp',
      '8000-8010',
    ]);
    assert.equal(one('WORKDIR /path with spaces', 'WORKDIR').path, '/path with spaces');
    assert.equal(one('USER app:app', 'USER').user, 'app:app');
    assert.equal(one('STOPSIGNAL SIGKILL', 'STOPSIGNAL').signal, 'SIGKILL');
    assert.equal(one('MAINTAINER Jane <jane@example.com>', 'MAINTAINER').maintainer, 'Jane <jane@example.com>');
    for (const k of ['WORKDIR', 'USER', 'STOPSIGNAL', 'MAINTAINER']) {
      assert.equal(parseError(`FROM a\n${k}\n`).problem, `${k} requires exactly one argument`);
    }
    assert.equal(parseError('FROM a\nEXPOSE\n').problem, 'EXPOSE requires at least one argument');
    assert.equal(parseError('FROM a\nVOLUME\n').problem, 'VOLUME requires at least one argument');
    assert.equal(parseError('FROM a\nVOLUME [" "]\n').problem, 'VOLUME specified can not be an empty string');
  });

  it('RUN needs a command', () => {
    assert.equal(parseError('FROM a\nRUN\n').problem, 'RUN requires at least one argument');
  });

  it('ONBUILD wraps a typed trigger and refuses ONBUILD, FROM and MAINTAINER', () => {
    const ob = one('ONBUILD COPY --chown=app . /src', 'ONBUILD');
    assert.equal(ob.expression, 'COPY --chown=app . /src');
    assert.equal(ob.trigger?.kind, 'COPY');
    assert.equal(ob.trigger?.kind === 'COPY' && ob.trigger.chown, 'app');
    assert.equal(one('onbuild RUN x', 'ONBUILD').expression, 'RUN x');
    assert.equal(
      one('ONBUILD COPPY x y', 'ONBUILD').trigger,
      undefined,
      'BuildKit defers the error to the child image',
    );
    assert.equal(
      parseError('FROM a\nONBUILD ONBUILD RUN x\n').problem,
      "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
    );
    assert.equal(parseError('FROM a\nONBUILD FROM b\n').problem, "FROM isn't allowed as an ONBUILD trigger");
    assert.equal(
      parseError('FROM a\nONBUILD maintainer me\n').problem,
      "MAINTAINER isn't allowed as an ONBUILD trigger",
    );
    assert.equal(parseError('FROM a\nONBUILD\n').problem, 'ONBUILD requires at least one argument');
  });

  it('keeps the original text and location of every instruction', () => {
    const df = parseDockerfile('ARG V=1\n\nFROM a:$V\nCOPY \\\n  x /y\n', { file: 'build/app.Dockerfile' });
    const copy = df.stages[0]!.instructions[0]!;
    assert.equal(copy.original, 'COPY   x /y');
    assert.deepEqual(copy.location, { file: 'build/app.Dockerfile', startLine: 4, endLine: 5 });
    assert.deepEqual(df.stages[0]!.location, { file: 'build/app.Dockerfile', startLine: 3, endLine: 5 });
    assert.deepEqual(df.metaArgs[0]!.args, [{ name: 'V', default: '1' }]);
    assert.equal(df.file, 'build/app.Dockerfile');
  });
});

describe('stages and structure errors', () => {
  it('groups instructions into stages, with ARGs before the first FROM as meta args', () => {
    const df = parseDockerfile('ARG A\nARG B=2\nFROM x AS one\nARG A\nRUN a\nFROM one\nRUN b\n');
    assert.equal(df.metaArgs.length, 2);
    assert.deepEqual(
      df.stages.map((s) => s.instructions.map((i) => i.kind)),
      [['ARG', 'RUN'], ['RUN']],
    );
    assert.deepEqual(
      df.stages.map((s) => s.location),
      [
        { file: 'Dockerfile', startLine: 3, endLine: 5 },
        { file: 'Dockerfile', startLine: 6, endLine: 7 },
      ],
    );
  });

  it('rejects instructions before FROM, empty files and files without a stage', () => {
    assert.equal(parseError('RUN x\nFROM a\n').message, 'Dockerfile:1: no build stage in current context');
    assert.equal(parseError('# only a comment\n\n').message, 'Dockerfile:1: file with no instructions');
    assert.equal(parseError('ARG X=1\n').message, 'Dockerfile:1: dockerfile contains no stages to build');
  });

  it('suggests the closest instruction for an unknown one', () => {
    const err = parseError('FROM alpine\nRUN true\n\nCOPPY . /app\n');
    assert.equal(err.message, 'Dockerfile:4: unknown instruction: COPPY (did you mean COPY?)');
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.equal(err.line, 4);
    assert.equal(err.file, 'Dockerfile');
    assert.equal(err.instruction, 'COPPY');
    assert.match(err.hint ?? '', /instructions are ADD, ARG, CMD/);
    assert.equal(parseError('FROM a\nworkdri /x\n').problem, 'unknown instruction: workdri (did you mean WORKDIR?)');
    assert.equal(
      parseError('FROM a\nENTRYPIONT x\n').problem,
      'unknown instruction: ENTRYPIONT (did you mean ENTRYPOINT?)',
    );
    assert.equal(parseError('FROM a\nXYZZY x\n').problem, 'unknown instruction: XYZZY');
  });

  it('locates errors in the file name given', () => {
    assert.equal(
      parseError('FROM a\nCOPY x\n', 'docker/web.Dockerfile').message,
      'docker/web.Dockerfile:2: COPY requires at least two arguments, but only one was provided. Destination could not be determined',
    );
  });
});

describe('lint warnings', () => {
  it('reports BuildKit rules with their wording and line', () => {
    const df = parseDockerfile(
      [
        'ARG API_TOKEN',
        'FROM base:$VERSION as Builder',
        'MAINTAINER me',
        'ENV PATH /x',
        'CMD echo one',
        'CMD ["echo", "two"]',
        'EXPOSE 80/TCP 127.0.0.1:8080:80',
        'FROM scratch AS scratch',
        'run echo',
        '',
      ].join('\n'),
    );
    const got = df.warnings.map((w) => `${w.location.startLine} ${w.rule}: ${w.message}`).sort();
    assert.deepEqual(
      got,
      [
        '1 SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG "API_TOKEN")',
        "2 FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
        "2 StageNameCasing: Stage name 'Builder' should be lowercase",
        "2 UndefinedArgInFrom: FROM argument 'VERSION' is not declared",
        '3 MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label',
        '4 LegacyKeyValueFormat: "ENV key=value" should be used instead of legacy "ENV key value" format',
        '5 JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals',
        '5 MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used',
        "7 ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:8080:80'",
        "7 ExposeProtoCasing: Defined protocol '80/TCP' in EXPOSE instruction should be lowercase",
        '8 ReservedStageName: Stage name should not use the same name as reserved stage "scratch"',
        "9 ConsistentInstructionCasing: Command 'run' should match the case of the command majority (uppercase)",
      ].sort(),
    );
    assert.equal(
      df.warnings.find((w) => w.rule === 'JSONArgsRecommended')!.url,
      'https://docs.docker.com/go/dockerfile/rule/json-args-recommended/',
    );
  });

  it('does not warn on a clean Dockerfile or for declared and platform args in FROM', () => {
    const df = parseDockerfile(
      'ARG TAG=1\nFROM --platform=$BUILDPLATFORM base:${TAG} AS build\nCMD ["x"]\nFROM build\n',
    );
    assert.deepEqual(df.warnings, []);
  });

  it('flags mixed-case keywords against a lower-case majority', () => {
    const df = parseDockerfile('from a\nrun x\nCopy a b\n');
    assert.deepEqual(rules(df), ['3:ConsistentInstructionCasing']);
    assert.match(df.warnings[0]!.message, /Command 'Copy' should match the case of the command majority \(lowercase\)/);
  });
});

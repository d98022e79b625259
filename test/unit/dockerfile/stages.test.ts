/** biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are Dockerfile text, where ${VAR} is variable syntax. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DockerfileSyntaxError,
  evaluateMetaArgs,
  parseDockerfile,
  resolveBase,
  resolveStageReference,
  stageDependencies,
} from '../../../src/dockerfile/index.js';
import { StrataError } from '../../../src/errors/index.js';

const MULTI = `ARG GO=1.22
FROM golang:\${GO} AS build
RUN go build -o /out/app
FROM alpine AS test-tools
RUN apk add curl
FROM build AS test
RUN go test ./...
FROM scratch AS release
COPY --from=build /out/app /app
FROM release
`;

describe('resolveBase', () => {
  const df = parseDockerfile(MULTI);

  it('tells scratch, earlier stages and images apart, after expanding global ARGs', () => {
    assert.deepEqual(resolveBase(df, 0), {
      source: { kind: 'image', reference: 'golang:1.22' },
      from: { image: 'golang:1.22', usedArgs: ['GO'] },
    });
    assert.deepEqual(resolveBase(df, 2).source, { kind: 'stage', index: 0 });
    assert.deepEqual(resolveBase(df, 3).source, { kind: 'scratch' });
    assert.deepEqual(resolveBase(df, 4).source, { kind: 'stage', index: 3 });
    const g = evaluateMetaArgs(df, { buildArgs: { GO: '1.21' } });
    assert.deepEqual(resolveBase(df, 0, g).source, { kind: 'image', reference: 'golang:1.21' });
  });

  it('matches stage names case-insensitively, and only earlier stages', () => {
    const d = parseDockerfile('FROM later AS first\nFROM a AS base\nFROM BASE\nFROM alpine AS later\n');
    assert.deepEqual(resolveBase(d, 2).source, { kind: 'stage', index: 1 });
    assert.deepEqual(resolveBase(d, 0).source, { kind: 'image', reference: 'later' });
  });

  it('resolves a stage chosen through an ARG', () => {
    const d = parseDockerfile(
      'ARG VARIANT=slim\nFROM debian AS base-slim\nFROM debian AS base-full\nFROM base-${VARIANT}\n',
    );
    assert.deepEqual(resolveBase(d, 2).source, { kind: 'stage', index: 0 });
    assert.deepEqual(resolveBase(d, 2, evaluateMetaArgs(d, { buildArgs: { VARIANT: 'full' } })).source, {
      kind: 'stage',
      index: 1,
    });
  });

  it('rejects a base that is no valid reference, at the FROM line', () => {
    const d = parseDockerfile('FROM a\nFROM Not_A/Valid:Ref:x\n');
    assert.throws(
      () => resolveBase(d, 1),
      (err: unknown) =>
        err instanceof DockerfileSyntaxError &&
        err.line === 2 &&
        /is neither a build stage nor a valid image reference/.test(err.message),
    );
  });
});

describe('resolveStageReference', () => {
  const df = parseDockerfile('FROM a AS one\nFROM b AS two\nFROM c\n');

  it('reads stage indexes (COPY only), names and images', () => {
    assert.deepEqual(resolveStageReference(df, '1'), { kind: 'stage', index: 1 });
    assert.deepEqual(resolveStageReference(df, 'TWO'), { kind: 'stage', index: 1 });
    assert.deepEqual(resolveStageReference(df, 'nginx:1.25'), { kind: 'image', reference: 'nginx:1.25' });
    assert.deepEqual(resolveStageReference(df, '0', 'mount'), { kind: 'image', reference: '0' });
    assert.deepEqual(resolveStageReference(df, 'scratch'), { kind: 'scratch' });
  });

  it('rejects an index out of range and a value that is neither stage nor reference', () => {
    assert.throws(() => resolveStageReference(df, '3'), { message: 'invalid stage index 3' });
    assert.throws(() => resolveStageReference(df, '-1'), { message: 'invalid stage index -1' });
    assert.throws(() => resolveStageReference(df, 'Bad Name'), { code: 'INVALID_ARGUMENT' });
  });
});

describe('stageDependencies', () => {
  it('builds only what the target needs, dependencies first', () => {
    const df = parseDockerfile(MULTI);
    assert.deepEqual(stageDependencies(df).order, [0, 3, 4]);
    assert.equal(stageDependencies(df).target, 4);
    assert.deepEqual(stageDependencies(df, { target: 'test' }).order, [0, 2]);
    assert.deepEqual(stageDependencies(df, { target: 'Test-Tools' }).order, [1]);
  });

  it('follows COPY --from (name or index) and RUN --mount from=, and lists images read', () => {
    const df = parseDockerfile(
      'FROM a AS deps\nFROM b AS assets\nFROM c AS tools\nFROM d\nCOPY --from=1 /x /x\nCOPY --from=nginx:1.25 /etc/nginx /etc/nginx\nRUN --mount=type=bind,from=deps,target=/d --mount=type=cache,from=tools,target=/t --mount=type=secret,id=x make\n',
    );
    const g = stageDependencies(df);
    assert.deepEqual(g.order, [1, 0, 2, 3]);
    assert.deepEqual(
      g.stages[3]!.dependsOn.map((d) => [d.index, d.via, d.location.startLine]),
      [
        [1, 'COPY --from', 5],
        [0, 'RUN --mount', 7],
        [2, 'RUN --mount', 7],
      ],
    );
    assert.deepEqual(g.stages[3]!.images, ['nginx:1.25']);
    assert.deepEqual(g.stages[3]!.base, { kind: 'image', reference: 'd' });
  });

  it('allows a COPY --from a later stage, as BuildKit does', () => {
    const df = parseDockerfile('FROM a AS first\nCOPY --from=second /x /x\nFROM b AS second\n');
    assert.deepEqual(stageDependencies(df, { target: 'first' }).order, [1, 0]);
  });

  it('detects a stage copying from itself and longer cycles', () => {
    const self = parseDockerfile('FROM busybox AS stage0\nCOPY --from=stage0 f1 /sub/\n');
    assert.throws(
      () => stageDependencies(self),
      (err: unknown) => {
        assert.ok(err instanceof DockerfileSyntaxError);
        assert.equal(err.message, 'Dockerfile:2: circular dependency detected on stage: stage0');
        return true;
      },
    );
    const cycle = parseDockerfile(
      'FROM busybox AS stage0\nCOPY --from=stage2 f1 /sub/\nFROM busybox AS stage1\nCOPY --from=stage0 f2 /sub/\nFROM busybox AS stage2\nCOPY --from=stage1 f2 /sub/\nFROM busybox AS unrelated\n',
    );
    assert.throws(() => stageDependencies(cycle, { target: 'unrelated' }), {
      message: /circular dependency detected on stage: stage0$/,
    });
    const byIndex = parseDockerfile('FROM a\nCOPY --from=0 x y\n');
    assert.throws(() => stageDependencies(byIndex), {
      message: 'Dockerfile:2: circular dependency detected on stage: 0',
    });
  });

  it('rejects an unknown target, listing the stage names', () => {
    const df = parseDockerfile(MULTI);
    assert.throws(
      () => stageDependencies(df, { target: 'relase' }),
      (err: unknown) => {
        assert.ok(err instanceof StrataError);
        assert.equal(err.code, 'INVALID_ARGUMENT');
        assert.equal(err.message, 'target stage "relase" could not be found');
        assert.equal(err.hint, 'the stages are: build, test-tools, test, release');
        return true;
      },
    );
    assert.throws(() => stageDependencies(parseDockerfile('FROM a\n'), { target: 'x' }), {
      hint: 'this Dockerfile names no stages (use FROM <image> AS <name>)',
    });
  });

  it('rejects a COPY --from index out of range at its line', () => {
    const df = parseDockerfile('FROM a\nFROM b\nCOPY --from=5 x y\n');
    assert.throws(() => stageDependencies(df), { message: 'Dockerfile:3: invalid stage index 5' });
  });
});

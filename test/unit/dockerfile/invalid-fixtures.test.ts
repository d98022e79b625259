import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  DockerfileSyntaxError,
  evaluateMetaArgs,
  evaluateStage,
  parseDockerfile,
  stageDependencies,
} from '../../../src/dockerfile/index.js';

// Fixtures live in the source tree (tests run from dist/test/unit/dockerfile/): each <name>.Dockerfile has a
// <name>.error holding the expected message, location included.
const dir = join(new URL('../../../../', import.meta.url).pathname, 'test/fixtures/dockerfile/invalid');

/** Everything the build does before touching I/O: parse, global ARGs, the stage graph, every stage evaluated. */
function frontEnd(text: string): void {
  const df = parseDockerfile(text, { file: 'Dockerfile' });
  const globalArgs = evaluateMetaArgs(df);
  stageDependencies(df, { globalArgs });
  for (const stage of df.stages) evaluateStage(stage, { globalArgs });
}

describe('invalid Dockerfiles (test/fixtures/dockerfile/invalid)', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.Dockerfile'));

  it('has fixtures, each with its expected error', () => {
    assert.ok(files.length >= 30, `only ${files.length} fixtures`);
    for (const f of files)
      assert.ok(readdirSync(dir).includes(f.replace(/\.Dockerfile$/, '.error')), `${f} has no .error`);
  });

  for (const f of files) {
    const name = f.replace(/\.Dockerfile$/, '');
    it(`${name} fails with its expected, located message`, () => {
      const text = readFileSync(join(dir, f), 'utf8');
      const expected = readFileSync(join(dir, `${name}.error`), 'utf8').trim();
      assert.throws(
        () => frontEnd(text),
        (err: unknown) => {
          assert.ok(err instanceof DockerfileSyntaxError, `${name}: not a DockerfileSyntaxError: ${String(err)}`);
          assert.equal(err.code, 'INVALID_ARGUMENT');
          assert.ok(err.message.includes(expected), `${name}: "${err.message}" does not contain "${expected}"`);
          assert.ok(err.hint && err.hint.length > 0, `${name}: no hint`);
          const at = /^Dockerfile:(\d+):/.exec(expected);
          if (at) assert.equal(err.line, Number(at[1]), `${name}: line`);
          return true;
        },
      );
    });
  }
});

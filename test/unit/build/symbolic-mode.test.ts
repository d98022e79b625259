import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { applySymbolicMode, copiedMode } from '../../../src/build/fs-ops.js';

// The reference is the system's chmod(1) run with umask 0 (a build has no umask, as with BuildKit).
const work = mkdtempSync(join(tmpdir(), 'strata-chmod-'));

function viaChmod(expression: string, mode: number, isDir: boolean): number {
  const path = join(work, isDir ? 'd' : 'f');
  rmSync(path, { recursive: true, force: true });
  if (isDir) mkdirSync(path);
  else writeFileSync(path, '');
  chmodSync(path, mode);
  execFileSync('sh', ['-c', 'umask 0 && chmod "$1" "$2"', 'sh', expression, path]);
  return statSync(path).mode & 0o7777;
}

const expressions = [
  'u+x',
  'go-w',
  'a=r',
  '=rw',
  '+X',
  'a+X',
  'u=rwx,g=rx,o=',
  'u+rw-x,o-rwx',
  'g=u',
  'o=g',
  'ug+s',
  'u-s,g-s',
  '+t',
  'o+t',
  'u=,go+r',
  'ugo-x',
  'a-w+x',
];

describe('symbolic --chmod', () => {
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const isDir of [false, true]) {
    for (const mode of [0o644, 0o755, 0o600, 0o000, 0o4711, 0o1777]) {
      // chmod(1) keeps a directory's setuid/setgid bits unless told otherwise; COPY starts from plain modes there.
      if (isDir && (mode & 0o6000) !== 0) continue;
      it(`applies like chmod(1) to a ${isDir ? 'directory' : 'file'} of mode ${mode.toString(8)}`, () => {
        for (const e of expressions) {
          if (isDir && /[=-].*s|s/.test(e)) continue;
          assert.equal(
            applySymbolicMode(e, mode, isDir).toString(8),
            viaChmod(e, mode, isDir).toString(8),
            `chmod ${e} on ${mode.toString(8)}`,
          );
        }
      });
    }
  }

  it('octal --chmod wins over the source mode; without --chmod the mode is kept', () => {
    assert.equal(copiedMode({ mode: 0o640 }, 0o755, false), 0o640);
    assert.equal(copiedMode({ symbolic: 'o-rx' }, 0o755, true), 0o750);
    assert.equal(copiedMode({}, 0o100755, false), 0o755);
  });
});

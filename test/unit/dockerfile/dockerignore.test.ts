import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cleanPath, ignoreFileCandidates, parseDockerignore, readDockerignore } from '../../../src/dockerfile/index.js';

// [pattern, path, excluded] — single-pattern cases from moby/patternmatcher's matching rules (MatchesOrParentMatches:
// a pattern that matches a parent directory excludes its children).
const single: [string, string, boolean][] = [
  ['**', 'file', true],
  ['**/', 'file', true],
  ['dir/**', 'dir/file', true],
  ['dir/**/', 'dir/file', true],
  ['dir/**', 'dir/dir2/file', true],
  ['**/dir', 'dir', true],
  ['**/dir', 'dir/file', true],
  ['**/dir2/*', 'dir/dir2/file', true],
  ['**/dir2/**', 'dir/dir2/dir3/file', true],
  ['**file', 'file', true],
  ['**file', 'dir/file', true],
  ['**/file', 'dir/file', true],
  ['**file', 'dir/dir/file', true],
  ['**/file*', 'dir/dir/file.txt', true],
  ['**/file*txt', 'dir/dir/file.txt', true],
  ['**/**/*.txt', 'dir/dir/file.txt', true],
  ['**/**/*.txt2', 'dir/dir/file.txt', false],
  ['**/*.txt', 'file.txt', true],
  ['a**/*.txt', 'a/file.txt', true],
  ['a**/*.txt', 'a/dir/dir/file.txt', true],
  ['a/*.txt', 'a/dir/file.txt', false],
  ['a/*.txt', 'a/file.txt', true],
  ['a/*.txt**', 'a/file.txt', true],
  ['a[b-d]e', 'ae', false],
  ['a[b-d]e', 'ace', true],
  ['a[b-d]e', 'aae', false],
  ['a[^b-d]e', 'aze', true],
  ['a[^b-d]e', 'ace', false],
  ['.*', '.foo', true],
  ['.*', 'foo', false],
  ['abc.def', 'abcdef', false],
  ['abc.def', 'abc.def', true],
  ['abc?def', 'abcZdef', true],
  ['abc?def', 'abcdef', false],
  ['abc?def', 'abc/def', false],
  ['a\\*b', 'a*b', true],
  ['a\\*b', 'axb', false],
  ['a\\\\', 'a\\', true],
  ['**/foo/bar', 'foo/bar', true],
  ['**/foo/bar', 'dir/dir2/foo/bar', true],
  ['abc/**', 'abc', false],
  ['abc/**', 'abc/def/ghi', true],
  ['**/.foo', '.foo', true],
  ['**/.foo', 'bar.foo', false],
  ['a(b)c/def', 'a(b)c/def', true],
  ['a.|)$(}+{bc', 'a.|)$(}+{bc', true],
  ['dist/*.whl', 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', true],
  ['*', 'a/b', true],
  ['*.md', 'docs/a.md', false],
  ['docs', 'docs/deep/file', true],
  ['doc', 'docs/file', false],
  ['/abs', 'abs/x', true],
  ['./rel/', 'rel/x', true],
  ['a/../b', 'b', true],
  ['[a-c]?x', 'bzx', true],
  ['[\\]]', ']', true],
  ['x]', 'x]', true],
];

describe('.dockerignore matching', () => {
  for (const [pattern, path, excluded] of single) {
    it(`${pattern} ${excluded ? 'excludes' : 'keeps'} ${path}`, () => {
      assert.equal(parseDockerignore(pattern).matches(path), excluded);
    });
  }

  it('re-includes with ! patterns, the last matching pattern winning', () => {
    const ignore = parseDockerignore(
      [
        '# dependencies',
        'node_modules',
        '!node_modules/keep',
        '*.md',
        '!README.md',
        '/build',
        './tmp/',
        '**/*.log',
        '!important.log',
        '*.txt',
        '!a.txt',
        '*.txt',
      ].join('\n'),
    );
    const cases: [string, boolean][] = [
      ['node_modules', true],
      ['node_modules/lib/index.js', true],
      ['node_modules/keep', false],
      ['node_modules/keep/inner.js', false],
      ['README.md', false],
      ['CHANGES.md', true],
      ['docs/guide.md', false],
      ['build/out.js', true],
      ['tmp/x', true],
      ['src/app/debug.log', true],
      ['important.log', false],
      ['a.txt', true],
      ['src/main.ts', false],
    ];
    for (const [path, excluded] of cases) assert.equal(ignore.matches(path), excluded, path);
  });

  it('skips a directory during a walk only when no exception can reach inside it', () => {
    const plain = parseDockerignore('node_modules\nbuild\n');
    assert.equal(plain.canSkipDir('node_modules'), true);
    assert.equal(plain.canSkipDir('src'), false, 'not excluded');
    const keep = parseDockerignore('node_modules\nbuild\n!node_modules/keep/**\n');
    assert.equal(keep.canSkipDir('node_modules'), false);
    assert.equal(keep.canSkipDir('build'), true);
    assert.equal(keep.matches('node_modules/keep/x'), false);
    const anywhere = parseDockerignore('build\n!**/keep\n');
    assert.equal(anywhere.canSkipDir('build'), false);
    const oneLevel = parseDockerignore('a\nb\n!*/keep\n');
    assert.equal(oneLevel.canSkipDir('a'), false);
    assert.equal(oneLevel.matches('a/keep'), false);
    assert.equal(oneLevel.canSkipDir('a/sub'), true);
    assert.equal(oneLevel.matches('a/sub/keep'), true);
    const reinclude = parseDockerignore('dir\n!dir\n');
    assert.equal(reinclude.matches('dir/x'), false);
    assert.equal(reinclude.canSkipDir('dir'), false);
    const all = parseDockerignore('*\n!src\n');
    assert.equal(all.canSkipDir('vendor'), true);
    assert.equal(all.canSkipDir('src'), false);
    assert.equal(all.matches('src/a.ts'), false);
  });

  it('reads files as docker does: first-column comments, blanks, BOM, CRLF, whitespace, leading slash', () => {
    assert.deepEqual(readDockerignore('\uFEFF# comment\r\n\r\n  *.tmp  \r\n  # not a comment\n!  /dist//x/../y\n/\n'), [
      '*.tmp',
      '# not a comment',
      '!dist/y',
      '/',
    ]);
    const ignore = parseDockerignore('  # not a comment\n');
    assert.equal(ignore.matches('# not a comment'), true);
    assert.equal(ignore.hasExclusions, false);
    assert.deepEqual(
      parseDockerignore('a\n!b\n').patterns.map((p) => [p.pattern, p.exclusion]),
      [
        ['a', false],
        ['b', true],
      ],
    );
  });

  it('rejects malformed patterns', () => {
    assert.throws(() => parseDockerignore('!\n'), { message: 'illegal exclusion pattern: "!"' });
    for (const bad of ['[abc', 'a[]', 'x\\', '[z-a]', '[-a]']) {
      assert.throws(() => parseDockerignore(bad), { code: 'INVALID_ARGUMENT' }, bad);
    }
  });

  it('cleans paths as Go path.Clean does', () => {
    const cases: [string, string][] = [
      ['', '.'],
      ['a//b/./c/', 'a/b/c'],
      ['a/../../b', '../b'],
      ['/../a', '/a'],
      ['./', '.'],
    ];
    for (const [input, out] of cases) assert.equal(cleanPath(input), out, input);
  });
});

describe('ignoreFileCandidates', () => {
  it('prefers <Dockerfile>.dockerignore next to the Dockerfile, then .dockerignore at the root', () => {
    assert.deepEqual(ignoreFileCandidates(), ['Dockerfile.dockerignore', '.dockerignore']);
    assert.deepEqual(ignoreFileCandidates('docker/app.Dockerfile'), [
      'docker/app.Dockerfile.dockerignore',
      '.dockerignore',
    ]);
    assert.deepEqual(ignoreFileCandidates('./build//Dockerfile.dev'), [
      'build/Dockerfile.dev.dockerignore',
      '.dockerignore',
    ]);
    assert.deepEqual(ignoreFileCandidates('ci\\Dockerfile'), ['ci/Dockerfile.dockerignore', '.dockerignore']);
  });
});

/** biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are Dockerfile text, where ${VAR} is variable syntax. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expandWord, expandWords, lookupFrom } from '../../../src/dockerfile/index.js';

// The environment BuildKit's shell/envVarTest uses (PWD, SHELL, KOREAN; NULL is set but empty).
const env = lookupFrom({ PWD: '/home', SHELL: 'bash', KOREAN: '한국어', NULL: '' });
const ERR = Symbol('error');

// [input, expected] — the expected values are BuildKit's (frontend/dockerfile/shell envVarTest and the
// Dockerfile reference's "Environment replacement" section).
const single: [string, string | typeof ERR][] = [
  ['hello', 'hello'],
  ["he'll'o", 'hello'],
  ["he'llo", ERR],
  ["he\\'llo", "he'llo"],
  ["he\\\\'llo", ERR],
  ['abc\\tdef', 'abctdef'],
  ['"abc\\tdef"', 'abc\\tdef'],
  ['"abc\\\\tdef"', 'abc\\tdef'],
  ["'abc\\tdef'", 'abc\\tdef'],
  ['hello\\', 'hello'],
  ['hello\\\\', 'hello\\'],
  ['"hello', ERR],
  ['"hello\\"', ERR],
  ['"hel\'lo"', "hel'lo"],
  ["'hello", ERR],
  ["'hello\\'", 'hello\\'],
  ["'hello\\there'", 'hello\\there'],
  ['"\'\'"', "''"],
  ['$.', '$.'],
  ['he$1x', 'hex'],
  ['he$.x', 'he$.x'],
  ['he$pwd.', 'he.'],
  ['he$PWD', 'he/home'],
  ['he\\$PWD', 'he$PWD'],
  ['he\\\\$PWD', 'he\\/home'],
  ['"he\\$PWD"', 'he$PWD'],
  ['"he\\\\$PWD"', 'he\\/home'],
  ['\\${}', '${}'],
  ['\\${}aaa', '${}aaa'],
  ['he\\${}xx', 'he${}xx'],
  ['${}', ERR],
  ['${}aaa', ERR],
  ['he${}xx', ERR],
  ['he${hi}', 'he'],
  ['he${hi}xx', 'hexx'],
  ['he${PWD}', 'he/home'],
  ['he${.}', ERR],
  ['he${XXX:-000}xx', 'he000xx'],
  ['he${PWD:-000}xx', 'he/homexx'],
  ['he${XXX:-$PWD}xx', 'he/homexx'],
  ['he${XXX:-${PWD:-yyy}}xx', 'he/homexx'],
  ['he${XXX:-${YYY:-yyy}}xx', 'heyyyxx'],
  ['he${XXX:YYY}', ERR],
  ['he${XXX?}', ERR],
  ['he${XXX:?}', ERR],
  ['he${PWD?}', 'he/home'],
  ['he${PWD:?}', 'he/home'],
  ['he${NULL?}', 'he'],
  ['he${NULL:?}', ERR],
  ['he${XXX:+${PWD}}xx', 'hexx'],
  ['he${PWD:+${XXX}}xx', 'hexx'],
  ['he${PWD:+${SHELL}}xx', 'hebashxx'],
  ['he${XXX:+000}xx', 'hexx'],
  ['he${PWD:+000}xx', 'he000xx'],
  ['he${NULL:-x}', 'hex'],
  ['he${NULL-x}', 'he'],
  ['he${NULL:+x}', 'he'],
  ['he${NULL+x}', 'hex'],
  ["'he${XX}'", 'he${XX}'],
  ['"he${PWD}"', 'he/home'],
  ['"he\'$PWD\'"', "he'/home'"],
  ['"$PWD"', '/home'],
  ["'$PWD'", '$PWD'],
  ["'\\$PWD'", '\\$PWD'],
  ['\'"hello"\'', '"hello"'],
  ["'he\\$PWD'", 'he\\$PWD'],
  ['he${PWD', ERR],
  ['he${PWD=000}xx', ERR],
  ['he${PWD+${PWD}:}xx', 'he/home:xx'],
  ['he${PWD-${PWD}:}xx', 'he/homexx'],
  ['he${XXX-${PWD}z}xx', 'he/homezxx'],
  ['he${XXX+${PWD}z}xx', 'hexx'],
  ['${KOREAN}', '한국어'],
  ['한국어${KOREAN}', '한국어한국어'],
  ['${PWD#*/}', 'home'],
  ['${PWD#/h}', 'ome'],
  ['${PWD%me}', '/ho'],
  ['${PWD%%o*}', '/h'],
  ['${PWD:#x}', ERR],
  ['${PWD:%x}', ERR],
  ['${PWD/o/0}', '/h0me'],
  ['${SHELL//?/x}', 'xxxx'],
  ['${PWD/', ERR],
  ['${#PWD}', ERR],
];

describe('expandWord (BuildKit shell lexer)', () => {
  for (const [input, expected] of single) {
    it(`${input} -> ${expected === ERR ? 'error' : JSON.stringify(expected)}`, () => {
      if (expected === ERR) {
        assert.throws(() => expandWord(input, env), { code: 'INVALID_ARGUMENT' });
      } else {
        assert.equal(expandWord(input, env).value, expected);
      }
    });
  }

  // ${var#pattern} and friends, with the values the POSIX shell gives (BuildKit follows it).
  const path = lookupFrom({ P: '/usr/local/lib/file.tar.gz', B: 'banana', S: 'a*b', E: '' });
  const patterns: [string, string][] = [
    ['${P#*/}', 'usr/local/lib/file.tar.gz'],
    ['${P##*/}', 'file.tar.gz'],
    ['${P%.*}', '/usr/local/lib/file.tar'],
    ['${P%%.*}', '/usr/local/lib/file'],
    ['${P%/*}', '/usr/local/lib'],
    ['${P%%/*}', ''],
    ['${P#nomatch}', '/usr/local/lib/file.tar.gz'],
    ['${B/an/AN}', 'bANana'],
    ['${B//an/AN}', 'bANANa'],
    ['${B/a*/X}', 'bX'],
    ['${B//a/}', 'bnn'],
    ['${B#?}', 'anana'],
    ['${S#a\\*}', 'b'],
    ['${S%\\*b}', 'a'],
    ['${E#x}', ''],
    ['${UNSET/a/b}', ''],
    ['${P#*.}', 'tar.gz'],
    ['${P##*.}', 'gz'],
  ];
  for (const [input, expected] of patterns) {
    it(`${input} -> ${JSON.stringify(expected)}`, () => assert.equal(expandWord(input, path).value, expected));
  }

  it('names the variable and the message in a ? error', () => {
    assert.throws(() => expandWord('${TOKEN:?set TOKEN first}', env), {
      message: 'failed to process "${TOKEN:?set TOKEN first}": TOKEN: set TOKEN first',
    });
    assert.throws(() => expandWord('${TOKEN?}', env), {
      message: 'failed to process "${TOKEN?}": TOKEN: is not allowed to be unset',
    });
    assert.throws(() => expandWord('${NULL:?}', env), {
      message: 'failed to process "${NULL:?}": NULL: is not allowed to be empty',
    });
  });

  it('reports a missing brace and an unsupported modifier as BuildKit words them', () => {
    assert.throws(() => expandWord('${PWD', env), { message: /syntax error: missing '}'/ });
    assert.throws(() => expandWord('${PWD=x}', env), { message: /unsupported modifier \(=\) in substitution/ });
    assert.throws(() => expandWord('${}', env), { message: /bad substitution/ });
    assert.throws(() => expandWord('"abc', env), { message: /looking for matching double-quote/ });
  });

  it('uses the backtick as escape after # escape=`', () => {
    assert.equal(expandWord('a`$PWD', env, { escape: '`' }).value, 'a$PWD');
    assert.equal(expandWord('C:\\dir\\$SHELL', env, { escape: '`' }).value, 'C:\\dir\\bash');
    assert.equal(expandWord('"x`"y"', env, { escape: '`' }).value, 'x"y');
  });

  it('reports the names it used and the unset ones it needed', () => {
    const r = expandWord('$PWD ${NOPE} ${ALSO:-d} $SHELL', env);
    assert.deepEqual([...r.matched].sort(), ['PWD', 'SHELL']);
    assert.deepEqual([...r.unmatched], ['NOPE'], 'a name with a default is not "undefined"');
  });

  it('keeps unset references when asked (heredoc delimiter parsing)', () => {
    assert.equal(expandWord('a$X-${Y}-${Z:-q}', env, { skipUnsetEnv: true }).value, 'a$X-${Y}-${Z:-q}');
  });

  it('leaves quotes alone but handles escapes when quotes are not processed (heredoc bodies)', () => {
    assert.equal(
      expandWord(`echo "$PWD" '$SHELL' \\$x`, env, { skipProcessQuotes: true }).value,
      `echo "/home" 'bash' $x`,
    );
  });
});

describe('expandWords (word splitting)', () => {
  const vars = lookupFrom({ TWO: 'a b', EMPTY: '', SPACED: '  x  ' });
  const cases: [string, string[]][] = [
    ['hello', ['hello']],
    ['hello world', ['hello', 'world']],
    ['"hello world"', ['hello world']],
    ["'hello world'", ['hello world']],
    ['hello"world"', ['helloworld']],
    ['one "two three" four', ['one', 'two three', 'four']],
    ['$TWO', ['a', 'b']],
    ['"$TWO"', ['a b']],
    ['x$TWO', ['xa', 'b']],
    ['$EMPTY', []],
    ['""', []],
    ['$SPACED', ['x']],
    ['a\\ b', ['a b']],
    ['80 443/udp', ['80', '443/udp']],
  ];
  for (const [input, expected] of cases) {
    it(`${input} -> ${JSON.stringify(expected)}`, () => assert.deepEqual(expandWords(input, vars).words, expected));
  }
});

describe('lookupFrom', () => {
  it('reads records, maps and KEY=VALUE lists, distinguishing unset from empty', () => {
    assert.equal(lookupFrom({ A: '' })('A'), '');
    assert.equal(lookupFrom({ A: '' })('toString'), undefined);
    assert.equal(lookupFrom(new Map([['A', '1']]))('A'), '1');
    const list = lookupFrom(['A=1', 'B=x=y', 'A=2', 'C']);
    assert.equal(list('A'), '2');
    assert.equal(list('B'), 'x=y');
    assert.equal(list('C'), '');
    assert.equal(list('D'), undefined);
  });
});

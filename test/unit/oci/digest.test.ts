import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { digestHex, digestOf, digestProblem, parseDigest, quoted, shortId } from '../../../src/oci/digest.js';

describe('digest', () => {
  it('parses a valid sha256 digest and splits algorithm and hex', () => {
    const d = parseDigest(`sha256:${'a'.repeat(64)}`);
    assert.equal(digestHex(d), 'a'.repeat(64));
    assert.equal(shortId(d), 'aaaaaaaaaaaa');
  });
  it('rejects a digest with the wrong length, naming the field', () => {
    assert.throws(() => parseDigest('sha256:abc', 'layers[0].digest'), /layers\[0\]\.digest.*64/);
  });
  it('rejects uppercase hex and unknown algorithms', () => {
    assert.throws(() => parseDigest(`sha256:${'A'.repeat(64)}`), /lowercase hex/);
    assert.throws(() => parseDigest(`md5:${'a'.repeat(32)}`), /unsupported digest algorithm "md5"/);
  });
  it('hashes bytes to the sha256 of their content', () => {
    assert.equal(digestOf(''), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

describe('digestProblem and quoted', () => {
  it('says why a value is not a digest without throwing, quoting it short', () => {
    assert.equal(digestProblem(`sha256:${'a'.repeat(64)}`), undefined);
    assert.equal(digestProblem(42), 'expected a string, got number');
    assert.match(digestProblem('nope') ?? '', /^"nope" is not of the form algorithm:hex$/);
    assert.match(
      digestProblem(`x:${'a'.repeat(500)}`) ?? '',
      /^"x:a{98}\.\.\." uses unsupported digest algorithm "x"$/,
    );
    assert.equal(quoted('a"\n'), '"a\\"\\n"');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { digestHex, digestOf, parseDigest, shortId } from '../../../src/oci/digest.js';

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

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalJson } from '../../../src/oci/index.js';

describe('canonicalJson', () => {
  it('sorts keys at every depth, drops undefined properties and adds no whitespace', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } }),
      '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  it('gives the same bytes for the same value whatever the insertion order', () => {
    const x = { layers: [{ size: 1, digest: 'd' }], config: { mediaType: 'm', digest: 'c' }, schemaVersion: 2 };
    const y = { schemaVersion: 2, config: { digest: 'c', mediaType: 'm' }, layers: [{ digest: 'd', size: 1 }] };
    assert.equal(canonicalJson(x), canonicalJson(y));
    assert.equal(canonicalJson(x), JSON.stringify(JSON.parse(canonicalJson(y))));
  });

  it('sorts by UTF-16 code unit, so uppercase sorts before lowercase', () => {
    assert.equal(canonicalJson({ b: 1, B: 2, a: 3, 'a.b': 4, _: 5 }), '{"B":2,"_":5,"a":3,"a.b":4,"b":1}');
  });

  it('keeps array order, turns undefined in arrays into null and honours toJSON', () => {
    assert.equal(canonicalJson([3, undefined, 1]), '[3,null,1]');
    assert.equal(canonicalJson({ t: new Date(0) }), '{"t":"1970-01-01T00:00:00.000Z"}');
    assert.equal(canonicalJson({ n: null, s: 'é"\n', x: 1.5 }), '{"n":null,"s":"é\\"\\n","x":1.5}');
  });
});

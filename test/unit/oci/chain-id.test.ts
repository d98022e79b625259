import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { chainId, chainIds, type Digest } from '../../../src/oci/index.js';

const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}` as Digest;

describe('chainIds', () => {
  it('is the diffId for the bottom layer and sha256("<parent chainId> <diffId>") above it', () => {
    const [a, b, c] = [sha('layer a'), sha('layer b'), sha('layer c')];
    // Independently: ChainID(L1) = SHA256(ChainID(L0) + " " + DiffID(L1)), and so on (image-spec config.md).
    const ab = `sha256:${createHash('sha256').update(`${a} ${b}`, 'utf8').digest('hex')}`;
    const abc = `sha256:${createHash('sha256').update(`${ab} ${c}`, 'utf8').digest('hex')}`;
    assert.deepEqual(chainIds([a, b, c]), [a, ab, abc]);
    assert.equal(chainId([a, b, c]), abc);
  });

  it('matches a vector computed with sha256sum', () => {
    // printf 'sha256:1…1 sha256:2…2' | sha256sum
    const a = `sha256:${'1'.repeat(64)}` as Digest;
    const b = `sha256:${'2'.repeat(64)}` as Digest;
    assert.equal(chainId([a, b]), 'sha256:9932074217c35353d2e03a3f5a86549f7c67bfeb0ba53e23d69f4d4c8f7958f5');
  });

  it('gives no chainId for no layers, and the diffId itself for one', () => {
    assert.deepEqual(chainIds([]), []);
    assert.equal(chainId([]), undefined);
    const a = sha('only');
    assert.equal(chainId([a]), a);
  });
});

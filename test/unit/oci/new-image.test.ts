import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyImageConfig, newHistoryEntry, parseImageConfig } from '../../../src/oci/index.js';

describe('emptyImageConfig', () => {
  it('is a valid config with no layers for the platform asked', () => {
    const c = emptyImageConfig({ os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(c, {
      architecture: 'arm',
      os: 'linux',
      variant: 'v7',
      config: {},
      rootfs: { type: 'layers', diff_ids: [] },
      history: [],
    });
    assert.deepEqual(parseImageConfig(JSON.stringify(c)), c);
  });

  it('defaults to the host platform and leaves created to the caller', () => {
    const c = emptyImageConfig();
    assert.equal(c.os, 'linux');
    assert.equal(c.created, undefined);
  });
});

describe('newHistoryEntry', () => {
  it('writes docker field names and marks empty layers only when they are', () => {
    assert.deepEqual(newHistoryEntry({ createdBy: 'ENV A=1', created: new Date(0), emptyLayer: true }), {
      created: '1970-01-01T00:00:00.000Z',
      created_by: 'ENV A=1',
      empty_layer: true,
    });
    assert.deepEqual(newHistoryEntry({ createdBy: 'RUN true', emptyLayer: false, comment: 'buildkit.dockerfile.v0' }), {
      created_by: 'RUN true',
      comment: 'buildkit.dockerfile.v0',
    });
  });
});

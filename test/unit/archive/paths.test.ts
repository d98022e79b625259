import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { layerMediaType } from '../../../src/archive/index.js';
import { entryComponents, sortByPathBytes } from '../../../src/archive/paths.js';

describe('entry path cleaning', () => {
  it('drops a leading slash, "./" and empty components', () => {
    assert.deepEqual(entryComponents('/etc//passwd'), ['etc', 'passwd']);
    assert.deepEqual(entryComponents('./usr/./bin/'), ['usr', 'bin']);
    assert.deepEqual(entryComponents('./'), []);
  });
  it('resolves ".." that stays inside the root', () => {
    assert.deepEqual(entryComponents('a/b/../c'), ['a', 'c']);
  });
  it('refuses ".." that climbs above the root, naming the entry', () => {
    assert.throws(() => entryComponents('../etc/passwd'), { name: 'PathEscapeError', message: /"\.\.\/etc\/passwd"/ });
    assert.throws(() => entryComponents('a/../../b'), { code: 'PERMISSION_DENIED' });
    assert.throws(() => entryComponents('/../x'), { name: 'PathEscapeError' });
  });
  it('refuses NUL bytes', () => {
    assert.throws(() => entryComponents('a\0b'), { name: 'PathEscapeError' });
  });
});

describe('path sorting', () => {
  it('sorts by UTF-8 bytes, not UTF-16 code units', () => {
    // U+FF5E (3 UTF-8 bytes, EF BD 9E) sorts before U+1F600 (F0 ...) in UTF-8 but after it in UTF-16.
    const names = ['a/\u{1F600}', 'a/\uFF5E', 'a-b', 'a', 'a/b', 'A'];
    assert.deepEqual(
      sortByPathBytes(names, (n) => n),
      ['A', 'a', 'a-b', 'a/b', 'a/\uFF5E', 'a/\u{1F600}'],
    );
  });
});

describe('layer media types', () => {
  it('names OCI and Docker layer types for each compression', () => {
    assert.equal(layerMediaType('oci', 'gzip'), 'application/vnd.oci.image.layer.v1.tar+gzip');
    assert.equal(layerMediaType('oci', 'none'), 'application/vnd.oci.image.layer.v1.tar');
    assert.equal(layerMediaType('docker', 'gzip'), 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    assert.equal(layerMediaType('docker', 'none'), 'application/vnd.docker.image.rootfs.diff.tar');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { familiarName, parseReference, parseRepositoryName, withTag } from '../../../src/reference/index.js';

const D = `sha256:${'ab'.repeat(32)}`;

describe('parseReference normalizes as docker does', () => {
  const valid: [string, string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['docker.io/library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['index.docker.io/library/busybox:x', 'docker.io/library/busybox:x', 'busybox:x'],
    ['user/app', 'docker.io/user/app:latest', 'user/app:latest'],
    ['user/app/sub:v1', 'docker.io/user/app/sub:v1', 'user/app/sub:v1'],
    ['localhost/app', 'localhost/app:latest', 'localhost/app:latest'],
    ['localhost:5000/a/b:tag', 'localhost:5000/a/b:tag', 'localhost:5000/a/b:tag'],
    [`localhost:5000/a/b:tag@${D}`, `localhost:5000/a/b:tag@${D}`, `localhost:5000/a/b:tag@${D}`],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`],
    ['127.0.0.1:5000/x', '127.0.0.1:5000/x:latest', '127.0.0.1:5000/x:latest'],
    ['[::1]:5000/x:1', '[::1]:5000/x:1', '[::1]:5000/x:1'],
    ['quay.io/org/repo', 'quay.io/org/repo:latest', 'quay.io/org/repo:latest'],
    ['registry.example.com:443/a_b/c__d/e-f/g.h:T_1.x-y', 'registry.example.com:443/a_b/c__d/e-f/g.h:T_1.x-y', 'registry.example.com:443/a_b/c__d/e-f/g.h:T_1.x-y'],
    ['a---b', 'docker.io/library/a---b:latest', 'a---b:latest'],
    [`x:${'t'.repeat(128)}`, `docker.io/library/x:${'t'.repeat(128)}`, `x:${'t'.repeat(128)}`],
  ];
  for (const [input, full, familiar] of valid) {
    it(`${input} -> ${full}`, () => {
      const r = parseReference(input);
      assert.equal(r.toString(), full);
      assert.equal(r.familiar(), familiar);
    });
  }

  it('splits registry, repository, tag and digest', () => {
    const r = parseReference(`localhost:5000/a/b:tag@${D}`);
    assert.equal(r.registry, 'localhost:5000');
    assert.equal(r.repository, 'a/b');
    assert.equal(r.tag, 'tag');
    assert.equal(r.digest, D);
    assert.equal(r.name, 'localhost:5000/a/b');
  });

  it('adds latest only when there is neither tag nor digest', () => {
    assert.equal(parseReference(`busybox@${D}`).tag, undefined);
    assert.equal(parseReference('busybox', { defaultTag: '' }).tag, undefined);
  });

  const invalid: [string, RegExp][] = [
    ['', /empty/],
    ['Busybox', /must be lowercase/],
    ['user/App:1', /must be lowercase/],
    ['a/b:', /tag is empty/],
    [':tag', /repository name is empty/],
    [`x:${'t'.repeat(129)}`, /not a valid tag/],
    ['x:-bad', /not a valid tag/],
    ['a//b', /empty path component/],
    ['a/b/', /empty path component/],
    ['-a', /not a valid repository path component/],
    ['a_', /not a valid repository path component/],
    ['a..b', /not a valid repository path component/],
    ['busybox@sha256:abc', /digest/],
    ['busybox@md5:abc', /digest|algorithm/],
    ['bad_host:5000x/a', /not a valid registry host/],
    [' busybox', /spaces/],
    [`${'a'.repeat(250)}/bbbbbb`, /longer than 255/],
  ];
  for (const [input, message] of invalid) {
    it(`refuses ${JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input)}`, () => {
      assert.throws(
        () => parseReference(input),
        (err: Error & { code?: string; hint?: string }) =>
          err.code === 'INVALID_ARGUMENT' && message.test(err.message) && /invalid reference/.test(err.message) && !!err.hint,
      );
    });
  }

  it('repository names take no tag, and helpers keep the name', () => {
    assert.throws(() => parseRepositoryName('busybox:1'), /no tag or digest/);
    assert.equal(parseRepositoryName('busybox').toString(), 'docker.io/library/busybox');
    assert.equal(withTag(parseReference('busybox:1'), '2').toString(), 'docker.io/library/busybox:2');
    assert.equal(familiarName(parseReference('docker.io/user/app:1')), 'user/app');
  });
});

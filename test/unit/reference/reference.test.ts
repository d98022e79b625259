import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Digest } from '../../../src/oci/index.js';
import {
  familiarName,
  isDigestReference,
  parseReference,
  parseRepositoryName,
  withDigest,
  withTag,
} from '../../../src/reference/index.js';

const D = `sha256:${'ab'.repeat(32)}` as Digest;
const D512 = `sha512:${'f'.repeat(128)}` as Digest;

// [input, registry, repository, tag, digest, familiar()] — what docker (distribution/reference
// ParseNormalizedNamed + TagNameOnly) makes of each; many come from its normalize_test.go and reference_test.go.
const valid: [string, string, string, string | undefined, string | undefined, string][] = [
  ['busybox', 'docker.io', 'library/busybox', 'latest', undefined, 'busybox:latest'],
  ['busybox:1.36', 'docker.io', 'library/busybox', '1.36', undefined, 'busybox:1.36'],
  ['library/busybox', 'docker.io', 'library/busybox', 'latest', undefined, 'busybox:latest'],
  ['docker.io/busybox', 'docker.io', 'library/busybox', 'latest', undefined, 'busybox:latest'],
  ['docker.io/library/busybox', 'docker.io', 'library/busybox', 'latest', undefined, 'busybox:latest'],
  ['index.docker.io/library/busybox:x', 'docker.io', 'library/busybox', 'x', undefined, 'busybox:x'],
  ['index.docker.io/debian', 'docker.io', 'library/debian', 'latest', undefined, 'debian:latest'],
  ['library/foo/bar', 'docker.io', 'library/foo/bar', 'latest', undefined, 'library/foo/bar:latest'],
  ['other/library', 'docker.io', 'other/library', 'latest', undefined, 'other/library:latest'],
  ['user/app', 'docker.io', 'user/app', 'latest', undefined, 'user/app:latest'],
  ['user/app/sub:v1', 'docker.io', 'user/app/sub', 'v1', undefined, 'user/app/sub:v1'],
  ['test_com/foo', 'docker.io', 'test_com/foo', 'latest', undefined, 'test_com/foo:latest'],
  ['localhost/app', 'localhost', 'app', 'latest', undefined, 'localhost/app:latest'],
  ['localhost:5000/a/b:tag', 'localhost:5000', 'a/b', 'tag', undefined, 'localhost:5000/a/b:tag'],
  [`localhost:5000/a/b:tag@${D}`, 'localhost:5000', 'a/b', 'tag', D, `localhost:5000/a/b:tag@${D}`],
  [`busybox@${D}`, 'docker.io', 'library/busybox', undefined, D, `busybox@${D}`],
  [`busybox:latest@${D}`, 'docker.io', 'library/busybox', 'latest', D, `busybox:latest@${D}`],
  ['127.0.0.1:5000/x', '127.0.0.1:5000', 'x', 'latest', undefined, '127.0.0.1:5000/x:latest'],
  ['192.168.1.1/repo:5050', '192.168.1.1', 'repo', '5050', undefined, '192.168.1.1/repo:5050'],
  ['[::1]:5000/x:1', '[::1]:5000', 'x', '1', undefined, '[::1]:5000/x:1'],
  ['[2001:db8::1]/repo', '[2001:db8::1]', 'repo', 'latest', undefined, '[2001:db8::1]/repo:latest'],
  [`[2001:db8::1]:5000/repo:tag@${D}`, '[2001:db8::1]:5000', 'repo', 'tag', D, `[2001:db8::1]:5000/repo:tag@${D}`],
  ['quay.io/org/repo', 'quay.io', 'org/repo', 'latest', undefined, 'quay.io/org/repo:latest'],
  ['test:5000/repo', 'test:5000', 'repo', 'latest', undefined, 'test:5000/repo:latest'],
  [
    'b.gcr.io/test.example.com/my-app:test.example.com',
    'b.gcr.io',
    'test.example.com/my-app',
    'test.example.com',
    undefined,
    'b.gcr.io/test.example.com/my-app:test.example.com',
  ],
  [
    `xn--7o8h.com/myimage:xn--7o8h.com@${D512}`,
    'xn--7o8h.com',
    'myimage',
    'xn--7o8h.com',
    D512,
    `xn--7o8h.com/myimage:xn--7o8h.com@${D512}`,
  ],
  [
    'registry.example.com:443/a_b/c__d/e-f/g.h:T_1.x-y',
    'registry.example.com:443',
    'a_b/c__d/e-f/g.h',
    'T_1.x-y',
    undefined,
    'registry.example.com:443/a_b/c__d/e-f/g.h:T_1.x-y',
  ],
  // The first component is a registry when it has an uppercase letter: Docker Hub namespaces cannot.
  ['Foo/bar', 'Foo', 'bar', 'latest', undefined, 'Foo/bar:latest'],
  ['DOCKER/docker', 'DOCKER', 'docker', 'latest', undefined, 'DOCKER/docker:latest'],
  // Without a slash there is no registry: these are Docker Hub names with a tag.
  ['localhost:5000', 'docker.io', 'library/localhost', '5000', undefined, 'localhost:5000'],
  ['test.com:tag', 'docker.io', 'library/test.com', 'tag', undefined, 'test.com:tag'],
  ['192.168.1.1', 'docker.io', 'library/192.168.1.1', 'latest', undefined, '192.168.1.1:latest'],
  ['lowercase:Uppercase', 'docker.io', 'library/lowercase', 'Uppercase', undefined, 'lowercase:Uppercase'],
  ['a---b', 'docker.io', 'library/a---b', 'latest', undefined, 'a---b:latest'],
  ['dock__er/docker', 'docker.io', 'dock__er/docker', 'latest', undefined, 'dock__er/docker:latest'],
  ['d/t', 'docker.io', 'd/t', 'latest', undefined, 'd/t:latest'],
  [`x:${'t'.repeat(128)}`, 'docker.io', 'library/x', 't'.repeat(128), undefined, `x:${'t'.repeat(128)}`],
  [
    'thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev',
    'docker.io',
    'library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev',
    'latest',
    undefined,
    'thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest',
  ],
  [
    `docker.io/${'1a3f'.repeat(16)}`,
    'docker.io',
    `library/${'1a3f'.repeat(16)}`,
    'latest',
    undefined,
    `${'1a3f'.repeat(16)}:latest`,
  ],
];

// [input, what the message must say]: docker refuses every one of these.
const invalid: [string, RegExp][] = [
  ['', /empty/],
  ['Busybox', /repository name must be lowercase/],
  ['Foo:bar', /^invalid reference "Foo:bar": repository name must be lowercase$/],
  ['user/App:1', /must be lowercase/],
  ['docker.io/docker/Docker', /must be lowercase/],
  ['test:5000/Uppercase/lowercase:tag', /must be lowercase/],
  ['a/b:', /the tag is empty/],
  [':tag', /repository name is empty/],
  [`@${D}`, /repository name is empty/],
  [`x:${'t'.repeat(129)}`, /not a valid tag/],
  ['x:-bad', /not a valid tag/],
  ['x:.bad', /not a valid tag/],
  ['x:a+b', /not a valid tag/],
  ['a//b', /empty path component/],
  ['docker///docker', /empty path component/],
  ['a/b/', /empty path component/],
  ['docker/', /empty path component/],
  ['-docker', /not a valid repository path component/],
  ['docker-/docker', /not a valid repository path component/],
  ['_docker/_docker', /not a valid repository path component/],
  ['____/____', /not a valid repository path component/],
  // A '.' makes the first component a registry host, and these are not valid ones.
  ['dock..er/docker', /"dock\.\.er" is not a valid registry host/],
  ['dock_.er/docker', /is not a valid registry host/],
  ['a/dock-.er', /"dock-\.er" is not a valid repository path component/],
  ['aa/asdf$$^/aa', /not a valid repository path component/],
  ['busybox@sha256:abc', /the digest "sha256:abc" must be sha256: followed by 64/],
  [`busybox@sha256:${'A'.repeat(64)}`, /lowercase hex/],
  [`validname@invaliddigest:${'f'.repeat(64)}`, /unsupported digest algorithm "invaliddigest"/],
  ['busybox@', /digest/],
  ['https://github.com/docker/docker', /"https:" is not a valid registry host/],
  ['-docker.io/docker/docker', /is not a valid registry host/],
  ['fc00::1:5000/debian', /is not a valid registry host/],
  ['[fe80::1%eth0]:5000/debian', /is not a valid registry host/],
  ['[2001:db8:3:4::192.0.2.33]:5000/debian', /is not a valid registry host/],
  ['[fc00::1]:5000', /not a valid repository path component/],
  ['[2001:db8::1]:tag', /not a valid repository path component/],
  ['localhost:5000:tag', /not a valid repository path component/],
  [' busybox', /whitespace/],
  ['busy box', /whitespace/],
  ['1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a', /image ID, not a repository name/],
  [`${'a'.repeat(250)}/bbbbbb`, /longer than 255/],
  [`${'a/'.repeat(127)}a:tag`, /longer than 255/],
];

describe('parseReference normalizes as docker does', () => {
  for (const [input, registry, repository, tag, digest, familiar] of valid) {
    it(`${input.length > 60 ? `${input.slice(0, 60)}…` : input} -> ${registry}/${repository}`, () => {
      const r = parseReference(input);
      assert.equal(r.registry, registry);
      assert.equal(r.repository, repository);
      assert.equal(r.tag, tag);
      assert.equal(r.digest, digest);
      assert.equal(r.name, `${registry}/${repository}`);
      assert.equal(r.toString(), `${registry}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`);
      assert.equal(r.familiar(), familiar);
      // Normalizing is idempotent: the full and the familiar forms parse back to the same reference.
      assert.equal(parseReference(r.toString()).toString(), r.toString());
      assert.equal(parseReference(r.familiar()).toString(), r.toString());
    });
  }

  for (const [input, message] of invalid) {
    it(`refuses ${JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input)}`, () => {
      assert.throws(
        () => parseReference(input),
        (err: Error & { code?: string; hint?: string }) => {
          assert.equal(err.code, 'INVALID_ARGUMENT');
          assert.match(err.message, /^invalid reference "/);
          assert.match(err.message, message);
          assert.ok(err.hint);
          return true;
        },
      );
    });
  }

  it('adds latest (or defaultTag) only when there is neither tag nor digest', () => {
    assert.equal(parseReference(`busybox@${D}`).tag, undefined);
    assert.equal(parseReference('busybox', { defaultTag: '' }).tag, undefined);
    assert.equal(parseReference('busybox', { defaultTag: 'stable' }).tag, 'stable');
    assert.equal(parseReference('busybox:1', { defaultTag: 'stable' }).tag, '1');
  });

  it('says what to type in the hint and cuts hostile input short in the message', () => {
    const long = `${'x'.repeat(5000)}/A`;
    assert.throws(
      () => parseReference(long),
      (e: Error & { hint?: string }) => e.message.length < 400 && /busybox:1\.36/.test(e.hint ?? ''),
    );
  });

  it('serializes to its full string in JSON', () => {
    assert.equal(JSON.stringify({ ref: parseReference('busybox') }), '{"ref":"docker.io/library/busybox:latest"}');
  });
});

describe('reference helpers', () => {
  it('parseRepositoryName takes no tag or digest', () => {
    assert.equal(parseRepositoryName('busybox').toString(), 'docker.io/library/busybox');
    assert.equal(parseRepositoryName('localhost:5000/a/b').familiar(), 'localhost:5000/a/b');
    assert.throws(() => parseRepositoryName('busybox:1'), /no tag or digest/);
    assert.throws(() => parseRepositoryName(`busybox@${D}`), /no tag or digest/);
  });

  it('withTag and withDigest keep the other part, as distribution does', () => {
    assert.equal(withTag(parseReference('busybox:1'), '2').toString(), 'docker.io/library/busybox:2');
    assert.equal(withTag(parseReference(`busybox@${D}`), 'v1').toString(), `docker.io/library/busybox:v1@${D}`);
    assert.equal(withDigest(parseReference('localhost:5000/a:latest'), D).familiar(), `localhost:5000/a:latest@${D}`);
    assert.equal(withDigest(parseRepositoryName('a/b'), D).toString(), `docker.io/a/b@${D}`);
    assert.throws(() => withTag(parseReference('busybox'), '-foo'), /invalid reference .*not a valid tag/);
    assert.throws(() => withDigest(parseReference('busybox'), 'foo' as Digest), /invalid reference .*digest/);
  });

  it('familiarName drops registry (for Docker Hub), tag and digest', () => {
    assert.equal(familiarName(parseReference('docker.io/user/app:1')), 'user/app');
    assert.equal(familiarName(parseReference(`busybox:1@${D}`)), 'busybox');
    assert.equal(familiarName(parseReference('docker.io/library/a/b')), 'library/a/b');
    assert.equal(familiarName(parseReference('quay.io/library/x')), 'quay.io/library/x');
  });

  it('isDigestReference says whether a digest pins it', () => {
    assert.equal(isDigestReference(parseReference(`busybox@${D}`)), true);
    assert.equal(isDigestReference(parseReference('busybox:1')), false);
  });
});

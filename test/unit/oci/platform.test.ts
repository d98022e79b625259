import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Descriptor,
  type Digest,
  formatPlatform,
  hostPlatform,
  type ImageIndex,
  MediaType,
  type Platform,
  parsePlatform,
  platformMatches,
  selectManifest,
} from '../../../src/oci/index.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const linux = (architecture: string, variant?: string): Platform =>
  variant ? { os: 'linux', architecture, variant } : { os: 'linux', architecture };

describe('parsePlatform / formatPlatform', () => {
  it('parses os/arch[/variant] and formats it back', () => {
    assert.deepEqual(parsePlatform('linux/amd64'), linux('amd64'));
    assert.deepEqual(parsePlatform('linux/arm64/v8'), linux('arm64', 'v8'));
    assert.deepEqual(parsePlatform('linux/arm/v7'), linux('arm', 'v7'));
    assert.equal(formatPlatform(parsePlatform('linux/arm/v6')), 'linux/arm/v6');
    assert.equal(formatPlatform(linux('s390x')), 'linux/s390x');
  });

  it('accepts the names uname and Debian use, in any case', () => {
    assert.deepEqual(parsePlatform('Linux/X86_64'), linux('amd64'));
    assert.deepEqual(parsePlatform('linux/aarch64'), linux('arm64'));
    assert.deepEqual(parsePlatform('linux/armhf'), linux('arm', 'v7'));
    assert.deepEqual(parsePlatform('linux/armel'), linux('arm', 'v6'));
    assert.deepEqual(parsePlatform('linux/i386'), linux('386'));
    assert.deepEqual(parsePlatform('linux/arm/7'), linux('arm', 'v7'));
  });

  it('refuses anything else with a hint', () => {
    for (const s of ['linux', 'amd64', '', 'linux/', '/amd64', 'linux/amd64/v8/x', 'linux/amd 64']) {
      assert.throws(
        () => parsePlatform(s),
        (e: Error & { code?: string; hint?: string }) =>
          e.code === 'INVALID_ARGUMENT' &&
          e.message.startsWith(`invalid platform ${JSON.stringify(s)}`) &&
          /linux\/amd64/.test(e.hint ?? ''),
        s,
      );
    }
  });
});

describe('hostPlatform', () => {
  it('names this machine in GOARCH terms on linux', () => {
    const p = hostPlatform();
    assert.equal(p.os, 'linux');
    const expected: Record<string, string> = {
      x64: 'amd64',
      arm64: 'arm64',
      arm: 'arm',
      ia32: '386',
      ppc64: 'ppc64le',
      s390x: 's390x',
    };
    if (expected[process.arch]) assert.equal(p.architecture, expected[process.arch]);
    if (process.arch === 'arm64') assert.equal(p.variant, 'v8');
    if (process.arch === 'x64') assert.equal(p.variant, undefined);
  });
});

describe('platformMatches', () => {
  it('needs os and architecture to be equal', () => {
    assert.ok(platformMatches(linux('amd64'), linux('amd64')));
    assert.ok(!platformMatches(linux('amd64'), linux('arm64')));
    assert.ok(!platformMatches(linux('amd64'), { os: 'windows', architecture: 'amd64' }));
    assert.ok(!platformMatches(linux('amd64'), undefined));
  });

  it('compares variants only when the wanted platform names one; arm64 without one is v8', () => {
    assert.ok(platformMatches(linux('arm'), linux('arm', 'v6')));
    assert.ok(platformMatches(linux('arm64', 'v8'), linux('arm64')));
    assert.ok(platformMatches(linux('arm64'), linux('arm64', 'v8')));
    assert.ok(!platformMatches(linux('arm', 'v7'), linux('arm', 'v6')));
    assert.ok(!platformMatches(linux('arm64', 'v9'), linux('arm64')));
  });
});

describe('selectManifest', () => {
  const m = (p: Platform | undefined, c: string, annotations?: Record<string, string>): Descriptor => ({
    mediaType: MediaType.OciManifest,
    digest: d(c),
    size: 1,
    ...(p ? { platform: p } : {}),
    ...(annotations ? { annotations } : {}),
  });
  const idx = (...manifests: Descriptor[]): ImageIndex => ({ schemaVersion: 2, manifests });
  const attestation = { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': d('1') };

  it('picks the manifest for the platform, never an attestation', () => {
    const index = idx(
      m({ os: 'unknown', architecture: 'unknown' }, '0', attestation),
      m(linux('arm64', 'v8'), '1'),
      m(linux('amd64'), '2'),
      m(linux('amd64'), '3', attestation),
    );
    assert.equal(selectManifest(index, linux('amd64'))?.digest, d('2'));
    assert.equal(selectManifest(index, linux('arm64'))?.digest, d('1'));
    assert.equal(selectManifest(index, linux('s390x')), undefined);
    assert.equal(
      selectManifest(idx(m({ os: 'unknown', architecture: 'unknown' }, '0')), {
        os: 'unknown',
        architecture: 'unknown',
      }),
      undefined,
    );
  });

  it('prefers the exact variant over the first that matches', () => {
    const index = idx(
      m(linux('arm', 'v6'), '6'),
      m(linux('arm', 'v7'), '7'),
      m(linux('amd64', 'v3'), 'a'),
      m(linux('amd64'), 'b'),
    );
    assert.equal(selectManifest(index, linux('arm', 'v7'))?.digest, d('7'));
    assert.equal(selectManifest(index, linux('arm'))?.digest, d('7'));
    assert.equal(selectManifest(index, linux('amd64'))?.digest, d('b'));
  });

  it('falls back to an older variant the CPU also runs, nearest first', () => {
    const index = idx(m(linux('arm', 'v5'), '5'), m(linux('arm', 'v6'), '6'));
    assert.equal(selectManifest(index, linux('arm', 'v7'))?.digest, d('6'));
    assert.equal(selectManifest(index, linux('arm', 'v5'))?.digest, d('5'));
    assert.equal(selectManifest(idx(m(linux('arm', 'v8'), '8')), linux('arm', 'v7')), undefined);
    assert.equal(selectManifest(idx(m(linux('amd64'), '1')), linux('amd64', 'v3'))?.digest, d('1'));
  });

  it('skips entries without a platform', () => {
    assert.equal(selectManifest(idx(m(undefined, '1')), linux('amd64')), undefined);
  });
});

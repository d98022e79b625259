import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  canonicalJson,
  chainIds,
  type Digest,
  MediaType,
  parseDocument,
  parseImageConfig,
  parseIndex,
  parseManifest,
  parsePlatform,
  platformMatches,
  selectManifest,
} from '../../../src/oci/index.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const manifest = {
  schemaVersion: 2,
  mediaType: MediaType.OciManifest,
  config: { mediaType: MediaType.OciConfig, digest: d('a'), size: 10 },
  layers: [{ mediaType: MediaType.OciLayerGzip, digest: d('b'), size: 20 }],
};

describe('OCI documents', () => {
  it('parses OCI and Docker schema 2 manifests, keeping unknown fields', () => {
    assert.equal(parseManifest(JSON.stringify(manifest)).layers[0]!.digest, d('b'));
    const docker = { ...manifest, mediaType: MediaType.DockerManifest, extra: 1 };
    assert.equal((parseManifest(Buffer.from(JSON.stringify(docker))) as unknown as { extra: number }).extra, 1);
  });

  it('names the field that is wrong', () => {
    const bad = { ...manifest, layers: [{ ...manifest.layers[0], digest: 'sha256:zz' }] };
    assert.throws(() => parseManifest(JSON.stringify(bad)), /invalid image manifest: field "layers\[0\]\.digest"/);
    assert.throws(() => parseManifest(JSON.stringify({ ...manifest, config: undefined })), /field "config"/);
    const neg = { ...manifest, layers: [{ ...manifest.layers[0], size: -1 }] };
    assert.throws(() => parseManifest(JSON.stringify(neg)), /field "layers\[0\]\.size"/);
  });

  it('refuses schema 1 with a hint, unknown media types, non-JSON and oversized documents', () => {
    assert.throws(
      () => parseDocument(JSON.stringify({ schemaVersion: 1, name: 'a', fsLayers: [] })),
      (e: Error & { hint?: string }) => /schema 1/.test(e.message) && /push the image again/.test(e.hint ?? ''),
    );
    assert.throws(() => parseDocument('{}', { mediaType: MediaType.DockerSchema1Signed }), /schema 1/);
    assert.throws(() => parseDocument(JSON.stringify({ ...manifest, mediaType: 'application/foo' })), /unknown media type "application\/foo"/);
    assert.throws(() => parseManifest('{"schemaVersion": 2,'), /not valid JSON/);
    assert.throws(() => parseManifest(Buffer.alloc(5 << 20, 32)), /more than the/);
  });

  it('decides manifest or index by media type, hint, then shape', () => {
    assert.equal(parseDocument(JSON.stringify(manifest)).kind, 'manifest');
    const { mediaType: _m, ...bare } = manifest;
    assert.equal(parseDocument(JSON.stringify(bare)).kind, 'manifest');
    const index = { schemaVersion: 2, manifests: [{ ...manifest.config, mediaType: MediaType.OciManifest }] };
    assert.equal(parseDocument(JSON.stringify(index)).kind, 'index');
    assert.equal(parseDocument(JSON.stringify(index), { mediaType: MediaType.DockerManifestList }).mediaType, MediaType.DockerManifestList);
    assert.equal(parseIndex(JSON.stringify(index)).manifests.length, 1);
  });

  it('validates image configs: rootfs.diff_ids, Env, Cmd', () => {
    const config = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [d('c')] }, config: { Env: ['A=1'], Cmd: null } };
    assert.deepEqual(parseImageConfig(JSON.stringify(config)).rootfs.diff_ids, [d('c')]);
    assert.throws(() => parseImageConfig(JSON.stringify({ ...config, rootfs: { type: 'layers', diff_ids: 'x' } })), /field "rootfs\.diff_ids"/);
    assert.throws(() => parseImageConfig(JSON.stringify({ ...config, config: { Env: 'A=1' } })), /field "config\.Env"/);
    assert.throws(() => parseImageConfig(JSON.stringify({ ...config, os: undefined })), /field "os"/);
  });
});

describe('chainIds', () => {
  it('follows the image spec definition', () => {
    const [a, b, c] = [d('1'), d('2'), d('3')];
    const h = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
    const ab = h(`${a} ${b}`);
    assert.deepEqual(chainIds([a, b, c]), [a, ab, h(`${ab} ${c}`)]);
    assert.deepEqual(chainIds([]), []);
  });
});

describe('canonical JSON', () => {
  it('sorts keys at every depth and drops undefined', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } }), '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}');
  });
});

describe('platforms', () => {
  it('parses, matches variants, and selects from an index', () => {
    assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.throws(() => parsePlatform('linux'), /invalid platform "linux"/);
    assert.ok(platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'arm64' }));
    assert.ok(!platformMatches({ os: 'linux', architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: 'arm', variant: 'v6' }));
    const m = (arch: string, digest: Digest, annotations?: Record<string, string>) => ({
      mediaType: MediaType.OciManifest,
      digest,
      size: 1,
      platform: { os: 'linux', architecture: arch },
      ...(annotations ? { annotations } : {}),
    });
    const index = {
      schemaVersion: 2 as const,
      manifests: [m('arm64', d('1')), m('amd64', d('2')), m('amd64', d('3'), { 'vnd.docker.reference.type': 'attestation-manifest' })],
    };
    assert.equal(selectManifest(index, { os: 'linux', architecture: 'amd64' })?.digest, d('2'));
    assert.equal(selectManifest(index, { os: 'linux', architecture: 's390x' }), undefined);
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  type Digest,
  MediaType,
  parseDescriptor,
  parseDocument,
  parseImageConfig,
  parseIndex,
  parseManifest,
} from '../../../src/oci/index.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const manifest = {
  schemaVersion: 2,
  mediaType: MediaType.OciManifest,
  config: { mediaType: MediaType.OciConfig, digest: d('a'), size: 10 },
  layers: [
    { mediaType: MediaType.OciLayerGzip, digest: d('b'), size: 20 },
    { mediaType: MediaType.OciLayerGzip, digest: d('c'), size: 30 },
  ],
};
const index = {
  schemaVersion: 2,
  manifests: [
    { mediaType: MediaType.OciManifest, digest: d('d'), size: 5, platform: { os: 'linux', architecture: 'amd64' } },
  ],
};
const config = {
  architecture: 'amd64',
  os: 'linux',
  rootfs: { type: 'layers', diff_ids: [d('e')] },
  config: { Env: ['A=1'], Cmd: null, Labels: { 'org.example': 'x' }, ExposedPorts: { '80/tcp': {} } },
  history: [{ created_by: '/bin/sh -c #(nop) ADD file', empty_layer: false }],
};
const json = (v: unknown) => JSON.stringify(v);
const rejects = (fn: () => unknown, message: RegExp, code = 'INVALID_ARGUMENT') =>
  assert.throws(fn, (e: Error & { code?: string }) => {
    assert.match(e.message, message);
    assert.equal(e.code, code);
    return true;
  });

describe('parseManifest', () => {
  it('parses an OCI manifest from a string, bytes or a parsed object', () => {
    for (const input of [
      json(manifest),
      Buffer.from(json(manifest)),
      new TextEncoder().encode(json(manifest)),
      manifest,
    ]) {
      const m = parseManifest(input);
      assert.equal(m.layers[1]!.digest, d('c'));
      assert.equal(m.config.size, 10);
    }
  });

  it('parses a Docker schema 2 manifest and keeps fields it does not know', () => {
    const docker = { ...manifest, mediaType: MediaType.DockerManifest, extra: { nested: [1] } };
    const m = parseManifest(json(docker)) as unknown as { extra: unknown; mediaType: string };
    assert.equal(m.mediaType, MediaType.DockerManifest);
    assert.deepEqual(m.extra, { nested: [1] });
  });

  it('names the document and the dotted field path of the first problem', () => {
    const layer = (patch: object) =>
      json({ ...manifest, layers: [manifest.layers[0], { ...manifest.layers[1], ...patch }] });
    rejects(
      () => parseManifest(layer({ digest: 'sha256:zz' })),
      /^invalid image manifest: field "layers\[1\]\.digest" "sha256:zz" must be sha256: followed by 64/,
    );
    rejects(() => parseManifest(layer({ digest: `SHA256:${'a'.repeat(64)}` })), /field "layers\[1\]\.digest"/);
    rejects(() => parseManifest(layer({ size: -1 })), /field "layers\[1\]\.size" must be at least 0, got -1/);
    rejects(() => parseManifest(layer({ size: 1.5 })), /field "layers\[1\]\.size" must be an integer, got 1\.5/);
    rejects(
      () => parseManifest(layer({ size: '20' })),
      /field "layers\[1\]\.size" must be a number, got the string "20"/,
    );
    rejects(() => parseManifest(layer({ mediaType: 7 })), /field "layers\[1\]\.mediaType" must be a string, got 7/);
    rejects(
      () => parseManifest(layer({ annotations: { 'a.b': 1 } })),
      /field "layers\[1\]\.annotations\["a\.b"\]" must be a string/,
    );
    rejects(() => parseManifest(json({ ...manifest, config: undefined })), /field "config" is required/);
    rejects(() => parseManifest(json({ ...manifest, layers: {} })), /field "layers" must be an array, got an object/);
    rejects(() => parseManifest('[]'), /^invalid image manifest: must be an object, got an array/);
  });

  it('requires schemaVersion 2 and refuses schema 1 as unimplemented, with a hint to re-push', () => {
    rejects(() => parseManifest(json({ ...manifest, schemaVersion: 3 })), /field "schemaVersion" must be 2, got 3/);
    rejects(() => parseManifest(json({ ...manifest, schemaVersion: undefined })), /field "schemaVersion" is required/);
    const schema1 = { schemaVersion: 1, name: 'library/busybox', tag: 'latest', fsLayers: [], history: [] };
    for (const fn of [
      () => parseManifest(json(schema1)),
      () => parseManifest(json({ ...manifest, mediaType: MediaType.DockerSchema1 })),
      () => parseManifest(json(manifest), { mediaType: MediaType.DockerSchema1Signed }),
      () => parseDocument(json(schema1)),
    ]) {
      assert.throws(fn, (e: Error & { code?: string; hint?: string }) => {
        assert.equal(e.code, 'UNIMPLEMENTED');
        assert.match(e.message, /schema 1 is deprecated and not supported/);
        assert.match(e.hint ?? '', /push the image again with a current docker, podman or skopeo/);
        return true;
      });
    }
  });

  it('refuses an unknown or wrong top-level media type, naming it', () => {
    rejects(
      () => parseManifest(json({ ...manifest, mediaType: 'application/foo' })),
      /field "mediaType" has unknown media type "application\/foo"/,
    );
    rejects(
      () => parseManifest(json({ ...manifest, mediaType: MediaType.OciIndex })),
      /an image index, not an image manifest/,
    );
  });

  it('checks embedded data against the digest and size', () => {
    const bytes = Buffer.from('{}');
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const withData = (data: string, size = 2) =>
      json({ ...manifest, config: { ...manifest.config, digest, size, data } });
    assert.equal(parseManifest(withData(bytes.toString('base64'))).config.data, 'e30=');
    rejects(
      () => parseManifest(withData(Buffer.from('[]').toString('base64'))),
      /field "config\.data" does not match the digest and size/,
    );
    rejects(() => parseManifest(withData('e30=', 3)), /field "config\.data" does not match/);
    rejects(() => parseManifest(withData('e30')), /field "config\.data" is not canonical base64/);
  });
});

describe('parseIndex', () => {
  it('parses an OCI index and a Docker manifest list, with platforms', () => {
    assert.deepEqual(parseIndex(json(index)).manifests[0]!.platform, { os: 'linux', architecture: 'amd64' });
    const list = { ...index, mediaType: MediaType.DockerManifestList };
    assert.equal(parseIndex(json(list)).mediaType, MediaType.DockerManifestList);
  });

  it('names bad entries and refuses a manifest media type', () => {
    const bad = { ...index, manifests: [{ ...index.manifests[0], platform: { os: 'linux' } }] };
    rejects(
      () => parseIndex(json(bad)),
      /^invalid image index: field "manifests\[0\]\.platform\.architecture" is required/,
    );
    rejects(
      () => parseIndex(json({ ...index, mediaType: MediaType.OciManifest })),
      /an image manifest, not an image index/,
    );
  });
});

describe('parseImageConfig', () => {
  it('parses a config, keeping unknown fields (docker_version, container_config)', () => {
    const c = parseImageConfig(json({ ...config, docker_version: '24.0.7', container_config: { Hostname: 'x' } }));
    assert.deepEqual(c.rootfs.diff_ids, [d('e')]);
    assert.deepEqual(c.config?.Env, ['A=1']);
    assert.equal(c.config?.Cmd, null);
    assert.equal(c['docker_version'], '24.0.7');
    assert.deepEqual(c['container_config'], { Hostname: 'x' });
  });

  it("drops docker's nulls for empty collections but keeps a null Cmd and Entrypoint", () => {
    const c = parseImageConfig(
      json({
        ...config,
        history: null,
        config: { Env: null, Labels: null, Volumes: null, Entrypoint: null, Cmd: null },
      }),
    );
    assert.equal('history' in c, false);
    assert.deepEqual(c.config, { Entrypoint: null, Cmd: null });
  });

  it('requires architecture, os and rootfs of type layers with digest diff_ids', () => {
    rejects(
      () => parseImageConfig(json({ ...config, os: undefined })),
      /^invalid image config: field "os" is required/,
    );
    rejects(() => parseImageConfig(json({ ...config, architecture: '' })), /field "architecture" must not be empty/);
    rejects(
      () => parseImageConfig(json({ ...config, rootfs: { type: 'tar', diff_ids: [] } })),
      /field "rootfs\.type" must be "layers"/,
    );
    rejects(
      () => parseImageConfig(json({ ...config, rootfs: { type: 'layers', diff_ids: 'x' } })),
      /field "rootfs\.diff_ids" must be an array/,
    );
    rejects(
      () => parseImageConfig(json({ ...config, rootfs: { type: 'layers', diff_ids: [d('e'), 'sha256:1'] } })),
      /field "rootfs\.diff_ids\[1\]"/,
    );
  });

  it('checks the types of config and history fields', () => {
    const withConfig = (c: object) => json({ ...config, config: c });
    rejects(() => parseImageConfig(withConfig({ Env: 'A=1' })), /field "config\.Env" must be an array/);
    rejects(() => parseImageConfig(withConfig({ Env: [1] })), /field "config\.Env\[0\]" must be a string/);
    rejects(() => parseImageConfig(withConfig({ Cmd: 'sh' })), /field "config\.Cmd" must be an array/);
    rejects(() => parseImageConfig(withConfig({ Entrypoint: [true] })), /field "config\.Entrypoint\[0\]"/);
    rejects(() => parseImageConfig(withConfig({ Labels: { a: 1 } })), /field "config\.Labels\.a" must be a string/);
    rejects(
      () => parseImageConfig(withConfig({ ExposedPorts: { '80/tcp': true } })),
      /field "config\.ExposedPorts\["80\/tcp"\]" must be an object/,
    );
    rejects(
      () => parseImageConfig(withConfig({ Volumes: ['/data'] })),
      /field "config\.Volumes" must be an object, got an array/,
    );
    rejects(
      () => parseImageConfig(withConfig({ Healthcheck: { Interval: '5s' } })),
      /field "config\.Healthcheck\.Interval" must be a number/,
    );
    rejects(
      () => parseImageConfig(json({ ...config, history: [{ empty_layer: 'yes' }] })),
      /field "history\[0\]\.empty_layer" must be a boolean/,
    );
  });
});

describe('parseDocument', () => {
  const { mediaType: _omit, ...bare } = manifest;

  it("decides by the document's own media type first", () => {
    assert.equal(parseDocument(json(manifest), { mediaType: MediaType.OciIndex }).kind, 'manifest');
    const list = parseDocument(json({ ...index, mediaType: MediaType.DockerManifestList }));
    assert.equal(list.kind, 'index');
    assert.equal(list.mediaType, MediaType.DockerManifestList);
  });

  it('then by the media type it arrived with, ignoring Content-Type parameters', () => {
    const r = parseDocument(json(bare), { mediaType: `${MediaType.DockerManifest}; charset=utf-8` });
    assert.equal(r.kind, 'manifest');
    assert.equal(r.mediaType, MediaType.DockerManifest);
    assert.equal(
      parseDocument(json(index), { mediaType: MediaType.DockerManifestList }).mediaType,
      MediaType.DockerManifestList,
    );
  });

  it('then by shape, when neither names a manifest or index type (OCI assumed)', () => {
    const m = parseDocument(json(bare), { mediaType: 'application/json' });
    assert.equal(m.kind, 'manifest');
    assert.equal(m.mediaType, MediaType.OciManifest);
    const i = parseDocument(Buffer.from(json(index)));
    assert.equal(i.kind, 'index');
    assert.equal(i.mediaType, MediaType.OciIndex);
    assert.equal(i.kind === 'index' && i.index.manifests.length, 1);
  });

  it('refuses unknown media types, shapeless objects and non-objects', () => {
    rejects(
      () => parseDocument(json({ ...manifest, mediaType: 'application/foo' })),
      /unknown media type "application\/foo"/,
    );
    rejects(
      () => parseDocument(json({ schemaVersion: 2 })),
      /neither an image manifest \(config, layers\) nor an index/,
    );
    rejects(() => parseDocument('"text"'), /^invalid manifest: must be a JSON object, got the string "text"/);
  });

  it('reports errors of the chosen kind with its field paths', () => {
    rejects(
      () => parseDocument(json({ ...index, manifests: [{}] })),
      /^invalid image index: field "manifests\[0\]\.mediaType" is required/,
    );
  });
});

describe('parseDescriptor', () => {
  it('validates a descriptor, naming it by `where`', () => {
    assert.equal(parseDescriptor(manifest.config, 'config').digest, d('a'));
    rejects(
      () => parseDescriptor({ ...manifest.config, size: -5 }, 'index.json manifests[2]'),
      /^invalid index\.json manifests\[2\]: field "size"/,
    );
    rejects(
      () => parseDescriptor({ ...manifest.config, digest: `md5:${'a'.repeat(32)}` }),
      /field "digest" .*unsupported digest algorithm "md5"/,
    );
  });
});

describe('untrusted bytes', () => {
  it('refuses non-JSON, saying where it stopped being JSON', () => {
    rejects(
      () => parseManifest('{"schemaVersion": 2,'),
      /^invalid image manifest: is not valid JSON: expected a property name in double quotes, found end of input at line 1 column 21/,
    );
    rejects(() => parseManifest('{\n  "a": [1, 2\n  3]\n}'), /expected "," or "\]", found "3" at line 3 column 3/);
    rejects(
      () => parseIndex(Buffer.from('{"a":1} trailing')),
      /^invalid image index: is not valid JSON: expected end of input, found "t" at line 1 column 9/,
    );
    rejects(() => parseImageConfig(''), /is not valid JSON: expected a JSON value, found end of input/);
  });

  it('refuses documents over 4 MiB before parsing them, and honours maxBytes', () => {
    const big = Buffer.alloc((4 << 20) + 1, 0x20);
    rejects(() => parseManifest(big), /document is 4194305 bytes, more than the 4194304 allowed/);
    rejects(() => parseDocument(json(manifest), { maxBytes: 100 }), /more than the 100 allowed/);
    assert.equal(parseManifest(json(manifest), { maxBytes: 4096 }).schemaVersion, 2);
  });
});

import assert from 'node:assert/strict';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before } from 'node:test';
import { type Digest, type DigestAlgorithm, digestOf, MediaType } from '../../src/oci/index.js';
import { startTestRegistry, type TestRegistry } from './registry.js';

/**
 * Small OCI documents and blobs for registry tests, and a thin HTTP client that checks what every registry response
 * must carry. Everything random is fresh per call, so two tests never collide on a digest by accident.
 */

/** Bytes with their digest and media type: a blob, a config or a manifest as pushed. */
export interface Content {
  bytes: Buffer;
  digest: Digest;
  size: number;
  mediaType: string;
}

export function content(bytes: Buffer | string, mediaType: string, algorithm: DigestAlgorithm = 'sha256'): Content {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return { bytes: b, digest: digestOf(b, algorithm), size: b.length, mediaType };
}

/** A random layer (random bytes: the registry never looks inside). */
export function randomLayer(size = 2048, opts: { mediaType?: string; algorithm?: DigestAlgorithm } = {}): Content {
  return content(randomBytes(size), opts.mediaType ?? MediaType.OciLayerGzip, opts.algorithm ?? 'sha256');
}

/** An image config naming `layers` as diff_ids, with a random label so every call is a new digest. */
export function imageConfig(layers: Content[] = [], opts: { mediaType?: string } = {}): Content {
  const doc = {
    architecture: 'amd64',
    os: 'linux',
    config: { Labels: { 'test.nonce': randomBytes(8).toString('hex') } },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
  };
  return content(JSON.stringify(doc), opts.mediaType ?? MediaType.OciConfig);
}

/** The OCI empty descriptor's content, `{}`. */
export const EMPTY_CONFIG: Content = content('{}', MediaType.OciEmpty);

export interface DescriptorJson {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  artifactType?: string;
  annotations?: Record<string, string>;
}

export function descriptor(
  c: Content,
  extra: Omit<DescriptorJson, 'mediaType' | 'digest' | 'size'> = {},
): DescriptorJson {
  return { mediaType: c.mediaType, digest: c.digest, size: c.size, ...extra };
}

export interface ManifestOptions {
  config: Content;
  layers: Content[];
  /** 'oci' (default) or Docker schema 2. */
  format?: 'oci' | 'docker';
  artifactType?: string;
  subject?: Content;
  annotations?: Record<string, string>;
  /** Leave the mediaType field out (OCI allows it; the Content-Type then says). */
  omitMediaType?: boolean;
}

export function imageManifest(opts: ManifestOptions): Content {
  const mediaType = opts.format === 'docker' ? MediaType.DockerManifest : MediaType.OciManifest;
  const doc = {
    schemaVersion: 2,
    ...(opts.omitMediaType ? {} : { mediaType }),
    ...(opts.artifactType ? { artifactType: opts.artifactType } : {}),
    config: descriptor(opts.config),
    layers: opts.layers.map((l) => descriptor(l)),
    ...(opts.subject ? { subject: descriptor(opts.subject) } : {}),
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  return content(JSON.stringify(doc), mediaType);
}

export interface IndexOptions {
  format?: 'oci' | 'docker';
  artifactType?: string;
  subject?: Content;
  annotations?: Record<string, string>;
}

const ARCHES = ['amd64', 'arm64', 'ppc64le', 's390x', 'riscv64', '386'];

export function imageIndex(manifests: Content[], opts: IndexOptions = {}): Content {
  const mediaType = opts.format === 'docker' ? MediaType.DockerManifestList : MediaType.OciIndex;
  const doc = {
    schemaVersion: 2,
    mediaType,
    ...(opts.artifactType ? { artifactType: opts.artifactType } : {}),
    manifests: manifests.map((m, i) =>
      descriptor(m, { platform: { architecture: ARCHES[i % ARCHES.length]!, os: 'linux' } }),
    ),
    ...(opts.subject ? { subject: descriptor(opts.subject) } : {}),
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  return content(JSON.stringify(doc), mediaType);
}

/** An OCI artifact manifest (image manifest with artifactType, the empty config, and a subject). */
export function artifactManifest(opts: {
  subject: Content;
  artifactType: string;
  blobs?: Content[];
  annotations?: Record<string, string>;
}): Content {
  return imageManifest({
    config: EMPTY_CONFIG,
    layers: opts.blobs ?? [EMPTY_CONFIG],
    artifactType: opts.artifactType,
    subject: opts.subject,
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  });
}

/** A random repository name (lowercase, valid), so tests sharing a registry do not collide. */
export function repoName(prefix = 'test'): string {
  return `${prefix}/r${randomBytes(5).toString('hex')}`;
}

/**
 * `length` bytes of a deterministic pseudo-random stream (AES-256-CTR of zeros keyed by `seed`), starting at
 * `offset` (a multiple of 16), produced chunk by chunk: never held in memory.
 */
export function pseudoRandomStream(seed: string, length: number, offset = 0, chunk = 1 << 20): Readable {
  if (offset % 16 !== 0) throw new Error('offset must be a multiple of 16');
  const key = createHash('sha256').update(seed).digest();
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(offset / 16), 8);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const zeros = Buffer.alloc(chunk);
  let left = length;
  return new Readable({
    highWaterMark: chunk,
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk, left);
      left -= n;
      this.push(cipher.update(zeros.subarray(0, n)));
    },
  });
}

// ---------------------------------------------------------------- HTTP

export interface HttpResult {
  status: number;
  headers: Headers;
  body: Buffer;
  text(): string;
  json<T = unknown>(): T;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /** A buffer or string (sent with Content-Length), or a stream of chunks (sent chunked). */
  body?: Buffer | string | AsyncIterable<Uint8Array>;
}

export const API_VERSION_HEADER = 'docker-distribution-api-version';

/** A registry's API over fetch. Every response is checked for `Docker-Distribution-API-Version: registry/2.0`. */
export class RegistryClient {
  /** Every (method, path, status) this client saw, for tests that check something of all of them. */
  readonly seen: { method: string; path: string; status: number }[] = [];

  constructor(readonly base: string) {}

  /** `path` absolute (`/v2/...`, or a Location a server sent) or a full URL. */
  url(path: string): string {
    return new URL(path, this.base).toString();
  }

  async request(method: string, path: string, opts: RequestOptions = {}): Promise<HttpResult> {
    const streamed = opts.body !== undefined && typeof opts.body !== 'string' && !Buffer.isBuffer(opts.body);
    const res = await fetch(this.url(path), {
      method,
      headers: opts.headers ?? {},
      ...(opts.body === undefined ? {} : { body: opts.body as BodyInit }),
      ...(streamed ? { duplex: 'half' } : {}),
      redirect: 'manual',
    } as RequestInit);
    const body = Buffer.from(await res.arrayBuffer());
    this.seen.push({ method, path, status: res.status });
    assert.equal(
      res.headers.get(API_VERSION_HEADER),
      'registry/2.0',
      `${method} ${path} -> ${res.status}: no Docker-Distribution-API-Version: registry/2.0`,
    );
    return {
      status: res.status,
      headers: res.headers,
      body,
      text: () => body.toString('utf8'),
      json: <T>() => JSON.parse(body.toString('utf8')) as T,
    };
  }

  get(path: string, headers?: Record<string, string>): Promise<HttpResult> {
    return this.request('GET', path, headers ? { headers } : {});
  }

  head(path: string, headers?: Record<string, string>): Promise<HttpResult> {
    return this.request('HEAD', path, headers ? { headers } : {});
  }

  /** Monolithic upload (POST ?digest=), asserting 201. */
  async pushBlob(name: string, blob: Content): Promise<HttpResult> {
    const res = await this.request('POST', `/v2/${name}/blobs/uploads/?digest=${blob.digest}`, {
      headers: { 'content-type': 'application/octet-stream' },
      body: blob.bytes,
    });
    assert.equal(res.status, 201, `push blob ${blob.digest} to ${name}: ${res.status} ${res.text()}`);
    return res;
  }

  async pushManifest(name: string, reference: string, manifest: Content, contentType?: string): Promise<HttpResult> {
    const res = await this.request('PUT', `/v2/${name}/manifests/${reference}`, {
      headers: { 'content-type': contentType ?? manifest.mediaType },
      body: manifest.bytes,
    });
    assert.equal(res.status, 201, `push manifest ${reference} to ${name}: ${res.status} ${res.text()}`);
    return res;
  }

  /** Push a small image (config + layers + manifest) under `reference` (a tag, or its digest when omitted). */
  async pushImage(
    name: string,
    reference?: string,
    opts: { layers?: number; format?: 'oci' | 'docker'; layerSize?: number } = {},
  ): Promise<{ config: Content; layers: Content[]; manifest: Content }> {
    const docker = opts.format === 'docker';
    const layers = Array.from({ length: opts.layers ?? 2 }, () =>
      randomLayer(opts.layerSize ?? 1500, { mediaType: docker ? MediaType.DockerLayer : MediaType.OciLayerGzip }),
    );
    const config = imageConfig(layers, { mediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig });
    for (const b of [config, ...layers]) await this.pushBlob(name, b);
    const manifest = imageManifest({ config, layers, format: opts.format ?? 'oci' });
    await this.pushManifest(name, reference ?? manifest.digest, manifest);
    return { config, layers, manifest };
  }
}

export interface ErrorJson {
  errors: { code: string; message: string; detail?: unknown }[];
}

/** Status, JSON content type and `{"errors":[{"code": code, ...}]}` of an error response. */
export function assertError(res: HttpResult, status: number, code: string): ErrorJson {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}: ${res.text().slice(0, 300)}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = res.json<ErrorJson>();
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `no errors array in ${res.text()}`);
  assert.equal(body.errors[0]!.code, code, res.text().slice(0, 500));
  assert.equal(typeof body.errors[0]!.message, 'string');
  return body;
}

/** Path of a `Location` header (which may be absolute or relative). */
export function locationPath(res: HttpResult): string {
  const loc = res.headers.get('location');
  assert.ok(loc, 'no Location header');
  const u = new URL(loc, 'http://placeholder.invalid');
  return u.pathname + u.search;
}

/** Start an upload (POST, 202) and return its Location path. */
export async function startUpload(client: RegistryClient, name: string): Promise<string> {
  const res = await client.request('POST', `/v2/${name}/blobs/uploads/`);
  assert.equal(res.status, 202, res.text());
  return locationPath(res);
}

/** `location` with `?digest=` (or `&digest=` when it already has a query). */
export function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${digest}`;
}

/** Chunks of a buffer as an async iterable (a streamed, chunked-encoding body). */
export async function* chunksOf(data: Buffer, size = 16_384): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

/**
 * A registry for one describe block: started before its tests, stopped after. `suite.reg` and `suite.client` are
 * set once the `before` hook has run.
 */
export function registrySuite(): { reg: TestRegistry; client: RegistryClient } {
  const suite = {} as { reg: TestRegistry; client: RegistryClient };
  before(async () => {
    suite.reg = await startTestRegistry();
    suite.client = new RegistryClient(suite.reg.url);
  });
  after(async () => {
    await suite.reg?.stop();
  });
  return suite;
}

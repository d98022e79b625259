import { createHash, type Hash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DistributionError } from '../distribution/index.js';
import { StrataError } from '../errors/index.js';
import {
  type Descriptor,
  type Digest,
  digestAlgorithm,
  digestHex,
  digestOf,
  MediaType,
  type ParsedDocument,
  parseDocument,
} from '../oci/index.js';
import { isNotFound, pathFor, type StorageDriver } from './storage/index.js';

/**
 * The registry's data model over a StorageDriver: blobs once for everyone, repositories holding links (a blob is
 * readable from a repository only once pushed or mounted there), manifests as blobs plus revision links, tags as
 * links to manifest digests, referrers as links under the subject, uploads under the repository until committed.
 *
 * Nothing becomes visible before it is verified: an upload is hashed while it streams (or re-read when another
 * process took the earlier chunks), compared with the digest the client named, and only then moved into blobs/;
 * links are written after the blob they name. Every write is an atomic put or rename, so a killed server leaves
 * at worst an orphaned upload directory (purged after `staleAfter`) or an unlinked blob (collected by GC).
 */

export interface ManifestRecord {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
}

export interface UploadState {
  id: string;
  size: number;
  startedAt: Date;
}

/** Descriptor of a referrer, as the referrers API lists it. */
export interface ReferrerDescriptor extends Descriptor {
  artifactType?: string;
}

const FOREIGN_LAYER_TYPES = new Set<string>([
  MediaType.DockerForeignLayer,
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

/** Counts bytes and feeds a running sha256 while a chunk streams to storage. */
class ChunkMeter extends Transform {
  bytes = 0;
  constructor(readonly hash: Hash | undefined) {
    super({ highWaterMark: 1 << 20 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash?.update(chunk);
    cb(null, chunk);
  }
}

/** A small LRU of manifest documents: immutable by digest, read on every pull. */
class ManifestCache {
  readonly #items = new Map<string, ManifestRecord>();
  constructor(readonly max: number) {}
  get(d: string): ManifestRecord | undefined {
    const v = this.#items.get(d);
    if (v) {
      this.#items.delete(d);
      this.#items.set(d, v);
    }
    return v;
  }
  set(v: ManifestRecord): void {
    this.#items.set(v.digest, v);
    if (this.#items.size > this.max) this.#items.delete(this.#items.keys().next().value!);
  }
  delete(d: string): void {
    this.#items.delete(d);
  }
}

export class RegistryStore {
  /**
   * Running sha256 of uploads this process has streamed so far, keyed by upload id, valid only while `offset`
   * equals the upload's stored size. Another process (or a failed chunk) makes it stale: the digest is then
   * computed by re-reading the stored bytes.
   */
  readonly #hashes = new Map<string, { hash: Hash; offset: number }>();
  readonly #busy = new Set<string>();
  readonly #manifests = new ManifestCache(1024);

  /**
   * A known blob that a client is told about again (HEAD or GET through a repository, a mount, a re-push, a manifest
   * naming it) is touched when its last use is older than this: online GC (gc.ts) never deletes a blob used within
   * its grace period, which covers a push that found the blob present and sends the manifest using it a moment later.
   * Keep it well under the GC grace period (the server sets it from `gc.graceSeconds`).
   */
  blobTouchAfterMs = 60_000;

  constructor(readonly driver: StorageDriver) {}

  // ---------------------------------------------------------------- links and blobs

  async #readLink(path: string): Promise<string | undefined> {
    try {
      return (await this.driver.getContent(path)).toString('utf8').trim();
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async #writeLink(path: string, digest: string): Promise<void> {
    if ((await this.#readLink(path)) !== digest) await this.driver.putContent(path, digest);
  }

  async blobSize(digest: Digest): Promise<number | undefined> {
    const st = await this.driver.stat(pathFor({ kind: 'blobData', digest }));
    return st && !st.isDirectory ? st.size : undefined;
  }

  /** Size of a blob as repository `name` sees it: linked as a layer/config, or as a manifest revision. */
  async repoBlobSize(name: string, digest: Digest): Promise<number | undefined> {
    const linked =
      (await this.#readLink(pathFor({ kind: 'layerLink', name, digest }))) === digest ||
      (await this.#readLink(pathFor({ kind: 'revisionLink', name, digest }))) === digest;
    if (!linked) return undefined;
    const st = await this.driver.stat(pathFor({ kind: 'blobData', digest }));
    if (!st || st.isDirectory) return undefined;
    await this.touchBlob(digest, st.modified);
    return st.size;
  }

  /** When a blob was last written or touched (ms since the epoch), and its size; undefined when it has no data. */
  async blobLastUsed(digest: Digest): Promise<{ size: number; lastUsed: number } | undefined> {
    const [data, touched] = await Promise.all([
      this.driver.stat(pathFor({ kind: 'blobData', digest })),
      this.driver.stat(pathFor({ kind: 'blobTouched', digest })),
    ]);
    if (!data || data.isDirectory) return undefined;
    return { size: data.size, lastUsed: Math.max(data.modified.getTime(), touched?.modified.getTime() ?? 0) };
  }

  /**
   * Mark a blob as used now (its `touched` marker, an atomic put: works on any driver) unless it was written or
   * touched within `blobTouchAfterMs`. Storage that refuses writes takes no pushes either: nothing to protect then.
   */
  async touchBlob(digest: Digest, dataModified?: Date): Promise<void> {
    const now = Date.now();
    if (dataModified && now - dataModified.getTime() < this.blobTouchAfterMs) return;
    const marker = pathFor({ kind: 'blobTouched', digest });
    try {
      const st = await this.driver.stat(marker);
      if (st && now - st.modified.getTime() < this.blobTouchAfterMs) return;
      await this.driver.putContent(marker, new Date(now).toISOString());
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== 'EROFS' && code !== 'EACCES' && code !== 'EPERM') throw err;
    }
  }

  async readBlob(digest: Digest, start?: number, end?: number): Promise<Readable> {
    return this.driver.reader(pathFor({ kind: 'blobData', digest }), start, end);
  }

  /** Make an existing blob readable from `name` (cross-repository mount, or a re-push of a known blob). */
  async linkBlob(name: string, digest: Digest): Promise<void> {
    await this.#writeLink(pathFor({ kind: 'layerLink', name, digest }), digest);
    const st = await this.driver.stat(pathFor({ kind: 'blobData', digest }));
    if (st && !st.isDirectory) await this.touchBlob(digest, st.modified);
  }

  /** Remove `name`'s link to a blob; the bytes stay for other repositories until GC. */
  async unlinkBlob(name: string, digest: Digest): Promise<boolean> {
    const path = pathFor({ kind: 'layerLink', name, digest });
    if ((await this.#readLink(path)) === undefined) return false;
    await this.driver.delete(path.slice(0, -'/link'.length));
    return true;
  }

  async #putSmallBlob(digest: Digest, data: Uint8Array): Promise<void> {
    const st = await this.driver.stat(pathFor({ kind: 'blobData', digest }));
    if (st && !st.isDirectory && st.size === data.length) return this.touchBlob(digest, st.modified);
    await this.driver.putContent(pathFor({ kind: 'blobData', digest }), data);
  }

  /** A repository exists once something was pushed to it (an upload in progress or abandoned does not count). */
  async repositoryExists(name: string): Promise<boolean> {
    return isRepository(await this.driver.list(pathFor({ kind: 'repository', name })));
  }

  // ---------------------------------------------------------------- uploads

  async startUpload(name: string): Promise<UploadState> {
    const id = randomUUID();
    const startedAt = new Date();
    await this.driver.putContent(pathFor({ kind: 'uploadStartedAt', name, id }), startedAt.toISOString());
    await this.driver.putContent(pathFor({ kind: 'uploadData', name, id }), '');
    this.#hashes.set(id, { hash: createHash('sha256'), offset: 0 });
    return { id, size: 0, startedAt };
  }

  async uploadState(name: string, id: string): Promise<UploadState> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new DistributionError('BLOB_UPLOAD_UNKNOWN', { upload: id });
    const [data, started] = await Promise.all([
      this.driver.stat(pathFor({ kind: 'uploadData', name, id })),
      this.#readLink(pathFor({ kind: 'uploadStartedAt', name, id })),
    ]);
    if (!data || data.isDirectory || started === undefined) {
      throw new DistributionError('BLOB_UPLOAD_UNKNOWN', { upload: id });
    }
    return { id, size: data.size, startedAt: new Date(started) };
  }

  /**
   * Append `body` to upload `id`. `range` (from Content-Range) must start where the upload ends, else 416.
   * Returns the new size. Bytes that arrived before a client disconnect stay: the client resumes from the size
   * the status request reports.
   */
  async appendChunk(
    name: string,
    id: string,
    body: Readable,
    opts: { range?: { start: number; end: number }; length?: number; onBytes?: (n: number) => void } = {},
  ): Promise<number> {
    const state = await this.uploadState(name, id);
    if (this.#busy.has(id)) {
      throw new DistributionError('BLOB_UPLOAD_INVALID', {
        upload: id,
        reason: 'another request is writing this upload',
      });
    }
    if (opts.range && opts.range.start !== state.size) {
      throw new DistributionError(
        'BLOB_UPLOAD_INVALID',
        { upload: id, expectedStart: state.size, got: opts.range.start },
        {
          status: 416,
          message: `chunk out of order: the upload holds ${state.size} bytes, the chunk starts at ${opts.range.start}`,
          headers: { Range: rangeHeader(state.size) },
        },
      );
    }
    if (opts.range && opts.length !== undefined && opts.range.end - opts.range.start + 1 !== opts.length) {
      throw new DistributionError('SIZE_INVALID', { contentRange: opts.range, contentLength: opts.length });
    }
    this.#busy.add(id);
    const running = this.#hashes.get(id);
    const hash = running && running.offset === state.size ? running.hash : undefined;
    if (!hash) this.#hashes.delete(id);
    const meter = new ChunkMeter(hash);
    try {
      const out = await this.driver.writer(pathFor({ kind: 'uploadData', name, id }), { append: true });
      await pipeline(body, meter, out);
    } catch (err) {
      // Part of the chunk may be stored: the running hash no longer matches; the digest is recomputed at the end.
      this.#hashes.delete(id);
      throw err;
    } finally {
      this.#busy.delete(id);
      opts.onBytes?.(meter.bytes);
    }
    const size = state.size + meter.bytes;
    if (hash) this.#hashes.set(id, { hash, offset: size });
    if (opts.length !== undefined && meter.bytes !== opts.length) {
      throw new DistributionError('SIZE_INVALID', { expected: opts.length, received: meter.bytes });
    }
    // A streamed chunk (no Content-Length) must still be as long as its Content-Range says.
    if (opts.range && meter.bytes !== opts.range.end - opts.range.start + 1) {
      throw new DistributionError('SIZE_INVALID', { contentRange: opts.range, received: meter.bytes });
    }
    return size;
  }

  /**
   * Finish an upload: verify the stored bytes hash to `digest`, then move them into blobs/ and link the blob into
   * the repository. A mismatch removes the upload and answers DIGEST_INVALID; nothing becomes visible.
   */
  async commitUpload(name: string, id: string, digest: Digest): Promise<number> {
    const state = await this.uploadState(name, id);
    const dataPath = pathFor({ kind: 'uploadData', name, id });
    let hex: string;
    const running = this.#hashes.get(id);
    if (running && running.offset === state.size && digestAlgorithm(digest) === 'sha256') {
      hex = running.hash.digest('hex');
    } else {
      const h = createHash(digestAlgorithm(digest));
      await pipeline(await this.driver.reader(dataPath), async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) h.update(chunk);
      });
      hex = h.digest('hex');
    }
    this.#hashes.delete(id);
    if (hex !== digestHex(digest)) {
      await this.cancelUpload(name, id);
      throw new DistributionError(
        'DIGEST_INVALID',
        { expected: digest, actual: `${digestAlgorithm(digest)}:${hex}` },
        { message: `uploaded content does not match digest ${digest}` },
      );
    }
    const target = pathFor({ kind: 'blobData', digest });
    // Always rename, even when someone stored the same bytes first: the content is identical, the rename is
    // atomic, and the fresh mtime keeps GC (which may be about to delete an old unreferenced copy) off the blob.
    await this.driver.move(dataPath, target);
    await this.driver.delete(pathFor({ kind: 'upload', name, id }));
    await this.linkBlob(name, digest);
    return state.size;
  }

  async cancelUpload(name: string, id: string): Promise<void> {
    await this.uploadState(name, id);
    this.#hashes.delete(id);
    await this.driver.delete(pathFor({ kind: 'upload', name, id }));
  }

  /** Remove uploads started before `olderThan` in every repository; returns how many went. */
  async purgeUploads(olderThan: Date): Promise<number> {
    let purged = 0;
    for (const name of await this.#walkRepositories((children) => children.includes('_uploads'))) {
      for (const id of await this.driver.list(pathFor({ kind: 'uploads', name }))) {
        const started = await this.#readLink(pathFor({ kind: 'uploadStartedAt', name, id }));
        const st = await this.driver.stat(pathFor({ kind: 'uploadData', name, id }));
        const last = Math.max(started ? Date.parse(started) || 0 : 0, st ? st.modified.getTime() : 0);
        if (last < olderThan.getTime()) {
          this.#hashes.delete(id);
          await this.driver.delete(pathFor({ kind: 'upload', name, id }));
          purged++;
        }
      }
    }
    return purged;
  }

  // ---------------------------------------------------------------- manifests

  /** Parse and check a pushed manifest: schema, and every blob / child manifest it names present in `name`. */
  async #validate(name: string, bytes: Buffer, contentType: string | undefined): Promise<ParsedDocument> {
    let doc: ParsedDocument;
    try {
      doc = parseDocument(bytes, { mediaType: contentType });
    } catch (err) {
      if (err instanceof StrataError)
        throw new DistributionError('MANIFEST_INVALID', { reason: err.message }, { message: err.message });
      throw err;
    }
    const missing: string[] = [];
    if (doc.kind === 'manifest') {
      const blobs = [doc.manifest.config, ...doc.manifest.layers].filter(
        (d) => !FOREIGN_LAYER_TYPES.has(d.mediaType) && !(d.urls && d.urls.length > 0),
      );
      const sizes = await Promise.all(blobs.map((d) => this.repoBlobSize(name, d.digest)));
      blobs.forEach((d, i) => {
        // An OCI artifact may name the empty config without pushing it; registries commonly accept that.
        if (sizes[i] === undefined && !(d === doc.manifest.config && d.size === 2 && d.digest === EMPTY_JSON_DIGEST)) {
          missing.push(d.digest);
        } else if (sizes[i] !== undefined && sizes[i] !== d.size) {
          throw new DistributionError(
            'MANIFEST_INVALID',
            { digest: d.digest, size: d.size, stored: sizes[i] },
            { message: `manifest says blob ${d.digest} has ${d.size} bytes; the registry holds ${sizes[i]}` },
          );
        }
      });
    } else {
      const present = await Promise.all(doc.index.manifests.map((d) => this.#hasRevision(name, d.digest)));
      doc.index.manifests.forEach((d, i) => {
        if (!present[i]) missing.push(d.digest);
      });
    }
    if (missing.length > 0) {
      throw new DistributionError(
        'MANIFEST_BLOB_UNKNOWN',
        { digests: missing },
        {
          message: `manifest references ${missing.length === 1 ? 'a blob' : 'blobs'} not in repository ${name}: ${missing.join(', ')}`,
        },
      );
    }
    return doc;
  }

  async #hasRevision(name: string, digest: Digest): Promise<boolean> {
    return (await this.#readLink(pathFor({ kind: 'revisionLink', name, digest }))) === digest;
  }

  /**
   * Store a manifest under a tag or a digest. The blob goes first, then the revision link, the referrer link,
   * and the tag last: a reader following the tag always finds everything behind it.
   */
  async putManifest(
    name: string,
    reference: string,
    bytes: Buffer,
    contentType: string | undefined,
  ): Promise<{ digest: Digest; subject?: Digest }> {
    const byDigest = reference.includes(':');
    const digest = digestOf(bytes, byDigest ? digestAlgorithm(reference as Digest) : 'sha256');
    if (byDigest && digest !== reference) {
      throw new DistributionError(
        'DIGEST_INVALID',
        { expected: reference, actual: digest },
        { message: `manifest content hashes to ${digest}, not ${reference}` },
      );
    }
    const doc = await this.#validate(name, bytes, contentType);
    const mediaType = doc.mediaType;
    await this.#putSmallBlob(digest, bytes);
    // Rewritten even when unchanged: a re-push makes the revision young again for the untagged-age retention rule.
    await this.driver.putContent(pathFor({ kind: 'revisionLink', name, digest }), digest);
    const subject = (doc.kind === 'manifest' ? doc.manifest.subject : doc.index.subject)?.digest;
    if (subject) await this.#writeLink(pathFor({ kind: 'referrerLink', name, subject, digest }), digest);
    if (!byDigest) await this.driver.putContent(pathFor({ kind: 'tagCurrentLink', name, tag: reference }), digest);
    this.#manifests.set({ digest, mediaType, bytes });
    return subject ? { digest, subject } : { digest };
  }

  async resolveTag(name: string, tag: string): Promise<Digest | undefined> {
    return (await this.#readLink(pathFor({ kind: 'tagCurrentLink', name, tag }))) as Digest | undefined;
  }

  /** A manifest by tag or digest, as repository `name` holds it. */
  async getManifest(name: string, reference: string): Promise<ManifestRecord | undefined> {
    const digest = reference.includes(':') ? (reference as Digest) : await this.resolveTag(name, reference);
    if (!digest || !(await this.#hasRevision(name, digest))) return undefined;
    const cached = this.#manifests.get(digest);
    if (cached) return cached;
    let bytes: Buffer;
    try {
      bytes = await this.driver.getContent(pathFor({ kind: 'blobData', digest }));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const record = { digest, mediaType: manifestMediaType(bytes), bytes };
    this.#manifests.set(record);
    return record;
  }

  /**
   * Delete by digest: the revision, every tag pointing at it, and its referrer link. Delete by tag: the tag
   * only. The blob bytes stay until GC finds nothing referencing them.
   */
  async deleteManifest(name: string, reference: string): Promise<boolean> {
    if (!reference.includes(':')) {
      if ((await this.resolveTag(name, reference)) === undefined) return false;
      await this.driver.delete(pathFor({ kind: 'tag', name, tag: reference }));
      return true;
    }
    const digest = reference as Digest;
    const record = await this.getManifest(name, digest);
    if (!record) return false;
    for (const tag of await this.tags(name)) {
      if ((await this.resolveTag(name, tag)) === digest) await this.driver.delete(pathFor({ kind: 'tag', name, tag }));
    }
    const subject = subjectOf(record.bytes);
    if (subject) {
      await this.driver.delete(pathFor({ kind: 'referrerLink', name, subject, digest }).slice(0, -'/link'.length));
    }
    await this.driver.delete(pathFor({ kind: 'revisionLink', name, digest }).slice(0, -'/link'.length));
    this.#manifests.delete(digest);
    return true;
  }

  async tags(name: string): Promise<string[]> {
    return this.driver.list(pathFor({ kind: 'tags', name }));
  }

  /** Every manifest revision of a repository (digests). */
  async revisions(name: string): Promise<Digest[]> {
    const out: Digest[] = [];
    const base = pathFor({ kind: 'revisions', name });
    for (const alg of await this.driver.list(base)) {
      for (const hex of await this.driver.list(`${base}/${alg}`)) out.push(`${alg}:${hex}` as Digest);
    }
    return out;
  }

  /** Blobs linked into a repository's _layers. */
  async layerLinks(name: string): Promise<Digest[]> {
    const out: Digest[] = [];
    const base = pathFor({ kind: 'layers', name });
    for (const alg of await this.driver.list(base)) {
      for (const hex of await this.driver.list(`${base}/${alg}`)) out.push(`${alg}:${hex}` as Digest);
    }
    return out;
  }

  /** Manifests whose subject is `subject`, as descriptors for the referrers API. */
  async referrers(name: string, subject: Digest): Promise<ReferrerDescriptor[]> {
    const base = pathFor({ kind: 'referrers', name, subject });
    const out: ReferrerDescriptor[] = [];
    for (const alg of await this.driver.list(base)) {
      for (const hex of await this.driver.list(`${base}/${alg}`)) {
        const record = await this.getManifest(name, `${alg}:${hex}`);
        if (!record) continue;
        const doc = JSON.parse(record.bytes.toString('utf8')) as {
          artifactType?: string;
          config?: { mediaType?: string };
          annotations?: Record<string, string>;
        };
        const artifactType = doc.artifactType ?? doc.config?.mediaType;
        out.push({
          mediaType: record.mediaType,
          digest: record.digest,
          size: record.bytes.length,
          ...(artifactType ? { artifactType } : {}),
          ...(doc.annotations ? { annotations: doc.annotations } : {}),
        });
      }
    }
    return out.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  }

  /**
   * Every repository name, sorted (names hold slashes: a directory is a repository when it has blob links or
   * manifests; one holding only uploads, say a push that failed its digest check, is not listed).
   */
  async repositories(): Promise<string[]> {
    return this.#walkRepositories(isRepository);
  }

  /** Names of the directories under repositories/ whose children satisfy `match`, sorted. */
  async #walkRepositories(match: (children: string[]) => boolean): Promise<string[]> {
    const out: string[] = [];
    const walk = async (prefix: string): Promise<void> => {
      const dir = prefix ? pathFor({ kind: 'repository', name: prefix }) : pathFor({ kind: 'repositories' });
      const children = await this.driver.list(dir);
      if (prefix && match(children)) out.push(prefix);
      for (const c of children) {
        if (c.startsWith('_')) continue;
        const st = await this.driver.stat(`${dir}/${c}`);
        if (st?.isDirectory) await walk(prefix ? `${prefix}/${c}` : c);
      }
    };
    await walk('');
    return out.sort();
  }
}

/** Children of a repository directory that make it a repository (pushed blobs or manifests). */
function isRepository(children: string[]): boolean {
  return children.includes('_layers') || children.includes('_manifests');
}

export const EMPTY_JSON_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

/** The Range header of an upload status: `0-<last byte>`, `0-0` when empty (as distribution sends it). */
export function rangeHeader(size: number): string {
  return `0-${size > 0 ? size - 1 : 0}`;
}

function manifestMediaType(bytes: Buffer): string {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (typeof v.mediaType === 'string') return v.mediaType;
    return Array.isArray(v.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  } catch {
    return MediaType.OciManifest;
  }
}

function subjectOf(bytes: Buffer): Digest | undefined {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as { subject?: { digest?: unknown } };
    return typeof v.subject?.digest === 'string' ? (v.subject.digest as Digest) : undefined;
  } catch {
    return undefined;
  }
}

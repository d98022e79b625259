import { open as openFile, readFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { decompressStream, layerMediaType } from '../archive/index.js';
import type { ContentStore, Ingested } from '../content/index.js';
import { DigestMismatchError, StrataError } from '../errors/index.js';
import {
  Annotation,
  type Descriptor,
  type Digest,
  hostPlatform,
  isDigest,
  type ImageManifest,
  parseDigest,
  parseDocument,
  parseImageConfig,
  selectManifest,
} from '../oci/index.js';
import { parseReference } from '../reference/index.js';
import type { Snapshotter } from '../snapshot/index.js';
import { layerPairs } from './image.js';
import { type UnpackSource, unpackLayers } from './unpack.js';
import { encodeImage } from './write.js';

export interface LoadedImage {
  descriptor: Descriptor;
  /** Full normalized references the archive names this image by (may be empty). */
  references: string[];
}

const MAX_JSON = 4 << 20;

function archiveError(problem: string, cause?: unknown): StrataError {
  return new StrataError('INVALID_ARGUMENT', `invalid image archive: ${problem}`, {
    hint: 'give a tar written by `strata save`, `docker save`, `podman save` or `skopeo copy` (docker-archive or oci-archive)',
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Everything the archive held, staged in ingest/ (verified, invisible) until the load is accepted. */
class Staged {
  readonly files = new Map<string, Ingested>();
  readonly links = new Map<string, string>();
  readonly used = new Set<Ingested>();

  resolve(name: string): string {
    let cur = name;
    for (let i = 0; i < 16 && this.links.has(cur); i++) {
      const target = this.links.get(cur) as string;
      cur = posix.normalize(target.startsWith('/') ? target.slice(1) : posix.join(posix.dirname(cur), target));
    }
    return cur;
  }

  file(name: string, what: string): Ingested {
    const f = this.files.get(this.resolve(normalizeName(name)));
    if (!f) throw archiveError(`${what} "${name}" is listed but not in the archive`);
    this.used.add(f);
    return f;
  }

  async json(name: string, what: string): Promise<Buffer> {
    const f = this.file(name, what);
    if (f.size > MAX_JSON) throw archiveError(`${what} "${name}" is ${f.size} bytes, over the ${MAX_JSON} allowed`);
    return readFile(f.path);
  }

  async abort(): Promise<void> {
    for (const f of this.files.values()) await f.abort();
  }
}

function normalizeName(name: string): string {
  return posix.normalize(name.replace(/^(\.\/|\/)+/, '')).replace(/\/$/, '');
}

async function stageEntries(store: ContentStore, src: Readable, staged: Staged, signal?: AbortSignal): Promise<void> {
  const extract = tar.extract();
  const feeding = pipeline(decompressStream(src), extract, signal ? { signal } : {}).catch((err: unknown) => {
    extract.destroy(err as Error);
  });
  try {
    for await (const entry of extract) {
      const name = normalizeName(entry.header.name);
      if (entry.header.type === 'symlink' || entry.header.type === 'link') {
        staged.links.set(name, entry.header.linkname ?? '');
        entry.resume();
        continue;
      }
      if (entry.header.type !== 'file' && entry.header.type !== 'contiguous-file') {
        entry.resume();
        continue;
      }
      // Blobs in an OCI layout are named by their digest: hold them to it.
      const m = /^blobs\/(sha256|sha512)\/([0-9a-f]+)$/.exec(name);
      const expected = m && isDigest(`${m[1]}:${m[2]}`) ? parseDigest(`${m[1]}:${m[2]}`) : undefined;
      const ing = await store.ingest(
        entry as unknown as Readable,
        { size: entry.header.size ?? 0, what: `archive entry "${name}"`, ...(expected ? { digest: expected } : {}) },
        signal,
      );
      const prev = staged.files.get(name);
      if (prev) await prev.abort();
      staged.files.set(name, ing);
    }
  } catch (err) {
    if (err instanceof StrataError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    if (/unexpected end|premature|truncat/i.test(msg)) throw archiveError('the archive is truncated', err);
    throw archiveError(`not a readable tar archive (${msg})`, err);
  }
  await feeding;
}

async function isGzip(path: string): Promise<boolean> {
  const fh = await openFile(path, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(2), 0, 2, 0);
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

interface Candidate {
  descriptor: Descriptor;
  manifest: ImageManifest;
  references: string[];
  layers: UnpackSource[];
}

function refsFromAnnotations(ann: Record<string, string> | undefined): string[] {
  const name = ann?.[Annotation.ImageName] ?? ann?.[Annotation.RefName];
  // A bare tag ("latest", as docker writes ref.name) names no repository: such an image loads untagged.
  if (!name || /^[\w][\w.-]{0,127}$/.test(name)) return [];
  return [parseReference(name).toString()];
}

async function blobSource(
  store: ContentStore,
  staged: Staged,
  d: Digest,
  what: string,
): Promise<() => Promise<Readable>> {
  const name = `blobs/${d.replace(':', '/')}`;
  if (staged.files.has(staged.resolve(name))) {
    const f = staged.file(name, what);
    return async () => createReadStream(f.path);
  }
  if (await store.has(d)) return () => store.read(d);
  throw archiveError(`${what} ${d} is missing from the archive`);
}

async function blobBytes(store: ContentStore, staged: Staged, d: Digest, what: string): Promise<Buffer> {
  const name = `blobs/${d.replace(':', '/')}`;
  if (staged.files.has(staged.resolve(name))) return staged.json(name, what);
  if (await store.has(d)) return store.readBytes(d);
  throw archiveError(`${what} ${d} is missing from the archive`);
}

async function ociCandidates(store: ContentStore, staged: Staged): Promise<Candidate[]> {
  const index = parseDocument(await staged.json('index.json', 'index.json'), {});
  if (index.kind !== 'index') throw archiveError('index.json is not an image index');
  staged.file('oci-layout', 'oci-layout');
  const out: Candidate[] = [];
  for (const [i, desc] of index.index.manifests.entries()) {
    const where = `index.json manifests[${i}]`;
    let doc = parseDocument(await blobBytes(store, staged, desc.digest, `${where} manifest`), {
      mediaType: desc.mediaType,
    });
    if (doc.kind === 'index') {
      const chosen = selectManifest(doc.index, hostPlatform());
      if (!chosen) throw archiveError(`${where}: the image index has no manifest for this platform`);
      doc = parseDocument(await blobBytes(store, staged, chosen.digest, `${where} platform manifest`), {
        mediaType: chosen.mediaType,
      });
      if (doc.kind !== 'manifest') throw archiveError(`${where}: nested image indexes are not supported`);
    }
    const manifest = doc.manifest;
    const config = parseImageConfig(await blobBytes(store, staged, manifest.config.digest, `${where} config`));
    const layers: UnpackSource[] = [];
    for (const [j, [l, diffId]] of layerPairs(manifest, config, where).entries()) {
      layers.push({
        diffId,
        open: await blobSource(store, staged, l.digest, `${where} layer ${j}`),
        what: `layer ${j} (${l.digest})`,
      });
    }
    out.push({ descriptor: desc, manifest, references: refsFromAnnotations(desc.annotations), layers });
  }
  return out;
}

async function dockerCandidates(
  store: ContentStore,
  staged: Staged,
): Promise<{ candidates: Candidate[]; extra: Ingested[] }> {
  let list: unknown;
  try {
    list = JSON.parse((await staged.json('manifest.json', 'manifest.json')).toString('utf8'));
  } catch (err) {
    if (err instanceof StrataError) throw err;
    throw archiveError('manifest.json is not valid JSON', err);
  }
  if (!Array.isArray(list)) throw archiveError('manifest.json must be a JSON array');
  const out: Candidate[] = [];
  const extra: Ingested[] = [];
  for (const [i, item] of list.entries()) {
    const where = `manifest.json[${i}]`;
    const e = item as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
    if (typeof e.Config !== 'string') throw archiveError(`${where}.Config must be a string`);
    if (!Array.isArray(e.Layers) || !e.Layers.every((l) => typeof l === 'string')) {
      throw archiveError(`${where}.Layers must be an array of strings`);
    }
    const tags = e.RepoTags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string'))
      throw archiveError(`${where}.RepoTags must be strings`);
    const configFile = staged.file(e.Config, `${where} config`);
    const rawConfig = await staged.json(e.Config, `${where} config`);
    const config = parseImageConfig(rawConfig);
    const base = posix.basename(e.Config).replace(/\.json$/, '');
    if (/^[0-9a-f]{64}$/.test(base) && configFile.digest !== `sha256:${base}`) {
      throw new DigestMismatchError(`archive entry "${e.Config}"`, `sha256:${base}`, configFile.digest);
    }
    if (config.rootfs.diff_ids.length !== e.Layers.length) {
      throw archiveError(
        `${where} lists ${e.Layers.length} layers but its config has ${config.rootfs.diff_ids.length} diff_ids`,
      );
    }
    const layerDescs = [];
    const layers: UnpackSource[] = [];
    for (const [j, name] of (e.Layers as string[]).entries()) {
      const f = staged.file(name, `${where} layer ${j}`);
      const diffId = config.rootfs.diff_ids[j] as Digest;
      const gz = await isGzip(f.path);
      if (!gz && f.digest !== diffId) {
        throw new DigestMismatchError(`layer ${j} ("${name}") of ${where}`, diffId, f.digest, {
          hint: "the layer's bytes do not match the config's rootfs.diff_ids: the archive is corrupt; nothing was loaded",
        });
      }
      layerDescs.push({ digest: f.digest, size: f.size, mediaType: layerMediaType('oci', gz ? 'gzip' : 'none') });
      layers.push({ diffId, open: async () => createReadStream(f.path), what: `layer ${j} ("${name}")` });
    }
    // The config's own bytes (its digest is the image ID), whatever key order or spacing they have.
    const enc = encodeImage(config, layerDescs, 'oci', rawConfig);
    const manifestIng = await store.ingest(enc.rawManifest, { digest: enc.descriptor.digest, what: 'image manifest' });
    extra.push(manifestIng);
    const references = tags.map((t: string) => parseReference(t).toString());
    out.push({ descriptor: enc.descriptor, manifest: enc.manifest, references, layers });
  }
  return { candidates: out, extra };
}

/**
 * `strata load`: read a docker-archive or OCI-layout tar (optionally gzip-compressed) from a stream. Every entry is
 * staged in ingest/ and verified (blobs against their names, layers against the config's diff_ids while they
 * unpack); only when the whole archive checks out are the blobs committed. Any error leaves the store as it was.
 */
export async function loadArchive(
  store: ContentStore,
  snapshots: Snapshotter,
  src: Readable,
  opts: { signal?: AbortSignal } = {},
): Promise<LoadedImage[]> {
  const staged = new Staged();
  const extra: Ingested[] = [];
  const createdSnapshots: Digest[] = [];
  try {
    await stageEntries(store, src, staged, opts.signal);
    if (staged.files.size === 0) throw archiveError('the archive is empty');
    let candidates: Candidate[];
    if (staged.files.has('oci-layout') && staged.files.has('index.json')) {
      candidates = await ociCandidates(store, staged);
    } else if (staged.files.has('manifest.json')) {
      const d = await dockerCandidates(store, staged);
      candidates = d.candidates;
      extra.push(...d.extra);
    } else {
      throw archiveError('it has neither manifest.json (docker-archive) nor oci-layout and index.json (OCI layout)');
    }
    for (const c of candidates) {
      const res = await unpackLayers(snapshots, c.layers, opts.signal ? { signal: opts.signal } : {});
      createdSnapshots.push(...res.created);
    }
    // Accepted: make the blobs the images use visible. Other entries (legacy json, VERSION files) are dropped.
    for (const f of staged.files.values()) {
      if (staged.used.has(f)) await f.commit();
      else await f.abort();
    }
    for (const f of extra) await f.commit();
    return candidates.map((c) => ({ descriptor: c.descriptor, references: c.references }));
  } catch (err) {
    await staged.abort();
    for (const f of extra) await f.abort();
    for (const s of createdSnapshots) await snapshots.remove(s);
    throw err;
  }
}

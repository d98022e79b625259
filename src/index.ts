/**
 * strata: the public library API. `Strata.open()` opens a root directory (an OCI image layout plus snapshots) and
 * offers what the CLI does, as plain async methods that return data and throw StrataError.
 *
 *   const strata = await Strata.open({ root: '/var/lib/strata' });
 *   await strata.importImage('rootfs.tar', 'busybox:latest');
 *   for (const img of await strata.listImages()) console.log(img.repository, img.tag, img.id);
 */
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import {
  type AttachIO,
  type CommitOptions,
  type ContainerChange,
  ContainerManager,
  type ContainerRecord,
  type ContainerSummary,
  type CreateContainerOptions,
  type ExecContainerOptions,
  type LogEntry,
  type MonitorMessage,
  type ReadLogOptions,
  type RunHooks,
} from './container/index.js';
import type { BuildEvent, BuildResult } from './build/index.js';
import { ContentStore } from './content/index.js';
import { StrataError } from './errors/index.js';
import {
  type ArchiveFormat,
  type Image,
  importRootfs,
  type ImportOptions,
  loadArchive,
  openImage,
  saveImages,
} from './image/index.js';
import { collectGarbage, fsck, type FsckReport, type GcResult, NameStore, withLease } from './metadata/index.js';
import {
  chainIds,
  type Descriptor,
  type Digest,
  digestHex,
  type HistoryEntry,
  isDigest,
  type Platform,
} from './oci/index.js';
import { parseReference, type Reference, withTag } from './reference/index.js';
import type {
  AuthConfig,
  CopyResult,
  FileCredentialStore,
  ProgressFn,
  PushResult,
  RegistryTransport,
  CopyOptions as RemoteCopyOptions,
  PullOptions as RemotePullOptions,
  PushOptions as RemotePushOptions,
  Transport,
  TransportOptions,
} from './remote/index.js';

/**
 * The registry client and server are loaded when first used: a command such as `run` never pays for undici,
 * fastify, pino and jose (a third of the CLI's start-up).
 */
const remote = () => import('./remote/index.js');
import { Snapshotter } from './snapshot/index.js';

export type { BuildEvent, BuildResult } from './build/index.js';
export { StrataError, isStrataError } from './errors/index.js';
export type {
  AttachIO,
  BindMount,
  CommitOptions,
  ContainerChange,
  ContainerRecord,
  ContainerState,
  ContainerStatus,
  ContainerSummary,
  CreateContainerOptions,
  ExecContainerOptions,
  LogEntry,
  MonitorMessage,
  RunHooks,
} from './container/index.js';
export {
  mergeEnv,
  parseCpus,
  parseEnv,
  parseEnvFile,
  parseMemory,
  parsePidsLimit,
  parseVolume,
  validateSignal,
} from './container/index.js';
export type { ErrorCode } from './errors/index.js';
export type { Image, Layer, ArchiveFormat } from './image/index.js';
export type { FsckReport, FsckProblem, GcResult } from './metadata/index.js';
export type { Descriptor, Digest, ImageConfig, Platform } from './oci/index.js';
export { parseReference, type Reference } from './reference/index.js';
export { parsePlatform, formatPlatform, shortId } from './oci/index.js';
export type { ProgressEvent, ProgressFn, ProgressState, RegistryTransport } from './remote/index.js';
export type { CopiedBlob, CopyResult, PushedBlob, PushResult } from './remote/index.js';
export type { AuthConfig, CredentialStore, TransportOptions } from './remote/index.js';
export type {
  RegistryConfig,
  RegistryGcDeletion,
  RegistryGcOptions,
  RegistryGcResult,
  RunningRegistry,
} from './registry/index.js';

/** The registry server module (`startRegistry`, `registryGc`, its config), loaded on first use. */
export function registryServer(): Promise<typeof import('./registry/index.js')> {
  return import('./registry/index.js');
}

/** The CLI script next to this module (tsc's output), else the running script (the bundled CLI). */
function defaultCliScript(): string {
  try {
    return fileURLToPath(new URL('./cli/main.js', import.meta.url));
  } catch {
    return process.argv[1] ?? 'strata';
  }
}

/** Where strata keeps its state: $STRATA_ROOT, else /var/lib/strata for root, else $XDG_DATA_HOME/strata. */
export function defaultRoot(): string {
  if (process.env['STRATA_ROOT']) return resolve(process.env['STRATA_ROOT']);
  if (process.getuid?.() === 0) return '/var/lib/strata';
  return join(process.env['XDG_DATA_HOME'] ?? join(homedir(), '.local', 'share'), 'strata');
}

export interface ImageSummary {
  /** Familiar repository (busybox, localhost:5000/app) or "<none>". */
  repository: string;
  tag: string;
  reference: string | undefined;
  id: Digest;
  digest: Digest;
  created: string | undefined;
  /** Unpacked size of all layers (what docker shows as SIZE). */
  size: number;
}

export interface ResolvedImage {
  image: Image;
  descriptor: Descriptor;
  /** Every full reference that names this manifest. */
  references: string[];
}

export interface HistoryRow {
  id: string;
  created: string | undefined;
  createdBy: string;
  size: number;
  comment: string;
  emptyLayer: boolean;
}

export interface PullOptions extends Omit<RemotePullOptions, 'onProgress'> {
  onProgress?: ProgressFn;
  /** Pull every tag of the repository (the reference must name no tag or digest). */
  allTags?: boolean;
  /** A transport to use instead of one made for the reference's registry (tests, custom clients). */
  transport?: RegistryTransport;
  /** Registries reached over plain HTTP (127.0.0.1 and localhost always are). */
  insecureRegistries?: string[];
}

export interface PulledImage {
  /** The name the image is stored under (docker.io/library/busybox:latest, or repo@digest for a digest pull). */
  reference: string;
  /** The repository digest (the index's when the image came through one). */
  digest: Digest;
  /** The image ID (config digest). */
  id: Digest;
  manifest: Digest;
  upToDate: boolean;
  /** docker's closing status line: "Downloaded newer image for busybox:latest". */
  status: string;
  layers: { digest: Digest; size: number; state: 'exists' | 'downloaded' }[];
  bytesDownloaded: number;
}

export interface PushOptions extends Omit<RemotePushOptions, 'root'> {
  /** A transport to use instead of one made for the reference's registry (tests, custom clients). */
  transport?: RegistryTransport;
  /** Registries reached over plain HTTP (127.0.0.1 and localhost always are). */
  insecureRegistries?: string[];
}

export interface CopyOptions extends RemoteCopyOptions {
  /** Transports to use instead of ones made for each registry (tests, custom clients); not closed. */
  transport?: (registry: string) => RegistryTransport;
  /** Registries reached over plain HTTP (127.0.0.1 and localhost always are). */
  insecureRegistries?: string[];
}

export interface DiskUsage {
  images: { total: number; size: number; reclaimable: number };
  perImage: { reference: string; id: Digest; size: number; shared: number; unique: number }[];
  blobs: { count: number; size: number };
  snapshots: { count: number; size: number };
}

export class Strata {
  readonly root: string;
  readonly content: ContentStore;
  readonly snapshots: Snapshotter;
  readonly names: NameStore;
  readonly containers: ContainerManager;

  private constructor(root: string, monitorCommand?: string[]) {
    this.root = root;
    this.content = new ContentStore(root);
    this.snapshots = new Snapshotter(root);
    this.names = new NameStore(root);
    this.containers = new ContainerManager({
      root,
      content: this.content,
      snapshots: this.snapshots,
      names: this.names,
      resolveImage: (ref) => this.resolve(ref),
      // A detached container's monitor is the CLI's hidden `container monitor ID` command.
      monitorCommand: monitorCommand ?? [process.execPath, defaultCliScript(), '--root', root, 'container', 'monitor'],
    });
  }

  /**
   * Open (creating if needed) a root. `monitorCommand`: what runs a detached container's monitor (the container ID
   * is appended); default strata's own CLI.
   */
  static async open(opts: { root?: string; monitorCommand?: string[] } = {}): Promise<Strata> {
    const root = resolve(opts.root ?? defaultRoot());
    await mkdir(root, { recursive: true, mode: 0o700 });
    const s = new Strata(root, opts.monitorCommand);
    await s.names.init();
    return s;
  }

  /** Normalize a user-given name (busybox -> docker.io/library/busybox:latest). */
  static normalize(name: string): Reference {
    return parseReference(name);
  }

  /** strata's credentials: its auth file (`$STRATA_CONFIG_DIR/auth.json`, ...), then docker's config.json. */
  static async credentialStore(): Promise<FileCredentialStore> {
    return (await remote()).defaultCredentialStore();
  }

  /** Credentials already known for a registry (strata's auth file, docker's config.json and helpers). */
  static async storedCredentials(registry: string): Promise<AuthConfig | undefined> {
    const { defaultCredentialStore, credentialKey } = await remote();
    return defaultCredentialStore().get(credentialKey(registry || 'docker.io'));
  }

  /**
   * `login`: check the user name and password against the registry (`GET /v2/`, following a Bearer challenge to
   * the token server with them), then store them in strata's auth file (atomic write, mode 0600). Nothing is
   * stored when the check fails (UNAUTHENTICATED "unauthorized: ..."). An empty registry means Docker Hub.
   */
  static async login(
    registry: string,
    opts: {
      username: string;
      password: string;
      insecureRegistries?: string[];
      signal?: AbortSignal;
      /** false: only check (credentials that are already stored somewhere). */
      store?: boolean;
    },
  ): Promise<{ registry: string; authFile: string }> {
    const { credentialKey, defaultCredentialStore, verifyCredentials } = await remote();
    const host = credentialKey(registry || 'docker.io');
    await verifyCredentials(
      host,
      { username: opts.username, password: opts.password },
      {
        ...(opts.insecureRegistries ? { insecureRegistries: opts.insecureRegistries } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
    );
    const store = defaultCredentialStore();
    if (opts.store !== false) await store.store(host, { username: opts.username, password: opts.password });
    return { registry: host, authFile: store.authFile };
  }

  /** `logout`: remove the registry's entry from strata's auth file (docker's own files are never written). */
  static async logout(registry: string): Promise<{ registry: string; removed: boolean }> {
    const { credentialKey, defaultCredentialStore } = await remote();
    const host = credentialKey(registry || 'docker.io');
    return { registry: host, removed: await defaultCredentialStore().erase(host) };
  }

  /** A transport to a registry host with strata's credentials (auth, token cache, retries); close it when done. */
  async transport(registry: string, opts: TransportOptions = {}): Promise<Transport> {
    const { createTransport, defaultCredentialStore } = await remote();
    return createTransport(registry, { credentials: defaultCredentialStore(), ...opts });
  }

  async #roots(): Promise<{ descriptor: Descriptor; name: string }[]> {
    return (await this.names.roots()).map((d) => ({
      descriptor: d,
      name: d.annotations?.['org.opencontainers.image.ref.name'] ?? d.digest,
    }));
  }

  /**
   * Find a local image as docker does: by name[:tag], name@digest, full image ID or manifest digest, or a unique
   * prefix of an image ID (at least 4 hex characters).
   */
  async resolve(ref: string, opts: { platform?: Platform } = {}): Promise<ResolvedImage> {
    const tags = await this.names.list();
    const open = async (descriptor: Descriptor): Promise<ResolvedImage> => {
      const image = await openImage(this.content, descriptor, opts.platform ? { platform: opts.platform } : {});
      const references = tags.filter((t) => t.descriptor.digest === descriptor.digest).map((t) => t.reference);
      return { image, descriptor, references };
    };
    const idLike = /^(sha256:)?[0-9a-f]{4,64}$/.test(ref);
    if (idLike) {
      const hex = ref.replace(/^sha256:/, '');
      const matches = new Map<string, Descriptor>();
      for (const d of await this.names.roots()) {
        if (hex.length === 64 && digestHex(d.digest) === hex) matches.set(d.digest, d);
        try {
          const img = await openImage(this.content, d);
          if (digestHex(img.id).startsWith(hex)) matches.set(d.digest, d);
        } catch {
          // a broken image does not match anything; fsck reports it
        }
      }
      if (matches.size > 1) {
        throw new StrataError('INVALID_ARGUMENT', `"${ref}" matches more than one image`, {
          hint: 'give more characters of the ID',
        });
      }
      const only = [...matches.values()][0];
      if (only) return open(only);
    }
    let parsed: Reference;
    try {
      parsed = parseReference(ref);
    } catch (err) {
      if (idLike)
        throw new StrataError('NOT_FOUND', `no such image: ${ref}`, {
          hint: 'run `strata images` to see what is here',
        });
      throw err;
    }
    if (parsed.digest) {
      const byDigest = tags.find(
        (t) => t.descriptor.digest === parsed.digest && parseReference(t.reference).name === parsed.name,
      );
      if (byDigest) return open(byDigest.descriptor);
      if (await this.content.has(parsed.digest)) {
        return open({ mediaType: '', digest: parsed.digest, size: 0 });
      }
    } else {
      const hit = tags.find((t) => t.reference === parsed.toString());
      if (hit) return open(hit.descriptor);
    }
    throw new StrataError('NOT_FOUND', `no such image: ${parsed.familiar()}`, {
      hint: 'run `strata images` to see what is here, or pull or import it first',
    });
  }

  /** `import`: a single-layer image from a root filesystem tar or directory, tagged `name` (untagged without). */
  async importImage(
    source: string,
    name: string | undefined,
    opts: ImportOptions = {},
  ): Promise<{ reference: string | undefined; descriptor: Descriptor; id: Digest }> {
    const ref = name === undefined ? undefined : parseReference(name);
    if (ref?.digest)
      throw new StrataError('INVALID_ARGUMENT', `cannot import to a digest reference "${name}"`, {
        hint: 'give NAME[:TAG]',
      });
    return withLease(this.root, async () => {
      const descriptor = await importRootfs(this.content, this.snapshots, source, opts);
      if (ref) await this.names.set(ref.toString(), descriptor);
      else await this.names.addUntagged(descriptor);
      const image = await openImage(this.content, descriptor);
      return { reference: ref?.toString(), descriptor, id: image.id };
    });
  }

  async #imageSize(image: Image): Promise<number> {
    let size = 0;
    for (const c of chainIds(image.config.rootfs.diff_ids)) size += (await this.snapshots.stat(c))?.size ?? 0;
    return size;
  }

  async listImages(): Promise<ImageSummary[]> {
    const out: ImageSummary[] = [];
    const tags = await this.names.list();
    const named = new Set(tags.map((t) => t.descriptor.digest));
    for (const d of await this.names.roots()) {
      if (named.has(d.digest)) continue;
      const image = await openImage(this.content, d);
      const size = await this.#imageSize(image);
      out.push({
        repository: '<none>',
        tag: '<none>',
        reference: undefined,
        id: image.id,
        digest: d.digest,
        created: image.config.created,
        size,
      });
    }
    for (const t of tags) {
      const image = await openImage(this.content, t.descriptor);
      const ref = parseReference(t.reference);
      const familiar = ref.familiar();
      const repository = ref.tag ? familiar.slice(0, familiar.length - ref.tag.length - 1) : familiar.split('@')[0]!;
      out.push({
        repository,
        tag: ref.tag ?? '<none>',
        reference: t.reference,
        id: image.id,
        digest: t.descriptor.digest,
        created: image.config.created,
        size: await this.#imageSize(image),
      });
    }
    return out.sort(
      (a, b) => (b.created ?? '').localeCompare(a.created ?? '') || a.repository.localeCompare(b.repository),
    );
  }

  async tag(source: string, target: string): Promise<string> {
    const { descriptor } = await this.resolve(source);
    const ref = parseReference(target);
    if (ref.digest)
      throw new StrataError('INVALID_ARGUMENT', `cannot tag with a digest "${target}"`, { hint: 'give NAME[:TAG]' });
    const { annotations: _a, ...plain } = descriptor;
    await this.names.set(ref.toString(), plain);
    return ref.toString();
  }

  /**
   * `rmi`: remove a tag. An image given by ID loses all its tags (refused when it has several, unless `force`).
   * Blobs stay until `pruneImages()`.
   */
  async removeImage(
    ref: string,
    opts: { force?: boolean } = {},
  ): Promise<{ untagged: string[]; deleted: Digest | undefined }> {
    const resolved = await this.resolve(ref);
    let targets: string[];
    const byName = (() => {
      try {
        const p = parseReference(ref);
        return resolved.references.includes(p.toString()) ? p.toString() : undefined;
      } catch {
        return undefined;
      }
    })();
    if (byName) targets = [byName];
    else {
      if (resolved.references.length > 1 && !opts.force) {
        throw new StrataError(
          'FAILED_PRECONDITION',
          `image ${ref} is referenced by ${resolved.references.length} tags`,
          {
            hint: 'remove the tags one by one, or pass --force',
          },
        );
      }
      targets = resolved.references;
    }
    // The last name of an image a container uses goes only with force; the image then stays, untagged.
    const leavesNone = resolved.references.every((r) => targets.includes(r));
    const users = leavesNone ? await this.containers.usersOf({ digest: resolved.descriptor.digest }) : [];
    if (users.length > 0 && !opts.force) {
      throw new StrataError(
        'FAILED_PRECONDITION',
        `conflict: unable to remove image ${ref} (must force) - container ${users[0]!.id.slice(0, 12)} is using it`,
        { hint: `remove the container first (strata rm ${users[0]!.name}), or pass --force` },
      );
    }
    for (const t of targets) await this.names.remove(t);
    if (resolved.references.length === 0 && users.length === 0)
      await this.names.removeDigest(resolved.descriptor.digest);
    if (users.length > 0) await this.names.addUntagged(resolved.descriptor);
    const remaining = (await this.names.list()).some((t) => t.descriptor.digest === resolved.descriptor.digest);
    return { untagged: targets, deleted: remaining || users.length > 0 ? undefined : resolved.image.id };
  }

  /** docker image inspect's object for one image. */
  async inspectImage(ref: string): Promise<Record<string, unknown>> {
    const { image, references } = await this.resolve(ref);
    const refs = references.map((r) => parseReference(r));
    const c = image.config;
    return {
      Id: image.id,
      RepoTags: refs.filter((r) => r.tag).map((r) => r.familiar()),
      RepoDigests: [...new Set(refs.map((r) => `${r.familiar().replace(/[:@][^/]*$/, '')}@${image.digest}`))],
      Parent: '',
      Comment: c.history?.at(-1)?.comment ?? '',
      Created: c.created,
      DockerVersion: '',
      Author: c.author ?? '',
      Config: c.config ?? {},
      Architecture: c.architecture,
      ...(c.variant ? { Variant: c.variant } : {}),
      Os: c.os,
      Size: await this.#imageSize(image),
      RootFS: { Type: 'layers', Layers: c.rootfs.diff_ids },
      Descriptor: { mediaType: image.mediaType, digest: image.digest, size: image.rawManifest.length },
    };
  }

  async history(ref: string): Promise<HistoryRow[]> {
    const { image } = await this.resolve(ref);
    const ids = chainIds(image.config.rootfs.diff_ids);
    const entries: HistoryEntry[] = image.config.history?.length
      ? image.config.history
      : image.config.rootfs.diff_ids.map(() => ({}));
    let layer = 0;
    const rows: HistoryRow[] = [];
    for (const h of entries) {
      let size = 0;
      if (!h.empty_layer) {
        const id = ids[layer++];
        if (id) size = (await this.snapshots.stat(id))?.size ?? 0;
      }
      rows.push({
        id: '<missing>',
        created: h.created,
        createdBy: h.created_by ?? '',
        size,
        comment: h.comment ?? '',
        emptyLayer: !!h.empty_layer,
      });
    }
    rows.reverse();
    if (rows[0]) rows[0].id = image.id;
    return rows;
  }

  /** `save`: write images to a docker-archive (default) or OCI-layout tar. */
  async save(
    refs: readonly string[],
    out: Writable,
    opts: { format?: ArchiveFormat; signal?: AbortSignal } = {},
  ): Promise<void> {
    if (refs.length === 0) throw new StrataError('INVALID_ARGUMENT', 'save needs at least one image');
    const entries = [];
    for (const r of refs) {
      const resolved = await this.resolve(r);
      let named: string[] = [];
      try {
        const p = parseReference(r);
        if (!p.digest && resolved.references.includes(p.toString())) named = [p.toString()];
      } catch {
        // an image ID: save it with all its tags, as docker does
      }
      if (named.length === 0) named = resolved.references;
      entries.push({
        image: resolved.image,
        references: named,
        familiar: named.map((n) => parseReference(n).familiar()),
        descriptor: {
          mediaType: resolved.descriptor.mediaType,
          digest: resolved.descriptor.digest,
          size: resolved.descriptor.size,
        },
      });
    }
    await saveImages(entries, out, opts.format ?? 'docker', this.snapshots, opts.signal ? { signal: opts.signal } : {});
  }

  /** `load`: images from a docker-archive or OCI-layout tar stream; tags them as the archive names them. */
  async load(
    src: Readable,
    opts: { signal?: AbortSignal } = {},
  ): Promise<{ references: string[]; id: Digest; digest: Digest }[]> {
    return withLease(this.root, async () => {
      const loaded = await loadArchive(this.content, this.snapshots, src, opts);
      const out = [];
      for (const l of loaded) {
        for (const r of l.references)
          await this.names.set(r, {
            mediaType: l.descriptor.mediaType,
            digest: l.descriptor.digest,
            size: l.descriptor.size,
          });
        if (l.references.length === 0) await this.names.addUntagged(l.descriptor);
        const image = await openImage(this.content, l.descriptor);
        out.push({ references: l.references, id: image.id, digest: l.descriptor.digest });
      }
      return out;
    });
  }

  /**
   * `pull`: fetch an image (or, with `allTags`, every tag of a repository) from its registry into the store: only
   * the blobs the store lacks are downloaded, verified while they stream and unpacked as they arrive; an interrupted
   * download resumes where it stopped. The image is tagged under a lease, so garbage collection cannot race it.
   */
  async pull(name: string, opts: PullOptions = {}): Promise<PulledImage[]> {
    const ref = parseReference(name, opts.allTags ? { defaultTag: '' } : {});
    if (opts.allTags && (ref.tag !== undefined || ref.digest !== undefined)) {
      throw new StrataError('INVALID_ARGUMENT', "tag can't be used with --all-tags/-a", {
        hint: 'give the repository name alone, for example busybox',
      });
    }
    const { allTags: _a, transport: given, insecureRegistries, ...pullOpts } = opts;
    const { listTags, pullImage } = await remote();
    const transport = given ?? (await this.#transport(ref.registry, insecureRegistries));
    try {
      const refs = opts.allTags
        ? (await listTags(transport, ref.repository, opts.signal ? { signal: opts.signal } : {}))
            .sort()
            .map((t) => withTag(ref, t))
        : [ref];
      if (refs.length === 0) {
        throw new StrataError('NOT_FOUND', `repository ${ref.familiar()} has no tags`, {
          hint: 'push an image to it first',
        });
      }
      const out: PulledImage[] = [];
      for (const r of refs) {
        out.push(
          await withLease(this.root, async () => {
            const res = await pullImage(transport, this.content, this.snapshots, r, pullOpts);
            const stored = r.digest ? `${r.name}@${res.descriptor.digest}` : r.toString();
            const before = await this.names.get(stored);
            await this.names.set(stored, {
              mediaType: res.descriptor.mediaType,
              digest: res.descriptor.digest,
              size: res.descriptor.size,
            });
            const upToDate = before?.digest === res.descriptor.digest && res.newBlobs === 0;
            const status = `${upToDate ? 'Image is up to date' : 'Downloaded newer image'} for ${r.familiar()}`;
            opts.onProgress?.({ kind: 'result', reference: r.toString(), digest: res.digest, status });
            return {
              reference: stored,
              digest: res.digest,
              id: res.id,
              manifest: res.manifest.digest,
              upToDate,
              status,
              layers: res.layers,
              bytesDownloaded: res.bytesDownloaded,
            };
          }),
        );
      }
      return out;
    } finally {
      if (!given) await transport.close();
    }
  }

  /**
   * `push`: put a local image on its registry. Only blobs the registry lacks move: HEAD first, then a
   * cross-repository mount from a repository of the same registry known to hold the blob, else an upload (chunked
   * and resumable when large, bytes as stored); the manifest is put last. The blobs' whereabouts are recorded for
   * later mounts.
   */
  async push(name: string, opts: PushOptions = {}): Promise<PushResult> {
    const ref = parseReference(name);
    let descriptor: Descriptor | undefined;
    if (ref.digest) {
      const hit = (await this.names.list()).find(
        (t) => t.descriptor.digest === ref.digest && parseReference(t.reference).name === ref.name,
      );
      descriptor =
        hit?.descriptor ??
        ((await this.content.has(ref.digest)) ? { mediaType: '', digest: ref.digest, size: 0 } : undefined);
    } else {
      descriptor = await this.names.get(ref.toString());
    }
    if (!descriptor) {
      throw new StrataError('NOT_FOUND', `An image does not exist locally with the tag: ${ref.familiar()}`, {
        hint: `tag an image first: strata tag IMAGE ${ref.familiar()}`,
      });
    }
    const { transport: given, insecureRegistries, ...pushOpts } = opts;
    const { pushImage } = await remote();
    const transport = given ?? (await this.#transport(ref.registry, insecureRegistries));
    const target = descriptor;
    try {
      return await withLease(this.root, () =>
        pushImage(transport, this.content, ref, target, { ...pushOpts, root: this.root }),
      );
    } finally {
      if (!given) await transport.close();
    }
  }

  /**
   * `copy`: copy an image between registries (`docker://`), OCI layouts (`oci:DIR[:REF]`), OCI archives
   * (`oci-archive:FILE[:REF]`) and docker archives (`docker-archive:FILE[:REF]`), as skopeo copy does, without going
   * through the local store. Manifests are copied byte for byte where the formats allow, so digests stay.
   */
  async copy(source: string, destination: string, opts: CopyOptions = {}): Promise<CopyResult> {
    const { copyImage, parseImageName } = await remote();
    const src = parseImageName(source);
    const dst = parseImageName(destination);
    const { transport: given, insecureRegistries, ...copyOpts } = opts;
    const made = new Map<string, RegistryTransport>();
    try {
      return await copyImage(
        src,
        dst,
        {
          transport: async (registry) => {
            if (given) return given(registry);
            let t = made.get(registry);
            if (!t) {
              t = await this.#transport(registry, insecureRegistries);
              made.set(registry, t);
            }
            return t;
          },
          tmpDir: join(this.root, 'tmp'),
          root: this.root,
        },
        copyOpts,
      );
    } finally {
      for (const t of made.values()) await t.close().catch(() => {});
    }
  }

  async #transport(registry: string, insecureRegistries: string[] | undefined): Promise<RegistryTransport> {
    const { createTransport, defaultCredentialStore } = await remote();
    return createTransport(registry, {
      credentials: defaultCredentialStore(),
      ...(insecureRegistries ? { insecureRegistries } : {}),
    });
  }

  async loadFile(path: string): Promise<{ references: string[]; id: Digest; digest: Digest }[]> {
    return this.load(createReadStream(path));
  }

  async diskUsage(): Promise<DiskUsage> {
    const tags = await this.names.list();
    const uses = new Map<string, Set<string>>(); // item -> images using it
    const sizes = new Map<string, number>();
    const perImage: DiskUsage['perImage'] = [];
    const items = new Map<string, string[]>();
    for (const t of tags) {
      const image = await openImage(this.content, t.descriptor);
      const own: string[] = [];
      const add = (key: string, size: number) => {
        sizes.set(key, size);
        own.push(key);
        if (!uses.has(key)) uses.set(key, new Set());
        uses.get(key)!.add(t.descriptor.digest);
      };
      add(`blob:${t.descriptor.digest}`, image.rawManifest.length);
      add(`blob:${image.id}`, image.rawConfig.length);
      for (const l of image.layers) add(`blob:${l.digest}`, l.size);
      for (const c of chainIds(image.config.rootfs.diff_ids))
        add(`snap:${c}`, (await this.snapshots.stat(c))?.size ?? 0);
      items.set(t.reference, own);
      perImage.push({ reference: parseReference(t.reference).familiar(), id: image.id, size: 0, shared: 0, unique: 0 });
    }
    for (const row of perImage) {
      const full = tags.find((t) => parseReference(t.reference).familiar() === row.reference)!.reference;
      for (const key of new Set(items.get(full))) {
        const s = sizes.get(key) ?? 0;
        row.size += s;
        if ((uses.get(key)?.size ?? 0) > 1) row.shared += s;
        else row.unique += s;
      }
    }
    let blobCount = 0;
    let blobSize = 0;
    for await (const b of this.content.walk()) {
      blobCount++;
      blobSize += b.size;
    }
    const { snapshots } = await this.snapshots.walk();
    const snapSize = snapshots.reduce((n, s) => n + (s.size ?? 0), 0);
    const referenced = [...sizes.values()].reduce((a, b) => a + b, 0);
    return {
      images: {
        total: new Set(tags.map((t) => t.descriptor.digest)).size,
        size: blobSize + snapSize,
        reclaimable: Math.max(0, blobSize + snapSize - referenced),
      },
      perImage,
      blobs: { count: blobCount, size: blobSize },
      snapshots: { count: snapshots.length, size: snapSize },
    };
  }

  /** `image prune`: remove dangling (untagged) images, then every blob and layer snapshot no image uses. */
  async pruneImages(opts: { dryRun?: boolean } = {}): Promise<GcResult & { images: Digest[] }> {
    const tagged = new Set((await this.names.list()).map((t) => t.descriptor.digest));
    const inUse = new Set((await this.containers.store.list()).map((c) => c.imageDigest as string));
    const dangling = (await this.names.roots())
      .filter((d) => !tagged.has(d.digest) && !inUse.has(d.digest))
      .map((d) => d.digest);
    if (!opts.dryRun) {
      for (const d of dangling) await this.names.removeDigest(d);
      await this.content.cleanIngest(60 * 60_000);
    }
    const roots = (await this.#roots()).filter((r) => !opts.dryRun || !dangling.includes(r.descriptor.digest));
    const gc = await collectGarbage(this.root, this.content, this.snapshots, roots, opts);
    return { ...gc, images: dangling };
  }

  async fsck(opts: { onProgress?: (n: number) => void } = {}): Promise<FsckReport> {
    return fsck(this.root, this.content, this.snapshots, await this.#roots(), opts);
  }

  // Build (see build/).

  /**
   * `build`: a Dockerfile and a context directory to an image, tagged with every `tags` entry once the whole build
   * succeeded (a failed build tags nothing). Base images are taken from the store, pulled when missing (or always
   * with `pull`).
   */
  async build(opts: {
    context: string;
    dockerfile: { text: string; path: string };
    tags?: string[];
    buildArgs?: Record<string, string>;
    target?: string;
    noCache?: boolean;
    explainCache?: boolean;
    pull?: boolean;
    labels?: Record<string, string>;
    sourceDateEpoch?: number;
    network?: 'host' | 'none';
    /** `--secret` values by id (for `RUN --mount=type=secret`); they never reach a layer, the config or history. */
    secrets?: Record<string, Buffer>;
    ssh?: Record<string, string>;
    insecureRegistries?: string[];
    onEvent?: (e: BuildEvent) => void;
    onPullProgress?: ProgressFn;
    signal?: AbortSignal;
  }): Promise<BuildResult & { tags: string[] }> {
    // Names are checked before anything runs, so a bad -t fails fast.
    const tags = (opts.tags ?? []).map((t) => parseReference(t).toString());
    const { Builder } = await import('./build/index.js');
    const builder = new Builder({
      root: this.root,
      content: this.content,
      snapshots: this.snapshots,
      names: this.names,
      baseImage: async (ref, o) => {
        if (!o.pull) {
          try {
            return (await this.resolve(ref, o.platform ? { platform: o.platform } : {})).image;
          } catch (err) {
            if (!(err instanceof StrataError) || err.code !== 'NOT_FOUND') throw err;
          }
        }
        await this.pull(ref, {
          ...(o.platform ? { platform: o.platform } : {}),
          ...(opts.insecureRegistries ? { insecureRegistries: opts.insecureRegistries } : {}),
          ...(opts.onPullProgress ? { onProgress: opts.onPullProgress } : {}),
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        return (await this.resolve(ref, o.platform ? { platform: o.platform } : {})).image;
      },
    });
    const res = await builder.build({
      context: opts.context,
      dockerfile: opts.dockerfile,
      ...(opts.buildArgs ? { buildArgs: opts.buildArgs } : {}),
      ...(opts.target !== undefined ? { target: opts.target } : {}),
      ...(opts.noCache ? { noCache: true } : {}),
      ...(opts.explainCache ? { explainCache: true } : {}),
      ...(opts.pull ? { pull: true } : {}),
      ...(opts.labels ? { labels: opts.labels } : {}),
      ...(opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: opts.sourceDateEpoch } : {}),
      ...(opts.network ? { network: opts.network } : {}),
      ...(opts.secrets ? { secrets: opts.secrets } : {}),
      ...(opts.ssh ? { ssh: opts.ssh } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (tags.length === 0) await this.names.addUntagged(res.descriptor);
    for (const t of tags) await this.names.set(t, res.descriptor);
    return { ...res, tags };
  }

  /** A build context sent as a tar (`strata build -`): unpacked into `dir` (plain or compressed, never outside it). */
  async unpackBuildContext(tar: Readable, dir: string): Promise<void> {
    const { applyLayer } = await import('./archive/index.js');
    await applyLayer(tar, dir, { whiteouts: 'delete' });
  }

  /** `builder prune`: forget every build cache record (layers stay until `image prune`); how many there were. */
  async pruneBuildCache(): Promise<number> {
    const { BuildCache } = await import('./build/index.js');
    return new BuildCache(this.root).prune();
  }

  // Containers (see container/): create, run attached or detached, stop, kill, remove, inspect, logs, diff,
  // export, commit. Every call first repairs what a killed strata process left behind.

  /** `create`: a container record and writable snapshot for an image (layers unpacked when missing). */
  async createContainer(opts: CreateContainerOptions): Promise<ContainerRecord> {
    return this.containers.create(opts);
  }

  /** `start` / `run -d`: start in the background (a detached monitor supervises it); resolves once it runs. */
  async startContainer(ref: string): Promise<ContainerRecord> {
    return this.containers.start(ref);
  }

  /** `run` in the foreground: output to `io` and the log; resolves with the exit code once cleaned up. */
  async runContainer(ref: string, io: AttachIO, hooks: RunHooks = {}): Promise<number> {
    return this.containers.runAttached(ref, io, hooks);
  }

  /** `exec`: another process in a running container; its exit code (0 at once with `detach`). */
  async execContainer(ref: string, opts: ExecContainerOptions, io: AttachIO = {}): Promise<number> {
    return this.containers.exec(ref, opts, io);
  }

  /** The detached monitor's work (the CLI's hidden `container monitor`): resolves with the exit code. */
  async monitorContainer(id: string, notify: (m: MonitorMessage) => void): Promise<number> {
    return this.containers.monitor(id, notify);
  }

  async stopContainer(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<ContainerRecord> {
    return this.containers.stop(ref, opts);
  }

  async killContainer(ref: string, signal?: string): Promise<ContainerRecord> {
    return this.containers.kill(ref, signal);
  }

  async removeContainer(ref: string, opts: { force?: boolean } = {}): Promise<ContainerRecord> {
    return this.containers.remove(ref, opts);
  }

  async listContainers(opts: { all?: boolean } = {}): Promise<ContainerSummary[]> {
    return this.containers.list(opts);
  }

  async getContainer(ref: string): Promise<ContainerRecord> {
    return this.containers.get(ref);
  }

  /** docker container inspect's object. */
  async inspectContainer(ref: string): Promise<Record<string, unknown>> {
    return this.containers.inspect(ref);
  }

  containerLogs(ref: string, opts: Omit<ReadLogOptions, 'done'> = {}): AsyncGenerator<LogEntry> {
    return this.containers.logs(ref, opts);
  }

  async waitContainer(ref: string, opts: { signal?: AbortSignal } = {}): Promise<number> {
    return this.containers.wait(ref, opts);
  }

  async diffContainer(ref: string): Promise<ContainerChange[]> {
    return this.containers.diff(ref);
  }

  /** `export`: a tar of the container's root filesystem. */
  async exportContainer(ref: string, out: Writable, opts: { signal?: AbortSignal } = {}): Promise<void> {
    return this.containers.export(ref, out, opts);
  }

  /** `commit`: a new image from the container's changes; `reference` (REPO[:TAG]) is normalized here. */
  async commitContainer(
    ref: string,
    opts: CommitOptions = {},
  ): Promise<{ id: Digest; descriptor: Descriptor; reference?: string }> {
    let reference: string | undefined;
    if (opts.reference !== undefined) {
      const r = parseReference(opts.reference);
      if (r.digest) {
        throw new StrataError('INVALID_ARGUMENT', `cannot commit to a digest reference "${opts.reference}"`, {
          hint: 'give REPO[:TAG]',
        });
      }
      reference = r.toString();
    }
    const { reference: _r, ...rest } = opts;
    return this.containers.commit(ref, { ...rest, ...(reference ? { reference } : {}) });
  }

  /** Fix records, mounts and runtime state left by a strata process that was killed. */
  async repairContainers(): Promise<void> {
    return this.containers.repair();
  }
}

export function isDigestString(s: string): boolean {
  return isDigest(s);
}

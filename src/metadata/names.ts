import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode, StrataError } from '../errors/index.js';
import { Annotation, type Descriptor, MediaType, parseIndex } from '../oci/index.js';
import { exists, withLock, writeFileAtomic } from '../util/index.js';

/** One tag: a full normalized reference (docker.io/library/busybox:latest) and the manifest it names. */
export interface TagEntry {
  reference: string;
  descriptor: Descriptor;
}

const LAYOUT = JSON.stringify({ imageLayoutVersion: '1.0.0' });

/**
 * Names: tags kept as the entries of the root's `index.json`, each with `org.opencontainers.image.ref.name` set to
 * the full reference, so the root is an OCI image layout that skopeo and umoci read directly
 * (`skopeo inspect oci:/var/lib/strata:docker.io/library/busybox:latest`).
 *
 * Every change is a read-modify-write under a cross-process lock, written atomically (temp file, fsync, rename):
 * two processes tagging at once both land, and a killed process leaves the old or the new index, never a mix.
 */
export class NameStore {
  readonly #indexPath: string;

  constructor(readonly root: string) {
    this.#indexPath = join(root, 'index.json');
  }

  /** Create oci-layout and an empty index.json when missing. */
  async init(): Promise<void> {
    if (!(await exists(join(this.root, 'oci-layout')))) await writeFileAtomic(join(this.root, 'oci-layout'), LAYOUT);
    if (!(await exists(this.#indexPath))) {
      await withLock(this.#indexPath, async () => {
        if (!(await exists(this.#indexPath))) await this.#write([]);
      });
    }
  }

  async #read(): Promise<Descriptor[]> {
    let raw: string;
    try {
      raw = await readFile(this.#indexPath, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw err;
    }
    try {
      return parseIndex(raw).manifests;
    } catch (err) {
      throw new StrataError('DATA_LOSS', `${this.#indexPath} is corrupt`, {
        cause: err,
        hint: 'restore it from a backup or remove it to start with no tags (blobs are kept); run `strata fsck`',
      });
    }
  }

  async #write(manifests: Descriptor[]): Promise<void> {
    const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
    await writeFileAtomic(this.#indexPath, `${JSON.stringify(index)}\n`);
  }

  async list(): Promise<TagEntry[]> {
    const out: TagEntry[] = [];
    for (const d of await this.#read()) {
      const reference = d.annotations?.[Annotation.RefName];
      if (reference) out.push({ reference, descriptor: d });
    }
    return out;
  }

  /** Every descriptor in index.json, tagged or not: the roots of garbage collection. */
  async roots(): Promise<Descriptor[]> {
    return this.#read();
  }

  async get(reference: string): Promise<Descriptor | undefined> {
    return (await this.list()).find((t) => t.reference === reference)?.descriptor;
  }

  /** Point `reference` at `descriptor` (replacing what it named before). */
  async set(reference: string, descriptor: Descriptor): Promise<void> {
    await this.update((entries) => [...entries.filter((e) => e.reference !== reference), { reference, descriptor }]);
  }

  async remove(reference: string): Promise<boolean> {
    let removed = false;
    await this.update((entries) => {
      const kept = entries.filter((e) => e.reference !== reference);
      removed = kept.length !== entries.length;
      return kept;
    });
    return removed;
  }

  /** Keep an image without a name (docker's dangling `<none>` images), so prune spares it until it is removed. */
  async addUntagged(descriptor: Descriptor): Promise<void> {
    await this.#mutate((all) => (all.some((d) => d.digest === descriptor.digest) ? all : [...all, plain(descriptor)]));
  }

  /** Drop every entry, named or not, for this manifest digest. */
  async removeDigest(digest: string): Promise<void> {
    await this.#mutate((all) => all.filter((d) => d.digest !== digest));
  }

  /** Atomic read-modify-write of the tag list under the lock; untagged entries are kept as they are. */
  async update(fn: (entries: TagEntry[]) => TagEntry[]): Promise<void> {
    await this.#mutate((current) => {
      const untagged = current.filter((d) => !d.annotations?.[Annotation.RefName]);
      const tagged: TagEntry[] = current
        .filter((d) => d.annotations?.[Annotation.RefName])
        .map((d) => ({ reference: d.annotations![Annotation.RefName]!, descriptor: d }));
      const next = fn(tagged).sort((a, b) => (a.reference < b.reference ? -1 : a.reference > b.reference ? 1 : 0));
      const manifests = next.map(({ reference, descriptor }) => ({
        ...descriptor,
        annotations: { ...descriptor.annotations, [Annotation.RefName]: reference, [Annotation.ImageName]: reference },
      }));
      // An untagged entry is redundant once a tag names the same manifest.
      const named = new Set(manifests.map((m) => m.digest));
      return [...manifests, ...untagged.filter((d) => !named.has(d.digest))];
    });
  }

  async #mutate(fn: (all: Descriptor[]) => Descriptor[]): Promise<void> {
    await withLock(this.#indexPath, async () => {
      const current = await this.#read();
      const next = fn(current);
      // Tagging an image with the name it has (a rebuild with no change) writes nothing.
      if (JSON.stringify(next) !== JSON.stringify(current)) await this.#write(next);
    });
  }
}

function plain(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

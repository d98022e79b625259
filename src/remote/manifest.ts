import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { paths, parseErrorBody } from '../distribution/index.js';
import { DigestMismatchError, SizeMismatchError, StrataError } from '../errors/index.js';
import {
  type Descriptor,
  type Digest,
  digestAlgorithm,
  digestFromHex,
  digestHex,
  isDigest,
  isSchema1Type,
  MAX_DOCUMENT_BYTES,
  MediaType,
  type ParsedDocument,
  parseDigest,
  parseDocument,
} from '../oci/index.js';
import type { RegistryTransport, TransportResponse } from './types.js';

/** What a manifest GET accepts: OCI manifest and index, Docker schema 2 manifest and manifest list. */
export const MANIFEST_ACCEPT: readonly string[] = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
];

export interface FetchedManifest {
  /** The digest the bytes were verified against (the reference's, else Docker-Content-Digest, else computed). */
  digest: Digest;
  /** The media type decided on (the document's own, else Content-Type, else by shape). */
  mediaType: string;
  /** The manifest exactly as the registry sent it: its digest is `digest`. */
  bytes: Buffer;
  doc: ParsedDocument;
  /** A descriptor for the manifest (mediaType, digest, size). */
  descriptor: Descriptor;
}

export interface FetchManifestOptions {
  signal?: AbortSignal;
  /** Media types to accept (default MANIFEST_ACCEPT). */
  accept?: readonly string[];
  /** Refuse bodies larger than this (default 4 MiB, as the parsers do). */
  maxBytes?: number;
  /** For error messages: the reference as the user wrote it (busybox:latest). */
  what?: string;
}

/** Read a response body into memory, failing as soon as it passes `max` bytes. */
export async function readLimited(body: Readable, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > max) {
        throw new StrataError('INVALID_ARGUMENT', `${what} is larger than the ${max} bytes allowed`, {
          hint: 'the registry sent an oversized document; check the reference',
        });
      }
      chunks.push(chunk);
    }
  } finally {
    if (!body.destroyed) body.destroy();
  }
  return Buffer.concat(chunks);
}

function header(res: TransportResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

async function notFound(res: TransportResponse, repository: string, reference: string, what: string) {
  const codes = parseErrorBody(await res.text().catch(() => '')).map((e) => e.code);
  if (codes.includes('NAME_UNKNOWN')) {
    return new StrataError('NOT_FOUND', `repository ${repository} not found: name unknown`, {
      hint: 'check the repository name (and that you are logged in if it is private)',
      details: { repository },
    });
  }
  return new StrataError('NOT_FOUND', `manifest for ${what} not found: manifest unknown`, {
    hint: isDigest(reference)
      ? 'the registry has no manifest with this digest in this repository'
      : 'check the tag (`strata pull --all-tags` lists what the repository has)',
    details: { repository, reference },
  });
}

/**
 * GET a manifest (or index) by tag or digest with content negotiation, and verify its bytes: against the digest
 * of a digest reference, else against Docker-Content-Digest when the registry sent one, else the digest is
 * computed (sha256). Schema 1 manifests are refused (UNIMPLEMENTED); 404 becomes NOT_FOUND naming the tag.
 */
export async function fetchManifest(
  transport: RegistryTransport,
  repository: string,
  reference: string,
  opts: FetchManifestOptions = {},
): Promise<FetchedManifest> {
  const what = opts.what ?? `${transport.registry}/${repository}${isDigest(reference) ? '@' : ':'}${reference}`;
  const res = await transport.request({
    method: 'GET',
    path: paths.manifest(repository, reference),
    headers: { accept: (opts.accept ?? MANIFEST_ACCEPT).join(', ') },
    scope: { name: repository, actions: ['pull'] },
    accept: [404],
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (res.status === 404) throw await notFound(res, repository, reference, what);
  const contentType = header(res, 'content-type')?.split(';')[0]?.trim();
  if (isSchema1Type(contentType)) {
    await res.dump().catch(() => {});
    throw new StrataError('UNIMPLEMENTED', `${what} is a Docker image manifest schema 1, which is not supported`, {
      hint: 'push the image again with a current docker, podman or skopeo: they write schema 2 or OCI manifests',
    });
  }
  const bytes = await readLimited(res.body, opts.maxBytes ?? MAX_DOCUMENT_BYTES, `manifest of ${what}`);
  let expected: Digest | undefined;
  let source = '';
  if (isDigest(reference)) {
    expected = reference;
    source = 'the digest asked for';
  } else {
    const sent = header(res, 'docker-content-digest');
    if (sent) {
      expected = parseDigest(sent.trim(), 'Docker-Content-Digest header');
      source = 'the Docker-Content-Digest header';
    }
  }
  const algorithm = expected ? digestAlgorithm(expected) : 'sha256';
  const digest = digestFromHex(createHash(algorithm).update(bytes).digest('hex'), algorithm);
  if (expected && digest !== expected) {
    throw new DigestMismatchError(`manifest of ${what} (checked against ${source})`, expected, digest);
  }
  const doc = parseDocument(bytes, contentType ? { mediaType: contentType } : {});
  return {
    digest,
    mediaType: doc.mediaType,
    bytes,
    doc,
    descriptor: { mediaType: doc.mediaType, digest, size: bytes.length },
  };
}

/**
 * GET a small blob (an image config) into memory, verified against its descriptor's digest and size. Refused
 * above `maxBytes` (4 MiB by default).
 */
export async function fetchBlobBytes(
  transport: RegistryTransport,
  repository: string,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  opts: { signal?: AbortSignal; maxBytes?: number; what?: string } = {},
): Promise<Buffer> {
  const what = opts.what ?? `blob ${desc.digest}`;
  const max = opts.maxBytes ?? MAX_DOCUMENT_BYTES;
  if (desc.size > max) {
    throw new StrataError('INVALID_ARGUMENT', `${what} is ${desc.size} bytes, more than the ${max} allowed`);
  }
  const res = await transport.request({
    method: 'GET',
    path: paths.blob(repository, desc.digest),
    scope: { name: repository, actions: ['pull'] },
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const bytes = await readLimited(res.body, desc.size, what).catch((err: unknown) => {
    if (err instanceof StrataError && err.code === 'INVALID_ARGUMENT') {
      throw new SizeMismatchError(what, desc.size, desc.size + 1);
    }
    throw err;
  });
  if (bytes.length !== desc.size) throw new SizeMismatchError(what, desc.size, bytes.length);
  const actual = createHash(digestAlgorithm(desc.digest)).update(bytes).digest('hex');
  if (actual !== digestHex(desc.digest)) {
    throw new DigestMismatchError(what, desc.digest, `${digestAlgorithm(desc.digest)}:${actual}`);
  }
  return bytes;
}

import { z } from 'zod';
import { InvalidDocumentError, StrataError } from '../errors/index.js';
import { type Digest, parseDigest } from './digest.js';
import { isIndexType, isManifestType, isSchema1Type, MediaType } from './media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from './types.js';

/** Documents larger than this are refused before parsing (the distribution spec's manifest limit). */
export const MAX_DOCUMENT_BYTES = 4 << 20;

const digest = z.string().transform((v, ctx) => {
  try {
    return parseDigest(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message.replace(/^invalid digest: field "digest" /, '') });
    return z.NEVER;
  }
});
const stringMap = z.record(z.string(), z.string());
const platform = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  variant: z.string().optional(),
  features: z.array(z.string()).optional(),
});
const descriptor = z.looseObject({
  mediaType: z.string().min(1),
  digest,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: stringMap.optional(),
  platform: platform.optional(),
  artifactType: z.string().optional(),
  data: z.string().optional(),
});
const manifest = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptor,
  layers: z.array(descriptor),
  subject: descriptor.optional(),
  annotations: stringMap.optional(),
});
const index = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(descriptor),
  subject: descriptor.optional(),
  annotations: stringMap.optional(),
});
const stringList = z.array(z.string());
const emptyObjects = z.record(z.string(), z.object({}).loose());
const containerConfig = z.looseObject({
  User: z.string().optional(),
  ExposedPorts: emptyObjects.optional().nullable(),
  Env: stringList.optional().nullable(),
  Entrypoint: stringList.nullable().optional(),
  Cmd: stringList.nullable().optional(),
  Volumes: emptyObjects.optional().nullable(),
  WorkingDir: z.string().optional(),
  Labels: stringMap.optional().nullable(),
  StopSignal: z.string().optional(),
  ArgsEscaped: z.boolean().optional(),
  OnBuild: stringList.nullable().optional(),
  Shell: stringList.optional().nullable(),
});
const history = z.looseObject({
  created: z.string().optional(),
  created_by: z.string().optional(),
  author: z.string().optional(),
  comment: z.string().optional(),
  empty_layer: z.boolean().optional(),
});
const config = z.looseObject({
  created: z.string().optional(),
  author: z.string().optional(),
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  config: containerConfig.optional().nullable(),
  rootfs: z.looseObject({ type: z.literal('layers'), diff_ids: z.array(digest) }),
  history: z.array(history).optional().nullable(),
});

export interface ParseOptions {
  /** The media type the document arrived with (a descriptor's or a Content-Type), when it has none itself. */
  mediaType?: string;
  maxBytes?: number;
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');
}

/** Bytes or an object to a JSON value; a size cap and a JSON syntax error named for the document. */
function toJson(data: string | Uint8Array | unknown, what: string, maxBytes: number): unknown {
  if (typeof data !== 'string' && !(data instanceof Uint8Array)) return data;
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  if (size > maxBytes) throw new InvalidDocumentError(what, '', `is ${size} bytes, more than the ${maxBytes} allowed`);
  const text = typeof data === 'string' ? data : Buffer.from(data).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidDocumentError(what, '', `is not valid JSON (${(err as Error).message})`);
  }
}

function check<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new InvalidDocumentError(what, fieldPath(issue.path), issue.message);
}

function refuseSchema1(value: unknown, mediaType: string | undefined): void {
  const v = value as { schemaVersion?: unknown; mediaType?: unknown } | null;
  if (isSchema1Type(mediaType) || isSchema1Type(v?.mediaType as string) || v?.schemaVersion === 1) {
    throw new StrataError('UNIMPLEMENTED', 'Docker image manifest schema 1 is deprecated and not supported', {
      hint: 'push the image again with a current docker, podman or skopeo (they write schema 2 or OCI manifests)',
    });
  }
}

function checkMediaType(found: string | undefined, ok: (mt: string) => boolean, what: string): void {
  if (found !== undefined && !ok(found)) {
    throw new StrataError('UNIMPLEMENTED', `unknown media type "${found}" for ${what}`, {
      hint: `strata reads ${MediaType.OciManifest}, ${MediaType.OciIndex} and their Docker schema 2 equivalents`,
    });
  }
}

export function parseDescriptor(value: unknown, where = 'descriptor'): Descriptor {
  return check(descriptor, value, where) as Descriptor;
}

export function parseManifest(data: string | Uint8Array | unknown, opts: ParseOptions = {}): ImageManifest {
  const v = toJson(data, 'image manifest', opts.maxBytes ?? MAX_DOCUMENT_BYTES);
  refuseSchema1(v, opts.mediaType);
  const m = check(manifest, v, 'image manifest') as ImageManifest;
  checkMediaType(m.mediaType, isManifestType, 'an image manifest');
  return m;
}

export function parseIndex(data: string | Uint8Array | unknown, opts: ParseOptions = {}): ImageIndex {
  const v = toJson(data, 'image index', opts.maxBytes ?? MAX_DOCUMENT_BYTES);
  refuseSchema1(v, opts.mediaType);
  const i = check(index, v, 'image index') as ImageIndex;
  checkMediaType(i.mediaType, isIndexType, 'an image index');
  return i;
}

export function parseImageConfig(data: string | Uint8Array | unknown, opts: ParseOptions = {}): ImageConfig {
  const v = toJson(data, 'image config', opts.maxBytes ?? MAX_DOCUMENT_BYTES);
  return check(config, v, 'image config') as unknown as ImageConfig;
}

export type ParsedDocument =
  | { kind: 'manifest'; manifest: ImageManifest; mediaType: string }
  | { kind: 'index'; index: ImageIndex; mediaType: string };

/**
 * A manifest or an index, decided by the document's own mediaType, else the one it arrived with, else its shape
 * (`manifests` → index, `config` + `layers` → manifest).
 */
export function parseDocument(data: string | Uint8Array | unknown, opts: ParseOptions = {}): ParsedDocument {
  const v = toJson(data, 'manifest', opts.maxBytes ?? MAX_DOCUMENT_BYTES);
  refuseSchema1(v, opts.mediaType);
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new InvalidDocumentError('manifest', '', 'must be a JSON object');
  const own = (v as { mediaType?: unknown }).mediaType;
  const hint = opts.mediaType || undefined;
  const mt = typeof own === 'string' ? own : hint;
  if (isIndexType(mt) || (mt === undefined && 'manifests' in v)) {
    return { kind: 'index', index: parseIndex(v), mediaType: mt ?? MediaType.OciIndex };
  }
  if (isManifestType(mt) || (mt === undefined && 'layers' in v)) {
    return { kind: 'manifest', manifest: parseManifest(v), mediaType: mt ?? MediaType.OciManifest };
  }
  throw new StrataError('UNIMPLEMENTED', `unknown media type "${mt ?? '(none)'}" for a manifest`, {
    hint: `strata reads ${MediaType.OciManifest}, ${MediaType.OciIndex} and their Docker schema 2 equivalents`,
  });
}

export type { Digest };

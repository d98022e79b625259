import { z } from 'zod';
import { InvalidDocumentError, StrataError } from '../errors/index.js';
import { type Digest, digestAlgorithm, digestOf, digestProblem, quoted } from './digest.js';
import { type JsonOptions, parseJson } from './json.js';
import { isIndexType, isManifestType, isSchema1Type, MediaType } from './media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from './types.js';

// Every object schema is loose: fields strata does not know survive a parse, so nothing a newer spec (or another
// tool) wrote is lost when a document is handled as a value.

const digest = z.string().transform((v, ctx) => {
  const problem = digestProblem(v);
  if (problem === undefined) return v as Digest;
  ctx.addIssue({ code: 'custom', message: problem, input: v });
  return z.NEVER;
});
const stringMap = z.record(z.string(), z.string());
const stringList = z.array(z.string());
/** Docker writes null for empty collections where the types say absent: those keys are dropped before parsing. */
function nullsDropped<T extends z.ZodType>(keys: readonly string[], schema: T) {
  return z.preprocess((v) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const rec = v as Record<string, unknown>;
    if (!keys.some((k) => rec[k] === null)) return v;
    return Object.fromEntries(Object.entries(rec).filter(([k, x]) => !(x === null && keys.includes(k))));
  }, schema);
}

const platform = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  'os.version': z.string().optional(),
  'os.features': stringList.optional(),
  variant: z.string().optional(),
  features: stringList.optional(),
});

const descriptor = z
  .looseObject({
    mediaType: z.string().min(1),
    digest,
    size: z.number().int().nonnegative(),
    urls: stringList.optional(),
    annotations: stringMap.optional(),
    platform: platform.optional(),
    artifactType: z.string().optional(),
    data: z.string().optional(),
  })
  .superRefine((d, ctx) => {
    // Embedded data stands in for a fetch, so it must be exactly the bytes the digest names.
    if (d.data === undefined) return;
    const bytes = Buffer.from(d.data, 'base64');
    if (bytes.toString('base64') !== d.data) {
      ctx.addIssue({ code: 'custom', path: ['data'], message: 'is not canonical base64', input: d.data });
    } else if (bytes.length !== d.size || digestOf(bytes, digestAlgorithm(d.digest)) !== d.digest) {
      ctx.addIssue({ code: 'custom', path: ['data'], message: 'does not match the digest and size', input: d.data });
    }
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

const emptyObjects = z.record(z.string(), z.looseObject({}));
const nanoseconds = z.number().int();
const healthcheck = z.looseObject({
  Test: stringList.optional(),
  Interval: nanoseconds.optional(),
  Timeout: nanoseconds.optional(),
  StartPeriod: nanoseconds.optional(),
  StartInterval: nanoseconds.optional(),
  Retries: z.number().int().optional(),
});
const containerConfig = nullsDropped(
  ['ExposedPorts', 'Env', 'Volumes', 'Labels', 'Healthcheck', 'Shell'],
  z.looseObject({
    User: z.string().optional(),
    ExposedPorts: emptyObjects.optional(),
    Env: stringList.optional(),
    Entrypoint: stringList.nullable().optional(),
    Cmd: stringList.nullable().optional(),
    Volumes: emptyObjects.optional(),
    WorkingDir: z.string().optional(),
    Labels: stringMap.optional(),
    StopSignal: z.string().optional(),
    ArgsEscaped: z.boolean().optional(),
    Healthcheck: nullsDropped(['Test'], healthcheck).optional(),
    OnBuild: stringList.nullable().optional(),
    Shell: stringList.optional(),
  }),
);

const historyEntry = z.looseObject({
  created: z.string().optional(),
  created_by: z.string().optional(),
  author: z.string().optional(),
  comment: z.string().optional(),
  empty_layer: z.boolean().optional(),
});

const imageConfig = nullsDropped(
  ['config', 'history'],
  z.looseObject({
    created: z.string().optional(),
    author: z.string().optional(),
    architecture: z.string().min(1),
    os: z.string().min(1),
    'os.version': z.string().optional(),
    'os.features': stringList.optional(),
    variant: z.string().optional(),
    config: containerConfig.optional(),
    rootfs: z.looseObject({ type: z.literal('layers'), diff_ids: z.array(digest) }),
    history: z.array(historyEntry).optional(),
  }),
);

export interface ParseOptions extends JsonOptions {
  /** The media type the document arrived with (a descriptor's, or a Content-Type) when it names none itself. */
  mediaType?: string;
}

/** JSON text (string or bytes, size-capped and parsed here) or a value already parsed from JSON. */
export type DocumentInput = string | Uint8Array | unknown;

/** "layers[1].digest", 'annotations["org.opencontainers.image.ref.name"]': a path a reader can follow. */
function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (/^[A-Za-z_][\w]*$/.test(String(p))) out += `${out ? '.' : ''}${String(p)}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${quoted(v, 40)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return `${typeof v === 'object' ? 'an' : 'a'} ${typeof v}`;
}

const TYPE_NAMES: Record<string, string> = {
  array: 'an array',
  boolean: 'a boolean',
  int: 'an integer',
  number: 'a number',
  object: 'an object',
  record: 'an object',
  string: 'a string',
};

/** zod's issues as phrases that follow `field "x"`, naming what was found. */
function problemOf(iss: z.core.$ZodRawIssue): string | undefined {
  if (iss.input === undefined && (iss.code === 'invalid_type' || iss.code === 'invalid_value')) return 'is required';
  switch (iss.code) {
    case 'invalid_type':
      return `must be ${TYPE_NAMES[iss.expected] ?? iss.expected}, got ${describe(iss.input)}`;
    case 'invalid_value':
      return `must be ${iss.values.map((v) => JSON.stringify(v)).join(' or ')}, got ${describe(iss.input)}`;
    case 'too_small':
      return iss.origin === 'string'
        ? 'must not be empty'
        : `must be at least ${iss.minimum}, got ${describe(iss.input)}`;
    case 'too_big':
      return `must be at most ${iss.maximum}, got ${describe(iss.input)}`;
    default:
      return undefined;
  }
}

function check<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value, { error: problemOf });
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new InvalidDocumentError(what, fieldPath(issue.path), issue.message);
}

function toValue(data: DocumentInput, what: string, opts: JsonOptions): unknown {
  return typeof data === 'string' || data instanceof Uint8Array ? parseJson(data, what, opts) : data;
}

/** A Content-Type may carry parameters ("; charset=utf-8"); only the type itself names the format. */
function bareType(mt: string | undefined): string | undefined {
  const t = mt?.split(';')[0]?.trim();
  return t || undefined;
}

function refuseSchema1(value: unknown, hint: string | undefined): void {
  const v = value as { schemaVersion?: unknown; mediaType?: unknown } | null;
  if (
    isSchema1Type(hint) ||
    (typeof v?.mediaType === 'string' && isSchema1Type(v.mediaType)) ||
    v?.schemaVersion === 1
  ) {
    throw new StrataError('UNIMPLEMENTED', 'Docker image manifest schema 1 is deprecated and not supported', {
      hint: 'push the image again with a current docker, podman or skopeo: they write schema 2 or OCI manifests',
    });
  }
}

const KNOWN_TYPES = `strata reads ${MediaType.OciManifest}, ${MediaType.OciIndex}, ${MediaType.DockerManifest} and ${MediaType.DockerManifestList}`;

function wrongMediaType(what: string, mt: string, field = 'mediaType'): InvalidDocumentError {
  const problem = isIndexType(mt)
    ? `is ${quoted(mt)}: an image index, not an image manifest`
    : isManifestType(mt)
      ? `is ${quoted(mt)}: an image manifest, not an image index`
      : `has unknown media type ${quoted(mt)}`;
  return new InvalidDocumentError(what, field, problem, { hint: KNOWN_TYPES });
}

/** Validate one descriptor; `where` names it in errors ("index.json manifests[0]"). */
export function parseDescriptor(value: unknown, where = 'descriptor'): Descriptor {
  return check(descriptor, value, where) as Descriptor;
}

/** An OCI image manifest or a Docker schema 2 manifest. Schema 1 is refused with UNIMPLEMENTED. */
export function parseManifest(data: DocumentInput, opts: ParseOptions = {}): ImageManifest {
  const what = 'image manifest';
  const v = toValue(data, what, opts);
  refuseSchema1(v, bareType(opts.mediaType));
  const m = check(manifest, v, what) as ImageManifest;
  if (m.mediaType !== undefined && !isManifestType(m.mediaType)) throw wrongMediaType(what, m.mediaType);
  return m;
}

/** An OCI image index or a Docker manifest list. */
export function parseIndex(data: DocumentInput, opts: ParseOptions = {}): ImageIndex {
  const what = 'image index';
  const v = toValue(data, what, opts);
  refuseSchema1(v, bareType(opts.mediaType));
  const i = check(index, v, what) as ImageIndex;
  if (i.mediaType !== undefined && !isIndexType(i.mediaType)) throw wrongMediaType(what, i.mediaType);
  return i;
}

/**
 * An image config (OCI or Docker). Docker's nulls for empty collections (Env, Labels, Volumes, history...) come
 * back as absent; Cmd/Entrypoint/OnBuild keep null, which the types allow. Unknown fields are kept.
 */
export function parseImageConfig(data: DocumentInput, opts: JsonOptions = {}): ImageConfig {
  return check(imageConfig, toValue(data, 'image config', opts), 'image config') as unknown as ImageConfig;
}

export type ParsedDocument =
  | { kind: 'manifest'; manifest: ImageManifest; mediaType: string }
  | { kind: 'index'; index: ImageIndex; mediaType: string };

/**
 * A manifest or an index, decided by the document's own mediaType, else the one it arrived with (when that names
 * a manifest or index type: registries also answer application/json), else its shape (`manifests` → index,
 * `config`/`layers` → manifest). `mediaType` in the result is the one decided on; OCI when nothing said.
 */
export function parseDocument(data: DocumentInput, opts: ParseOptions = {}): ParsedDocument {
  const hint = bareType(opts.mediaType);
  const v = toValue(data, 'manifest', opts);
  refuseSchema1(v, hint);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new InvalidDocumentError('manifest', '', `must be a JSON object, got ${describe(v)}`);
  }
  const own = (v as { mediaType?: unknown }).mediaType;
  const mt = typeof own === 'string' ? own : isIndexType(hint) || isManifestType(hint) ? hint : undefined;
  if (isIndexType(mt) || (mt === undefined && 'manifests' in v)) {
    return { kind: 'index', index: parseIndex(v), mediaType: mt ?? MediaType.OciIndex };
  }
  if (isManifestType(mt) || (mt === undefined && ('config' in v || 'layers' in v))) {
    return { kind: 'manifest', manifest: parseManifest(v), mediaType: mt ?? MediaType.OciManifest };
  }
  if (mt !== undefined) throw wrongMediaType('manifest', mt);
  throw new InvalidDocumentError(
    'manifest',
    '',
    'is neither an image manifest (config, layers) nor an index (manifests)',
    {
      hint: KNOWN_TYPES,
    },
  );
}

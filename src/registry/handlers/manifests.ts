import type { Readable } from 'node:stream';
import { DistributionError, Header, isTag, nextLink, paths, type Route } from '../../distribution/index.js';
import { isDigest, MediaType } from '../../oci/index.js';
import type { Handler } from '../context.js';
import { checkDigest, checkName, paginate } from './common.js';

type ManifestRoute = Extract<Route, { kind: 'manifest' }>;

function checkReference(reference: string): string {
  if (reference.includes(':')) return checkDigest(reference, 'reference');
  if (!isTag(reference)) {
    throw new DistributionError(
      'MANIFEST_INVALID',
      { reference },
      {
        status: 400,
        message: `invalid tag ${JSON.stringify(reference.slice(0, 200))}: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}`,
      },
    );
  }
  return reference;
}

/** Media types a client said it takes; undefined when it did not say (or said anything goes). */
function acceptedTypes(accept: string | string[] | undefined): Set<string> | undefined {
  if (accept === undefined) return undefined;
  const types = new Set(
    (Array.isArray(accept) ? accept.join(',') : accept)
      .split(',')
      .map((t) => t.split(';')[0]!.trim().toLowerCase())
      .filter(Boolean),
  );
  if (types.size === 0 || types.has('*/*') || types.has('application/*')) return undefined;
  return types;
}

/** GET/HEAD a manifest by tag or digest, with its own media type as Content-Type. */
export const getManifest: Handler = async (ctx, req) => {
  const route = req.route as ManifestRoute;
  const name = checkName(route.name);
  const reference = checkReference(route.reference);
  const record = await ctx.store.getManifest(name, reference);
  if (!record) {
    throw new DistributionError('MANIFEST_UNKNOWN', isDigest(reference) ? { digest: reference } : { tag: reference }, {
      message: `manifest ${reference} unknown to repository ${name}`,
    });
  }
  const accepted = acceptedTypes(req.headers.accept);
  // A client that lists what it takes and leaves this type out cannot use the document (distribution answers the
  // same way now that it no longer converts to schema 1).
  if (
    accepted &&
    !accepted.has(record.mediaType) &&
    !(record.mediaType === MediaType.OciManifest && accepted.has('application/json'))
  ) {
    throw new DistributionError(
      'MANIFEST_UNKNOWN',
      { mediaType: record.mediaType, accepted: [...accepted] },
      { status: 404, message: `manifest ${reference} is ${record.mediaType}, which the Accept header does not list` },
    );
  }
  req.reply
    .header('content-type', record.mediaType)
    .header('content-length', record.bytes.length)
    .header(Header.ContentDigest, record.digest)
    .header('etag', `"${record.digest}"`);
  if (req.method === 'HEAD') return void req.reply.send();
  ctx.metrics.bytesOut(record.bytes.length);
  req.reply.send(record.bytes);
};

async function readLimited(body: Readable, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > max) {
      body.resume();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

function tooLarge(max: number, size: number | string): DistributionError {
  return new DistributionError(
    'SIZE_INVALID',
    { limit: max, size },
    { status: 413, message: `manifest is larger than the ${max}-byte limit` },
  );
}

/** PUT a manifest: validated, every referenced blob and child manifest present, then stored (201). */
export const putManifest: Handler = async (ctx, req) => {
  const route = req.route as ManifestRoute;
  const name = checkName(route.name);
  const reference = checkReference(route.reference);
  const max = ctx.config.maxManifestBytes;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) throw tooLarge(max, declared);
  const bytes = await readLimited(req.body, max);
  if (!bytes) throw tooLarge(max, `more than ${max}`);
  ctx.metrics.bytesIn(bytes.length);
  const contentType = req.headers['content-type']?.split(';')[0]?.trim();
  const { digest, subject } = await ctx.store.putManifest(name, reference, bytes, contentType);
  req.reply
    .code(201)
    .header('location', paths.manifest(name, digest))
    .header(Header.ContentDigest, digest)
    .header('content-length', 0);
  if (subject) req.reply.header(Header.OciSubject, subject);
  ctx.log.info({ repository: name, reference, digest, user: req.subject }, 'manifest pushed');
  req.reply.send();
};

/** DELETE by digest (the manifest, its tags and referrer link) or by tag (the tag only): 202. */
export const deleteManifest: Handler = async (ctx, req) => {
  const route = req.route as ManifestRoute;
  const name = checkName(route.name);
  const reference = checkReference(route.reference);
  if (!(await ctx.store.deleteManifest(name, reference))) {
    throw new DistributionError(
      'MANIFEST_UNKNOWN',
      { reference },
      { message: `manifest ${reference} unknown to repository ${name}` },
    );
  }
  ctx.log.info({ repository: name, reference, user: req.subject }, 'manifest deleted');
  req.reply.code(202).header('content-length', 0).send();
};

/** GET /tags/list: sorted, paginated with `n` and `last`, a `Link` header when more follow. */
export const listTags: Handler = async (ctx, req) => {
  const route = req.route as Extract<Route, { kind: 'tags' }>;
  const name = checkName(route.name);
  if (!(await ctx.store.repositoryExists(name))) {
    throw new DistributionError('NAME_UNKNOWN', { name }, { message: `repository ${name} not known to registry` });
  }
  const { page, more } = paginate((await ctx.store.tags(name)).sort(), req.query);
  if (more)
    req.reply.header('link', nextLink(paths.tags(name), { n: req.query.get('n')!, last: page[page.length - 1]! }));
  req.reply.header('content-type', 'application/json').send(JSON.stringify({ name, tags: page }));
};

/** GET /_catalog: repository names, sorted and paginated like tags. */
export const catalog: Handler = async (ctx, req) => {
  const { page, more } = paginate(await ctx.store.repositories(), req.query);
  if (more)
    req.reply.header('link', nextLink(paths.catalog(), { n: req.query.get('n')!, last: page[page.length - 1]! }));
  req.reply.header('content-type', 'application/json').send(JSON.stringify({ repositories: page }));
};

/** GET /referrers/<digest>: an image index of the manifests whose subject is the digest, `?artifactType=` filtered. */
export const referrers: Handler = async (ctx, req) => {
  const route = req.route as Extract<Route, { kind: 'referrers' }>;
  const name = checkName(route.name);
  const subject = checkDigest(route.digest, 'digest');
  let list = await ctx.store.referrers(name, subject);
  const artifactType = req.query.get('artifactType');
  if (artifactType) {
    list = list.filter((d) => d.artifactType === artifactType);
    req.reply.header(Header.OciFiltersApplied, 'artifactType');
  }
  // A Buffer, not a string: fastify would append "; charset=utf-8" to a string's Content-Type, and clients compare
  // the media type exactly.
  req.reply
    .header('content-type', MediaType.OciIndex)
    .send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: list })));
};

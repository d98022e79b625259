import {
  DistributionError,
  Header,
  isValidName,
  paths,
  parseContentRange,
  parseRangeHeader,
  type Route,
} from '../../distribution/index.js';
import { isDigest } from '../../oci/index.js';
import type { Handler, RegistryContext, RequestContext } from '../context.js';
import { pathFor } from '../storage/paths.js';
import { rangeHeader } from '../store.js';
import { checkDigest, checkName } from './common.js';
import { hasPositionalReads, sendFileRange } from './send-file.js';

type BlobRoute = Extract<Route, { kind: 'blob' }>;
type UploadRoute = Extract<Route, { kind: 'upload' }>;
type UploadsRoute = Extract<Route, { kind: 'uploads' }>;

async function blobSizeOrFail(
  ctx: RegistryContext,
  name: string,
  digest: ReturnType<typeof checkDigest>,
): Promise<number> {
  const size = await ctx.store.repoBlobSize(name, digest);
  if (size === undefined)
    throw new DistributionError(
      'BLOB_UNKNOWN',
      { digest },
      { message: `blob ${digest} unknown to repository ${name}` },
    );
  return size;
}

/** GET/HEAD a blob, with `Range` reads (206; 416 with `Content-Range: bytes *\/size` when unsatisfiable). */
export const getBlob: Handler = async (ctx, req) => {
  const route = req.route as BlobRoute;
  const name = checkName(route.name);
  const digest = checkDigest(route.digest, 'digest');
  const size = await blobSizeOrFail(ctx, name, digest);
  const reply = req.reply;
  reply
    .header(Header.ContentDigest, digest)
    .header('content-type', 'application/octet-stream')
    .header('accept-ranges', 'bytes')
    .header('etag', `"${digest}"`)
    .header('cache-control', 'max-age=31536000');
  const range = parseRangeHeader(req.headers.range, size);
  if (range === null) {
    reply.code(416).header('content-range', `bytes */${size}`).header('content-length', 0);
    return void reply.send();
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  const length = size === 0 ? 0 : end - start + 1;
  if (range) reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
  reply.header('content-length', length);
  if (req.method === 'HEAD' || length === 0) return void reply.send();
  ctx.metrics.bytesOut(length);
  if (hasPositionalReads(ctx.driver)) {
    // Opened before the response is taken over: a missing file still fails as any request does.
    const file = await ctx.driver.openRead(pathFor({ kind: 'blobData', digest }));
    return sendFileRange(reply, file, start, length, ctx.log);
  }
  return void reply.send(await ctx.store.readBlob(digest, start, end));
};

/** DELETE a blob: unlinks it from the repository (202); the bytes go at GC when nothing else uses them. */
export const deleteBlob: Handler = async (ctx, req) => {
  const route = req.route as BlobRoute;
  const name = checkName(route.name);
  const digest = checkDigest(route.digest, 'digest');
  if (!(await ctx.store.unlinkBlob(name, digest))) {
    throw new DistributionError(
      'BLOB_UNKNOWN',
      { digest },
      { message: `blob ${digest} unknown to repository ${name}` },
    );
  }
  req.reply.code(202).header(Header.ContentDigest, digest).header('content-length', 0).send();
};

function uploadLocation(name: string, id: string): string {
  return paths.upload(name, id);
}

function acceptedUpload(req: RequestContext, name: string, id: string, size: number): void {
  req.reply
    .code(202)
    .header('location', uploadLocation(name, id))
    .header('range', rangeHeader(size))
    .header(Header.UploadUuid, id)
    .header('content-length', 0)
    .send();
}

function created(req: RequestContext, name: string, digest: string): void {
  req.reply
    .code(201)
    .header('location', paths.blob(name, digest))
    .header(Header.ContentDigest, digest)
    .header('content-length', 0)
    .send();
}

function contentLength(req: RequestContext): number | undefined {
  const v = req.headers['content-length'];
  return v === undefined ? undefined : Number(v);
}

function hasBody(req: RequestContext): boolean {
  const len = contentLength(req);
  return (len !== undefined && len > 0) || req.headers['transfer-encoding'] !== undefined;
}

async function streamChunk(
  ctx: RegistryContext,
  req: RequestContext,
  name: string,
  id: string,
  withRange: boolean,
): Promise<number> {
  const range = withRange ? parseContentRange(req.headers['content-range']) : undefined;
  if (range === null) {
    throw new DistributionError(
      'BLOB_UPLOAD_INVALID',
      { contentRange: req.headers['content-range'] },
      {
        status: 416,
        message: `malformed Content-Range ${JSON.stringify(req.headers['content-range'])}: expected <start>-<end>`,
      },
    );
  }
  ctx.metrics.uploadStarted();
  try {
    return await ctx.store.appendChunk(name, id, req.body, {
      ...(range ? { range } : {}),
      ...(contentLength(req) !== undefined ? { length: contentLength(req)! } : {}),
      onBytes: (n) => ctx.metrics.bytesIn(n),
    });
  } catch (err) {
    if (err instanceof DistributionError && err.status === 416) err.headers.Location = uploadLocation(name, id);
    throw err;
  } finally {
    ctx.metrics.uploadEnded();
  }
}

/**
 * POST /blobs/uploads/: start an upload (202), or a monolithic upload with `?digest=` (201), or a
 * cross-repository mount with `?mount=&from=` (201; a new upload, 202, when the source does not have the blob or
 * the client may not read it).
 */
export const startUpload: Handler = async (ctx, req) => {
  const route = req.route as UploadsRoute;
  const name = checkName(route.name);
  const mount = req.query.get('mount');
  const from = req.query.get('from');
  // A mount that cannot be done (a malformed digest or source name included) falls back to a fresh upload, 202.
  if (mount !== null && isDigest(mount) && from !== null && isValidName(from)) {
    const digest = mount;
    if (from !== name && (await req.canPull(from))) {
      if ((await ctx.store.repoBlobSize(from, digest)) !== undefined) {
        await ctx.store.linkBlob(name, digest);
        return created(req, name, digest);
      }
    } else if (from === name && (await ctx.store.repoBlobSize(name, digest)) !== undefined) {
      return created(req, name, digest);
    }
  }
  const digestParam = req.query.get('digest');
  const digest = digestParam === null ? undefined : checkDigest(digestParam, 'digest');
  const upload = await ctx.store.startUpload(name);
  if (digest === undefined) {
    if (hasBody(req)) await streamChunk(ctx, req, name, upload.id, false);
    const state = await ctx.store.uploadState(name, upload.id);
    return acceptedUpload(req, name, upload.id, state.size);
  }
  await streamChunk(ctx, req, name, upload.id, false);
  await ctx.store.commitUpload(name, upload.id, digest);
  return created(req, name, digest);
};

/** PATCH a chunk (with `Content-Range` it must start where the upload ends: 416 otherwise). */
export const patchUpload: Handler = async (ctx, req) => {
  const route = req.route as UploadRoute;
  const name = checkName(route.name);
  const size = await streamChunk(ctx, req, name, route.id, true);
  acceptedUpload(req, name, route.id, size);
};

/** PUT ?digest=: the last chunk (optional body), then verify and commit (201). */
export const putUpload: Handler = async (ctx, req) => {
  const route = req.route as UploadRoute;
  const name = checkName(route.name);
  const digest = checkDigest(req.query.get('digest'), 'digest');
  await ctx.store.uploadState(name, route.id);
  if (hasBody(req)) await streamChunk(ctx, req, name, route.id, req.headers['content-range'] !== undefined);
  await ctx.store.commitUpload(name, route.id, digest);
  created(req, name, digest);
};

/** GET an upload's status: 204 with the bytes received so far in `Range`. */
export const uploadStatus: Handler = async (ctx, req) => {
  const route = req.route as UploadRoute;
  const name = checkName(route.name);
  const state = await ctx.store.uploadState(name, route.id);
  req.reply
    .code(204)
    .header('location', uploadLocation(name, route.id))
    .header('range', rangeHeader(state.size))
    .header(Header.UploadUuid, route.id)
    .send();
};

/** DELETE an upload: cancel it (204). */
export const cancelUpload: Handler = async (ctx, req) => {
  const route = req.route as UploadRoute;
  const name = checkName(route.name);
  await ctx.store.cancelUpload(name, route.id);
  req.reply.code(204).send();
};

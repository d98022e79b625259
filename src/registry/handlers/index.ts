import { API_VERSION, DistributionError, Header, type Route } from '../../distribution/index.js';
import type { Access } from '../auth/index.js';
import type { Handler } from '../context.js';
import { cancelUpload, deleteBlob, getBlob, patchUpload, putUpload, startUpload, uploadStatus } from './blobs.js';
import { catalog, deleteManifest, getManifest, listTags, putManifest, referrers } from './manifests.js';

/** Handlers by route kind and method. A missing entry answers 405 UNSUPPORTED. */
export type HandlerTable = Partial<Record<Route['kind'], Partial<Record<string, Handler>>>>;

const base: Handler = async (_ctx, req) => {
  req.reply.header(Header.ApiVersion, API_VERSION).header('content-type', 'application/json').send('{}');
};

export const handlers: HandlerTable = {
  base: { GET: base, HEAD: base },
  catalog: { GET: catalog },
  tags: { GET: listTags },
  manifest: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest },
  blob: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob },
  uploads: { POST: startUpload },
  upload: { GET: uploadStatus, PATCH: patchUpload, PUT: putUpload, DELETE: cancelUpload },
  referrers: { GET: referrers },
};

export function handlerFor(route: Route, method: string): Handler {
  const h = handlers[route.kind]?.[method];
  if (h) return h;
  return async () => {
    throw new DistributionError(
      'UNSUPPORTED',
      { method, route: route.kind },
      { message: `${method} is not supported on ${route.kind === 'base' ? '/v2/' : `the ${route.kind} endpoint`}` },
    );
  };
}

/**
 * What a request needs, as docker's token scopes name it: reads need pull, writes push (and pull, as docker asks
 * for both), deletes delete; the catalog needs registry:catalog:*; /v2/ needs only a valid identity.
 */
export function accessFor(route: Route, method: string): Access[] {
  if (route.kind === 'base') return [];
  if (route.kind === 'catalog') return [{ type: 'registry', name: 'catalog', actions: ['*'] }];
  const name = route.name;
  const read = method === 'GET' || method === 'HEAD';
  if (method === 'DELETE' && (route.kind === 'manifest' || route.kind === 'blob')) {
    return [{ type: 'repository', name, actions: ['delete'] }];
  }
  return [{ type: 'repository', name, actions: read ? ['pull'] : ['pull', 'push'] }];
}

import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { destination, type Logger, pino } from 'pino';
import { API_VERSION, DistributionError, errorBody, Header, matchRoute, type Route } from '../distribution/index.js';
import { StrataError } from '../errors/index.js';
import { createAuthenticator } from './auth/index.js';
import type { RegistryConfig } from './config.js';
import type { RegistryContext, RequestContext } from './context.js';
import { registryGc } from './gc.js';
import { accessFor, handlerFor } from './handlers/index.js';
import { RegistryMetrics } from './metrics.js';
import { FilesystemDriver, type StorageDriver } from './storage/index.js';
import { RegistryStore } from './store.js';

export interface RegistryServerOptions {
  config: RegistryConfig;
  /** Storage root of the filesystem driver (ignored when `driver` is given). */
  root?: string;
  driver?: StorageDriver;
  /** Where JSON logs go (default: stderr). */
  logger?: Logger;
}

export interface RunningRegistry {
  /** `http://127.0.0.1:PORT` (https with TLS). */
  url: string;
  /** `127.0.0.1:PORT`, as a reference's registry part. */
  host: string;
  port: number;
  app: FastifyInstance;
  context: RegistryContext;
  /** Stop accepting connections, let requests in flight finish, stop background work. */
  close(): Promise<void>;
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/** Route kind of each request, for metrics and logs. */
const routeKinds = new WeakMap<FastifyRequest, string>();

function sendError(reply: FastifyReply, err: DistributionError): void {
  reply.code(err.status);
  for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
  reply.header('content-type', 'application/json').send(errorBody([err]));
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new StrataError('NOT_FOUND', `cannot read TLS ${what} ${path}: ${(err as Error).message}`, {
      hint: 'check --tls-cert and --tls-key (PEM files readable by this user)',
    });
  }
}

/** Parse `host:port` (IPv6 in brackets) for listen(). */
export function parseAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m) {
    throw new StrataError('INVALID_ARGUMENT', `invalid listen address ${JSON.stringify(addr)}`, {
      hint: 'use host:port, for example 127.0.0.1:5000 or [::1]:5000 (port 0 picks a free one)',
    });
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port: Number(m[3]) };
}

export function buildRegistryApp(opts: RegistryServerOptions): { app: FastifyInstance; context: RegistryContext } {
  const { config } = opts;
  // JSON lines on stderr (as distribution logs): stdout stays free for the CLI's own output.
  const log = opts.logger ?? pino({ level: config.log.level, base: { service: 'strata-registry' } }, destination(2));
  const driver = opts.driver ?? new FilesystemDriver(opts.root ?? config.root ?? '/var/lib/strata/registry');
  const metrics = new RegistryMetrics();
  const context: RegistryContext = {
    driver,
    store: new RegistryStore(driver),
    config,
    log,
    metrics,
    auth: createAuthenticator(config, log),
  };
  // Touch re-used blobs well within GC's grace period (at most once a minute per blob): see gc.ts.
  context.store.blobTouchAfterMs = Math.min(60_000, Math.max(100, config.gc.graceSeconds * 500));
  const app = Fastify({
    // Requests are logged once, by the onResponse hook below, with the fields operators grep for.
    logger: false,
    exposeHeadRoutes: false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    keepAliveTimeout: 65_000,
    // Blob bodies stream to storage; this limit applies only to bodies fastify itself parses (none here).
    bodyLimit: 1 << 20,
    // A path fastify cannot percent-decode is routed like any other: its bad digest, reference or name gets its own
    // error code and the API version header, not fastify's bare 400.
    frameworkErrors: (err: Error & { code?: string }, request: FastifyRequest, reply: FastifyReply) => {
      if (err.code !== 'FST_ERR_BAD_URL') return onError(err, request, reply);
      dispatch(request, reply).catch((e: unknown) => onError(e, request, reply));
    },
    ...(config.tls
      ? { https: { cert: readPem(config.tls.cert, 'certificate'), key: readPem(config.tls.key, 'key') } }
      : {}),
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;

  // Bodies are never parsed or buffered by the framework: handlers read request.raw as a stream.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  app.addHook('onResponse', async (request, reply) => {
    const route = routeKinds.get(request) ?? 'other';
    const seconds = reply.elapsedTime / 1000;
    metrics.request(route, request.method, reply.statusCode, seconds);
    log.info(
      {
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        remote: request.ip,
      },
      'request',
    );
  });

  const onError = (err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof DistributionError) return sendError(reply, err);
    const e = err as { code?: string; statusCode?: number; message?: string };
    if (e.code === 'ECONNRESET' || e.code === 'ERR_STREAM_PREMATURE_CLOSE' || e.message === 'aborted') {
      // The client went away mid-body: whatever arrived is kept for a resume; nobody is left to answer.
      log.debug({ url: request.url }, 'client disconnected');
      return sendError(
        reply,
        new DistributionError('BLOB_UPLOAD_INVALID', undefined, { message: 'request body ended early' }),
      );
    }
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      return sendError(
        reply,
        new DistributionError('UNSUPPORTED', undefined, { status: e.statusCode, message: e.message ?? 'bad request' }),
      );
    }
    log.error({ err, url: request.url, method: request.method }, 'request failed');
    reply
      .code(500)
      .header('content-type', 'application/json')
      .send(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'internal server error' }] }));
  };
  app.setErrorHandler(onError);

  // Async handlers that call reply.send must return the reply: otherwise fastify answers an empty body as soon as
  // the promise resolves, before a streamed payload has been piped.
  const dispatch = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    reply.header(Header.ApiVersion, API_VERSION);
    const q = request.url.indexOf('?');
    const path = q < 0 ? request.url : request.url.slice(0, q);
    const route: Route | undefined = matchRoute(path);
    if (!route) {
      throw new DistributionError('UNSUPPORTED', { path }, { status: 404, message: `no such endpoint: ${path}` });
    }
    routeKinds.set(request, route.kind);
    const grant = await context.auth.authorize(
      { headers: request.headers, ip: request.ip },
      accessFor(route, request.method),
    );
    const req: RequestContext = {
      route,
      method: request.method,
      query: new URLSearchParams(q < 0 ? '' : request.url.slice(q + 1)),
      headers: request.headers,
      body: request.raw,
      reply,
      subject: grant.subject,
      canPull: async (name) => grant.allows({ type: 'repository', name, actions: ['pull'] }),
    };
    await handlerFor(route, request.method)(context, req);
    return reply;
  };
  app.route({ method: [...METHODS], url: '/v2', handler: dispatch });
  app.route({ method: [...METHODS], url: '/v2/*', handler: dispatch });
  // Other methods (OPTIONS, ...) and paths: 405 UNSUPPORTED on a known route, 404 elsewhere, as the API answers.
  app.setNotFoundHandler(dispatch);

  app.get('/healthz', async (_request, reply) => {
    const st = await driver.stat('/');
    reply
      .code(st ? 200 : 503)
      .header('content-type', 'application/json')
      .send(JSON.stringify({ status: st ? 'ok' : 'storage unavailable' }));
  });
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8').send(metrics.render());
  });
  context.auth.register?.(app);
  return { app, context };
}

/** Start a registry on `config.addr` (port 0: a free port) and the background jobs (stale upload purge, GC). */
export async function startRegistry(opts: RegistryServerOptions): Promise<RunningRegistry> {
  const { app, context } = buildRegistryApp(opts);
  const { host, port } = parseAddr(opts.config.addr);
  await app.listen({ host, port });
  const address = app.server.address() as AddressInfo;
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const timers: NodeJS.Timeout[] = [];
  const { staleAfterSeconds, purgeIntervalSeconds } = opts.config.uploads;
  const purge = (): void => {
    context.store
      .purgeUploads(new Date(Date.now() - staleAfterSeconds * 1000))
      .then((n) => n > 0 && context.log.info({ purged: n }, 'stale uploads removed'))
      .catch((err: unknown) => context.log.error({ err }, 'stale upload purge failed'));
  };
  timers.push(setInterval(purge, purgeIntervalSeconds * 1000).unref());
  // Background GC: one run at a time (a tick during a run is skipped), errors logged, stopped by close().
  const gcAbort = new AbortController();
  let gcRunning: Promise<void> | undefined;
  const { intervalSeconds: gcInterval, graceSeconds, retention } = opts.config.gc;
  const runGc = (): void => {
    if (gcRunning) {
      context.log.debug('gc: previous run still going, tick skipped');
      return;
    }
    gcRunning = registryGc(context.store, {
      graceSeconds,
      ...(retention ? { retention } : {}),
      signal: gcAbort.signal,
      onWarning: (message) => context.log.warn({ gc: true }, message),
    })
      .then((r) => {
        context.metrics.gcRun(r);
        context.log.info(
          { blobs: r.blobs, bytes: r.bytes, manifests: r.manifests, tags: r.tags, ms: r.durationMs },
          'gc finished',
        );
      })
      .catch((err: unknown) => {
        if (!gcAbort.signal.aborted) context.log.error({ err }, 'gc failed');
      })
      .finally(() => {
        gcRunning = undefined;
      });
  };
  if (gcInterval > 0) timers.push(setInterval(runGc, gcInterval * 1000).unref());
  return {
    url: `${opts.config.tls ? 'https' : 'http'}://${hostPart}:${address.port}`,
    host: `${hostPart}:${address.port}`,
    port: address.port,
    app,
    context,
    close: async () => {
      for (const t of timers) clearInterval(t);
      gcAbort.abort();
      await gcRunning;
      // close() closes the connections idle at that moment; one whose request was still running becomes idle later
      // and would hold close() until keepAliveTimeout (65 s): sweep those as they go idle.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      try {
        await app.close();
      } finally {
        clearInterval(sweep);
      }
    },
  };
}

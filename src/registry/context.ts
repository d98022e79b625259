import type { IncomingMessage } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { Route } from '../distribution/index.js';
import type { Authenticator } from './auth/index.js';
import type { RegistryConfig } from './config.js';
import type { RegistryMetrics } from './metrics.js';
import type { StorageDriver } from './storage/index.js';
import type { RegistryStore } from './store.js';

/** What every handler shares: storage, configuration, logger, auth and the metrics sink. */
export interface RegistryContext {
  driver: StorageDriver;
  store: RegistryStore;
  config: RegistryConfig;
  log: Logger;
  metrics: RegistryMetrics;
  auth: Authenticator;
}

/** One request, already routed and authorized. Handlers write the response through `reply`. */
export interface RequestContext {
  route: Route;
  method: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** The request body as a stream (never buffered by the framework). */
  body: IncomingMessage;
  reply: FastifyReply;
  /** Who the request was authorized as (undefined: anonymous). */
  subject: string | undefined;
  /** May this subject pull from another repository (cross-repository mount checks its source). */
  canPull(name: string): Promise<boolean>;
}

export type Handler = (ctx: RegistryContext, req: RequestContext) => Promise<void>;

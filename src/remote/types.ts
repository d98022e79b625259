import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/index.js';

/**
 * The registry client's shared vocabulary. `transport.ts` implements RegistryTransport (undici, auth, retries);
 * `puller.ts`, `pusher.ts` and `copy.ts` use it and report progress as ProgressEvents, which the CLI renders.
 */

/** What a request needs from the registry's token server: `repository:<name>:<actions>`. */
export interface RequestScope {
  name: string;
  actions: ('pull' | 'push' | 'delete')[];
  /** Extra repositories the request reads (a cross-repository mount's `from`). */
  also?: { name: string; actions: ('pull' | 'push')[] }[];
}

export interface TransportRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path and query below the registry origin (`/v2/library/busybox/manifests/latest`), or an absolute URL
   *  (a `Location` the registry sent, possibly on another host for blob redirects). */
  path: string;
  headers?: Record<string, string>;
  /**
   * Request body. A Buffer or string can be replayed, so such requests are retried (401 once with fresh auth,
   * 429/5xx with backoff). A stream cannot: the caller resumes instead (upload status GET, Range).
   */
  body?: Buffer | string | Readable;
  scope: RequestScope;
  /** Statuses the caller handles itself; any other non-2xx becomes a RegistryError. Default: 2xx only. */
  accept?: number[];
  signal?: AbortSignal;
}

export interface TransportResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body as a stream; consume it or call `dump()`. */
  body: Readable;
  text(): Promise<string>;
  json<T = unknown>(): Promise<T>;
  /** Discard the body so the connection can be reused. */
  dump(): Promise<void>;
  /** The final URL (after redirects). */
  url: string;
}

export interface RegistryTransport {
  /** Registry host as references name it (`docker.io`, `127.0.0.1:5000`). */
  readonly registry: string;
  /** `https://registry-1.docker.io`, `http://127.0.0.1:5000`. */
  readonly origin: string;
  request(req: TransportRequest): Promise<TransportResponse>;
  /** Bytes received and sent so far (bodies), for tests and progress. */
  readonly stats: { bytesIn: number; bytesOut: number; requests: number; retries: number };
  close(): Promise<void>;
}

/** Docker-like per-blob progress states. */
export type ProgressState =
  | 'waiting'
  | 'exists' // "Already exists" (pull) / "Layer already exists" (push)
  | 'mounted' // "Mounted from <repo>"
  | 'downloading'
  | 'uploading'
  | 'verifying'
  | 'extracting'
  | 'done' // "Pull complete" / "Pushed"
  | 'retrying'
  | 'failed';

export type ProgressEvent =
  | { kind: 'blob'; digest: Digest; size: number; state: ProgressState; current?: number; detail?: string }
  | { kind: 'message'; text: string }
  | { kind: 'result'; reference: string; digest: Digest; status: string };

export type ProgressFn = (event: ProgressEvent) => void;

export interface RemoteOptions {
  signal?: AbortSignal;
  onProgress?: ProgressFn;
}

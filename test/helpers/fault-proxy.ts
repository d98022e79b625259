import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small HTTP proxy on 127.0.0.1 in front of a registry, for fault tests: it forwards every request and can be told
 * to misbehave once on matching requests. It counts the body bytes it moved in each direction, so a test can show
 * that a client resumed instead of restarting.
 *
 * This is a real TCP proxy between real client and real server, not a mock: the faults are the ones a network or an
 * overloaded registry produces (a connection cut mid-body, a flipped byte, 429 with Retry-After, a one-off 500).
 */
export type Fault =
  /** Forward the response headers and `afterBytes` of the body, then destroy the connection. */
  | { kind: 'cut-response'; afterBytes: number }
  /** Forward `afterBytes` of the request body upstream, then destroy both connections. */
  | { kind: 'cut-request'; afterBytes: number }
  /** Flip one byte of the response body at `offset`. */
  | { kind: 'corrupt'; offset: number }
  /** Answer with this status (and Retry-After when given) without asking upstream. */
  | { kind: 'status'; status: number; retryAfter?: string };

export interface FaultRule {
  method?: string;
  /** Matched against the request path (with query). */
  path: RegExp;
  fault: Fault;
  /** How many matching requests get the fault (default 1). */
  times?: number;
}

export interface FaultProxy {
  url: string;
  /** `127.0.0.1:PORT`: use as the registry part of a reference. */
  host: string;
  /** Body bytes: `up` sent to the registry, `down` sent to the client. */
  bytes: { up: number; down: number };
  /** Requests seen, as `METHOD path`. */
  log: string[];
  /** Faults injected so far. */
  injected: number;
  add(rule: FaultRule): void;
  /** Drop every rule not used up yet. */
  clear(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const rules: Array<FaultRule & { left: number }> = [];
  const proxy: FaultProxy = {
    url: '',
    host: '',
    bytes: { up: 0, down: 0 },
    log: [],
    injected: 0,
    add: (rule) => {
      rules.push({ ...rule, left: rule.times ?? 1 });
    },
    clear: () => {
      rules.length = 0;
    },
    close: async () => {},
  };

  const take = (req: IncomingMessage): Fault | undefined => {
    const rule = rules.find((r) => r.left > 0 && (!r.method || r.method === req.method) && r.path.test(req.url ?? ''));
    if (!rule) return undefined;
    rule.left--;
    proxy.injected++;
    return rule.fault;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    proxy.log.push(`${req.method} ${req.url}`);
    const fault = take(req);
    if (fault?.kind === 'status') {
      req.resume();
      res.writeHead(fault.status, {
        'content-type': 'application/json',
        ...(fault.retryAfter ? { 'retry-after': fault.retryAfter } : {}),
      });
      res.end(
        JSON.stringify({
          errors: [{ code: fault.status === 429 ? 'TOOMANYREQUESTS' : 'UNKNOWN', message: 'injected fault' }],
        }),
      );
      return;
    }
    const headers = { ...req.headers, host: upstream.host };
    const up = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (upRes) => {
        // Location headers name the upstream: rewrite them so the client keeps talking through the proxy.
        const outHeaders = { ...upRes.headers };
        const loc = outHeaders.location;
        if (typeof loc === 'string' && loc.startsWith(upstream.origin))
          outHeaders.location = proxy.url + loc.slice(upstream.origin.length);
        res.writeHead(upRes.statusCode ?? 502, outHeaders);
        let sent = 0;
        upRes.on('data', (chunk: Buffer) => {
          let out = chunk;
          if (fault?.kind === 'corrupt' && fault.offset >= sent && fault.offset < sent + chunk.length) {
            out = Buffer.from(chunk);
            out[fault.offset - sent] = out[fault.offset - sent]! ^ 0xff;
          }
          if (fault?.kind === 'cut-response' && sent + out.length > fault.afterBytes) {
            const part = out.subarray(0, Math.max(0, fault.afterBytes - sent));
            proxy.bytes.down += part.length;
            res.write(part, () => {
              res.destroy();
              upRes.destroy();
            });
            sent += part.length;
            return;
          }
          sent += out.length;
          proxy.bytes.down += out.length;
          if (!res.write(out)) {
            upRes.pause();
            res.once('drain', () => upRes.resume());
          }
        });
        upRes.on('end', () => res.end());
        upRes.on('error', () => res.destroy());
      },
    );
    up.on('error', () => res.destroy());
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      if (fault?.kind === 'cut-request' && received + chunk.length > fault.afterBytes) {
        const part = chunk.subarray(0, Math.max(0, fault.afterBytes - received));
        proxy.bytes.up += part.length;
        received += part.length;
        up.write(part, () => {
          up.destroy();
          req.socket.destroy();
        });
        return;
      }
      received += chunk.length;
      proxy.bytes.up += chunk.length;
      if (!up.write(chunk)) {
        req.pause();
        up.once('drain', () => req.resume());
      }
    });
    req.on('end', () => up.end());
    req.on('error', () => up.destroy());
  };

  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  proxy.url = `http://127.0.0.1:${port}`;
  proxy.host = `127.0.0.1:${port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}

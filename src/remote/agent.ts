/**
 * The HTTP agent of everything strata fetches (registries, `ADD <url>`), and the CA certificates it trusts.
 *
 * Node reads the file named by NODE_EXTRA_CA_CERTS when it starts, whether or not the process will open a TLS
 * connection: 50 ms of start-up where the variable names the system bundle. The `strata` command
 * (scripts/strata-loader.mjs) therefore hands the variable on as STRATA_EXTRA_CA_CERTS, and the file is read here
 * the first time a TLS connection is made: Node's own root certificates plus those of the file, as Node would have
 * trusted them. A plain-HTTP connection (a registry on 127.0.0.1) never reads it.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, buildConnector } from 'undici';

export const DEFERRED_CA_ENV = 'STRATA_EXTRA_CA_CERTS';

let deferred: { ca: string[] | undefined } | undefined;

/**
 * The CA certificates to trust when NODE_EXTRA_CA_CERTS was deferred (see above), else undefined (Node's defaults,
 * which then include that file already). Like Node, an unreadable file is a warning and Node's roots stay.
 */
export function deferredCaCertificates(): string[] | undefined {
  if (deferred) return deferred.ca;
  const file = process.env[DEFERRED_CA_ENV];
  let ca: string[] | undefined;
  if (file) {
    try {
      ca = [...rootCertificates, readFileSync(file, 'utf8')];
    } catch (err) {
      process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${(err as Error).message}`);
    }
  }
  deferred = { ca };
  return ca;
}

export interface AgentOptions {
  /** Connection timeout in ms (default 30 s). */
  connectTimeout?: number;
  keepAliveTimeout?: number;
  keepAliveMaxTimeout?: number;
}

/** An undici Agent whose TLS connections trust the deferred extra CA certificates (read at the first one). */
export function httpAgent(opts: AgentOptions = {}): Agent {
  const timeout = opts.connectTimeout ?? 30_000;
  const plain = buildConnector({ timeout });
  let withExtraCa: buildConnector.connector | undefined;
  return new Agent({
    ...(opts.keepAliveTimeout !== undefined ? { keepAliveTimeout: opts.keepAliveTimeout } : {}),
    ...(opts.keepAliveMaxTimeout !== undefined ? { keepAliveMaxTimeout: opts.keepAliveMaxTimeout } : {}),
    connect: (o, cb) => {
      if (o.protocol === 'https:') {
        const ca = deferredCaCertificates();
        if (ca) {
          withExtraCa ??= buildConnector({ timeout, ca });
          withExtraCa(o, cb);
          return;
        }
      }
      plain(o, cb);
    },
  });
}

import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';

/** One thing a request needs: `repository:<name>` with actions, or `registry:catalog:*`. */
export interface Access {
  type: 'repository' | 'registry';
  name: string;
  actions: ('pull' | 'push' | 'delete' | '*')[];
}

/** What an authorized request may do: its subject, and a check for further access (a mount's source). */
export interface Grant {
  /** User name; undefined for anonymous. */
  subject: string | undefined;
  allows(access: Access): boolean;
}

/**
 * Decides whether a request may do what it asks. `authorize` resolves with a Grant or throws DistributionError
 * UNAUTHORIZED (with the WWW-Authenticate challenge header) or DENIED. `register` adds routes the scheme needs
 * (the token endpoint).
 */
export interface Authenticator {
  authorize(req: { headers: IncomingHttpHeaders; ip: string }, access: readonly Access[]): Promise<Grant>;
  register?(app: FastifyInstance): void;
}

/** Anonymous access for everyone: the embedded default on loopback. */
export const anonymousAuthenticator: Authenticator = {
  authorize: async () => ({ subject: undefined, allows: () => true }),
};

import type { Logger } from 'pino';
import { DistributionError, formatChallenge, formatScope } from '../../distribution/index.js';
import { type Htpasswd, parseBasic } from './htpasswd.js';
import type { AccessPolicy } from './rules.js';
import type { Access, Authenticator, Grant } from './types.js';

export function describeAccess(access: readonly Access[]): string {
  return access.map((a) => formatScope(a)).join(' ');
}

/**
 * HTTP Basic auth against an htpasswd file, as distribution's `htpasswd` auth: missing or wrong credentials get
 * 401 with `WWW-Authenticate: Basic realm="..."` (also on /v2/, so `docker login` checks the password there); a
 * known user the access rules do not allow gets 403 DENIED. Anonymous requests pass only where a rule grants
 * `anonymous` the access (never /v2/, which has nothing to grant).
 */
export class BasicAuthenticator implements Authenticator {
  private readonly challenge: string;

  constructor(
    private readonly users: Htpasswd,
    private readonly policy: AccessPolicy,
    realm: string,
    private readonly log: Logger,
  ) {
    this.challenge = formatChallenge('Basic', { realm });
  }

  private unauthorized(message: string, access: readonly Access[]): DistributionError {
    return new DistributionError('UNAUTHORIZED', access.length ? access : undefined, {
      message,
      headers: { 'WWW-Authenticate': this.challenge },
    });
  }

  async authorize(req: { headers: { authorization?: string }; ip: string }, access: readonly Access[]): Promise<Grant> {
    const header = req.headers.authorization;
    const result = await this.users.check(header);
    if (result === false) {
      this.log.info({ user: parseBasic(header)?.user, ip: req.ip }, 'basic auth failed: wrong user or password');
      throw this.unauthorized('authentication required: wrong user name or password', access);
    }
    const subject = result;
    if (subject === undefined) {
      if (access.length > 0 && access.every((a) => this.policy.allows(undefined, a))) {
        return { subject: undefined, allows: (a) => this.policy.allows(undefined, a) };
      }
      throw this.unauthorized('authentication required: log in with a user of the registry (docker login)', access);
    }
    const denied = access.filter((a) => !this.policy.allows(subject, a));
    if (denied.length > 0) {
      this.log.info({ user: subject, ip: req.ip, denied: describeAccess(denied) }, 'access denied');
      throw new DistributionError('DENIED', denied, {
        message: `requested access to the resource is denied: user "${subject}" may not ${describeAccess(denied)} (see auth.access in the registry config)`,
      });
    }
    return { subject, allows: (a) => this.policy.allows(subject, a) };
  }
}

import type { Logger } from 'pino';
import type { RegistryConfig } from '../config.js';
import { BasicAuthenticator } from './basic.js';
import { BearerAuthenticator } from './bearer.js';
import { Htpasswd } from './htpasswd.js';
import { AccessPolicy } from './rules.js';
import { loadTokenKey, TokenIssuer } from './token.js';
import { anonymousAuthenticator, type Authenticator } from './types.js';

export { BasicAuthenticator } from './basic.js';
export { BearerAuthenticator, parseRequestedScopes, TOKEN_PATH } from './bearer.js';
export { Htpasswd, parseBasic } from './htpasswd.js';
export { AccessPolicy, type AccessRule, compileGlob, covers } from './rules.js';
export { loadTokenKey, TokenIssuer, type TokenKey } from './token.js';
export { type Access, anonymousAuthenticator, type Authenticator, type Grant } from './types.js';

/**
 * The authenticator the config asks for:
 * - no `auth` section (or neither htpasswd nor token): anonymous, everyone may do everything;
 * - `auth.htpasswd` only: HTTP Basic against the file, with `auth.access` rules (403 DENIED when they refuse);
 * - `auth.token`: docker's bearer-token auth with a built-in token endpoint at /token, which checks Basic
 *   credentials against `auth.htpasswd` when it is set (every token is anonymous otherwise).
 * Files (htpasswd, signing key) are read here, once; a bad one fails the start with what to fix.
 */
export function createAuthenticator(config: RegistryConfig, log: Logger): Authenticator {
  const auth = config.auth;
  if (!auth || (!auth.htpasswd && !auth.token)) return anonymousAuthenticator;
  const alog = log.child({ component: 'auth' });
  const policy = new AccessPolicy(auth.access);
  const users = auth.htpasswd ? new Htpasswd(auth.htpasswd.path, alog) : undefined;
  const basicRealm = auth.htpasswd?.realm ?? 'strata-registry';
  if (!auth.token) return new BasicAuthenticator(users!, policy, basicRealm, alog);

  const t = auth.token;
  if (!users && !policy.grantsAnonymous) {
    alog.warn(
      'token auth without auth.htpasswd issues only anonymous tokens, and no auth.access rule grants "anonymous" ' +
        'anything: every request will be refused (add auth.htpasswd, or a rule with users ["anonymous"])',
    );
  }
  if (!t.key) alog.info('token auth signs with a key generated at start: tokens become invalid on restart');
  const issuer = new TokenIssuer(loadTokenKey(t.key), t.issuer, t.service, t.expiration);
  return new BearerAuthenticator({
    issuer,
    policy,
    users,
    realm: t.realm,
    tls: !!config.tls,
    addr: config.addr,
    basicRealm,
    log: alog,
  });
}

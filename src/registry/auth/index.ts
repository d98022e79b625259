import type { Logger } from 'pino';
import { StrataError } from '../../errors/index.js';
import type { RegistryConfig } from '../config.js';
import { anonymousAuthenticator, type Authenticator } from './types.js';

export { type Access, anonymousAuthenticator, type Authenticator, type Grant } from './types.js';

/** The authenticator the config asks for: anonymous when it has no `auth` section. */
export function createAuthenticator(config: RegistryConfig, _log: Logger): Authenticator {
  if (!config.auth || (!config.auth.htpasswd && !config.auth.token)) return anonymousAuthenticator;
  throw new StrataError('UNIMPLEMENTED', 'registry auth is not implemented yet');
}

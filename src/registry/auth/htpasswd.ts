import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import type { Logger } from 'pino';
import { StrataError } from '../../errors/index.js';

/** bcrypt hashes as `htpasswd -B` writes them ($2y$) and as other tools do ($2a$, $2b$). */
const BCRYPT_RE = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

/** Successful verifications are remembered this long (bcrypt costs tens of milliseconds per check). */
const CACHE_TTL_MS = 60_000;
const CACHE_MAX = 10_000;

export interface BasicCredentials {
  user: string;
  password: string;
}

/** `Basic base64(user:password)`; undefined when the header is absent, not Basic, or malformed. */
export function parseBasic(header: string | undefined): BasicCredentials | undefined {
  if (!header) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/**
 * Users from an Apache htpasswd file with bcrypt entries (`htpasswd -B`), as distribution's htpasswd auth reads
 * it. Other hash formats (MD5 `$apr1$`, SHA1 `{SHA}`, crypt) are refused with a warning naming the line. The file
 * is read once, at start.
 */
export class Htpasswd {
  private readonly users = new Map<string, string>();
  /** sha256(Authorization header) -> user and expiry. Never holds the header itself. */
  private readonly cache = new Map<string, { user: string; until: number }>();
  /** Checked when the user is unknown, with the file's cost, so a missing user takes as long as a wrong password. */
  private readonly dummyHash: string;

  constructor(
    readonly path: string,
    log: Logger,
  ) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new StrataError('NOT_FOUND', `cannot read htpasswd file ${path}: ${(err as Error).message}`, {
        hint: 'create it with `htpasswd -Bbn USER PASSWORD > FILE` (apache2-utils) or fix auth.htpasswd.path',
        cause: err,
      });
    }
    const lines = text.split(/\r?\n/);
    lines.forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const colon = line.indexOf(':');
      if (colon <= 0) {
        throw new StrataError('INVALID_ARGUMENT', `htpasswd file ${path}, line ${i + 1}: expected "user:hash"`, {
          hint: 'each line is a user name, a colon and a bcrypt hash, as `htpasswd -Bbn USER PASSWORD` prints',
        });
      }
      const user = line.slice(0, colon);
      const hash = line.slice(colon + 1);
      if (!BCRYPT_RE.test(hash)) {
        log.warn(
          { file: path, line: i + 1, user },
          'htpasswd entry is not a bcrypt hash: this user cannot log in (regenerate it with `htpasswd -B`)',
        );
        return;
      }
      if (this.users.has(user)) log.warn({ file: path, line: i + 1, user }, 'htpasswd user listed twice: last wins');
      this.users.set(user, hash);
    });
    const first = this.users.values().next();
    this.dummyHash = bcrypt.hashSync('strata: no such user', first.done ? 10 : bcrypt.getRounds(first.value));
    if (this.users.size === 0)
      log.warn({ file: path }, 'htpasswd file has no usable (bcrypt) entries: nobody can log in');
  }

  get size(): number {
    return this.users.size;
  }

  /** The user name when the credentials are right, undefined otherwise. */
  async verify(creds: BasicCredentials): Promise<string | undefined> {
    const hash = this.users.get(creds.user);
    // Always run bcrypt: an unknown user costs the same as a wrong password (no user enumeration by timing).
    const ok = await bcrypt.compare(creds.password, hash ?? this.dummyHash);
    return ok && hash !== undefined ? creds.user : undefined;
  }

  /**
   * Check an Authorization header. Returns the user, `undefined` when there are no Basic credentials, or `false`
   * when there are and they are wrong. Successes are cached under a hash of the header for a minute.
   */
  async check(header: string | undefined): Promise<string | undefined | false> {
    const creds = parseBasic(header);
    if (!creds) return undefined;
    const keyHex = createHash('sha256').update(header!).digest('hex');
    const hit = this.cache.get(keyHex);
    const now = Date.now();
    if (hit && hit.until > now) return hit.user;
    if (hit) this.cache.delete(keyHex);
    const user = await this.verify(creds);
    if (user === undefined) return false;
    if (this.cache.size >= CACHE_MAX) {
      // Drop the oldest entry (Maps iterate in insertion order).
      const first = this.cache.keys().next();
      if (!first.done) this.cache.delete(first.value);
    }
    this.cache.set(keyHex, { user, until: now + CACHE_TTL_MS });
    return user;
  }
}

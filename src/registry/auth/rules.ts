import { StrataError } from '../../errors/index.js';
import type { RegistryConfig } from '../config.js';
import type { Access } from './types.js';

export type AccessRule = NonNullable<RegistryConfig['auth']>['access'][number];
export type RepoAction = 'pull' | 'push' | 'delete';

const ALL: readonly RepoAction[] = ['pull', 'push', 'delete'];

/**
 * Compile a repository glob: `*` matches within one path component, `**` across components (`team/**` matches
 * `team/a` and `team/a/b`, `**\/app` matches `app` and `x/y/app`). Everything else is literal.
 */
export function compileGlob(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      i++;
      if (glob[i + 1] === '/') {
        i++;
        re += '(?:.*/)?';
      } else re += '.*';
    } else if (c === '*') re += '[^/]*';
    else re += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

interface CompiledRule {
  glob: string;
  re: RegExp;
  users: readonly string[];
  actions: ReadonlySet<RepoAction>;
  everywhere: boolean;
}

/**
 * Who may do what, from `auth.access`. A rule applies to a subject when its `users` name the user, or hold `*`
 * (any authenticated user) or `anonymous` (requests without credentials; `*` does not include them).
 *
 * Choice: rules are additive. Every rule whose glob matches the repository and whose users match the subject
 * contributes its actions, and the subject may do the union (there are no deny rules, so a "first match wins"
 * order would only make a broad rule listed early silently shadow a more generous one later).
 *
 * Without any rule: every authenticated user may pull, push and delete everywhere (and list the catalog), and
 * anonymous requests may do nothing.
 *
 * The catalog (`registry:catalog:*`) lists every repository name, so it is granted only to subjects that may pull
 * every repository: a matching rule for `**` with `pull` or `*`.
 */
export class AccessPolicy {
  private readonly rules: CompiledRule[];

  constructor(rules: readonly AccessRule[]) {
    this.rules = rules.map((r, i) => {
      if (r.repository === '') {
        throw new StrataError('INVALID_ARGUMENT', `registry config: auth.access[${i}].repository is empty`, {
          hint: 'use a repository name or glob such as "team/*" or "**"',
        });
      }
      const actions = new Set<RepoAction>(r.actions.flatMap((a) => (a === '*' ? ALL : [a])));
      return {
        glob: r.repository,
        re: compileGlob(r.repository),
        users: r.users,
        actions,
        everywhere: r.repository === '**',
      };
    });
  }

  get hasRules(): boolean {
    return this.rules.length > 0;
  }

  /** True when some rule applies to anonymous requests (used to warn about configs nobody can use). */
  get grantsAnonymous(): boolean {
    return this.rules.some((r) => r.users.includes('anonymous') && r.actions.size > 0);
  }

  private static userMatches(users: readonly string[], subject: string | undefined): boolean {
    if (subject === undefined) return users.includes('anonymous');
    return users.includes('*') || users.includes(subject);
  }

  /** The actions a subject (undefined: anonymous) may do on a repository. */
  repositoryActions(subject: string | undefined, name: string): Set<RepoAction> {
    if (this.rules.length === 0) return new Set(subject === undefined ? [] : ALL);
    const out = new Set<RepoAction>();
    for (const r of this.rules) {
      if (!AccessPolicy.userMatches(r.users, subject) || !r.re.test(name)) continue;
      for (const a of r.actions) out.add(a);
    }
    return out;
  }

  /** May the subject list the catalog. */
  catalog(subject: string | undefined): boolean {
    if (this.rules.length === 0) return subject !== undefined;
    return this.rules.some((r) => r.everywhere && r.actions.has('pull') && AccessPolicy.userMatches(r.users, subject));
  }

  /** The actions the subject may do on one resource (`*` included when it may do all of them). */
  granted(subject: string | undefined, type: string, name: string): Set<string> {
    if (type === 'registry') return new Set(name === 'catalog' && this.catalog(subject) ? ['*'] : []);
    if (type !== 'repository') return new Set();
    const actions: Set<string> = this.repositoryActions(subject, name);
    if (ALL.every((a) => actions.has(a))) actions.add('*');
    return actions;
  }

  allows(subject: string | undefined, access: Access): boolean {
    const granted = this.granted(subject, access.type, access.name);
    return access.actions.every((a) => granted.has(a));
  }

  /** The requested access cut down to what the subject may have; resources with nothing left are dropped. */
  intersect(subject: string | undefined, requested: readonly Access[]): Access[] {
    const out: Access[] = [];
    for (const req of requested) {
      const granted = this.granted(subject, req.type, req.name);
      const actions = req.actions.filter((a) => granted.has(a));
      if (actions.length > 0) out.push({ type: req.type, name: req.name, actions });
    }
    return out;
  }
}

/** Does a list of granted access entries (a token's `access` claim) cover what a request needs? */
export function covers(granted: readonly Access[], needed: Access): boolean {
  return needed.actions.every((action) =>
    granted.some(
      (g) =>
        g.type === needed.type && g.name === needed.name && (g.actions.includes(action) || g.actions.includes('*')),
    ),
  );
}

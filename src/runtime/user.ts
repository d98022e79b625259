/**
 * `--user` / USER resolved against the container's /etc/passwd and /etc/group, exactly as docker does it (runc's
 * `user.GetExecUser`, which moby calls). PURE: the caller reads the two files from the rootfs ('' when missing).
 *
 *   resolveUser('daemon', passwd, group)   // { uid: 1, gid: 1, additionalGids: [...], home: '/usr/sbin', name: 'daemon' }
 *   resolveUser('1000:1000', '', '')       // numeric ids need no entry
 */
import { StrataError } from '../errors/index.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Groups that list the user as a member (only when no group was given, as docker does). */
  additionalGids: number[];
  /** The passwd entry's home directory, "/" when there is no entry. */
  home: string;
  /** The passwd entry's name, when one matched. */
  name?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const MAX_ID = 0x7fffffff;

/** Go's strconv.Atoi on a decimal id: optional sign, digits only. NaN when it is not a number. */
function atoi(s: string): number {
  return /^[+-]?\d+$/.test(s) ? Number(s) : Number.NaN;
}

function lines(text: string): string[][] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => l.split(':'));
}

export function parsePasswd(text: string): PasswdEntry[] {
  return lines(text).map((f) => ({
    name: f[0] ?? '',
    uid: atoi(f[2] ?? '') || 0,
    gid: atoi(f[3] ?? '') || 0,
    home: f[5] ?? '',
  }));
}

export function parseGroup(text: string): GroupEntry[] {
  return lines(text).map((f) => ({
    name: f[0] ?? '',
    gid: atoi(f[2] ?? '') || 0,
    members: (f[3] ?? '').split(',').filter((m) => m !== ''),
  }));
}

function rangeError(): StrataError {
  return new StrataError('INVALID_ARGUMENT', 'uids and gids must be in range 0-2147483647');
}

/**
 * Resolve "", "name", "uid", "name:group", "uid:gid" (and "name:gid", "uid:group"). A name must exist in passwd
 * (group); a number need not. Without a group, the gid is the passwd entry's and the supplementary groups are those
 * listing the user by name; with a group, there are no supplementary groups.
 */
export function resolveUser(spec: string | undefined, passwd: string, group: string): ResolvedUser {
  const [userArg = '', groupArg = ''] = (spec ?? '').split(':');
  const uidArg = atoi(userArg);
  const gidArg = atoi(groupArg);

  let uid = 0;
  let gid = 0;
  let home = '/';
  let matchedName: string | undefined;

  const users = parsePasswd(passwd).filter((u) => {
    if (userArg === '') return u.uid === 0;
    if (!Number.isNaN(uidArg)) return u.uid === uidArg;
    return u.name === userArg;
  });
  const found = users[0];
  if (found) {
    matchedName = found.name;
    uid = found.uid;
    gid = found.gid;
    home = found.home;
  } else if (userArg !== '') {
    if (Number.isNaN(uidArg)) {
      throw new StrataError('NOT_FOUND', `unable to find user ${userArg}: no matching entries in passwd file`, {
        hint: `the image's /etc/passwd has no user "${userArg}": give a numeric uid or add the user`,
        details: { user: userArg },
      });
    }
    if (uidArg < 0 || uidArg > MAX_ID) throw rangeError();
    uid = uidArg;
  }

  let additionalGids: number[] = [];
  if (groupArg !== '' || matchedName !== undefined) {
    const groups = parseGroup(group).filter((g) => {
      if (groupArg === '') return g.members.includes(matchedName!);
      if (!Number.isNaN(gidArg)) return g.gid === gidArg;
      return g.name === groupArg;
    });
    if (groupArg !== '') {
      const g = groups[0];
      if (g) gid = g.gid;
      else {
        if (Number.isNaN(gidArg)) {
          throw new StrataError('NOT_FOUND', `unable to find group ${groupArg}: no matching entries in group file`, {
            hint: `the image's /etc/group has no group "${groupArg}": give a numeric gid or add the group`,
            details: { group: groupArg },
          });
        }
        if (gidArg < 0 || gidArg > MAX_ID) throw rangeError();
        gid = gidArg;
      }
    } else {
      additionalGids = groups.map((g) => g.gid);
    }
  }

  const out: ResolvedUser = { uid, gid, additionalGids, home };
  if (matchedName !== undefined) out.name = matchedName;
  return out;
}

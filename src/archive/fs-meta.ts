// Filesystem metadata Node does not cover: extended attributes (via @napi-rs/xattr, a prebuilt N-API addon) and
// device nodes (Node has no mknod, so /usr/bin/mknod is spawned).
import { execFile } from 'node:child_process';
import {
  getAttribute,
  getAttributeSync,
  listAttributes,
  listAttributesSync,
  removeAttributeSync,
  setAttributeSync,
} from '../util/index.js';
import { errnoCode, StrataError } from '../errors/index.js';

/** overlayfs keeps its own state in trusted.overlay.* (opaque, redirect, origin...); it never belongs in a layer. */
export function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.');
}

// The addon reports "…(os error 95)" instead of an errno code.
function osErrno(err: unknown): number | undefined {
  const m = /os error (\d+)/.exec(err instanceof Error ? err.message : String(err));
  return m ? Number(m[1]) : undefined;
}
const EPERM = 1;
const ENOENT = 2;
const ENODATA = 61;
const EOPNOTSUPP = 95;

function sortedNames(names: string[]): string[] {
  return names.filter((n) => !isOverlayXattr(n)).sort();
}

/**
 * The extended attributes of a file or directory (not a symlink: the addon follows them), sorted by name, overlay's
 * internal ones left out. A filesystem without xattr support has none.
 */
export async function readXattrs(path: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  let names: string[];
  try {
    names = await listAttributes(path);
  } catch (err) {
    if (osErrno(err) === EOPNOTSUPP) return out;
    throw fsError('list extended attributes of', path, err);
  }
  for (const name of sortedNames(names)) {
    try {
      const value = await getAttribute(path, name);
      if (value) out.set(name, value);
    } catch (err) {
      // Removed between list and get: it is simply not there any more.
      if (osErrno(err) !== ENODATA) throw fsError(`read extended attribute ${name} of`, path, err);
    }
  }
  return out;
}

export function readXattrsSync(path: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let names: string[];
  try {
    names = listAttributesSync(path);
  } catch (err) {
    if (osErrno(err) === EOPNOTSUPP) return out;
    throw fsError('list extended attributes of', path, err);
  }
  for (const name of sortedNames(names)) {
    try {
      const value = getAttributeSync(path, name);
      if (value) out.set(name, value);
    } catch (err) {
      if (osErrno(err) !== ENODATA) throw fsError(`read extended attribute ${name} of`, path, err);
    }
  }
  return out;
}

export function getXattrSync(path: string, name: string): Buffer | undefined {
  try {
    return getAttributeSync(path, name) ?? undefined;
  } catch (err) {
    const e = osErrno(err);
    if (e === ENODATA || e === EOPNOTSUPP || e === ENOENT) return undefined;
    throw fsError(`read extended attribute ${name} of`, path, err);
  }
}

/** Every xattr name of a file or directory, overlay's included; none where the file system has no xattrs. */
export function listXattrsSync(path: string): string[] {
  try {
    return listAttributesSync(path);
  } catch (err) {
    if (osErrno(err) === EOPNOTSUPP) return [];
    throw fsError('list extended attributes of', path, err);
  }
}

export function removeXattrSync(path: string, name: string): void {
  try {
    removeAttributeSync(path, name);
  } catch (err) {
    if (osErrno(err) !== ENODATA) throw fsError(`remove extended attribute ${name} of`, path, err);
  }
}

/** Sets an xattr; returns false when the file cannot carry it (the layer still applies, as with docker). */
export function setXattrSync(path: string, name: string, value: Buffer): boolean {
  try {
    setAttributeSync(path, name, value);
    return true;
  } catch (err) {
    const e = osErrno(err);
    if (e === EOPNOTSUPP) return false;
    // The kernel allows user.* only on regular files and directories; a layer asking for one on a device or fifo
    // gets the same treatment as an unsupported filesystem.
    if (e === EPERM && name.startsWith('user.')) return false;
    throw fsError(`set extended attribute ${name} on`, path, err);
  }
}

function fsError(what: string, path: string, err: unknown): StrataError {
  const msg = err instanceof Error ? err.message : String(err);
  return new StrataError('INTERNAL', `could not ${what} ${path}: ${msg}`, { cause: err });
}

/** Linux dev_t split as glibc's gnu_dev_major/minor do (12-bit major, 20-bit minor in the classic layout). */
export function devMajor(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}

export function devMinor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}

export type NodeKind = 'character-device' | 'block-device' | 'fifo';

/** Creates a device node or fifo with permission bits `mode` (the caller sets owner and final mode afterwards). */
export function mknod(path: string, kind: NodeKind, mode: number, major = 0, minor = 0): Promise<void> {
  const args = ['-m', (mode & 0o777).toString(8), '--', path];
  if (kind === 'fifo') args.push('p');
  else args.push(kind === 'character-device' ? 'c' : 'b', String(major), String(minor));
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/mknod', args, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const detail = String(stderr).trim() || err.message;
      const code = errnoCode(err) === 'ENOENT' ? 'FAILED_PRECONDITION' : 'INTERNAL';
      reject(
        new StrataError(code, `could not create ${kind} ${path}: ${detail}`, {
          cause: err,
          hint: code === 'FAILED_PRECONDITION' ? 'install coreutils (mknod)' : 'device nodes need root (CAP_MKNOD)',
        }),
      );
    });
  });
}

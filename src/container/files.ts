import type { Stats } from 'node:fs';
import { chmod, lchown, lstat, mkdir, readFile, readlink, utimes, writeFile } from 'node:fs/promises';
import { hostname as hostHostname } from 'node:os';
import { join, posix } from 'node:path';
import { errnoCode } from '../errors/index.js';

/**
 * /etc/hosts for a container: with network host, the host's file; with network none, the host's loopback entries
 * only (names of the host itself dropped), localhost ensured, and the container's hostname on 127.0.1.1.
 */
export function hostsFile(
  hostname: string,
  network: 'none' | 'host',
  hostHosts: string | undefined,
  hostName = '',
): string {
  if (network === 'host' && hostHosts !== undefined) return hostHosts.endsWith('\n') ? hostHosts : `${hostHosts}\n`;
  const kept: string[] = [];
  for (const raw of (hostHosts ?? '').split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const [addr, ...names] = line.split(/\s+/);
    if (!addr || !isLoopback(addr)) continue;
    const own = names.filter((n) => n !== hostName && n !== hostName.split('.')[0] && n !== hostname);
    if (own.length > 0) kept.push(`${addr}\t${own.join(' ')}`);
  }
  const has = (addr: string) =>
    kept.some((l) => l.startsWith(`${addr}\t`) && /\slocalhost(\s|$)/.test(l.replace('\t', ' ')));
  if (!has('127.0.0.1')) kept.unshift('127.0.0.1\tlocalhost');
  if (!has('::1')) kept.splice(1, 0, '::1\tlocalhost ip6-localhost ip6-loopback');
  kept.push(`127.0.1.1\t${hostname}`);
  return `${kept.join('\n')}\n`;
}

function isLoopback(addr: string): boolean {
  return /^127\./.test(addr) || addr === '::1';
}

/**
 * The host's resolv.conf for the container. With network none only loopback name servers could ever answer, so
 * the others are dropped (the search and options lines stay).
 */
export function resolvConfFile(hostResolv: string | undefined, network: 'none' | 'host'): string {
  const text = hostResolv ?? '';
  if (network === 'host') return text.endsWith('\n') || text === '' ? text : `${text}\n`;
  const kept = text
    .split('\n')
    .filter((line) => {
      const m = /^\s*nameserver\s+(\S+)/.exec(line);
      return !m || isLoopback(m[1]!);
    })
    .join('\n')
    .replace(/\n+$/, '');
  return kept === '' ? '' : `${kept}\n`;
}

export function defaultHostname(id: string, network: 'none' | 'host'): string {
  return network === 'host' ? hostHostname() : id.slice(0, 12);
}

export async function readHostFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Read a file of a container's root filesystem as the container would see it: symlinks (absolute or relative)
 * are resolved inside `rootfs`, never on the host, so an image whose /etc/passwd points at /proc/... or ../../
 * reads the image's own files or nothing. Undefined when the file does not exist; at most `maxBytes` are read.
 */
export async function readFileInRoot(rootfs: string, path: string, maxBytes = 4 << 20): Promise<string | undefined> {
  const resolved = await resolveInRoot(rootfs, path);
  if (resolved === undefined) return undefined;
  try {
    const st = await lstat(resolved);
    if (!st.isFile()) return undefined;
    const buf = await readFile(resolved);
    return buf.subarray(0, maxBytes).toString('utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** The host path of `path` inside `rootfs`, with every symlink resolved within `rootfs` (undefined: missing). */
export function resolveInRoot(rootfs: string, path: string): Promise<string | undefined> {
  return walkInRoot(rootfs, path);
}

/**
 * Walk `path` component by component inside `rootfs`, resolving every symlink within `rootfs` (an absolute target
 * restarts at `rootfs`, `..` never climbs above it). A missing component ends the walk (undefined) unless `create`
 * makes it (it is then expected to be a directory); a component that is not a directory where one is needed ends it
 * too, unless `notDirectory` throws instead.
 */
export async function walkInRoot(
  rootfs: string,
  path: string,
  opts: { create?: (host: string) => Promise<void>; notDirectory?: (inRoot: string) => never } = {},
): Promise<string | undefined> {
  let pending = posix.normalize(`/${path}`).split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = join(rootfs, ...done, part);
    let st: Stats | undefined;
    try {
      st = await lstat(host);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') throw err;
    }
    if (!st) {
      if (!opts.create) return undefined;
      await opts.create(host);
    } else if (st.isSymbolicLink()) {
      if (++links > 40) return undefined;
      const target = await readlink(host);
      if (target.startsWith('/')) done.length = 0;
      pending = [...target.split('/').filter(Boolean), ...pending];
      continue;
    } else if (opts.notDirectory && !st.isDirectory()) {
      opts.notDirectory(`/${[...done, part].join('/')}`);
    }
    done.push(part);
  }
  return join(rootfs, ...done);
}

/** The object at `rel` in a stack of overlay-form layers (topmost first), or undefined when absent or whited out. */
export async function lookupInLayers(layers: readonly string[], rel: string): Promise<Stats | undefined> {
  const parts = rel.split('/').filter(Boolean);
  for (const layer of layers) {
    let path = layer;
    for (const [i, part] of parts.entries()) {
      path = join(path, part);
      let st: Stats;
      try {
        st = await lstat(path);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') break; // look in the layer below
        throw err;
      }
      if (st.isCharacterDevice() && st.rdev === 0) return undefined; // a whiteout hides it and all below
      if (i === parts.length - 1) return st;
      if (!st.isDirectory()) return undefined;
    }
  }
  return undefined;
}

/**
 * docker's "init layer": what the runtime would otherwise create in the container's own layer as mount points
 * (/etc/hosts, /etc/hostname, /etc/resolv.conf, /proc, /sys, /dev when the image lacks them), made once in a layer
 * between the image and the container, so `diff` and `commit` never show them.
 */
export async function writeInitLayer(dir: string, layers: readonly string[]): Promise<void> {
  for (const d of ['proc', 'sys', 'dev']) {
    if (!(await lookupInLayers(layers, d))) await mkdir(join(dir, d), { mode: 0o755 });
  }
  const files: string[] = [];
  for (const f of ['hosts', 'hostname', 'resolv.conf']) {
    if (!(await lookupInLayers(layers, `etc/${f}`))) files.push(f);
  }
  if (files.length === 0) return;
  const etc = await lookupInLayers(layers, 'etc');
  if (etc && !etc.isDirectory()) return; // an image whose /etc is not a directory: nothing to do for it
  await mkdir(join(dir, 'etc'), { mode: 0o755 });
  for (const f of files) await writeFile(join(dir, 'etc', f), '', { mode: 0o644 });
  if (etc) {
    await chmod(join(dir, 'etc'), etc.mode & 0o7777);
    await lchown(join(dir, 'etc'), etc.uid, etc.gid);
    await utimes(join(dir, 'etc'), etc.atime, etc.mtime);
  }
}

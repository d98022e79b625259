import { PathEscapeError } from '../errors/index.js';

/**
 * The components of an archive path, cleaned the way containerd does: a leading "/" is dropped (an absolute entry
 * lands under the root, as in `docker load`), "." and empty components go, and ".." pops a component. A ".." that
 * would climb above the root is refused, naming the entry; so is a NUL byte. `[]` means the root itself.
 */
export function entryComponents(name: string, entry = name): string[] {
  if (name.includes('\0')) throw new PathEscapeError(entry, 'the path contains a NUL byte');
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw new PathEscapeError(entry, '".." climbs above the extraction root');
      out.pop();
      continue;
    }
    out.push(part);
  }
  return out;
}

const collator = (a: { key: Buffer }, b: { key: Buffer }): number => Buffer.compare(a.key, b.key);

/** Sorts by the UTF-8 bytes of `name(item)`, the order tar entries are written in (JS string order is UTF-16's). */
export function sortByPathBytes<T>(items: T[], name: (item: T) => string): T[] {
  return items
    .map((item) => ({ item, key: Buffer.from(name(item), 'utf8') }))
    .sort(collator)
    .map((x) => x.item);
}

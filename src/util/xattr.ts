// @napi-rs/xattr, loaded the first time an extended attribute is read or written. Loading the addon (and its libc
// detection, which reads /usr/bin/ldd) took about 10 ms of every command's start-up, most of which never touch an
// xattr (`images`, a rebuild that is all cache hits).
import { createRequire } from 'node:module';

type Xattr = typeof import('@napi-rs/xattr');
let addon: Xattr | undefined;
// In the CommonJS bundle import.meta is empty and __filename is the bundle's; in tsc's ES modules the reverse.
const load = (): Xattr => {
  addon ??= createRequire(import.meta.url || __filename)('@napi-rs/xattr') as Xattr;
  return addon;
};

export const getAttribute: Xattr['getAttribute'] = (...a) => load().getAttribute(...a);
export const getAttributeSync: Xattr['getAttributeSync'] = (...a) => load().getAttributeSync(...a);
export const listAttributes: Xattr['listAttributes'] = (...a) => load().listAttributes(...a);
export const listAttributesSync: Xattr['listAttributesSync'] = (...a) => load().listAttributesSync(...a);
export const removeAttributeSync: Xattr['removeAttributeSync'] = (...a) => load().removeAttributeSync(...a);
export const setAttributeSync: Xattr['setAttributeSync'] = (...a) => load().setAttributeSync(...a);

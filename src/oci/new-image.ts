import { hostPlatform } from './platform.js';
import type { HistoryEntry, ImageConfig, Platform } from './types.js';

/** The PATH docker and BuildKit give a Linux container whose image sets none. */
export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The config of an image with no layers (what `FROM scratch` and `import` start from), for `platform` (default:
 * the host's). No `created`: callers stamp it, so reproducible builds can choose the time.
 */
export function emptyImageConfig(platform: Platform = hostPlatform()): ImageConfig {
  return {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform['os.version'] ? { 'os.version': platform['os.version'] } : {}),
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {},
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  };
}

export interface NewHistoryEntry {
  createdBy: string;
  created?: Date | string;
  author?: string;
  comment?: string;
  /** The step changed only the config (ENV, LABEL...): docker marks it so history lines up with layers. */
  emptyLayer?: boolean;
}

/** A history entry as docker writes one: `empty_layer` only when true, absent fields left out. */
export function newHistoryEntry(e: NewHistoryEntry): HistoryEntry {
  const h: HistoryEntry = {};
  if (e.created !== undefined) h.created = typeof e.created === 'string' ? e.created : e.created.toISOString();
  h.created_by = e.createdBy;
  if (e.author !== undefined) h.author = e.author;
  if (e.comment !== undefined) h.comment = e.comment;
  if (e.emptyLayer) h.empty_layer = true;
  return h;
}

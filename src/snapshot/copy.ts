// The copy-based snapshotter's rootfs: the layer chain applied bottom up into one directory with `cp -a`, overlay
// whiteouts turned into deletions. Slower and bigger than an overlay mount, but it works on any file system.
import { spawn } from 'node:child_process';
import type { BigIntStats } from 'node:fs';
import { lstatSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { removeAttributeSync } from '../util/index.js';
import { errnoCode, StrataError } from '../errors/index.js';
import { isOpaqueDir, isWhiteout, OVERLAY_OPAQUE_XATTR } from './diff.js';

function lstatOrUndefined(path: string): BigIntStats | undefined {
  try {
    return lstatSync(path, { bigint: true });
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    child.on('error', (err) => reject(new StrataError('UNAVAILABLE', `could not run ${cmd}: ${err.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new StrataError('INTERNAL', `${cmd} ${args.join(' ')} failed: ${stderr.trim() || `status ${code}`}`));
    });
  });
}

interface Plan {
  /** Whiteout devices (relative paths): `cp` copies them, they are deleted afterwards. */
  whiteouts: string[];
  /** Opaque directories: their trusted.overlay.opaque is dropped from the copy. */
  opaque: string[];
}

/**
 * Before copying `layer` over `target`: delete what the layer hides (whiteouts, the old content of opaque
 * directories) and what it replaces with an object of another kind (cp cannot put a directory over a file or the
 * reverse; a symlink over a directory is replaced too, never followed).
 */
async function prepareTarget(layer: string, target: string): Promise<Plan> {
  const plan: Plan = { whiteouts: [], opaque: [] };
  const walk = async (rel: string): Promise<void> => {
    for (const name of readdirSync(rel === '' ? layer : join(layer, rel))) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const src = join(layer, child);
      const dst = join(target, child);
      const st = lstatSync(src, { bigint: true });
      const old = lstatOrUndefined(dst);
      if (isWhiteout(st)) {
        plan.whiteouts.push(child);
        if (old) await rm(dst, { recursive: true, force: true });
        continue;
      }
      if (st.isDirectory()) {
        if (isOpaqueDir(src, st)) {
          plan.opaque.push(child);
          if (old) await rm(dst, { recursive: true, force: true });
        } else if (old && !old.isDirectory()) {
          await rm(dst, { force: true });
        }
        await walk(child);
      } else if (old?.isDirectory()) {
        await rm(dst, { recursive: true, force: true });
      }
    }
  };
  await walk('');
  return plan;
}

/**
 * Fill `target` (an existing empty directory) with the merged tree of `layers` (committed snapshot directories,
 * topmost first, as overlay's lowerdir lists them): each layer, bottom first, copied with `cp -a` (owners, modes,
 * timestamps, xattrs, hardlinks kept; an existing file is unlinked first, so a hardlink into a lower layer's file is
 * never written through). Whiteouts delete what they hide and are not kept; timestamps of their directories are
 * restored from the layer (`touch -r`, to the nanosecond), so a later diff sees no change there.
 */
export async function copyChain(layers: readonly string[], target: string): Promise<void> {
  for (const layer of [...layers].reverse()) {
    const plan = await prepareTarget(layer, target);
    await run('cp', ['-a', '--remove-destination', `${layer}/.`, `${target}/`]);
    const touched = new Set<string>();
    for (const rel of plan.whiteouts) {
      await rm(join(target, rel), { recursive: true, force: true });
      const i = rel.lastIndexOf('/');
      touched.add(i < 0 ? '' : rel.slice(0, i));
    }
    for (const rel of plan.opaque) {
      try {
        removeAttributeSync(join(target, rel), OVERLAY_OPAQUE_XATTR);
      } catch {
        // not copied (no xattr support, or cp left trusted.* out): nothing to drop
      }
    }
    for (const rel of touched) {
      await run('touch', ['-h', '-r', rel === '' ? layer : join(layer, rel), rel === '' ? target : join(target, rel)]);
    }
  }
}

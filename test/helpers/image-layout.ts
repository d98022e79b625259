import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { importBusybox } from './cli.js';

const run = promisify(execFile);

/** An image in an OCI layout directory, with the digests tests compare against. */
export interface LayoutImage {
  /** The layout directory. */
  dir: string;
  tag: string;
  /** `oci:<dir>:<tag>`, for skopeo. */
  ref: string;
  manifestDigest: string;
  /** The manifest exactly as stored (its sha256 is manifestDigest). */
  manifestBytes: Buffer;
  configDigest: string;
  layerDigests: string[];
  diffIds: string[];
}

export async function skopeo(args: string[]): Promise<string> {
  const { stdout } = await run('skopeo', ['--insecure-policy', ...args], { maxBuffer: 64 << 20 });
  return stdout;
}

/** Read image `tag` of an OCI layout: its manifest bytes and the digests in it. */
export async function readLayoutImage(dir: string, tag: string): Promise<LayoutImage> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!desc) throw new Error(`no image tagged ${tag} in ${dir}`);
  const blob = (d: string): Promise<Buffer> => readFile(join(dir, 'blobs', ...d.split(':')));
  const manifestBytes = await blob(desc.digest);
  if (`sha256:${createHash('sha256').update(manifestBytes).digest('hex')}` !== desc.digest) {
    throw new Error(`manifest ${desc.digest} in ${dir} does not match its digest`);
  }
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as {
    config: { digest: string };
    layers: Array<{ digest: string }>;
  };
  const config = JSON.parse((await blob(manifest.config.digest)).toString('utf8')) as {
    rootfs: { diff_ids: string[] };
  };
  return {
    dir,
    tag,
    ref: `oci:${dir}:${tag}`,
    manifestDigest: desc.digest,
    manifestBytes,
    configDigest: manifest.config.digest,
    layerDigests: manifest.layers.map((l) => l.digest),
    diffIds: config.rootfs.diff_ids,
  };
}

/**
 * A three-layer image in an OCI layout under `work`: the busybox rootfs imported by strata (`importBusybox`), copied
 * out of strata's store by skopeo, then two layers appended by umoci (a small text file; `bigBytes` of random data,
 * 3 MB by default, so uploads take more than one read). Needs skopeo and umoci.
 */
export async function threeLayerImage(work: string, opts: { bigBytes?: number } = {}): Promise<LayoutImage> {
  const root = join(work, 'strata-root');
  await importBusybox(root, work);
  const dir = join(work, 'layout');
  await skopeo(['copy', '-q', `oci:${root}:docker.io/library/busybox:latest`, `oci:${dir}:busybox`]);
  const l1 = join(work, 'layer1');
  const l2 = join(work, 'layer2');
  await mkdir(join(l1, 'etc'), { recursive: true });
  await mkdir(join(l2, 'data'), { recursive: true });
  await writeFile(join(l1, 'etc', 'greeting'), 'hello from the second layer\n');
  await writeFile(join(l2, 'data', 'random.bin'), randomBytes(opts.bigBytes ?? 3_000_000));
  for (const [src, tar] of [
    [l1, `${l1}.tar`],
    [l2, `${l2}.tar`],
  ] as const) {
    await run('tar', ['-C', src, '-cf', tar, '.']);
  }
  await run('umoci', ['raw', 'add-layer', '--image', `${dir}:busybox`, '--tag', 'three', `${l1}.tar`]);
  await run('umoci', ['raw', 'add-layer', '--image', `${dir}:three`, `${l2}.tar`]);
  const image = await readLayoutImage(dir, 'three');
  if (image.layerDigests.length !== 3) throw new Error(`expected 3 layers, got ${image.layerDigests.length}`);
  return image;
}

/** Sum of `strata_registry_requests_total` samples matching route and method (every status), from /metrics. */
export async function requestCount(registryUrl: string, route: string, method: string): Promise<number> {
  const text = await (await fetch(`${registryUrl}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`strata_registry_requests_total{route="${route}",method="${method}",`)) {
      n += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return n;
}

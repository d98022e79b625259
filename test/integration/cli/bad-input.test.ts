import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import tar from 'tar-stream';
import { importBusybox, strata } from '../../helpers/cli.js';
import { hasTool, inCI, tempDir } from '../../helpers/env.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Every path under the root with its size, minus lock files: "unchanged" means this is equal before and after. */
async function snapshotRoot(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const r = `${rel}/${e.name}`;
      if (e.name.endsWith('.lock') || r.startsWith('/leases')) continue;
      out.push(r);
      if (e.isDirectory()) await walk(join(dir, e.name), r);
    }
  };
  await walk(root, '');
  return out.sort();
}

/** A tar built in memory from [name, content] pairs. */
async function tarOf(entries: [string, Buffer | string][]): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of entries) pack.entry({ name }, Buffer.from(content));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const ready = hasTool('busybox') || inCI;

describe('bad input is refused with a clear error and the store unchanged', {
  skip: ready ? false : 'busybox-static missing',
}, () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let root: string;
  let good: Buffer; // an OCI archive of busybox, to corrupt in different ways

  before(async () => {
    work = await tempDir();
    root = join(work.path, 'root');
    await importBusybox(root, work.path);
    const file = join(work.path, 'good.tar');
    assert.equal((await strata(root, ['save', '--format', 'oci', '-o', file, 'busybox'])).code, 0);
    good = await readFile(file);
  });
  after(async () => work?.cleanup());

  /** Run `load` on `archive`, expect failure matching `message`, and check nothing in the root changed. */
  async function refused(archive: Buffer, message: RegExp): Promise<void> {
    const before = await snapshotRoot(root);
    const r = await strata(root, ['load'], { input: archive });
    assert.notEqual(r.code, 0, 'load must fail');
    assert.match(r.stderr, message);
    assert.deepEqual(await snapshotRoot(root), before, 'the store must be unchanged');
    const f = await strata(root, ['fsck']);
    assert.equal(f.code, 0, f.stdout);
  }

  /** The entries of the good OCI archive, so a test can change one. */
  async function goodEntries(): Promise<Map<string, Buffer>> {
    const ex = tar.extract();
    const entries = new Map<string, Buffer>();
    const done = (async () => {
      for await (const e of ex) {
        const chunks: Buffer[] = [];
        for await (const c of e) chunks.push(c as Buffer);
        entries.set(e.header.name, Buffer.concat(chunks));
      }
    })();
    ex.end(good);
    await done;
    return entries;
  }

  function manifestOf(entries: Map<string, Buffer>): {
    name: string;
    json: { config: { digest: string }; layers: { digest: string; mediaType: string }[] };
  } {
    const index = JSON.parse(entries.get('index.json')!.toString());
    const name = `blobs/sha256/${index.manifests[0].digest.slice(7)}`;
    return { name, json: JSON.parse(entries.get(name)!.toString()) };
  }

  /** Replace the manifest with `json`, and point index.json at the new manifest digest. */
  function withManifest(entries: Map<string, Buffer>, json: unknown): [string, Buffer][] {
    const { name } = manifestOf(entries);
    const bytes = Buffer.from(JSON.stringify(json));
    const out = new Map(entries);
    out.delete(name);
    out.set(`blobs/sha256/${sha(bytes)}`, bytes);
    const index = JSON.parse(entries.get('index.json')!.toString());
    index.manifests[0].digest = `sha256:${sha(bytes)}`;
    index.manifests[0].size = bytes.length;
    out.set('index.json', Buffer.from(JSON.stringify(index)));
    return [...out.entries()];
  }

  it('refuses input that is not a tar', async () => {
    await refused(
      Buffer.from('this is not an archive at all, just some text\n'.repeat(40)),
      /not a readable tar archive|invalid image archive/,
    );
  });

  it('refuses a truncated tar', async () => {
    await refused(good.subarray(0, Math.floor(good.length / 2)), /truncated|invalid image archive/);
  });

  it('refuses a layer whose bytes do not match its digest', async () => {
    const entries = await goodEntries();
    const { json } = manifestOf(entries);
    const layerName = `blobs/sha256/${json.layers[0]!.digest.slice(7)}`;
    const bytes = Buffer.from(entries.get(layerName)!);
    bytes[bytes.length - 20] ^= 0xff;
    entries.set(layerName, bytes);
    await refused(await tarOf([...entries.entries()]), /digest mismatch/);
  });

  it('refuses a docker-archive layer that does not match the config diff_ids', async () => {
    const file = join(work.path, 'good-docker.tar');
    assert.equal((await strata(root, ['save', '-o', file, 'busybox'])).code, 0);
    const dir = join(work.path, 'docker-x');
    await mkdir(dir, { recursive: true });
    execFileSync('tar', ['-C', dir, '-xf', file]);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
    const layer = join(dir, manifest[0].Layers[0]);
    const bytes = await readFile(layer);
    bytes[600] ^= 0xff;
    await writeFile(layer, bytes);
    const bad = execFileSync('tar', ['-C', dir, '-cf', '-', '.'], { maxBuffer: 1 << 30 });
    await refused(bad, /layer 0.*digest mismatch/);
  });

  it('refuses a malformed manifest, naming the field', async () => {
    const entries = await goodEntries();
    const { json } = manifestOf(entries);
    const broken = { ...json, layers: [{ ...json.layers[0], size: 'big' }] };
    await refused(await tarOf(withManifest(entries, broken)), /layers\[0\]\.size/);
  });

  it('refuses a malformed config, naming the field', async () => {
    const entries = await goodEntries();
    const { json } = manifestOf(entries);
    const config = JSON.parse(entries.get(`blobs/sha256/${json.config.digest.slice(7)}`)!.toString());
    const bytes = Buffer.from(JSON.stringify({ ...config, rootfs: { type: 'layers', diff_ids: 'nope' } }));
    entries.set(`blobs/sha256/${sha(bytes)}`, bytes);
    const m = { ...json, config: { ...json.config, digest: `sha256:${sha(bytes)}`, size: bytes.length } };
    await refused(await tarOf(withManifest(entries, m)), /rootfs\.diff_ids/);
  });

  it('refuses an unknown layer media type', async () => {
    const entries = await goodEntries();
    const { json } = manifestOf(entries);
    const m = { ...json, layers: [{ ...json.layers[0], mediaType: 'application/x-mystery' }] };
    await refused(await tarOf(withManifest(entries, m)), /unknown media type "application\/x-mystery"/);
  });

  it('refuses a Docker schema 1 manifest with a pointer to what to do', async () => {
    const entries = await goodEntries();
    await refused(
      await tarOf(withManifest(entries, { schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] })),
      /schema ?1/i,
    );
  });

  it('import refuses a rootfs tar with a path-escaping entry, and writes nothing outside', async () => {
    const evil = await tarOf([
      ['ok.txt', 'fine'],
      ['../../escaped.txt', 'gotcha'],
    ]);
    const file = join(work.path, 'evil.tar');
    await writeFile(file, evil);
    const before = await snapshotRoot(root);
    const r = await strata(root, ['import', file, 'evil:1']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /\.\.\/\.\.\/escaped\.txt/);
    assert.deepEqual(await snapshotRoot(root), before);
    await assert.rejects(readFile(join(work.path, 'escaped.txt')));
  });
});

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type RegistryGcResult, registryGc } from '../../../src/registry/index.js';
import { strata } from '../../helpers/cli.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const EMPTY = { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(Buffer.from('{}')), size: 2 };

interface Blob {
  data: Buffer;
  digest: string;
  size: number;
}
interface Pushed {
  digest: string;
  size: number;
  blobs: Blob[];
}

function digestOf(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
function blobOf(data: Buffer): Blob {
  return { data, digest: digestOf(data), size: data.length };
}
const randomBlob = (n = 1500): Blob => blobOf(randomBytes(n));
const configBlob = (): Blob =>
  blobOf(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [] },
        config: { Labels: { nonce: randomBytes(8).toString('hex') } },
      }),
    ),
  );
const body = (b: Buffer): Uint8Array<ArrayBuffer> => new Uint8Array(b);

/** Monolithic upload: POST ?digest= with the bytes (201). */
async function pushBlob(reg: TestRegistry, repo: string, b: Blob): Promise<void> {
  const res = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: body(b.data),
  });
  assert.equal(res.status, 201, `push blob ${b.digest} to ${repo}: ${res.status} ${await res.text()}`);
}

async function putManifest(reg: TestRegistry, repo: string, ref: string, doc: object, mediaType: string) {
  const bytes = Buffer.from(JSON.stringify(doc));
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    headers: { 'content-type': mediaType },
    body: body(bytes),
  });
  assert.equal(res.status, 201, `put manifest ${repo}:${ref}: ${res.status} ${await res.text()}`);
  const digest = digestOf(bytes);
  assert.equal(res.headers.get('docker-content-digest'), digest);
  return { digest, size: bytes.length };
}

const desc = (b: Blob, mediaType = OCI_LAYER) => ({ mediaType, digest: b.digest, size: b.size });

/** An image: config + layers (pushed unless already there), then the manifest under `ref` (a tag or its digest). */
async function pushImage(
  reg: TestRegistry,
  repo: string,
  ref: string | undefined,
  layers: Blob[],
  extra: {
    subject?: { digest: string; size: number; mediaType: string };
    artifactType?: string;
    /** The caller pushed the layers (or found them present). */
    layersPresent?: boolean;
  } = {},
): Promise<Pushed> {
  const config = extra.artifactType ? undefined : configBlob();
  for (const b of [...(config ? [config] : []), ...(extra.layersPresent ? [] : layers)]) await pushBlob(reg, repo, b);
  const doc = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    ...(extra.artifactType ? { artifactType: extra.artifactType } : {}),
    config: config ? desc(config, OCI_CONFIG) : EMPTY,
    layers: layers.map((l) => desc(l)),
    ...(extra.subject ? { subject: extra.subject } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(doc));
  const m = await putManifest(reg, repo, ref ?? digestOf(bytes), doc, OCI_MANIFEST);
  return { ...m, blobs: [...(config ? [config] : []), ...layers] };
}

function blobPath(reg: TestRegistry, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(reg.root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}
function repoPath(reg: TestRegistry, repo: string, ...rest: string[]): string {
  return join(reg.root, 'docker/registry/v2/repositories', repo, ...rest);
}
const revisionLink = (reg: TestRegistry, repo: string, digest: string) =>
  repoPath(reg, repo, '_manifests/revisions/sha256', digest.slice(7), 'link');
const tagLink = (reg: TestRegistry, repo: string, tag: string) =>
  repoPath(reg, repo, '_manifests/tags', tag, 'current/link');

async function stored(reg: TestRegistry, digest: string): Promise<boolean> {
  return stat(blobPath(reg, digest)).then(
    () => true,
    () => false,
  );
}
/** Every blob with data under blobs/, sorted. */
async function storedBlobs(reg: TestRegistry): Promise<string[]> {
  const base = join(reg.root, 'docker/registry/v2/blobs/sha256');
  const out: string[] = [];
  for (const prefix of await readdir(base)) {
    for (const hex of await readdir(join(base, prefix))) {
      if (await stat(join(base, prefix, hex, 'data')).catch(() => undefined)) out.push(`sha256:${hex}`);
    }
  }
  return out.sort();
}
async function age(path: string, seconds: number): Promise<void> {
  const t = new Date(Date.now() - seconds * 1000);
  await utimes(path, t, t);
}

/** GET a blob through a repository and check its bytes hash to its digest. */
async function readable(reg: TestRegistry, repo: string, digest: string, size?: number): Promise<boolean> {
  const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`);
  if (res.status !== 200) {
    await res.body?.cancel();
    return false;
  }
  const bytes = Buffer.from(await res.arrayBuffer());
  return digestOf(bytes) === digest && (size === undefined || bytes.length === size);
}

async function getManifest(reg: TestRegistry, repo: string, ref: string): Promise<Buffer | undefined> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, {
    headers: { accept: [OCI_MANIFEST, OCI_INDEX].join(', ') },
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    return undefined;
  }
  return Buffer.from(await res.arrayBuffer());
}

/** Everything a tag reaches is there: the manifest hashes to what the tag resolves to, every blob reads back. */
async function assertImageIntact(reg: TestRegistry, repo: string, ref: string, expected?: string): Promise<void> {
  const bytes = await getManifest(reg, repo, ref);
  assert.ok(bytes, `manifest ${repo}:${ref} is readable`);
  if (expected) assert.equal(digestOf(bytes), expected, `${repo}:${ref} still names ${expected}`);
  const doc = JSON.parse(bytes.toString()) as {
    config?: { digest: string; size: number };
    layers?: { digest: string; size: number }[];
    manifests?: { digest: string }[];
  };
  for (const child of doc.manifests ?? []) await assertImageIntact(reg, repo, child.digest, child.digest);
  for (const d of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) {
    if (d.digest === EMPTY.digest) continue;
    assert.ok(await readable(reg, repo, d.digest, d.size), `${repo}:${ref} blob ${d.digest} reads back`);
  }
}

const deletedBlobs = (r: RegistryGcResult): string[] =>
  r.deleted
    .filter((e) => e.type === 'blob')
    .map((e) => e.digest)
    .sort();
const deletedManifests = (r: RegistryGcResult): string[] =>
  r.deleted
    .filter((e) => e.type === 'manifest')
    .map((e) => e.digest)
    .sort();

describe('registry gc', () => {
  // A registry of its own per test: a GC with grace 0 would otherwise collect what the previous test left.
  let reg: TestRegistry;
  beforeEach(async () => {
    reg = await startTestRegistry();
  });
  afterEach(async () => {
    await reg?.stop();
  });

  it('deletes an unreferenced blob and its _layers link, keeps everything a tag reaches (grace 0)', async () => {
    const img = await pushImage(reg, 'gc/basic', 'v1', [randomBlob(), randomBlob()]);
    const stray = randomBlob(3000);
    await pushBlob(reg, 'gc/basic', stray);
    assert.ok(await readable(reg, 'gc/basic', stray.digest));

    const r = await registryGc(reg.root, { graceSeconds: 0 });
    assert.deepEqual(deletedBlobs(r), [stray.digest]);
    assert.equal(r.blobs, 1);
    assert.equal(r.bytes, 3000);
    assert.equal(r.manifests, 0);
    assert.equal(r.dryRun, false);
    assert.ok(r.durationMs >= 0);
    assert.equal(await stored(reg, stray.digest), false);
    // No repository links a missing blob: HEAD answers 404, not a 200 for bytes that are gone.
    const head = await fetch(`${reg.url}/v2/gc/basic/blobs/${stray.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 404);
    await assert.rejects(stat(repoPath(reg, 'gc/basic', '_layers/sha256', stray.digest.slice(7))));
    await assertImageIntact(reg, 'gc/basic', 'v1', img.digest);

    // A second run has nothing left to do.
    const again = await registryGc(reg.root, { graceSeconds: 0 });
    assert.equal(again.blobs, 0);
  });

  it('keeps a young unreferenced blob (default grace), and one that a push found present again', async () => {
    const young = randomBlob();
    await pushBlob(reg, 'gc/grace', young);
    const r = await registryGc(reg.root);
    assert.equal(deletedBlobs(r).includes(young.digest), false);
    assert.equal(await stored(reg, young.digest), true);

    // An old unreferenced blob goes with the default grace period...
    const old = randomBlob();
    await pushBlob(reg, 'gc/grace', old);
    await age(blobPath(reg, old.digest), 7200);
    const dry = await registryGc(reg.root, { dryRun: true });
    assert.ok(deletedBlobs(dry).includes(old.digest));
    // ...unless a push HEADs it ("Layer already exists"): the server touches it, it is young again until the
    // manifest that uses it arrives.
    const head = await fetch(`${reg.url}/v2/gc/grace/blobs/${old.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    const r2 = await registryGc(reg.root);
    assert.equal(deletedBlobs(r2).includes(old.digest), false);
    assert.equal(await stored(reg, old.digest), true);
    await pushImage(reg, 'gc/grace', 'v1', [old]);
    await assertImageIntact(reg, 'gc/grace', 'v1');
  });

  it('keeps index children and referrers, untagged and old, while deleting an old untagged orphan', async () => {
    const repo = 'gc/index';
    const shared = randomBlob();
    const amd = await pushImage(reg, repo, undefined, [shared, randomBlob()]);
    const arm = await pushImage(reg, repo, undefined, [shared, randomBlob()]);
    const index = await putManifest(
      reg,
      repo,
      'multi',
      {
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          {
            mediaType: OCI_MANIFEST,
            digest: amd.digest,
            size: amd.size,
            platform: { os: 'linux', architecture: 'amd64' },
          },
          {
            mediaType: OCI_MANIFEST,
            digest: arm.digest,
            size: arm.size,
            platform: { os: 'linux', architecture: 'arm64' },
          },
        ],
      },
      OCI_INDEX,
    );
    // A signature of the index, and an attestation of that signature (a referrer of a referrer).
    const sig = await pushImage(reg, repo, undefined, [randomBlob(200)], {
      artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
      subject: { mediaType: OCI_INDEX, digest: index.digest, size: index.size },
    });
    const att = await pushImage(reg, repo, undefined, [randomBlob(200)], {
      artifactType: 'application/vnd.in-toto+json',
      subject: { mediaType: OCI_MANIFEST, digest: sig.digest, size: sig.size },
    });
    // Untagged and unreferenced: the only thing that may go.
    const orphan = await pushImage(reg, repo, undefined, [shared, randomBlob(700)]);
    for (const m of [amd, arm, sig, att, orphan]) await age(revisionLink(reg, repo, m.digest), 7200);
    await age(revisionLink(reg, repo, index.digest), 7200);
    await age(tagLink(reg, repo, 'multi'), 7200);

    // Without retention rules every revision stays, tagged or not.
    const plain = await registryGc(reg.root, { graceSeconds: 0 });
    assert.deepEqual(deletedBlobs(plain), []);

    const r = await registryGc(reg.root, { graceSeconds: 0, retention: { untaggedOlderThanSeconds: 3600 } });
    assert.deepEqual(deletedManifests(r), [orphan.digest]);
    assert.equal(r.manifests, 1);
    // The orphan's manifest, config and own layer; not the layer it shared.
    assert.deepEqual(deletedBlobs(r), [orphan.digest, orphan.blobs[0]!.digest, orphan.blobs[2]!.digest].sort());
    assert.equal(await getManifest(reg, repo, orphan.digest), undefined);
    await assertImageIntact(reg, repo, 'multi', index.digest);
    for (const m of [sig, att]) await assertImageIntact(reg, repo, m.digest, m.digest);
    const referrers = await fetch(`${reg.url}/v2/${repo}/referrers/${index.digest}`);
    const list = (await referrers.json()) as { manifests: { digest: string }[] };
    assert.deepEqual(
      list.manifests.map((d) => d.digest),
      [sig.digest],
    );
  });

  it('frees the unique layers of a deleted manifest, not the ones another image shares', async () => {
    const base = randomBlob(5000);
    const a = await pushImage(reg, 'gc/del-a', 'v1', [base, randomBlob(1000)]);
    const b = await pushImage(reg, 'gc/del-b', 'v1', [base, randomBlob(1000)]);
    const res = await fetch(`${reg.url}/v2/gc/del-a/manifests/${a.digest}`, { method: 'DELETE' });
    assert.equal(res.status, 202);

    const r = await registryGc(reg.root, { graceSeconds: 0 });
    const mine = [a.digest, a.blobs[0]!.digest, a.blobs[2]!.digest].sort();
    assert.deepEqual(deletedBlobs(r), mine);
    assert.equal(r.bytes, a.size + a.blobs[0]!.size + 1000);
    for (const d of mine) assert.equal(await stored(reg, d), false);
    assert.equal(await stored(reg, base.digest), true);
    await assertImageIntact(reg, 'gc/del-b', 'v1', b.digest);
    // gc/del-a still links the shared base (it is there), not the deleted layer.
    assert.ok(await readable(reg, 'gc/del-a', base.digest));
    assert.equal((await fetch(`${reg.url}/v2/gc/del-a/blobs/${a.blobs[2]!.digest}`, { method: 'HEAD' })).status, 404);
  });

  it('dry-run deletes nothing and reports what the real run then deletes', async () => {
    const keep = await pushImage(reg, 'gc/dry', 'v1', [randomBlob()]);
    const gone = await pushImage(reg, 'gc/dry', 'v2', [randomBlob(), randomBlob()]);
    await fetch(`${reg.url}/v2/gc/dry/manifests/${gone.digest}`, { method: 'DELETE' });
    const strays = [randomBlob(), randomBlob()];
    for (const s of strays) await pushBlob(reg, 'gc/dry', s);

    const dry = await registryGc(reg.root, { graceSeconds: 0, dryRun: true });
    assert.equal(dry.dryRun, true);
    // The strays, and the deleted image's manifest, config and two layers.
    assert.equal(dry.blobs, 6);
    for (const d of deletedBlobs(dry)) assert.equal(await stored(reg, d), true, `${d} still stored after dry-run`);
    for (const s of strays) assert.ok(await readable(reg, 'gc/dry', s.digest));

    const real = await registryGc(reg.root, { graceSeconds: 0 });
    assert.deepEqual(deletedBlobs(real), deletedBlobs(dry));
    assert.equal(real.bytes, dry.bytes);
    for (const d of deletedBlobs(real)) assert.equal(await stored(reg, d), false);
    await assertImageIntact(reg, 'gc/dry', 'v1', keep.digest);
  });

  it('retention: keeps the newest N tags, deletes older tags and what only they reach', async () => {
    const repo = 'gc/keep';
    const base = randomBlob();
    const v1 = await pushImage(reg, repo, 'v1', [base, randomBlob()]);
    const v2 = await pushImage(reg, repo, 'v2', [base, randomBlob()]);
    const v3 = await pushImage(reg, repo, 'v3', [base, randomBlob()]);
    await putManifest(
      reg,
      repo,
      'oldest-alias-of-v3',
      JSON.parse((await getManifest(reg, repo, 'v3'))!.toString()),
      OCI_MANIFEST,
    );
    await age(tagLink(reg, repo, 'oldest-alias-of-v3'), 400);
    await age(tagLink(reg, repo, 'v1'), 300);
    await age(tagLink(reg, repo, 'v2'), 200);
    await age(tagLink(reg, repo, 'v3'), 100);

    const dry = await registryGc(reg.root, { graceSeconds: 0, dryRun: true, retention: { keepLastTags: 2 } });
    const real = await registryGc(reg.root, { graceSeconds: 0, retention: { keepLastTags: 2 } });
    for (const r of [dry, real]) {
      assert.deepEqual(
        r.deleted
          .filter((e) => e.type === 'tag')
          .map((e) => e.tag)
          .sort(),
        ['oldest-alias-of-v3', 'v1'],
      );
      assert.equal(r.tags, 2);
      assert.deepEqual(deletedManifests(r), [v1.digest]);
      assert.deepEqual(deletedBlobs(r), [v1.digest, v1.blobs[0]!.digest, v1.blobs[2]!.digest].sort());
    }
    const tags = (await (await fetch(`${reg.url}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['v2', 'v3']);
    await assertImageIntact(reg, repo, 'v2', v2.digest);
    await assertImageIntact(reg, repo, 'v3', v3.digest);
    assert.equal(await getManifest(reg, repo, v1.digest), undefined);
  });

  it('retention: deletes untagged manifests older than the limit, keeps younger and tagged ones', async () => {
    const repo = 'gc/untagged';
    const tagged = await pushImage(reg, repo, 'latest', [randomBlob()]);
    const oldUntagged = await pushImage(reg, repo, undefined, [randomBlob()]);
    const youngUntagged = await pushImage(reg, repo, undefined, [randomBlob()]);
    await age(revisionLink(reg, repo, tagged.digest), 7200);
    await age(tagLink(reg, repo, 'latest'), 7200);
    await age(revisionLink(reg, repo, oldUntagged.digest), 7200);
    await age(revisionLink(reg, repo, youngUntagged.digest), 60);

    const r = await registryGc(reg.root, { graceSeconds: 0, retention: { untaggedOlderThanSeconds: 3600 } });
    assert.deepEqual(deletedManifests(r), [oldUntagged.digest]);
    assert.deepEqual(deletedBlobs(r), [oldUntagged.digest, ...oldUntagged.blobs.map((b) => b.digest)].sort());
    await assertImageIntact(reg, repo, 'latest', tagged.digest);
    await assertImageIntact(reg, repo, youngUntagged.digest, youngUntagged.digest);
    assert.equal(await getManifest(reg, repo, oldUntagged.digest), undefined);
  });

  it('strata registry gc prints each blob and the summary; --format json; without --dry-run deletes', async () => {
    const stray = randomBlob(2_500_000);
    await pushBlob(reg, 'gc/cli', stray);
    await pushImage(reg, 'gc/cli', 'v1', [randomBlob()]);

    const young = await strata(reg.root, ['registry', 'gc', '--root', reg.root, '--dry-run']);
    assert.equal(young.code, 0, young.stderr);
    assert.match(young.stdout, /^0 blobs, 0 manifests, 0\.00 MB would be freed$/m);

    const dry = await strata(reg.root, ['registry', 'gc', '--root', reg.root, '--dry-run', '--grace', '0s']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`^blob eligible for deletion: ${stray.digest} \\(2500000 bytes\\)$`, 'm'));
    assert.match(dry.stdout, /^1 blobs, 0 manifests, 2\.50 MB would be freed$/m);
    assert.equal(await stored(reg, stray.digest), true);

    const json = await strata(reg.root, ['registry', 'gc', '--root', reg.root, '--grace', '0s', '--format', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const result = JSON.parse(json.stdout) as RegistryGcResult;
    assert.equal(result.blobs, 1);
    assert.equal(result.bytes, 2_500_000);
    assert.equal(result.dryRun, false);
    assert.deepEqual(result.deleted, [{ type: 'blob', digest: stray.digest, size: 2_500_000 }]);
    assert.equal(await stored(reg, stray.digest), false);

    const bad = await strata(reg.root, ['registry', 'gc', '--root', reg.root, '--grace', 'soon']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid duration for --grace/);
  });
});

describe('registry gc in the background and under concurrent pushes', () => {
  it('runs every gc.intervalSeconds in the server, feeding the metrics', async () => {
    const reg = await startTestRegistry({ gc: { intervalSeconds: 1, graceSeconds: 1 } });
    try {
      const img = await pushImage(reg, 'bg/repo', 'v1', [randomBlob()]);
      const stray = randomBlob();
      await pushBlob(reg, 'bg/repo', stray);
      await age(blobPath(reg, stray.digest), 3600);
      const deadline = Date.now() + 5000;
      while ((await stored(reg, stray.digest)) && Date.now() < deadline) await sleep(100);
      assert.equal(await stored(reg, stray.digest), false, 'the background GC deleted the stray blob');
      await assertImageIntact(reg, 'bg/repo', 'v1', img.digest);
      const metrics = await (await fetch(`${reg.url}/metrics`)).text();
      assert.match(metrics, /^strata_registry_gc_runs_total [1-9]\d*$/m);
      assert.match(metrics, /^strata_registry_gc_deleted_blobs_total [1-9]\d*$/m);
    } finally {
      await reg.stop();
    }
  });

  it('GC in a loop while clients push: every tag reaches readable blobs that hash correctly', async (t) => {
    // grace 0 is unsafe by design (a blob uploaded a moment ago is as collectable as an ancient one): the grace
    // period is what protects a push between its blob uploads and its manifest. 2s covers this test's pushes.
    const graceSeconds = 2;
    const reg = await startTestRegistry({ gc: { intervalSeconds: 0, graceSeconds } });
    try {
      const clients = 5;
      const imagesPerClient = 4;
      // Old blobs nobody references yet, one per image to come, in its client's repository: a client HEADs its
      // blob and, when present ("Layer already exists"), references it without uploading. GC, running all along,
      // either deleted it before the HEAD (then the client uploads it) or must leave it alone until the manifest.
      const olds = Array.from({ length: clients }, () =>
        Array.from({ length: imagesPerClient }, () => randomBlob(1000)),
      );
      const garbage = randomBlob(4000);
      await Promise.all(olds.map((list, c) => Promise.all(list.map((b) => pushBlob(reg, `race/c${c}`, b)))));
      await pushBlob(reg, 'race/c0', garbage);
      for (const b of [...olds.flat(), garbage]) await age(blobPath(reg, b.digest), 3600);
      // A layer every client uploads itself, concurrently (the "someone stored the same bytes first" path).
      const common = randomBlob(3000);
      let reused = 0;

      let stop = false;
      const runs: RegistryGcResult[] = [];
      const gcLoop = (async () => {
        while (!stop) {
          runs.push(await registryGc(reg.root, { graceSeconds }));
          await sleep(5);
        }
      })();

      const pushed: { repo: string; tag: string; digest: string }[] = [];
      const client = async (c: number): Promise<void> => {
        const repo = `race/c${c}`;
        for (let i = 0; i < imagesPerClient; i++) {
          const old = olds[c]![i]!;
          const head = await fetch(`${reg.url}/v2/${repo}/blobs/${old.digest}`, { method: 'HEAD' });
          if (head.status === 200) reused++;
          else await pushBlob(reg, repo, old);
          await sleep(Math.random() * 80);
          await pushBlob(reg, repo, common);
          const own = randomBlob(2000 + i);
          await pushBlob(reg, repo, own);
          // Garbage of our own: uploaded and never referenced.
          await pushBlob(reg, repo, randomBlob(100));
          await sleep(Math.random() * 80);
          const img = await pushImage(reg, repo, `t${i}`, [old, common, own], { layersPresent: true });
          pushed.push({ repo, tag: `t${i}`, digest: img.digest });
          if (i % 2 === 1) {
            // Deleting an earlier image makes its own layer garbage while others keep pushing.
            const prev = pushed.find((p) => p.repo === repo && p.tag === `t${i - 1}`)!;
            assert.equal(
              (await fetch(`${reg.url}/v2/${repo}/manifests/${prev.digest}`, { method: 'DELETE' })).status,
              202,
            );
            pushed.splice(pushed.indexOf(prev), 1);
          }
        }
      };
      try {
        await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
      } finally {
        stop = true;
        await gcLoop;
      }
      assert.ok(runs.length >= 2, `GC ran ${runs.length} times during the pushes`);
      t.diagnostic(`${runs.length} GC runs during the pushes; ${reused} old blobs found present and reused`);

      for (const p of pushed) await assertImageIntact(reg, p.repo, p.tag, p.digest);
      // Pushes over, nothing in flight: grace 0 is safe now, and a last run collects all the garbage, nothing else.
      const last = await registryGc(reg.root, { graceSeconds: 0 });
      assert.equal(await stored(reg, garbage.digest), false);
      assert.ok(last.blobs > 0);
      for (const p of pushed) await assertImageIntact(reg, p.repo, p.tag, p.digest);
      // What is left is exactly what the tags reach.
      const reachable = new Set<string>();
      for (const p of pushed) {
        reachable.add(p.digest);
        const doc = JSON.parse((await getManifest(reg, p.repo, p.tag))!.toString()) as {
          config: { digest: string };
          layers: { digest: string }[];
        };
        for (const d of [doc.config, ...doc.layers]) reachable.add(d.digest);
      }
      assert.deepEqual(await storedBlobs(reg), [...reachable].sort());
      const total = [...runs, last].reduce((n, r) => n + r.blobs, 0);
      assert.ok(total >= clients * imagesPerClient, `GC collected ${total} blobs`);
    } finally {
      await reg.stop();
    }
  });
});

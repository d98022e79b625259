import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot, tempDir } from '../../helpers/env.js';

/** Run a module snippet in a separate node process (real cross-process contention), resolving to its exit code. */
function runNode(code: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (c) => resolve({ code: c ?? -1, stderr }));
  });
}

const dist = join(repoRoot, 'dist/src');

describe('several processes on one store', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  before(async () => {
    work = await tempDir();
  });
  after(async () => work?.cleanup());

  it('four processes writing the same 32 MiB blob at once all succeed and store it once, intact', async () => {
    const root = join(work.path, 'same-blob');
    const data = randomBytes(32 << 20);
    const file = join(work.path, 'blob.bin');
    await writeFile(file, data);
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const code = `
      import { createReadStream } from 'node:fs';
      import { ContentStore } from '${dist}/content/index.js';
      const s = new ContentStore(${JSON.stringify(root)});
      await s.put(createReadStream(${JSON.stringify(file)}), { digest: '${digest}', size: ${data.length} });`;
    const results = await Promise.all([1, 2, 3, 4].map(() => runNode(code)));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readdir(join(root, 'blobs/sha256')), [digest.slice(7)]);
    const stored = await readFile(join(root, 'blobs/sha256', digest.slice(7)));
    assert.ok(stored.equals(data));
    assert.deepEqual(await readdir(join(root, 'ingest')), [], 'no ingest leftovers');
  });

  it('eight processes tagging at once: every tag lands and index.json stays valid', async () => {
    const root = join(work.path, 'tags');
    const d = `sha256:${'c'.repeat(64)}`;
    const code = (i: number) => `
      import { NameStore } from '${dist}/metadata/index.js';
      const n = new NameStore(${JSON.stringify(root)});
      await n.init();
      for (let k = 0; k < 5; k++) {
        await n.set('docker.io/library/app:p${i}-' + k, { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: '${d}', size: 1 });
      }`;
    const results = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => runNode(code(i))));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8'));
    assert.equal(index.manifests.length, 40);
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Strata } from '../../src/index.js';
import { importBusybox, strata } from '../helpers/cli.js';
import { needRoot, needTool, tempDir } from '../helpers/env.js';
import { makeFixtureTree } from '../helpers/fixture-tree.js';
import { describeTree } from '../helpers/tree.js';

describe('umoci unpack gives the same tree as strata', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let root: string;

  before(async () => {
    work = await tempDir();
    root = join(work.path, 'root');
  });
  after(async () => work?.cleanup());

  for (const name of ['fixture', 'busybox'] as const) {
    it(`the ${name} image: modes, owners, symlinks and hardlinks agree`, async (t) => {
      if (!needRoot(t) || !needTool(t, 'umoci', 'skopeo')) return;
      let source: string;
      if (name === 'fixture') {
        source = await makeFixtureTree(join(work.path, 'fixture-src'));
        const r = await strata(root, ['import', source, 'fixture:1']);
        assert.equal(r.code, 0, r.stderr);
      } else {
        await importBusybox(root, work.path);
        source = join(work.path, 'busybox-rootfs');
      }
      const ref = name === 'fixture' ? 'docker.io/library/fixture:1' : 'docker.io/library/busybox:latest';
      // umoci wants a plain tag name in the layout, so copy the image (blobs unchanged) into a layout tagged "t".
      const layout = join(work.path, `${name}-layout`);
      execFileSync('skopeo', ['--insecure-policy', 'copy', '-q', `oci:${root}:${ref}`, `oci:${layout}:t`]);
      const bundle = join(work.path, `${name}-bundle`);
      execFileSync('umoci', ['unpack', '--image', `${layout}:t`, bundle], { stdio: 'pipe' });
      const s = await Strata.open({ root });
      const [img] = JSON.parse((await strata(root, ['inspect', ref])).stdout);
      const ours = s.snapshots.fsDir(img.RootFS.Layers[0]);
      const fromUmoci = await describeTree(join(bundle, 'rootfs'));
      const fromStrata = await describeTree(ours);
      assert.deepEqual(fromStrata, fromUmoci);
      assert.deepEqual(fromStrata, await describeTree(source));
      if (name === 'fixture') {
        assert.equal(fromStrata['usr/bin/tool']?.mode, '4755');
        assert.equal(fromStrata['usr/bin/tool-hardlink']?.linkGroup, 'usr/bin/tool');
        assert.equal(fromStrata['etc/app/owned']?.uid, 1000);
        assert.equal(fromStrata['usr/bin/abs-link']?.target, '/usr/bin/tool');
      }
    });
  }
});

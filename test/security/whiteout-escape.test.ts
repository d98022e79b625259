import assert from 'node:assert/strict';
import { existsSync, lstatSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { apply, attackTar, isRoot, refused, sandbox } from './sandbox.js';

describe('attack: whiteouts that delete outside the root', { skip: !isRoot && 'needs root' }, () => {
  for (const mode of ['delete', 'overlay'] as const) {
    for (const name of ['.wh...', 'sub/.wh...', '.wh..']) {
      it(`refuses the whiteout "${name}" (${mode} mode)`, async (t) => {
        const box = await sandbox(t);
        const bytes = await attackTar([{ header: { name, type: 'file' } }]);
        await assert.rejects(apply(bytes, box.target, mode), refused(name));
        box.assertOutsideUntouched();
      });
    }

    it(`refuses a whiteout and an opaque marker through a symlink (${mode} mode)`, async (t) => {
      const box = await sandbox(t);
      for (const name of ['link/.wh.keep', 'link/.wh..wh..opq']) {
        const bytes = await attackTar([
          { header: { name: 'link', type: 'symlink', linkname: box.sentinel } },
          { header: { name, type: 'file' } },
        ]);
        await assert.rejects(apply(bytes, box.target, mode), refused(name));
        box.assertOutsideUntouched();
      }
    });
  }

  it('refuses "../sentinel/.wh.keep"', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([{ header: { name: '../sentinel/.wh.keep', type: 'file' } }]);
    await assert.rejects(apply(bytes, box.target), refused('../sentinel/.wh.keep'));
    box.assertOutsideUntouched();
  });

  it('an absolute whiteout only deletes inside the root', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([{ header: { name: `${box.sentinel}/.wh.keep`, type: 'file' } }]);
    await apply(bytes, box.target);
    box.assertOutsideUntouched();
  });

  it('whiting out a lower symlink to a directory outside removes the symlink, not the directory', async (t) => {
    const box = await sandbox(t);
    symlinkSync(box.sentinel, join(box.target, 'lower-link'));
    const bytes = await attackTar([{ header: { name: '.wh.lower-link', type: 'file' } }]);
    await apply(bytes, box.target);
    assert.equal(existsSync(join(box.target, 'lower-link')), false);
    assert.ok(lstatSync(box.sentinel).isDirectory());
    box.assertOutsideUntouched();
  });

  it('refuses an opaque marker below a lower symlink in delete mode', async (t) => {
    const box = await sandbox(t);
    symlinkSync(box.sentinel, join(box.target, 'lower-link'));
    const bytes = await attackTar([{ header: { name: 'lower-link/.wh..wh..opq', type: 'file' } }]);
    await assert.rejects(apply(bytes, box.target), refused('lower-link/.wh..wh..opq'));
    box.assertOutsideUntouched();
  });
});

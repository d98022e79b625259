import assert from 'node:assert/strict';
import { lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { apply, attackTar, isRoot, refused, sandbox } from './sandbox.js';

describe('attack: hardlinks to files outside the root', { skip: !isRoot && 'needs root' }, () => {
  it('refuses a hardlink whose target climbs out with ".."', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([{ header: { name: 'evil', type: 'link', linkname: '../sentinel/keep' } }]);
    await assert.rejects(apply(bytes, box.target), refused('evil'));
    box.assertOutsideUntouched();
  });

  it('resolves an absolute hardlink target inside the root, never on the host', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([{ header: { name: 'evil', type: 'link', linkname: join(box.sentinel, 'keep') } }]);
    await assert.rejects(apply(bytes, box.target), { code: 'INVALID_ARGUMENT', message: /"evil".*does not exist/ });
    assert.equal(lstatSync(join(box.sentinel, 'keep')).nlink, 1);
    box.assertOutsideUntouched();
  });

  it('refuses a hardlink whose target goes through a symlink', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([
      { header: { name: 'dirlink', type: 'symlink', linkname: box.sentinel } },
      { header: { name: 'evil', type: 'link', linkname: 'dirlink/keep' } },
      { header: { name: 'evil', type: 'file' }, body: 'pwned' },
    ]);
    await assert.rejects(apply(bytes, box.target), refused('evil'));
    box.assertOutsideUntouched();
  });

  it('links a symlink itself, not what it points to, and a later write replaces the link', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([
      { header: { name: 'sl', type: 'symlink', linkname: join(box.sentinel, 'keep') } },
      { header: { name: 'hl', type: 'link', linkname: 'sl' } },
      { header: { name: 'hl', type: 'file', mode: 0o4777 }, body: 'pwned' },
    ]);
    await apply(bytes, box.target);
    assert.equal(readFileSync(join(box.target, 'hl'), 'utf8'), 'pwned');
    assert.ok(lstatSync(join(box.target, 'sl')).isSymbolicLink());
    assert.equal(lstatSync(join(box.sentinel, 'keep')).nlink, 1);
    box.assertOutsideUntouched();
  });

  it('refuses entries under a hardlinked symlink', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([
      { header: { name: 'sl', type: 'symlink', linkname: box.sentinel } },
      { header: { name: 'hl', type: 'link', linkname: 'sl' } },
      { header: { name: 'hl/pwned', type: 'file' }, body: 'pwned' },
    ]);
    await assert.rejects(apply(bytes, box.target), refused('hl/pwned'));
    box.assertOutsideUntouched();
  });
});

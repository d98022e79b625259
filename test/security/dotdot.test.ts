import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { apply, attackTar, isRoot, refused, sandbox } from './sandbox.js';

describe('attack: ".." in entry names', { skip: !isRoot && 'needs root' }, () => {
  for (const name of ['../sentinel/pwned', 'a/../../sentinel/pwned', 'a/b/../../../sentinel/pwned', '..']) {
    it(`refuses "${name}", naming it, and writes nothing outside`, async (t) => {
      const box = await sandbox(t);
      const bytes = await attackTar([
        { header: { name: 'innocent', type: 'file' }, body: 'ok' },
        { header: { name, type: name === '..' ? 'directory' : 'file' }, body: name === '..' ? undefined : 'pwned' },
      ]);
      await assert.rejects(apply(bytes, box.target), refused(name));
      box.assertOutsideUntouched();
    });
  }

  it('refuses ".." smuggled in a PAX path record behind a harmless ustar name', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([
      { header: { name: 'harmless', type: 'file', pax: { path: '../sentinel/pax-pwned' } }, body: 'pwned' },
    ]);
    await assert.rejects(apply(bytes, box.target), refused('../sentinel/pax-pwned'));
    box.assertOutsideUntouched();
  });

  it('refuses ".." in a directory entry and in overlay mode too', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([{ header: { name: '../sentinel/newdir', type: 'directory' } }]);
    await assert.rejects(apply(bytes, box.target, 'overlay'), refused('../sentinel/newdir'));
    box.assertOutsideUntouched();
  });

  it('allows ".." that stays inside the root', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([{ header: { name: 'a/../b', type: 'file' }, body: 'inside' }]);
    await apply(bytes, box.target);
    assert.equal(readFileSync(join(box.target, 'b'), 'utf8'), 'inside');
    assert.equal(existsSync(join(box.target, 'a')), false);
    box.assertOutsideUntouched();
  });
});

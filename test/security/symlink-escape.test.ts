import assert from 'node:assert/strict';
import { lstatSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { apply, attackTar, isRoot, refused, sandbox } from './sandbox.js';

describe('attack: writing through symlinks', { skip: !isRoot && 'needs root' }, () => {
  for (const kind of ['absolute', 'relative'] as const) {
    it(`refuses a file written through a ${kind} symlink placed by an earlier entry`, async (t) => {
      const box = await sandbox(t);
      const linkname = kind === 'absolute' ? box.sentinel : '../sentinel';
      const bytes = await attackTar([
        { header: { name: 'link', type: 'symlink', linkname } },
        { header: { name: 'link/pwned', type: 'file' }, body: 'pwned' },
      ]);
      await assert.rejects(apply(bytes, box.target), refused('link/pwned'));
      box.assertOutsideUntouched();
    });
  }

  it('refuses the classic "/etc" redirect: link -> /etc then link/passwd', async (t) => {
    const box = await sandbox(t);
    const passwd = readFileSync('/etc/passwd');
    const bytes = await attackTar([
      { header: { name: 'link', type: 'symlink', linkname: '/etc' } },
      { header: { name: 'link/passwd', type: 'file' }, body: 'root::0:0::/:/bin/sh\n' },
    ]);
    await assert.rejects(apply(bytes, box.target), refused('link/passwd'));
    assert.deepEqual(readFileSync('/etc/passwd'), passwd);
  });

  it('refuses directories and deeper paths through a symlink, in overlay mode too', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([
      { header: { name: 'link', type: 'symlink', linkname: box.sentinel } },
      { header: { name: 'link/sub/deeper', type: 'directory', mode: 0o777 } },
    ]);
    await assert.rejects(apply(bytes, box.target, 'overlay'), refused('link/sub/deeper'));
    box.assertOutsideUntouched();
  });

  it('refuses a chain of symlinks that ends outside', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([
      { header: { name: 'a', type: 'symlink', linkname: 'b' } },
      { header: { name: 'b', type: 'symlink', linkname: '../sentinel' } },
      { header: { name: 'a/pwned', type: 'file' }, body: 'pwned' },
    ]);
    await assert.rejects(apply(bytes, box.target), refused('a/pwned'));
    box.assertOutsideUntouched();
  });

  it('refuses writing through a symlink a lower layer left in the target', async (t) => {
    const box = await sandbox(t);
    symlinkSync(box.sentinel, join(box.target, 'lower-link'));
    const bytes = await attackTar([{ header: { name: 'lower-link/pwned', type: 'file' }, body: 'pwned' }]);
    await assert.rejects(apply(bytes, box.target), refused('lower-link/pwned'));
    box.assertOutsideUntouched();
  });

  it('replaces a symlink named by a file or directory entry instead of following it', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([
      { header: { name: 'f', type: 'symlink', linkname: join(box.sentinel, 'keep') } },
      { header: { name: 'f', type: 'file', mode: 0o777 }, body: 'pwned' },
      { header: { name: 'd', type: 'symlink', linkname: box.sentinel } },
      { header: { name: 'd', type: 'directory', mode: 0o777, uid: 1234 } },
    ]);
    await apply(bytes, box.target);
    assert.ok(lstatSync(join(box.target, 'f')).isFile());
    assert.ok(lstatSync(join(box.target, 'd')).isDirectory());
    box.assertOutsideUntouched();
  });
});

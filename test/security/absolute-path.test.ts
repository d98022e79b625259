import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { apply, attackTar, isRoot, refused, sandbox } from './sandbox.js';

// Decision (as containerd): a leading "/" is dropped, so an absolute entry lands under the root; it never reaches
// the host path it names.
describe('attack: absolute entry names', { skip: !isRoot && 'needs root' }, () => {
  it('writes "/<host path>" under the target, never to the host path', async (t) => {
    const box = await sandbox(t);
    const hostPath = join(box.sentinel, 'pwned');
    const bytes = await attackTar([{ header: { name: hostPath, type: 'file' }, body: 'contained' }]);
    await apply(bytes, box.target);
    assert.equal(readFileSync(join(box.target, hostPath), 'utf8'), 'contained');
    box.assertOutsideUntouched();
  });

  it('overwrites nothing outside when the absolute name is an existing host file', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([{ header: { name: join(box.sentinel, 'keep'), type: 'file' }, body: 'pwned' }]);
    await apply(bytes, box.target);
    assert.equal(readFileSync(join(box.sentinel, 'keep'), 'utf8'), 'do not touch');
    box.assertOutsideUntouched();
  });

  it('refuses "/../" climbing above the root after the "/" is dropped', async (t) => {
    const box = await sandbox(t);
    const name = '/../../sentinel/pwned';
    const bytes = await attackTar([{ header: { name, type: 'file' }, body: 'pwned' }]);
    await assert.rejects(apply(bytes, box.target), refused(name));
    box.assertOutsideUntouched();
  });

  it('keeps absolute directory and device entries inside too', async (t) => {
    const box = await sandbox(t);
    const bytes = await attackTar([
      { header: { name: `${box.sentinel}/dir`, type: 'directory', mode: 0o777 } },
      { header: { name: `${box.sentinel}/fifo`, type: 'fifo' } },
    ]);
    await apply(bytes, box.target);
    box.assertOutsideUntouched();
  });
});

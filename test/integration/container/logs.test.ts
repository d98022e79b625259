import assert from 'node:assert/strict';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readFileInRoot } from '../../../src/container/files.js';
import { LogWriter, readLog } from '../../../src/container/logs.js';
import { tempDir } from '../../helpers/env.js';

describe('container log (json-file) and rootfs reads', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  before(async () => {
    work = await tempDir('strata-ct-log-');
  });
  after(async () => work.cleanup());

  it('cuts output into docker json-file lines and reads them back, with tail and follow', async () => {
    const path = join(work.path, 'c.log');
    const w = new LogWriter(path);
    w.write('stdout', Buffer.from('one\ntw'));
    w.write('stderr', Buffer.from('err\n'));
    w.write('stdout', Buffer.from('o\n'));
    // a multi-byte character split across chunks
    const e = Buffer.from('\u00e9\n');
    w.write('stdout', e.subarray(0, 1));
    w.write('stdout', e.subarray(1));
    w.write('stdout', Buffer.from('no newline'));
    await w.close();
    const lines = (await readFile(path, 'utf8')).trim().split('\n');
    const first = JSON.parse(lines[0]!);
    assert.deepEqual(Object.keys(first), ['log', 'stream', 'time']);
    const all = [];
    for await (const x of readLog(path)) all.push(`${x.stream}:${x.log}`);
    assert.deepEqual(all, ['stdout:one\n', 'stderr:err\n', 'stdout:two\n', 'stdout:\u00e9\n', 'stdout:no newline']);
    const tail = [];
    for await (const x of readLog(path, { tail: 2 })) tail.push(x.log);
    assert.deepEqual(tail, ['\u00e9\n', 'no newline']);
    const none = [];
    for await (const x of readLog(path, { tail: 0 })) none.push(x.log);
    assert.deepEqual(none, []);
    const missing = [];
    for await (const x of readLog(join(work.path, 'nope.log'))) missing.push(x);
    assert.deepEqual(missing, []);
  });

  it('a long line is cut at 16 KiB; follow returns what comes until done', async () => {
    const path = join(work.path, 'long.log');
    const w = new LogWriter(path);
    w.write('stdout', Buffer.from(`${'x'.repeat(40 * 1024)}\n`));
    if (w.stream.pending) await new Promise<void>((r) => w.stream.once('ready', () => r()));
    let stop = false;
    const seen: string[] = [];
    const reader = (async () => {
      for await (const x of readLog(path, { follow: true, pollMs: 10, done: async () => stop })) seen.push(x.log);
    })();
    await new Promise((r) => setTimeout(r, 50));
    w.write('stdout', Buffer.from('later\n'));
    await w.close();
    stop = true;
    await reader;
    assert.deepEqual(
      seen.map((s) => s.length),
      [16384, 16384, 40 * 1024 - 32768 + 1, 6],
    );
    assert.equal(seen.at(-1), 'later\n');
  });

  it('reads /etc/passwd of a rootfs resolving symlinks inside it, never on the host', async () => {
    const rootfs = join(work.path, 'rootfs');
    await mkdir(join(rootfs, 'etc'), { recursive: true });
    await mkdir(join(rootfs, 'real'), { recursive: true });
    await writeFile(join(rootfs, 'real', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
    await symlink('/real/passwd', join(rootfs, 'etc', 'passwd'));
    assert.equal(await readFileInRoot(rootfs, '/etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
    // An absolute link to a host file and a climbing relative one both stay inside the rootfs.
    await symlink('/etc/hostname', join(rootfs, 'etc', 'group'));
    assert.equal(await readFileInRoot(rootfs, '/etc/group'), undefined);
    await symlink('../../../../../../etc/hostname', join(rootfs, 'etc', 'shadow'));
    assert.equal(await readFileInRoot(rootfs, '/etc/shadow'), undefined);
    await symlink('loop', join(rootfs, 'etc', 'loop'));
    assert.equal(await readFileInRoot(rootfs, '/etc/loop'), undefined);
    assert.equal(await readFileInRoot(rootfs, '/etc'), undefined, 'a directory is not a file');
  });
});

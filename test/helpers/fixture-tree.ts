import { spawnSync } from 'node:child_process';
import { chmod, chown, link, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A root filesystem that exercises what layers must keep: owners, setuid and sticky bits, hardlinks, absolute
 * and relative symlinks, a fifo, empty files and directories, a name longer than 100 bytes, a user xattr.
 */
export async function makeFixtureTree(dir: string): Promise<string> {
  await mkdir(join(dir, 'etc/app'), { recursive: true });
  await mkdir(join(dir, 'usr/bin'), { recursive: true });
  await mkdir(join(dir, 'empty-dir'), { recursive: true });
  await mkdir(join(dir, 'tmp'), { recursive: true });
  await chmod(join(dir, 'tmp'), 0o1777);
  await writeFile(join(dir, 'etc/app/config.ini'), '[main]\nkey = value\n');
  await writeFile(join(dir, 'etc/empty'), '');
  await writeFile(join(dir, 'usr/bin/tool'), '#!/bin/sh\necho tool\n');
  await chmod(join(dir, 'usr/bin/tool'), 0o4755);
  await link(join(dir, 'usr/bin/tool'), join(dir, 'usr/bin/tool-hardlink'));
  await symlink('/usr/bin/tool', join(dir, 'usr/bin/abs-link'));
  await symlink('../etc/app', join(dir, 'usr/app-rel-link'));
  await writeFile(join(dir, 'etc/app/owned'), 'owned by 1000:1001\n');
  await chown(join(dir, 'etc/app/owned'), 1000, 1001);
  const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(70)}.txt`;
  await mkdir(join(dir, long, '..'), { recursive: true });
  await writeFile(join(dir, long), 'long name\n');
  spawnSync('mkfifo', [join(dir, 'tmp/fifo')]);
  spawnSync('setfattr', ['-n', 'user.strata', '-v', 'yes', join(dir, 'etc/app/config.ini')]);
  const data = Buffer.alloc(3 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  await writeFile(join(dir, 'usr/bin/big.bin'), data);
  spawnSync('find', [dir, '-exec', 'touch', '-h', '-d', '@1700000000', '{}', '+']);
  await utimes(dir, 1700000000, 1700000000);
  return dir;
}

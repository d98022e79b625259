import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { parsePlatform, parseReference, StrataError } from '../../index.js';
import { collect, openStrata } from '../context.js';
import { print, writeFileAtomically } from '../output.js';

export function registerArchiveCommands(program: Command, image: Command): void {
  const save = (c: Command) =>
    c
      .argument('<IMAGE...>')
      .option('-o, --output <file>', 'write to a file instead of standard output')
      .option('--format <format>', 'docker (docker-archive, default) or oci (OCI image layout)', 'docker')
      .action(async (refs: string[], opts, cmd: Command) => {
        if (
          opts.format !== 'docker' &&
          opts.format !== 'oci' &&
          opts.format !== 'docker-archive' &&
          opts.format !== 'oci-archive'
        ) {
          throw new StrataError('INVALID_ARGUMENT', `unknown --format "${opts.format}"`, { hint: 'use docker or oci' });
        }
        const format = opts.format.startsWith('oci') ? 'oci' : 'docker';
        const strata = await openStrata(cmd);
        if (!opts.output) {
          if (process.stdout.isTTY) {
            throw new StrataError('INVALID_ARGUMENT', 'cowardly refusing to save to a terminal', {
              hint: 'use the -o flag or redirect standard output',
            });
          }
          await strata.save(refs, process.stdout, { format });
          return;
        }
        await writeFileAtomically(opts.output, (out) => strata.save(refs, out, { format }));
      });
  save(program.command('save').description('Save one or more images to a tar archive (docker-archive or OCI layout)'));
  save(image.command('save').description('Save one or more images to a tar archive'));

  const load = (c: Command) =>
    c
      .option('-i, --input <file>', 'read from a tar archive file instead of standard input')
      .option('-q, --quiet', 'suppress the load output')
      .action(async (opts, cmd: Command) => {
        if (!opts.input && process.stdin.isTTY) {
          throw new StrataError('INVALID_ARGUMENT', 'requested load from stdin, but stdin is empty', {
            hint: 'use -i FILE or pipe an archive into strata load',
          });
        }
        const strata = await openStrata(cmd);
        const src = opts.input ? createReadStream(opts.input) : process.stdin;
        const loaded = await strata.load(src);
        if (opts.quiet) return;
        for (const l of loaded) {
          if (l.references.length === 0) print(`Loaded image ID: ${l.id}`);
          for (const r of l.references) print(`Loaded image: ${parseReference(r).familiar()}`);
        }
      });
  load(program.command('load').description('Load images from a tar archive (docker-archive or OCI layout)'));
  load(image.command('load').description('Load images from a tar archive'));

  const imp = (c: Command) =>
    c
      .argument('<file|dir|->', 'root filesystem: a tar (plain or gzip), a directory, or - for standard input')
      .argument('[REPOSITORY[:TAG]]')
      .option(
        '-c, --change <instruction>',
        'apply a Dockerfile instruction to the image config (repeatable)',
        collect,
        [],
      )
      .option('-m, --message <message>', 'history comment for the imported image')
      .option('--platform <os/arch>', 'platform recorded in the config (default: this host)')
      .action(async (source: string, name: string | undefined, opts, cmd: Command) => {
        const strata = await openStrata(cmd);
        let path = source;
        let spool: string | undefined;
        if (source === '-') {
          spool = await mkdtemp(join(strata.root, 'tmp-import-'));
          path = join(spool, 'rootfs.tar');
          await pipeline(process.stdin, createWriteStream(path));
        }
        try {
          const res = await strata.importImage(path, name, {
            changes: opts.change,
            message: opts.message ?? `Imported from ${source}`,
            ...(opts.platform ? { platform: parsePlatform(opts.platform) } : {}),
          });
          print(res.id);
        } finally {
          if (spool) await rm(spool, { recursive: true, force: true });
        }
      });
  imp(program.command('import').description('Import a root filesystem tar or directory as a single-layer image'));
  imp(image.command('import').description('Import a root filesystem as an image'));
}

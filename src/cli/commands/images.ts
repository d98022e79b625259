import type { Command } from 'commander';
import { parseReference, shortId, StrataError } from '../../index.js';
import { collect, openStrata } from '../context.js';
import { humanAgo, humanSize, print, printFormatted, printJson, table } from '../output.js';
import { renderTemplate } from '../template.js';

export function registerImageCommands(program: Command, image: Command): void {
  const images = (c: Command) =>
    c
      .argument('[REPOSITORY[:TAG]]', 'only images of this repository (and tag)')
      .option('-a, --all', 'show all images (accepted for docker compatibility)')
      .option('--digests', 'show manifest digests')
      .option('-q, --quiet', 'only show image IDs')
      .option('--no-trunc', 'do not truncate output')
      .option('--format <format>', "'table', 'json' (one object per line) or a Go template such as '{{.Repository}}'")
      .action(async (filter: string | undefined, opts, cmd: Command) => {
        const strata = await openStrata(cmd);
        let list = await strata.listImages();
        if (filter) {
          const want = parseReference(filter);
          const explicitTag = /:[^/]+$/.test(filter);
          list = list.filter(
            (i) =>
              i.reference && parseReference(i.reference).name === want.name && (!explicitTag || i.tag === want.tag),
          );
        }
        const id = (d: string) => (opts.trunc ? shortId(d) : d);
        if (opts.quiet) {
          print([...new Set(list.map((i) => id(i.id)))].join('\n'));
          return;
        }
        const rows = list.map((i) => ({
          Containers: 'N/A',
          CreatedAt: i.created ?? '',
          CreatedSince: humanAgo(i.created),
          Digest: i.digest,
          ID: id(i.id),
          Repository: i.repository,
          SharedSize: 'N/A',
          Size: humanSize(i.size),
          Tag: i.tag,
          UniqueSize: 'N/A',
          VirtualSize: humanSize(i.size),
        }));
        if (printFormatted(rows, opts.format)) return;
        const header = ['REPOSITORY', 'TAG', ...(opts.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'];
        print(
          table(
            header,
            rows.map((r) => [r.Repository, r.Tag, ...(opts.digests ? [r.Digest] : []), r.ID, r.CreatedSince, r.Size]),
          ),
        );
      });
  images(program.command('images').description('List images'));
  images(image.command('ls').alias('list').description('List images'));

  const tag = (c: Command) =>
    c
      .argument('<SOURCE_IMAGE[:TAG]>')
      .argument('<TARGET_IMAGE[:TAG]>')
      .action(async (source: string, target: string, _o, cmd: Command) => {
        await (await openStrata(cmd)).tag(source, target);
      });
  tag(program.command('tag').description('Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE'));
  tag(image.command('tag').description('Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE'));

  const rmi = (c: Command) =>
    c
      .argument('<IMAGE...>')
      .option('-f, --force', 'remove an image ID with several tags')
      .action(async (refs: string[], opts, cmd: Command) => {
        const strata = await openStrata(cmd);
        let failed: unknown;
        for (const ref of refs) {
          try {
            const res = await strata.removeImage(ref, { force: !!opts.force });
            for (const u of res.untagged) print(`Untagged: ${parseReference(u).familiar()}`);
            if (res.deleted) print(`Deleted: ${res.deleted}`);
          } catch (err) {
            // docker goes on with the other images and fails at the end
            process.stderr.write(`Error: ${(err as Error).message}\n`);
            failed = err;
          }
        }
        if (failed)
          throw new StrataError('NOT_FOUND', 'some images could not be removed', { details: { reported: true } });
      });
  rmi(program.command('rmi').description('Remove one or more images (blobs go at `image prune`)'));
  rmi(image.command('rm').alias('remove').description('Remove one or more images'));

  const inspect = (c: Command) =>
    c
      .argument('<IMAGE...>')
      .option('-f, --format <format>', "'json' or a Go template such as '{{.Id}}'")
      .action(async (refs: string[], opts, cmd: Command) => {
        const strata = await openStrata(cmd);
        const out = [];
        for (const r of refs) out.push(await strata.inspectImage(r));
        if (opts.format && opts.format !== 'json') for (const o of out) print(renderTemplate(opts.format, o));
        else printJson(out);
      });
  inspect(program.command('inspect').description('Show low-level information on images (a JSON array)'));
  inspect(image.command('inspect').description('Show low-level information on images'));

  const history = (c: Command) =>
    c
      .argument('<IMAGE>')
      .option('-H, --human', 'print sizes and dates in human readable format', true)
      .option('--no-human', 'print sizes in bytes and dates as RFC 3339')
      .option('--no-trunc', 'do not truncate output')
      .option('-q, --quiet', 'only show image IDs')
      .option('--format <format>', "'table', 'json' or a Go template")
      .action(async (ref: string, opts, cmd: Command) => {
        const rows = await (await openStrata(cmd)).history(ref);
        const id = (s: string) => (s.startsWith('sha256:') && opts.trunc ? shortId(s) : s);
        if (opts.quiet) {
          print(rows.map((r) => id(r.id)).join('\n'));
          return;
        }
        const view = rows.map((r) => ({
          Comment: r.comment,
          CreatedAt: r.created ?? '',
          CreatedBy: r.createdBy,
          CreatedSince: opts.human ? humanAgo(r.created) : (r.created ?? ''),
          ID: id(r.id),
          Size: opts.human ? humanSize(r.size) : String(r.size),
        }));
        if (opts.format === 'json') {
          for (const v of view) print(JSON.stringify(v));
          return;
        }
        if (opts.format && opts.format !== 'table') {
          for (const v of view) print(renderTemplate(opts.format, v));
          return;
        }
        const by = (s: string) => (opts.trunc && s.length > 45 ? `${s.slice(0, 44)}…` : s);
        print(
          table(
            ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
            view.map((v) => [v.ID, v.CreatedSince, by(v.CreatedBy), v.Size, v.Comment]),
          ),
        );
      });
  history(program.command('history').description('Show the history of an image'));
  history(image.command('history').description('Show the history of an image'));

  image
    .command('prune')
    .description('Remove dangling images and every blob and layer snapshot no image uses')
    .option('-a, --all', 'accepted for docker compatibility: unused blobs are always removed')
    .option('-f, --force', 'do not prompt for confirmation (strata never prompts)')
    .option('--dry-run', 'print what would be removed without removing it')
    .action(async (opts, cmd: Command) => {
      const res = await (await openStrata(cmd)).pruneImages({ dryRun: !!opts.dryRun });
      const verb = opts.dryRun ? 'Would delete' : 'Deleted';
      if (res.images.length + res.blobs.length + res.snapshots.length > 0) {
        print(`${verb} Images:`);
        for (const d of res.images) print(`deleted: ${d}`);
        for (const b of res.blobs) print(`deleted: ${b.digest}`);
        for (const s of res.snapshots) print(`deleted snapshot: ${s.name}`);
        print('');
      }
      print(`Total reclaimed space: ${humanSize(res.reclaimedBytes)}`);
    });

  void collect;
}

import type { Command } from 'commander';
import { shortId } from '../../index.js';
import { openStrata } from '../context.js';
import { humanSize, print, table } from '../output.js';

export function registerSystemCommands(program: Command): void {
  const system = program.command('system').description('Manage strata');
  system
    .command('df')
    .description('Show disk usage: every blob and layer snapshot counted once')
    .option('-v, --verbose', 'show per-image shared and unique sizes')
    .option('--format <format>', "'table' or 'json'")
    .action(async (opts, cmd: Command) => {
      const du = await (await openStrata(cmd)).diskUsage();
      const pct = (a: number, b: number) => (b === 0 ? '0%' : `${Math.round((a / b) * 100)}%`);
      const rows = [
        {
          Type: 'Images',
          TotalCount: String(du.images.total),
          Active: '0',
          Size: humanSize(du.images.size),
          Reclaimable: `${humanSize(du.images.reclaimable)} (${pct(du.images.reclaimable, du.images.size)})`,
        },
        { Type: 'Containers', TotalCount: '0', Active: '0', Size: '0B', Reclaimable: '0B' },
        { Type: 'Local Volumes', TotalCount: '0', Active: '0', Size: '0B', Reclaimable: '0B' },
        { Type: 'Build Cache', TotalCount: '0', Active: '0', Size: '0B', Reclaimable: '0B' },
      ];
      if (opts.format === 'json') {
        if (opts.verbose) print(JSON.stringify({ ...du }));
        else for (const r of rows) print(JSON.stringify(r));
        return;
      }
      if (!opts.verbose) {
        print(
          table(
            ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'],
            rows.map((r) => [r.Type, r.TotalCount, r.Active, r.Size, r.Reclaimable]),
          ),
        );
        return;
      }
      print('Images space usage:\n');
      print(
        table(
          ['REPOSITORY', 'IMAGE ID', 'SIZE', 'SHARED SIZE', 'UNIQUE SIZE'],
          du.perImage.map((i) => [
            i.reference,
            shortId(i.id),
            humanSize(i.size),
            humanSize(i.shared),
            humanSize(i.unique),
          ]),
        ),
      );
      print(
        `\nStore: ${du.blobs.count} blobs, ${humanSize(du.blobs.size)}; ${du.snapshots.count} layer snapshots, ${humanSize(du.snapshots.size)}`,
      );
    });

  program
    .command('fsck')
    .description('Re-hash every blob and check every reference; exit 1 if anything is wrong')
    .option('--format <format>', "'table' or 'json'")
    .action(async (opts, cmd: Command) => {
      const report = await (await openStrata(cmd)).fsck();
      const errors = report.problems.filter((p) => p.severity === 'error');
      if (opts.format === 'json') print(JSON.stringify(report, null, 2));
      else {
        for (const p of report.problems) print(`${p.severity}: ${p.message}`);
        print(
          `checked ${report.blobs} blobs (${humanSize(report.bytes)}), ${report.images} images, ${report.snapshots} snapshots: ` +
            (errors.length === 0 ? 'no errors' : `${errors.length} error(s)`),
        );
      }
      if (errors.length > 0) process.exitCode = 1;
    });
}

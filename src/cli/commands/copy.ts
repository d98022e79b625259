import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { type ProgressEvent, parsePlatform } from '../../index.js';
import { collect, openStrata } from '../context.js';
import { print } from '../output.js';
import { shortDigest } from '../progress.js';

/**
 * `strata copy SRC DST`, as `skopeo copy`: SRC and DST are `docker://REF` (or a bare reference), `oci:DIR[:REF]`,
 * `oci-archive:FILE[:REF]` or `docker-archive:FILE[:REF]`. Output as skopeo's, one line per blob:
 *
 *   Getting image source signatures
 *   Copying blob 1a2b3c4d5e6f done
 *   Copying blob 9f8e7d6c5b4a skipped: already exists
 *   Copying config sha256:... done
 *   Writing manifest to image destination
 */
export function registerCopyCommand(program: Command): void {
  program
    .command('copy')
    .description('Copy an image between registries, OCI layouts and archives, without the local store')
    .argument('<SOURCE>', 'docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF]')
    .argument('<DESTINATION>', 'docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF]')
    .option('-a, --all', 'copy every image of a multi-platform index, and the index')
    .option('--platform <os/arch[/variant]>', 'the image to take from an index (default: this host)')
    .option('-q, --quiet', 'print nothing but errors')
    .option('--digestfile <file>', 'write the digest of the copied manifest to this file')
    .option('--insecure-registry <host[:port]>', 'reach this registry over plain HTTP (repeatable)', collect, [])
    .action(async (source: string, destination: string, opts, cmd: Command) => {
      const strata = await openStrata(cmd);
      const said = new Map<string, string>();
      const onProgress = (e: ProgressEvent): void => {
        if (opts.quiet) return;
        if (e.kind === 'message') {
          print(e.text);
          return;
        }
        if (e.kind !== 'blob') return;
        let text: string | undefined;
        if (e.state === 'exists') text = 'skipped: already exists';
        else if (e.state === 'mounted') text = `skipped: mounted from ${e.detail ?? 'another repository'}`;
        else if (e.state === 'done') text = 'done';
        else if (e.state === 'retrying') text = e.detail ? `retrying: ${e.detail}` : 'retrying';
        else if (e.state === 'failed') text = 'failed';
        if (!text) return;
        const id = shortDigest(e.digest);
        if (said.get(id) === text) return;
        said.set(id, text);
        print(`Copying blob ${id} ${text}`);
      };
      if (!opts.quiet) print('Getting image source signatures');
      const res = await strata.copy(source, destination, {
        onProgress,
        ...(opts.all ? { all: true } : {}),
        ...(opts.platform ? { platform: parsePlatform(opts.platform) } : {}),
        ...(opts.insecureRegistry.length ? { insecureRegistries: opts.insecureRegistry } : {}),
      });
      if (opts.digestfile) await writeFile(opts.digestfile, res.digest);
    });
}

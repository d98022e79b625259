import type { Command } from 'commander';
import { parsePlatform, parseReference, StrataError } from '../../index.js';
import { collect, openStrata } from '../context.js';
import { print } from '../output.js';
import { createProgressRenderer, parseProgressMode } from '../progress.js';

export function registerPullCommand(program: Command, image: Command): void {
  const pull = (c: Command) =>
    c
      .argument('<NAME[:TAG|@DIGEST]>')
      .option('-a, --all-tags', 'download all tagged images in the repository')
      .option('--platform <os/arch[/variant]>', 'pull this platform from an index (default: this host)')
      .option('-q, --quiet', 'suppress verbose output: print only the reference')
      .option('--progress <mode>', 'auto, plain (one line per change) or tty (live bars)', 'auto')
      .option('--insecure-registry <host[:port]>', 'reach this registry over plain HTTP (repeatable)', collect, [])
      .action(async (name: string, opts, cmd: Command) => {
        const mode = opts.quiet ? 'quiet' : parseProgressMode(opts.progress);
        const platform = opts.platform ? parsePlatform(opts.platform) : undefined;
        const strata = await openStrata(cmd);
        const progress = createProgressRenderer(process.stdout, mode);
        const explicit = parseReference(name, { defaultTag: '' });
        if (!opts.allTags && !explicit.tag && !explicit.digest && !opts.quiet) print('Using default tag: latest');
        // Ctrl-C stops cleanly: locks are let go and the bytes so far stay for the next pull to resume.
        const ctl = new AbortController();
        const onSigint = () => ctl.abort();
        process.once('SIGINT', onSigint);
        let pulled: Awaited<ReturnType<typeof strata.pull>>;
        try {
          pulled = await strata.pull(name, {
            signal: ctl.signal,
            onProgress: progress,
            ...(opts.allTags ? { allTags: true } : {}),
            ...(platform ? { platform } : {}),
            ...(opts.insecureRegistry.length ? { insecureRegistries: opts.insecureRegistry } : {}),
          });
        } catch (err) {
          if (ctl.signal.aborted) {
            throw new StrataError('CANCELLED', `pull of ${name} cancelled`, {
              hint: 'run the same pull again: downloads resume where they stopped',
            });
          }
          throw err;
        } finally {
          process.removeListener('SIGINT', onSigint);
          progress.close();
        }
        // docker prints the full reference last: the repository alone after --all-tags.
        if (opts.allTags) print(explicit.name);
        else for (const p of pulled) print(explicit.digest ? explicit.toString() : p.reference);
      });
  pull(program.command('pull').description('Download an image from a registry'));
  pull(image.command('pull').description('Download an image from a registry'));
}

import type { Command } from 'commander';
import { parsePlatform, parseReference } from '../../index.js';
import { collect, openStrata } from '../context.js';
import { print } from '../output.js';
import { createProgressRenderer, parseProgressMode } from '../progress.js';

/**
 * `strata push NAME[:TAG]`, as docker prints it:
 *
 *   The push refers to repository [127.0.0.1:5000/app]
 *   1a2b3c4d5e6f: Preparing
 *   1a2b3c4d5e6f: Pushing 4.2MB
 *   1a2b3c4d5e6f: Pushed                     (or: Layer already exists, Mounted from library/base)
 *   latest: digest: sha256:... size: 528
 */
export function registerPushCommand(program: Command, image: Command): void {
  const push = (c: Command) =>
    c
      .argument('<NAME[:TAG]>')
      .option('-q, --quiet', 'suppress verbose output: print only the reference')
      .option('--progress <mode>', 'auto, plain (one line per change) or tty (live bars)', 'auto')
      .option('--platform <os/arch[/variant]>', 'for a multi-platform image not all here: which platform to push')
      .option('--insecure-registry <host[:port]>', 'reach this registry over plain HTTP (repeatable)', collect, [])
      .action(async (name: string, opts, cmd: Command) => {
        const mode = opts.quiet ? 'quiet' : parseProgressMode(opts.progress);
        const strata = await openStrata(cmd);
        const ref = parseReference(name);
        if (!opts.quiet) print(`The push refers to repository [${ref.name}]`);
        const progress = createProgressRenderer(process.stdout, mode, { verb: 'push' });
        let res: Awaited<ReturnType<typeof strata.push>>;
        try {
          res = await strata.push(name, {
            onProgress: progress,
            ...(opts.platform ? { platform: parsePlatform(opts.platform) } : {}),
            ...(opts.insecureRegistry.length ? { insecureRegistries: opts.insecureRegistry } : {}),
          });
        } finally {
          progress.close();
        }
        if (opts.quiet) print(ref.toString());
        else print(`${res.tag}: digest: ${res.digest} size: ${res.size}`);
      });
  push(program.command('push').description('Upload an image to a registry'));
  push(image.command('push').description('Upload an image to a registry'));
}

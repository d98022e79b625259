import { Command } from 'commander';
import { registerArchiveCommands } from './commands/archive.js';
import { registerImageCommands } from './commands/images.js';
import { registerRegistryCommands } from './commands/registry.js';
import { registerSystemCommands } from './commands/system.js';

export function buildProgram(): Command {
  const program = new Command('strata')
    .description('Daemonless container images: build, store, share and run OCI images')
    .version('0.1.0')
    .option('--root <dir>', 'state directory (default: $STRATA_ROOT, else /var/lib/strata as root)')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (str, write) => write(str) });
  const image = program.command('image').description('Manage images');
  registerImageCommands(program, image);
  registerArchiveCommands(program, image);
  registerSystemCommands(program);
  registerRegistryCommands(program);
  return program;
}

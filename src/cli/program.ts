import { Command } from 'commander';
import { registerArchiveCommands } from './commands/archive.js';
import { registerBuildCommands } from './commands/build.js';
import { registerContainerCommands } from './commands/container.js';
import { registerCopyCommand } from './commands/copy.js';
import { registerImageCommands } from './commands/images.js';
import { registerLoginCommands } from './commands/login.js';
import { registerPullCommand } from './commands/pull.js';
import { registerPushCommand } from './commands/push.js';
import { registerRegistryCommands } from './commands/registry.js';
import { registerSystemCommands } from './commands/system.js';

export function buildProgram(): Command {
  const program = new Command('strata')
    .description('Daemonless container images: build, store, share and run OCI images')
    .version('0.1.0')
    .option('--root <dir>', 'state directory (default: $STRATA_ROOT, else /var/lib/strata as root)')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (str, write) => write(str) })
    // Global options go before the command: what follows `run IMAGE` is the container's command line, whose
    // options (-c, -V, --root ...) are its own.
    .enablePositionalOptions();
  const image = program.command('image').description('Manage images');
  registerImageCommands(program, image);
  registerArchiveCommands(program, image);
  registerPullCommand(program, image);
  registerPushCommand(program, image);
  registerCopyCommand(program);
  registerSystemCommands(program);
  registerRegistryCommands(program);
  registerLoginCommands(program);
  registerContainerCommands(program);
  registerBuildCommands(program);
  return program;
}

import type { Command } from 'commander';
import {
  defaultRoot,
  loadRegistryConfig,
  parseRegistryConfig,
  type RegistryConfig,
  StrataError,
  startRegistry,
} from '../../index.js';

/** Config from --config (JSON), with flags on top: flags win, as with distribution's environment overrides. */
async function registryConfig(
  cmd: Command,
  opts: Record<string, string | undefined>,
): Promise<{ config: RegistryConfig; root: string }> {
  const base = opts['config'] ? await loadRegistryConfig(opts['config']) : parseRegistryConfig({});
  const raw: Record<string, unknown> = { ...base };
  if (opts['addr']) raw['addr'] = opts['addr'];
  if (opts['logLevel']) raw['log'] = { level: opts['logLevel'] };
  if (opts['tlsCert'] || opts['tlsKey']) {
    if (!opts['tlsCert'] || !opts['tlsKey']) {
      throw new StrataError('INVALID_ARGUMENT', 'TLS needs both --tls-cert and --tls-key');
    }
    raw['tls'] = { cert: opts['tlsCert'], key: opts['tlsKey'] };
  }
  if (opts['htpasswd'])
    raw['auth'] = { ...(base.auth ?? {}), htpasswd: { path: opts['htpasswd'], realm: 'strata-registry' } };
  const config = parseRegistryConfig(raw, opts['config'] ? `registry config ${opts['config']}` : 'registry flags');
  // The global --root names strata's state directory; for the registry commands it names the storage directory.
  const root = (cmd.optsWithGlobals()['root'] as string | undefined) ?? config.root ?? `${defaultRoot()}/registry`;
  return { config, root };
}

export function registerRegistryCommands(program: Command): void {
  const registry = program.command('registry').description('Run an OCI Distribution registry');
  registry
    .command('serve')
    .description('Serve a registry that docker, podman, skopeo and crane can push to and pull from')
    .option('--addr <host:port>', 'listen address (default 127.0.0.1:5000; port 0 picks a free port)')
    .option('--root <dir>', 'storage directory (default: <strata root>/registry)')
    .option('--config <file>', 'JSON config file (auth, gc, uploads, limits); flags override it')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--htpasswd <file>', 'require basic auth against this htpasswd file (bcrypt entries)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .action(async (opts, cmd: Command) => {
      const { config, root } = await registryConfig(cmd, opts);
      const reg = await startRegistry({ config, root });
      reg.context.log.info({ url: reg.url, root }, 'registry listening');
      await new Promise<void>((resolve) => {
        const stop = (signal: string): void => {
          reg.context.log.info({ signal }, 'shutting down: finishing requests in flight');
          reg.close().then(resolve, resolve);
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
    });
}

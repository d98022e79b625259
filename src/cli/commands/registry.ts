import type { Command } from 'commander';
import { defaultRoot, type RegistryConfig, type RegistryGcDeletion, registryServer, StrataError } from '../../index.js';
import { print, printJson } from '../output.js';

const DURATION_UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** A duration flag in seconds: `90`, `0s`, `30m`, `1h30m`, `7d` (Go's time.ParseDuration plus d and w). */
function parseDuration(value: string, flag: string): number {
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const parts = [...v.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== v) {
    throw new StrataError('INVALID_ARGUMENT', `invalid duration for ${flag}: ${JSON.stringify(value)}`, {
      hint: 'use a number of seconds or units s, m, h, d, w: 0s, 90m, 1h30m, 7d',
    });
  }
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * DURATION_UNITS[p[2]!]!, 0));
}

function gcLine(e: RegistryGcDeletion): string {
  switch (e.type) {
    case 'blob':
      return `blob eligible for deletion: ${e.digest} (${e.size} bytes)`;
    case 'manifest':
      return `manifest eligible for deletion: ${e.repository}@${e.digest}`;
    case 'tag':
      return `tag eligible for deletion: ${e.repository}:${e.tag} (${e.digest})`;
  }
}

/** Config from --config (JSON), with flags on top: flags win, as with distribution's environment overrides. */
async function registryConfig(
  cmd: Command,
  opts: Record<string, string | undefined>,
): Promise<{ config: RegistryConfig; root: string }> {
  const { loadRegistryConfig, parseRegistryConfig } = await registryServer();
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
      const reg = await (await registryServer()).startRegistry({ config, root });
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
  registry
    .command('gc')
    .description(
      'Delete blobs no manifest references, and apply retention rules; safe while a registry serves the storage',
    )
    .option('--root <dir>', 'storage directory (default: <strata root>/registry)')
    .option('--config <file>', 'JSON registry config file: its gc section gives the defaults; flags override it')
    .option('--dry-run', 'print what would be deleted, delete nothing')
    .option('--grace <duration>', 'never delete blobs written or used within this long (default 1h; 0s only offline)')
    .option(
      '--keep-last-tags <n>',
      'keep the newest N tags of each repository; delete older tags and what only they use',
    )
    .option('--delete-untagged-older-than <duration>', 'delete manifests no tag reaches, pushed longer ago than this')
    .option('--format <format>', "'text' or 'json'")
    .action(async (opts, cmd: Command) => {
      const { config, root } = await registryConfig(cmd, { config: opts.config });
      const graceSeconds = opts.grace === undefined ? config.gc.graceSeconds : parseDuration(opts.grace, '--grace');
      const retention = { ...(config.gc.retention ?? {}) };
      if (opts.keepLastTags !== undefined) {
        if (!/^[1-9]\d*$/.test(opts.keepLastTags)) {
          throw new StrataError(
            'INVALID_ARGUMENT',
            `--keep-last-tags must be a positive integer, not ${opts.keepLastTags}`,
          );
        }
        retention.keepLastTags = Number(opts.keepLastTags);
      }
      if (opts.deleteUntaggedOlderThan !== undefined) {
        retention.untaggedOlderThanSeconds = parseDuration(
          opts.deleteUntaggedOlderThan,
          '--delete-untagged-older-than',
        );
      }
      const json = opts.format === 'json';
      if (opts.format !== undefined && !json && opts.format !== 'text') {
        throw new StrataError('INVALID_ARGUMENT', `unknown --format ${JSON.stringify(opts.format)}: use text or json`);
      }
      const dryRun = opts.dryRun === true;
      const result = await (await registryServer()).registryGc(root, {
        graceSeconds,
        retention,
        dryRun,
        ...(json ? {} : { onProgress: (e: RegistryGcDeletion) => print(gcLine(e)) }),
        onWarning: (message: string) => process.stderr.write(`warning: ${message}\n`),
      });
      if (json) return printJson(result);
      const mb = (result.bytes / 1e6).toFixed(2);
      print(`${result.blobs} blobs, ${result.manifests} manifests, ${mb} MB ${dryRun ? 'would be freed' : 'freed'}`);
    });
}

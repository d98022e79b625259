import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { StrataError } from '../errors/index.js';

const accessRule = z.object({
  /** Repository glob: `*` matches within a path component, `**` across components (`team/**`). */
  repository: z.string(),
  /** Who: user names, `*` for any authenticated user, `anonymous`. */
  users: z.array(z.string()).default(['*']),
  actions: z.array(z.enum(['pull', 'push', 'delete', '*'])),
});

export const registryConfigSchema = z.object({
  addr: z.string().default('127.0.0.1:5000'),
  root: z.string().optional(),
  log: z
    .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .default({ level: 'info' }),
  tls: z.object({ cert: z.string(), key: z.string() }).optional(),
  auth: z
    .object({
      htpasswd: z.object({ path: z.string(), realm: z.string().default('strata-registry') }).optional(),
      token: z
        .object({
          /** Where clients get tokens; default: this server's /token. */
          realm: z.string().optional(),
          service: z.string().default('strata-registry'),
          issuer: z.string().default('strata-registry'),
          /** Seconds a token lives. */
          expiration: z.number().int().positive().default(300),
          /** PEM private key file to sign with; default: a key generated at start (tokens die with the process). */
          key: z.string().optional(),
        })
        .optional(),
      access: z.array(accessRule).default([]),
    })
    .optional(),
  uploads: z
    .object({
      /** Uploads untouched this long are removed. */
      staleAfterSeconds: z
        .number()
        .int()
        .positive()
        .default(24 * 3600),
      purgeIntervalSeconds: z.number().int().positive().default(3600),
    })
    .default({ staleAfterSeconds: 24 * 3600, purgeIntervalSeconds: 3600 }),
  gc: z
    .object({
      /** Run GC in the background every this many seconds (0: never). */
      intervalSeconds: z.number().int().nonnegative().default(0),
      /** Blobs younger than this are never collected (protects pushes in flight). */
      graceSeconds: z.number().int().nonnegative().default(3600),
      retention: z
        .object({
          keepLastTags: z.number().int().positive().optional(),
          untaggedOlderThanSeconds: z.number().int().positive().optional(),
        })
        .optional(),
    })
    .default({ intervalSeconds: 0, graceSeconds: 3600 }),
  /** Largest manifest accepted, bytes. */
  maxManifestBytes: z
    .number()
    .int()
    .positive()
    .default(4 << 20),
});

export type RegistryConfig = z.infer<typeof registryConfigSchema>;
export type RegistryConfigInput = z.input<typeof registryConfigSchema>;

export function parseRegistryConfig(input: unknown, where = 'registry config'): RegistryConfig {
  const r = registryConfigSchema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new StrataError('INVALID_ARGUMENT', `${where}: field "${issue.path.join('.')}" ${issue.message}`, {
    hint: 'see the registry section of the README for the config file format',
  });
}

export async function loadRegistryConfig(path: string): Promise<RegistryConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new StrataError('NOT_FOUND', `cannot read registry config ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new StrataError('INVALID_ARGUMENT', `registry config ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return parseRegistryConfig(value, `registry config ${path}`);
}

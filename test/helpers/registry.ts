import {
  parseRegistryConfig,
  type RegistryConfigInput,
  type RunningRegistry,
  startRegistry,
} from '../../src/registry/index.js';
import { tempDir } from './env.js';

export interface TestRegistry extends RunningRegistry {
  /** Storage directory (a fresh temp dir unless one was given). */
  root: string;
  /** Close the server and remove the temp storage. */
  stop(): Promise<void>;
}

/**
 * The real registry server on 127.0.0.1 with a free port and its own storage directory. Logs are silent unless
 * STRATA_TEST_LOG is set (to a pino level).
 */
export async function startTestRegistry(config: RegistryConfigInput = {}, root?: string): Promise<TestRegistry> {
  const dir = root ? undefined : await tempDir('strata-registry-');
  const storage = root ?? dir!.path;
  const reg = await startRegistry({
    config: parseRegistryConfig({
      addr: '127.0.0.1:0',
      log: { level: (process.env['STRATA_TEST_LOG'] as 'info' | undefined) ?? 'silent' },
      ...config,
    }),
    root: storage,
  });
  return Object.assign(reg, {
    root: storage,
    stop: async () => {
      await reg.close();
      await dir?.cleanup();
    },
  });
}

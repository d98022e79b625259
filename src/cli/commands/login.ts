import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { Strata, StrataError } from '../../index.js';
import { print } from '../output.js';

/** stdin to its end, without the trailing newline (`echo pw | strata login --password-stdin`), as docker does. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function promptLine(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

/** A password from the terminal, not echoed. */
function promptHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stdout.write(question);
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    stdin.resume();
    let value = '';
    const done = (err?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stdout.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (data: string) => {
      for (const ch of data) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003' || ch === '\u0004') {
          return done(new StrataError('CANCELLED', 'login cancelled'));
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

const NON_TTY = () =>
  new StrataError('INVALID_ARGUMENT', 'cannot perform an interactive login from a non TTY device', {
    hint: 'pass the user name with -u and the password on stdin with --password-stdin',
  });

export function registerLoginCommands(program: Command): void {
  program
    .command('login')
    .description('Log in to a registry (default: Docker Hub); credentials go to $STRATA_CONFIG_DIR/auth.json')
    .argument('[server]', 'registry host, e.g. ghcr.io or localhost:5000')
    .option('-u, --username <username>', 'user name')
    .option('-p, --password <password>', 'password (insecure: prefer --password-stdin)')
    .option('--password-stdin', 'take the password from stdin')
    .option('--insecure-registry <host>', 'reach this registry over plain HTTP (repeatable)', (v, p: string[] = []) => [
      ...p,
      v,
    ])
    .action(async (server: string | undefined, opts) => {
      const registry = server ?? 'docker.io';
      let username = opts.username as string | undefined;
      let password = opts.password as string | undefined;
      if (password !== undefined) {
        if (opts.passwordStdin) {
          throw new StrataError('INVALID_ARGUMENT', '--password and --password-stdin are mutually exclusive');
        }
        process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
      }
      if (opts.passwordStdin) {
        if (!username) throw new StrataError('INVALID_ARGUMENT', 'must provide --username with --password-stdin');
        password = await readStdin();
      }
      const insecure = (opts.insecureRegistry as string[] | undefined) ?? [];
      const extra = insecure.length ? { insecureRegistries: insecure } : {};
      if (username === undefined && password === undefined) {
        // As docker: credentials already stored (here or in docker's config) are checked again and kept.
        const existing = await Strata.storedCredentials(registry);
        if (existing?.username !== undefined && existing.password !== undefined) {
          print('Authenticating with existing credentials...');
          await Strata.login(registry, {
            username: existing.username,
            password: existing.password,
            store: false,
            ...extra,
          });
          print('Login Succeeded');
          return;
        }
      }
      const tty = !!process.stdin.isTTY && !!process.stdout.isTTY;
      if (username === undefined) {
        if (!tty) throw NON_TTY();
        username = await promptLine('Username: ');
      }
      if (!username) throw new StrataError('INVALID_ARGUMENT', 'user name required');
      if (password === undefined) {
        if (!tty) throw NON_TTY();
        password = await promptHidden('Password: ');
      }
      if (!password) throw new StrataError('INVALID_ARGUMENT', 'password required');
      const res = await Strata.login(registry, { username, password, ...extra });
      process.stderr.write(`WARNING! Your password is stored unencrypted in ${res.authFile} (mode 0600).\n`);
      print('Login Succeeded');
    });

  program
    .command('logout')
    .description('Log out from a registry (default: Docker Hub): remove its entry from strata auth file')
    .argument('[server]', 'registry host')
    .action(async (server: string | undefined) => {
      const { registry, removed } = await Strata.logout(server ?? 'docker.io');
      if (!removed) {
        print(`Not logged in to ${registry}`);
        return;
      }
      print(`Removing login credentials for ${registry}`);
    });
}

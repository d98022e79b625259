import type { SourceLocation } from './errors.js';
import type { Warning } from './instructions.js';

// BuildKit's build checks (frontend/dockerfile/linter): the rule names and wording match, so `# check=skip=...`
// written for docker works here too.

export const RULES = {
  StageNameCasing: (name: string) => `Stage name '${name}' should be lowercase`,
  FromAsCasing: (as: string, from: string) => `'${as}' and '${from}' keywords' casing do not match`,
  NoEmptyContinuation: () => 'Empty continuation line',
  ConsistentInstructionCasing: (name: string, casing: string) =>
    `Command '${name}' should match the case of the command majority (${casing})`,
  ReservedStageName: (name: string) =>
    `Stage name should not use the same name as reserved stage ${JSON.stringify(name)}`,
  JSONArgsRecommended: (instruction: string) =>
    `JSON arguments recommended for ${instruction} to prevent unintended behavior related to OS signals`,
  MaintainerDeprecated: () => 'Maintainer instruction is deprecated in favor of using label',
  UndefinedArgInFrom: (name: string) => `FROM argument '${name}' is not declared`,
  WorkdirRelativePath: (path: string) =>
    `Relative workdir ${JSON.stringify(path)} can have unexpected results if the base image changes`,
  UndefinedVar: (name: string) => `Usage of undefined variable '$${name}'`,
  MultipleInstructionsDisallowed: (instruction: string) =>
    `Multiple ${instruction} instructions should not be used in the same stage because only the last one will be used`,
  LegacyKeyValueFormat: (instruction: string) =>
    `"${instruction} key=value" should be used instead of legacy "${instruction} key value" format`,
  SecretsUsedInArgOrEnv: (instruction: string, key: string) =>
    `Do not use ARG or ENV instructions for sensitive data (${instruction} ${JSON.stringify(key)})`,
  ExposeProtoCasing: (port: string) => `Defined protocol '${port}' in EXPOSE instruction should be lowercase`,
  ExposeInvalidFormat: (port: string) =>
    `EXPOSE instruction should not define an IP address or host-port mapping, found '${port}'`,
} as const;

export type RuleName = keyof typeof RULES;

function kebab(rule: string): string {
  return rule
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2')
    .toLowerCase();
}

export function warning(rule: RuleName, message: string, location: SourceLocation): Warning {
  return { rule, message, location, url: `https://docs.docker.com/go/dockerfile/rule/${kebab(rule)}/` };
}

const SECRET_TOKENS =
  /(?:^|_)(?:apikey|auth|credential|credentials|key|password|pass|pword|passwd|secret|token)(?:_|$)/i;
const PUBLIC_TOKEN = /(?:^|_)public(?:_|$)/i;

/** Does an ARG or ENV name look like it holds a secret (API_KEY, DB_PASSWORD; not PUBLIC_KEY)? */
export function looksSecret(name: string): boolean {
  return SECRET_TOKENS.test(name) && !PUBLIC_TOKEN.test(name);
}

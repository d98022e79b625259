import { mountsUnder as mountInfoUnder } from '../snapshot/index.js';

/** Mount points (of this mount namespace) at or under `prefix` (symlinks resolved, as mountinfo has them), deepest first. */
export async function mountsUnder(prefix: string): Promise<string[]> {
  const points = new Set((await mountInfoUnder(prefix).catch(() => [])).map((m) => m.mountPoint));
  return [...points].sort((a, b) => b.length - a.length);
}

import { StrataError } from '../index.js';

/**
 * The subset of Go templates that `--format` users write most: `{{.Field}}`, `{{.A.B}}`, `{{json .A}}`, `{{json .}}`,
 * and `\t` / `\n` escapes. Anything else is refused with a clear error rather than printed wrong.
 */
export function renderTemplate(template: string, data: unknown): string {
  const lookup = (path: string): unknown => {
    if (path === '.') return data;
    let cur: unknown = data;
    for (const key of path.slice(1).split('.')) {
      if (cur === null || typeof cur !== 'object') return undefined;
      cur = (cur as Record<string, unknown>)[key];
    }
    return cur;
  };
  const show = (v: unknown): string => {
    if (v === undefined || v === null) return '<no value>';
    if (Array.isArray(v)) return `[${v.map(show).join(' ')}]`;
    if (typeof v === 'object')
      return `map[${Object.entries(v as object)
        .map(([k, x]) => `${k}:${show(x)}`)
        .join(' ')}]`;
    return String(v);
  };
  const out = template.replace(/\{\{\s*(json\s+)?(\.[\w.]*)\s*\}\}/g, (_m, json: string | undefined, path: string) =>
    json ? JSON.stringify(lookup(path) ?? null) : show(lookup(path)),
  );
  if (out.includes('{{')) {
    throw new StrataError('INVALID_ARGUMENT', `unsupported --format template "${template}"`, {
      hint: "use 'json', or fields such as '{{.ID}}', '{{.Config.Env}}' and '{{json .RootFS}}'",
    });
  }
  return out.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
}

/**
 * Canonical JSON: object keys sorted (by UTF-16 code unit, JavaScript's default sort) at every depth, no
 * insignificant whitespace, undefined properties dropped. Equal values give equal bytes, which is what cache keys
 * and reproducible manifests and configs need. Everything else is JSON.stringify's: toJSON() is honoured (a Date
 * becomes its ISO string), undefined in an array becomes null.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  let v = value;
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    v = (v as { toJSON(): unknown }).toJSON();
  }
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) {
    const x = sortKeys((v as Record<string, unknown>)[k]);
    if (x !== undefined) out[k] = x;
  }
  return out;
}

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const repo = new URL('../../../', import.meta.url).pathname;
const src = join(repo, 'src');

/** Parse the import-rules table of docs/ARCHITECTURE.md into module -> allowed modules. */
function rules(): Map<string, Set<string>> {
  const doc = readFileSync(join(repo, 'docs/ARCHITECTURE.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Import rules'));
  const rows = section
    .split('\n')
    .filter((l) => /^\| L\d/.test(l))
    .map((l) => l.split('|').map((c) => c.trim()));
  const l0Order = /L0 order[^:]*: ([\w <]+)\./
    .exec(section)![1]!
    .split('<')
    .map((s) => s.trim());
  const byLayer = new Map<string, string[]>();
  for (const [, layer, mods] of rows) {
    const names = mods!.split(',').map((m) => m.trim().replace(/\.ts$/, ''));
    byLayer.set(layer!, [...(byLayer.get(layer!) ?? []), ...names]);
  }
  const layerOf = (n: number) => byLayer.get(`L${n}`) ?? [];
  const out = new Map<string, Set<string>>();
  for (const [, layer, mods, may] of rows) {
    const n = Number(layer!.slice(1));
    for (const m of mods!.split(',').map((x) => x.trim().replace(/\.ts$/, ''))) {
      const allowed = new Set<string>();
      if (n === 0) for (const lower of l0Order.slice(0, l0Order.indexOf(m))) allowed.add(lower);
      else if (/only: server and client/.test(may!) || /^L0 and distribution only/.test(may!)) {
        for (const x of [...layerOf(0), 'distribution']) allowed.add(x);
      } else if (/^index\.ts only/.test(may!)) allowed.add('index');
      else if (/everything above/.test(may!)) for (let i = 0; i < n; i++) for (const x of layerOf(i)) allowed.add(x);
      else {
        const range = /L0-L(\d)/.exec(may!);
        const top = range ? Number(range[1]) : may!.includes('L1') ? 1 : 0;
        for (let i = 0; i <= top; i++) for (const x of layerOf(i)) allowed.add(x);
        if (/never registry/.test(may!)) allowed.delete('registry');
      }
      allowed.delete(m);
      out.set(m, allowed);
    }
  }
  return out;
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function moduleOf(path: string): string {
  const rel = path.slice(src.length + 1);
  return rel.includes('/') ? rel.split('/')[0]! : rel.replace(/\.ts$/, '');
}

/** Code without comments, so a usage example in a doc comment is not taken for a call. */
const stripComments = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');

const sources = files(src).map((p) => ({ path: p, module: moduleOf(p), text: readFileSync(p, 'utf8') }));
const importsOf = (text: string) => [...text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)].map((m) => m[1]!);

describe('architecture (docs/ARCHITECTURE.md)', () => {
  const table = rules();

  it('the table names every module under src/', () => {
    for (const s of sources) assert.ok(table.has(s.module), `${s.module} (${s.path}) is not in the table`);
  });

  it('every import goes down the layers, through the imported module index', () => {
    const bad: string[] = [];
    for (const s of sources) {
      for (const spec of importsOf(s.text)) {
        if (!spec.startsWith('.')) continue;
        const target = moduleOf(join(s.path, '..', spec).replace(/\.js$/, '.ts'));
        if (target === s.module) continue;
        if (!table.get(s.module)?.has(target)) bad.push(`${s.path.slice(repo.length)} imports ${target} (${spec})`);
        else if (target !== 'index' && !/\/index\.js$/.test(spec))
          bad.push(`${s.path.slice(repo.length)} imports ${spec}, not ${target}/index.js`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it('pure modules do no I/O', () => {
    const bad = sources
      .filter((s) => ['oci', 'reference', 'dockerfile', 'distribution'].includes(s.module))
      .filter((s) => importsOf(s.text).some((i) => /^node:(fs|net|http|https|child_process|dgram)/.test(i)))
      .map((s) => s.path.slice(repo.length));
    assert.deepEqual(bad, []);
  });

  it('only cli prints or exits', () => {
    const bad = sources
      .filter((s) => s.module !== 'cli')
      .filter((s) => /console\.(log|error|warn)|process\.stdout\.write|process\.exit\(/.test(stripComments(s.text)))
      .map((s) => s.path.slice(repo.length));
    assert.deepEqual(bad, []);
  });

  it('the checker itself catches a forbidden import', () => {
    assert.ok(!table.get('oci')!.has('content'), 'oci may not import content');
    assert.ok(!table.get('registry')!.has('content'), 'registry may not import content');
    assert.ok(table.get('cli')!.has('index') && table.get('cli')!.size === 1, 'cli imports only index.ts');
    assert.ok(table.get('image')!.has('archive') && !table.get('image')!.has('metadata'));
  });
});

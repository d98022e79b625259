import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertError, type HttpResult, RegistryClient, registrySuite, repoName } from '../../helpers/oci-fixtures.js';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.js';

/** The target of a `Link: <...>; rel="next"` header, or undefined. */
function nextLink(res: HttpResult): string | undefined {
  const link = res.headers.get('link');
  if (link === null) return undefined;
  const m = /^<([^>]+)>;\s*rel="next"$/.exec(link);
  assert.ok(m, `malformed Link header ${link}`);
  return m[1];
}

/** Follow Link headers from `first` until there is none; every page's entries, in order. */
async function paginate(
  client: RegistryClient,
  first: string,
  field: 'tags' | 'repositories',
  n: number,
): Promise<{ pages: string[][]; all: string[] }> {
  const pages: string[][] = [];
  let path: string | undefined = first;
  while (path !== undefined) {
    assert.ok(pages.length < 1000, 'pagination does not end');
    const res = await client.get(path);
    assert.equal(res.status, 200, `${path}: ${res.status} ${res.text()}`);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const page = res.json<Record<string, string[]>>()[field]!;
    assert.ok(page.length <= n, `page of ${page.length} entries with n=${n}`);
    pages.push(page);
    path = nextLink(res);
    if (path !== undefined) {
      const u = new URL(path, 'http://x.invalid');
      assert.equal(u.searchParams.get('n'), String(n));
      assert.equal(u.searchParams.get('last'), page[page.length - 1]);
    }
  }
  return { pages, all: pages.flat() };
}

describe('registry conformance: tags list and catalog', () => {
  const suite = registrySuite();

  describe('tags', () => {
    const name = repoName('tags');
    // Upper case sorts before lower case; digits, '.', '-' and '_' in between: the order is by code unit.
    const tags = [
      'latest',
      'v1',
      'v1.0',
      'v1.0.1',
      'v10',
      'v2',
      'V2',
      'A',
      '_under',
      '0',
      '9.9',
      'a-b',
      'a_b',
      'a.b',
      'zz',
      'Zz',
      'release-2024-01-01',
      'x'.repeat(128),
      'rc1',
      'rc10',
      'rc2',
      'sha256-abc',
      'b',
    ];
    const sorted = [...tags].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    before(async () => {
      const { manifest } = await suite.client.pushImage(name, 'first');
      for (const t of tags) await suite.client.pushManifest(name, t, manifest);
      await suite.client.request('DELETE', `/v2/${name}/manifests/first`);
    });

    it('GET tags/list: every tag once, sorted lexically, no Link header', async () => {
      const res = await suite.client.get(`/v2/${name}/tags/list`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(res.headers.get('link'), null);
      assert.deepEqual(res.json(), { name, tags: sorted });
    });

    for (const n of [1, 2, 5, 22, 23, 24, 100]) {
      it(`n=${n}: pages of at most ${n}, Link to the next until exhausted, every tag exactly once`, async () => {
        const { pages, all } = await paginate(suite.client, `/v2/${name}/tags/list?n=${n}`, 'tags', n);
        assert.deepEqual(all, sorted);
        assert.equal(pages.length, Math.max(1, Math.ceil(tags.length / n)));
        for (const p of pages.slice(0, -1)) assert.equal(p.length, n);
      });
    }

    it('last= alone: the tags after it; last= past the end: empty', async () => {
      const res = await suite.client.get(`/v2/${name}/tags/list?last=${encodeURIComponent('v1')}`);
      assert.equal(res.status, 200);
      assert.deepEqual(
        res.json<{ tags: string[] }>().tags,
        sorted.filter((t) => t > 'v1'),
      );
      const end = await suite.client.get(`/v2/${name}/tags/list?n=3&last=zzzz`);
      assert.deepEqual(end.json(), { name, tags: [] });
      assert.equal(end.headers.get('link'), null);
      const mid = await suite.client.get(`/v2/${name}/tags/list?n=2&last=b`);
      assert.deepEqual(mid.json<{ tags: string[] }>().tags, sorted.filter((t) => t > 'b').slice(0, 2));
    });

    it('n=0: an empty page and no Link to follow', async () => {
      const res = await suite.client.get(`/v2/${name}/tags/list?n=0`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json(), { name, tags: [] });
      assert.equal(res.headers.get('link'), null);
    });

    it('an invalid n: 400', async () => {
      for (const n of ['-1', 'abc', '1.5']) {
        const res = await suite.client.get(`/v2/${name}/tags/list?n=${n}`);
        assert.equal(res.status, 400, `n=${n}`);
      }
    });
  });

  it('a repository with manifests but no tags: 200 with an empty list', async () => {
    const name = repoName();
    await suite.client.pushImage(name);
    const res = await suite.client.get(`/v2/${name}/tags/list`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { name, tags: [] });
  });

  it('an unknown repository: 404 NAME_UNKNOWN; an invalid name: 400 NAME_INVALID', async () => {
    assertError(await suite.client.get(`/v2/${repoName('unknown')}/tags/list`), 404, 'NAME_UNKNOWN');
    assertError(await suite.client.get(`/v2/${repoName('unknown')}/tags/list?n=10`), 404, 'NAME_UNKNOWN');
    assertError(await suite.client.get('/v2/Bad.Name/tags/list'), 400, 'NAME_INVALID');
  });

  describe('catalog', () => {
    let names: string[];
    let fresh: TestRegistry;
    let client2: RegistryClient;
    after(() => fresh?.stop());
    before(async () => {
      // A registry of its own, so the catalog holds exactly these.
      fresh = await startTestRegistry();
      const c = new RegistryClient(fresh.url);
      names = [
        'a',
        'a-b',
        'a/b',
        'a/b/c',
        'a.b',
        'a_b',
        'b',
        'lib/alpine',
        'lib/busybox',
        'z/y/x/w',
        '0numeric',
        'x__y',
        'x--y',
      ];
      for (const n of names) await c.pushImage(n, 'latest', { layers: 1, layerSize: 10 });
      names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      client2 = c;
    });

    it('GET /v2/_catalog: every repository once, sorted', async () => {
      const res = await client2.get('/v2/_catalog');
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(res.headers.get('link'), null);
      assert.deepEqual(res.json(), { repositories: names });
    });

    for (const n of [1, 3, 12, 13, 14]) {
      it(`n=${n}: Link pagination yields every repository exactly once`, async () => {
        const { pages, all } = await paginate(client2, `/v2/_catalog?n=${n}`, 'repositories', n);
        assert.deepEqual(all, names);
        assert.equal(pages.length, Math.max(1, Math.ceil(names.length / n)));
      });
    }

    it('last= continues after a name with slashes', async () => {
      const res = await client2.get(`/v2/_catalog?n=2&last=${encodeURIComponent('a/b')}`);
      assert.deepEqual(res.json<{ repositories: string[] }>().repositories, names.filter((x) => x > 'a/b').slice(0, 2));
    });
  });
});

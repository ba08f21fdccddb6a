/** The city's geography over HTTP, and the dashboard page served beside the API. */
import { describe, expect, it } from 'vitest';
import { type RunningGateway, useGateway } from '../helpers/gateway.js';
import { readSeeds, type SeedDistrict, type SeedSite } from '../helpers/seeds.js';

const { districts: DISTRICTS, sites: SITES, devices: DEVICES } = readSeeds();

let gw: RunningGateway;
useGateway((g) => (gw = g));

describe('GET /api/v1/districts', () => {
  it('lists every seeded district with its centroid, outline and device count', async () => {
    const res = await gw.api('/api/v1/districts');
    expect(res.status).toBe(200);
    const items = res.body.items as (SeedDistrict & { devices: number })[];
    expect(items.map((d) => d.id)).toEqual(DISTRICTS.map((d) => d.id).sort());
    for (const d of DISTRICTS) {
      const got = items.find((x) => x.id === d.id)!;
      expect(got).toEqual({
        id: d.id,
        name: d.name,
        nameZh: d.nameZh,
        centroid: d.centroid,
        boundary: d.boundary,
        devices: DEVICES.filter((x) => x.district === d.id).length,
      });
    }
  });

  it('needs a key, like the rest of the API', async () => {
    const res = await gw.api('/api/v1/districts', { key: null });
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('TAIHU_ERR_UNAUTHORIZED');
  });
});

describe('GET /api/v1/sites', () => {
  it('lists every seeded site with its position', async () => {
    const res = await gw.api('/api/v1/sites');
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(SITES.length);
    const byId = new Map(SITES.map((s) => [s.id, s]));
    for (const s of res.body.items as SeedSite[]) expect(s).toEqual(byId.get(s.id));
  });

  it('filters by district and kind', async () => {
    const res = await gw.api('/api/v1/sites?district=binhu&kind=buoy');
    expect(res.status).toBe(200);
    const want = SITES.filter((s) => s.district === 'binhu' && s.kind === 'buoy');
    expect(want.length).toBeGreaterThan(0);
    expect(res.body.items.map((s: SeedSite) => s.id)).toEqual(want.map((s) => s.id).sort());
    expect(res.body.total).toBe(want.length);
  });

  it('answers an unknown district with a 400 naming the parameter', async () => {
    const res = await gw.api('/api/v1/sites?district=atlantis');
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('TAIHU_ERR_BAD_PARAM');
    expect(res.body.message).toMatch(/district/);
    expect(res.body.message).toMatch(/liangxi/);
  });

  it('is documented in the OpenAPI document with its response schema', async () => {
    const doc = (await gw.api('/openapi.json', { key: null })).body;
    for (const path of ['/api/v1/districts', '/api/v1/sites']) {
      expect(doc.paths[path]?.get?.responses?.['200'], path).toBeDefined();
    }
  });
});

describe('the dashboard page', () => {
  const http = (path: string, headers: Record<string, string> = {}) =>
    fetch(`http://127.0.0.1:${gw.ports.http}${path}`, { headers });

  it('is served at / without a key, with a policy that allows nothing from elsewhere', async () => {
    const res = await http('/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    const html = await res.text();
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(3);
    for (const a of assets) {
      // Everything the page names lives on the gateway itself.
      expect(a, a).toMatch(/^(\/|#)/);
      if (!a.startsWith('/assets/')) continue;
      const asset = await http(a);
      expect(asset.status, a).toBe(200);
      expect(asset.headers.get('cache-control'), a).toMatch(/immutable/);
    }
  });

  it('sends the precompressed copy to a browser that accepts Brotli', async () => {
    const html = await (await http('/')).text();
    const js = /src="(\/assets\/app-[^"]+\.js)"/.exec(html)![1]!;
    const plain = await http(js, { 'accept-encoding': 'identity' });
    const br = await http(js, { 'accept-encoding': 'br, gzip' });
    expect(br.headers.get('content-encoding')).toBe('br');
    expect(br.headers.get('content-type')).toMatch(/javascript/);
    const compressed = Number(br.headers.get('content-length'));
    expect(compressed).toBeGreaterThan(0);
    expect(compressed).toBeLessThan(Number(plain.headers.get('content-length')) / 2);
    // fetch decodes the body: both are the same script.
    expect(await br.text()).toBe(await plain.text());
  });

  it('leaves unknown paths to the API’s 404 and keeps the API behind its key', async () => {
    const missing = await http('/no-such-page');
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { code: string }).code).toBe('TAIHU_ERR_NOT_FOUND');
    expect((await http('/api/v1/devices')).status).toBe(401);
    expect((await http('/metrics')).status).toBe(401);
  });
});

/**
 * The main API routes, answered by the app the gateway builds through `inject()`
 * (tests/helpers/memory.ts) on the embedded store and the seeded registry.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BAD_AGGREGATE_PARAMS } from '../helpers/cases.js';
import { ADMIN_KEY, memoryApp, openParts, type MemoryApp, type Parts } from '../helpers/memory.js';

let parts: Parts;
let mem: MemoryApp;
let app: FastifyInstance;

beforeAll(async () => {
  parts = await openParts();
  mem = await memoryApp(parts);
  app = mem.app;
});

afterAll(async () => {
  await mem?.close();
  await parts?.close();
});

async function get(url: string) {
  const res = await app.inject({
    method: 'GET',
    url,
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
  });
  return { status: res.statusCode, body: res.json() };
}

describe('HTTP routes, in memory', () => {
  it.each(BAD_AGGREGATE_PARAMS)(
    'answers aggregates 400 naming the parameter for %s',
    async (qs, param, message) => {
      const res = await get(`/api/v1/aggregates?${qs}`);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('TAIHU_ERR_BAD_PARAM');
      expect(res.body.message).toContain(`'${param}'`);
      expect(res.body.message).toMatch(message);
    },
  );

  it('answers a valid aggregate over an empty store with no series', async () => {
    const res = await get(
      '/api/v1/aggregates?type=air-quality&field=pm25_ugm3&fn=mean&every=5m&from=now-1h&to=now',
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ type: 'air-quality', fn: 'mean', series: [] });
  });

  it('lists devices with paging and filters, each never seen yet, and serves one device', async () => {
    const page = await get('/api/v1/devices?type=air-quality&limit=5&offset=0');
    expect(page.status).toBe(200);
    expect(page.body.items).toHaveLength(5);
    expect(page.body.total).toBeGreaterThanOrEqual(20);
    expect(page.body.items.every((d: any) => d.type === 'air-quality')).toBe(true);
    expect(page.body.items.every((d: any) => d.status === 'never')).toBe(true);
    const next = await get('/api/v1/devices?type=air-quality&limit=5&offset=5');
    expect(next.body.items[0].id).not.toBe(page.body.items[0].id);
    const dev = page.body.items[0];
    const one = await get(`/api/v1/devices/${dev.id}`);
    expect(one.body).toMatchObject({ id: dev.id, type: 'air-quality', state: 'active' });
    expect((await get('/api/v1/devices/nope-0000')).status).toBe(404);
  });

  it('serves every device schema as device makers get it', async () => {
    const list = await get('/api/v1/schemas');
    expect(list.body.items.map((t: any) => t.type).sort()).toEqual(
      parts.catalog
        .list()
        .map((t) => t.type)
        .sort(),
    );
    for (const t of list.body.items) {
      const s = await get(`/api/v1/schemas/${t.type}`);
      expect(s.status).toBe(200);
      expect(s.body['x-type']).toBe(t.type);
    }
    expect((await get('/api/v1/schemas/toaster')).status).toBe(404);
  });
});

/**
 * Who may call what, answered by the app the gateway builds through `inject()`
 * (tests/helpers/memory.ts): no socket, no gateway process.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, memoryApp, openParts, type MemoryApp, type Parts } from '../helpers/memory.js';

let parts: Parts;
let mem: MemoryApp;
let app: FastifyInstance;

beforeAll(async () => {
  // The matrix sends many bad keys from one address: the failure limit is tested on its own.
  parts = await openParts({ TAIHU_HTTP_AUTH_FAILURES: '0' });
  mem = await memoryApp(parts);
  app = mem.app;
});

afterAll(async () => {
  await mem?.close();
  await parts?.close();
});

type Key = 'none' | 'unknown' | 'read' | 'admin';

function headers(key: Key): Record<string, string> {
  if (key === 'none') return {};
  const value = key === 'unknown' ? 'not-a-key' : key === 'read' ? mem.readKey : ADMIN_KEY;
  return { authorization: `Bearer ${value}` };
}

describe('HTTP auth, in memory', () => {
  // [method, url, status for: no key, unknown key, read key, admin key]
  it.each([
    ['GET', '/health', 200, 200, 200, 200],
    ['GET', '/ready', 200, 200, 200, 200],
    ['GET', '/openapi.json', 200, 200, 200, 200],
    ['GET', '/metrics', 401, 401, 200, 200],
    ['GET', '/api/v1/devices', 401, 401, 200, 200],
    ['GET', '/api/v1/schemas', 401, 401, 200, 200],
    ['GET', '/api/v1/rejections', 401, 401, 200, 200],
    ['GET', '/api/v1/districts', 401, 401, 200, 200],
    ['GET', '/api/v1/keys', 401, 401, 403, 200],
  ] as const)(
    '%s %s answers %i without a key, %i with an unknown one, %i for read, %i for admin',
    async (method, url, ...expected) => {
      const keys: Key[] = ['none', 'unknown', 'read', 'admin'];
      const got = [];
      for (const key of keys) {
        got.push((await app.inject({ method, url, headers: headers(key) })).statusCode);
      }
      expect(got).toEqual(expected);
    },
  );

  it('answers a missing key with 401 and the stable code, in Fastify error shape', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/devices' });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({
      statusCode: 401,
      code: 'TAIHU_ERR_UNAUTHORIZED',
      error: 'Unauthorized',
    });
  });

  it('answers a read key on an admin route with 403 naming the role', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: headers('read'),
      payload: { id: 'aq-unit-0001', type: 'air-quality', siteId: 'x' },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'TAIHU_ERR_FORBIDDEN' });
    expect(res.json().message).toMatch(/'admin' role/);
  });
});

describe('HTTP auth failure limit, in memory', () => {
  it('makes an address that keeps sending bad keys wait with 429 and Retry-After, and still serves a good key', async () => {
    const limited = await openParts({ TAIHU_HTTP_AUTH_FAILURES: '3' });
    const { app: strict, close } = await memoryApp(limited);
    try {
      const bad = { method: 'GET' as const, url: '/api/v1/devices', headers: headers('unknown') };
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await strict.inject(bad)).statusCode);
      expect(statuses.slice(0, 3)).toEqual([401, 401, 401]);
      const waited = await strict.inject(bad);
      expect(waited.statusCode).toBe(429);
      expect(waited.json()).toMatchObject({ code: 'TAIHU_ERR_TOO_MANY_AUTH_FAILURES' });
      expect(Number(waited.headers['retry-after'])).toBeGreaterThan(0);
      const good = await strict.inject({ ...bad, headers: headers('admin') });
      expect(good.statusCode).toBe(200);
    } finally {
      await close();
      await limited.close();
    }
  });
});

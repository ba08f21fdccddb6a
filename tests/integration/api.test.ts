/** The HTTP API as a whole: an auth matrix over every documented route, and /metrics. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { connectAs, seedDevice, telemetryTopic } from '../helpers/clients.js';

let gw: RunningGateway;
let readKey: string;
let revokedKey: string;
beforeAll(async () => {
  // The matrix fails authentication on purpose dozens of times from one address.
  gw = await startGateway({ env: { TAIHU_HTTP_AUTH_FAILURES: '0' } });
  readKey = (await gw.api('/api/v1/keys', { method: 'POST', body: { role: 'read' } })).body.key;
  const revoked = (await gw.api('/api/v1/keys', { method: 'POST', body: { role: 'admin' } })).body;
  revokedKey = revoked.key;
  expect((await gw.api(`/api/v1/keys/${revoked.id}`, { method: 'DELETE' })).status).toBe(204);
});
afterAll(async () => {
  await gw?.stop();
  gw?.cleanup();
});

/** Routes anyone may call: probes and the API's own documentation. */
const PUBLIC = new Set(['GET /health', 'GET /ready']);

describe('auth matrix', () => {
  it('asks every documented route for the right key: none, read, admin, revoked', async () => {
    const doc = (await gw.api('/openapi.json', { key: null })).body;
    const routes: [string, string][] = [];
    for (const [path, ops] of Object.entries(doc.paths as Record<string, object>)) {
      for (const method of Object.keys(ops)) routes.push([method.toUpperCase(), path]);
    }
    expect(routes.length).toBeGreaterThanOrEqual(15);
    // Path parameters point at things that do not exist, so admin calls change nothing.
    const url = (path: string) => path.replace('{id}', 'no-such-0000').replace('{type}', 'noise');
    for (const [method, path] of routes) {
      const name = `${method} ${path}`;
      const isPublic = PUBLIC.has(name);
      const adminOnly = doc.paths[path][method.toLowerCase()].summary.includes('(admin)');
      const call = (key: string | null | undefined) =>
        gw.api(url(path), { method, key, body: method === 'POST' ? {} : undefined });
      if (path === '/api/v1/stream') continue; // an event stream never ends; covered in live.test.ts
      const none = await call(null);
      expect(none.status, `${name} without a key`).toBe(isPublic ? none.status : 401);
      if (!isPublic) expect(none.body.code, name).toBe('TAIHU_ERR_UNAUTHORIZED');
      const revoked = await call(revokedKey);
      expect(revoked.status, `${name} with a revoked key`).toBe(isPublic ? revoked.status : 401);
      const read = await call(readKey);
      if (adminOnly) expect(read.status, `${name} with a read key`).toBe(403);
      else expect([401, 403], `${name} with a read key`).not.toContain(read.status);
      const admin = await call(undefined); // the admin key
      expect([401, 403], `${name} with an admin key`).not.toContain(admin.status);
      expect(JSON.stringify(admin.body), name).not.toMatch(/\n\s+at |node_modules|\/src\//);
    }
  });
});

describe('failed authentication', () => {
  it('makes an address that keeps failing wait, with 429 and Retry-After, while good keys still work', async () => {
    const g = await startGateway({ env: { TAIHU_HTTP_AUTH_FAILURES: '3' } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++)
        statuses.push((await g.api('/api/v1/devices', { key: 'guess' })).status);
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
      const limited = await g.api('/api/v1/devices', { key: 'guess' });
      expect(limited.body.code).toBe('TAIHU_ERR_TOO_MANY_AUTH_FAILURES');
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await g.api('/health', { key: null })).status).toBe(200);
      expect((await g.api('/api/v1/devices?limit=1')).status).toBe(200); // the admin key
    } finally {
      await g.stop();
      g.cleanup();
    }
  });
});

describe('metrics', () => {
  it('serves Prometheus text whose counters move when messages flow', async () => {
    const scrape = async () => {
      const res = await gw.api('/metrics');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/plain/);
      return res.body as string;
    };
    const value = (text: string, series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const before = await scrape();
    const dev = seedDevice('air-quality', 17);
    const client = await connectAs(gw, dev);
    for (let i = 0; i < 3; i++) {
      await client.publishAsync(
        telemetryTopic(dev),
        JSON.stringify({ data: { pm25_ugm3: i, pm10_ugm3: 1, no2_ugm3: 1 } }),
        { qos: 1 },
      );
    }
    await client.publishAsync(telemetryTopic(dev), '{"data":{"pm25_ugm3":"high"}}', { qos: 1 });
    const during = await scrape();
    await client.endAsync();

    // Every line is a comment, blank, or `name{labels} value` in the exposition format.
    for (const line of during.split('\n')) {
      expect(line, line).toMatch(
        /^(#.*|$|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (NaN|[+-]Inf))$/,
      );
    }
    const accepted = 'taihu_ingest_messages_total{type="air-quality",outcome="accepted"}';
    expect(value(during, accepted)).toBe((value(before, accepted) ?? 0) + 3);
    expect(value(during, 'taihu_ingest_readings_total{type="air-quality"}')).toBeGreaterThanOrEqual(
      3,
    );
    expect(value(during, 'taihu_rejections_total{code="SCHEMA_INVALID"}')).toBeGreaterThanOrEqual(
      1,
    );
    expect(value(during, 'taihu_ack_latency_seconds_count')).toBeGreaterThanOrEqual(3);
    expect(value(during, 'taihu_connected_devices')).toBeGreaterThanOrEqual(1);
    for (const name of [
      'taihu_spool_bytes',
      'taihu_spool_oldest_age_seconds',
      'taihu_store_retries',
      'taihu_store_last_write_seconds',
      // the names before 0.2, kept as aliases for one release
      'taihu_sink_retries',
      'taihu_sink_last_write_seconds',
      'nodejs_eventloop_lag_seconds',
      'process_resident_memory_bytes',
    ]) {
      expect(value(during, name), name).toEqual(expect.any(Number));
    }
  });
});

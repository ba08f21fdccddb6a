/**
 * The HTTP API under hostile input, on a gateway writing to a real influxd 1.6.7 and on one with
 * the embedded SQLite store. Every documented route gets, in each of its parameters, values
 * built to break out of an InfluxQL or SQL literal or a regex (quotes, backslashes, semicolons,
 * newlines, `.*`, NUL, percent-encoded junk, overlong text), plus oversized and malformed bodies.
 * Nothing may answer 5xx or leak a stack trace or a path, nothing stored may change, and both
 * gateways keep serving afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { eventually, mosquittoPub, seedDevice, telemetryTopic } from '../helpers/clients.js';
import { startInfluxDB, type TestServer } from '../helpers/servers.js';

const HOSTILE = [
  `'`,
  `"`,
  `\\`,
  `x' OR '1'='1`,
  `x" OR "1"="1`,
  `'; DROP DATABASE "taihu"; SELECT '`,
  `"; DROP TABLE air_quality; --`,
  `aq-binhu-0001' OR device_id =~ /.*/ OR '`,
  `/.*/`,
  `.*`,
  `^(a+)+$`,
  `a\nb`,
  `a\r\nSELECT * FROM air_quality`,
  `\u0000`,
  `%00%27%22`,
  `$(id)`,
  `../../etc/passwd`,
  `x`.repeat(5000),
];

/** One valid call per route, so a hostile value in one parameter meets the code behind it. */
const BASE: Record<string, Record<string, string>> = {
  '/api/v1/aggregates': {
    type: 'air-quality',
    field: 'pm25_ugm3',
    fn: 'mean',
    every: '5m',
    from: 'now-1h',
    to: 'now',
  },
};

const device = seedDevice('air-quality', 0);
const LEAK = /\n\s+at |node_modules|\/src\/|\/dist\/|\/tmp\/|SQLITE|sqlite|influxql/i;

let influx: TestServer;
const gateways: [string, RunningGateway][] = [];

beforeAll(async () => {
  influx = await startInfluxDB();
  const onInflux = await startGateway({
    env: {
      TAIHU_INFLUX_URL: influx.url,
      TAIHU_INFLUX_API: 'v1',
      TAIHU_INFLUX_BUCKET: 'taihu',
      TAIHU_HTTP_AUTH_FAILURES: '0',
    },
  });
  const embedded = await startGateway({ env: { TAIHU_HTTP_AUTH_FAILURES: '0' } });
  gateways.push(['influxdb', onInflux], ['embedded', embedded]);
  for (const [, gw] of gateways) {
    const payload = JSON.stringify({ data: { pm25_ugm3: 41.5, pm10_ugm3: 60, no2_ugm3: 20 } });
    const pub = await mosquittoPub(
      gw.ports.mqtt,
      device,
      gw.secret(device.id),
      telemetryTopic(device),
      payload,
    );
    expect(pub.code).toBe(0);
  }
  for (const [, gw] of gateways) await eventually(async () => (await stored(gw)) === 1, 10_000);
}, 60_000);

afterAll(async () => {
  for (const [, gw] of gateways) {
    await gw.stop();
    gw.cleanup();
  }
  await influx?.stop();
});

/** Readings of the seeded device in the last hour, as the API counts them. */
async function stored(gw: RunningGateway): Promise<number> {
  const q = new URLSearchParams({ ...BASE['/api/v1/aggregates']!, fn: 'count', every: '1h' });
  const res = await gw.api(`/api/v1/aggregates?${q}`);
  expect(res.status).toBe(200);
  let n = 0;
  for (const s of res.body.series) for (const p of s.points) n += p.value ?? 0;
  return n;
}

async function routes(gw: RunningGateway) {
  const doc = (await gw.api('/openapi.json', { key: null })).body;
  const out: { method: string; path: string; params: { name: string; in: string }[] }[] = [];
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
    for (const [method, op] of Object.entries(ops)) {
      if (path === '/api/v1/stream') continue; // never ends; its filters are checked below
      out.push({ method: method.toUpperCase(), path, params: op.parameters ?? [] });
    }
  }
  return out;
}

function expectClean(res: { status: number; body: unknown }, what: string) {
  expect(res.status, what).toBeLessThan(500);
  expect(JSON.stringify(res.body), what).not.toMatch(LEAK);
}

describe.each(['influxdb', 'embedded'])('hostile HTTP input, %s store', (store) => {
  const gw = () => gateways.find(([s]) => s === store)![1];

  it('answers every route and parameter with a 4xx or an empty answer, never 5xx or a leak', async () => {
    const all = await routes(gw());
    expect(all.length).toBeGreaterThanOrEqual(15);
    let calls = 0;
    for (const { method, path, params } of all) {
      // admin routes that change things get only GETs' treatment of their path parameters
      const base = BASE[path] ?? {};
      for (const p of params) {
        for (const value of HOSTILE) {
          let url = path;
          const q = new URLSearchParams(base);
          if (p.in === 'path') url = path.replace(`{${p.name}}`, encodeURIComponent(value));
          else if (p.in === 'query') q.set(p.name, value);
          else continue;
          // replace any other path parameter with an id that does not exist
          url = url.replace(/\{[^}]+\}/g, 'no-such-0000');
          const qs = q.toString();
          const res = await gw().api(qs ? `${url}?${qs}` : url, {
            method,
            body: method === 'POST' ? {} : undefined,
          });
          calls++;
          expectClean(res, `${method} ${path} ${p.name}=${JSON.stringify(value.slice(0, 40))}`);
          if (['device', 'district', 'site'].includes(p.name) && p.in === 'query') {
            // Ids are checked against the registry before any store sees them; the rejection
            // log may name devices deleted since, so it answers an unknown one with nothing.
            if (path !== '/api/v1/rejections') expect(res.status, `${path} ${p.name}`).toBe(400);
            else if (res.status === 200) expect(res.body.items, path).toEqual([]);
            else expect(res.status, path).toBe(400);
          }
          if (res.status === 200 && path === '/api/v1/aggregates') {
            // a filter nobody matches finds nothing: it never widened the query
            expect(res.body.series, `${p.name}=${JSON.stringify(value.slice(0, 40))}`).toEqual([]);
          }
        }
      }
    }
    expect(calls).toBeGreaterThan(100);
    expect(await stored(gw())).toBe(1);
  });

  it('refuses hostile filters on the live stream before it starts', async () => {
    for (const value of HOSTILE.slice(0, 10)) {
      const res = await gw().api(`/api/v1/stream?${new URLSearchParams({ device: value })}`);
      expectClean(res, `stream device=${JSON.stringify(value)}`);
      expect(res.status).toBe(400);
    }
  });

  it('refuses bodies that are too large, not JSON, or of the wrong shape, and keeps serving', async () => {
    const url = `http://127.0.0.1:${gw().ports.http}/api/v1/devices`;
    const post = (body: string, type = 'application/json') =>
      fetch(url, {
        method: 'POST',
        headers: { authorization: 'Bearer test-admin-key-0123456789abcdef', 'content-type': type },
        body,
      }).then(async (r) => ({ status: r.status, body: await r.text() }));
    const cases: [string, string, number][] = [
      ['over the body limit', JSON.stringify({ id: 'x'.repeat(70_000) }), 413],
      ['not JSON', '{"id": ', 400],
      ['a JSON string', '"aq-x"', 400],
      ['a prototype-poisoning key', '{"__proto__": {"admin": true}, "id": "aq-x"}', 400],
      ['nested very deep', '['.repeat(10_000) + ']'.repeat(10_000), 400],
    ];
    for (const [name, body, status] of cases) {
      const res = await post(body);
      expect(res.status, name).toBe(status);
      expect(res.body, name).not.toMatch(LEAK);
    }
    const wrongType = await post('id=aq-x', 'application/x-www-form-urlencoded');
    expect(wrongType.status).toBe(415);
    expect(await stored(gw())).toBe(1);
  });

  it('refuses a query string larger than the request line may be, and keeps serving', async () => {
    const res = await fetch(
      `http://127.0.0.1:${gw().ports.http}/api/v1/devices?district=${'d'.repeat(70_000)}`,
      { headers: { authorization: 'Bearer test-admin-key-0123456789abcdef' } },
    );
    expect([414, 431]).toContain(res.status);
    expect(await res.text()).not.toMatch(LEAK);
    expect((await gw().api('/health', { key: null })).status).toBe(200);
  });
});

describe('the InfluxDB database after all of it', () => {
  it('still holds the database and the one reading, seen straight from influxd', async () => {
    const res = await fetch(`${influx.url}/query?q=${encodeURIComponent('SHOW DATABASES')}`);
    expect(JSON.stringify(await res.json())).toContain('"taihu"');
    const count = await fetch(
      `${influx.url}/query?db=taihu&q=${encodeURIComponent('SELECT count("pm25_ugm3") FROM "air_quality"')}`,
    ).then((r) => r.json() as Promise<any>);
    expect(count.results[0].series[0].values[0][1]).toBe(1);
  });
});

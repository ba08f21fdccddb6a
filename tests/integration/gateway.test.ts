/**
 * The built gateway as a user runs it (a child process on free ports), driven by
 * MQTT clients no one here wrote: MQTT.js and Debian's mosquitto_pub/mosquitto_sub.
 */
import { describe, expect, it } from 'vitest';
import {
  BAD_AGGREGATE_PARAMS,
  expectOwnErrorsTopicOnly,
  REFUSED_LOGINS,
} from '../helpers/cases.js';
import { type RunningGateway, useGateway } from '../helpers/gateway.js';
import {
  connect,
  connectAs,
  errorsTopic,
  eventually,
  mosquittoPub,
  mosquittoPubTelemetry,
  seedDevice,
  sleep,
  telemetryTopic,
} from '../helpers/clients.js';

let gw: RunningGateway;
useGateway((g) => (gw = g));

const MINUTE = 60_000;
/** A whole minute 30 minutes ago, so buckets are predictable and within TAIHU_MAX_AGE. */
const BASE = Math.floor((Date.now() - 30 * MINUTE) / MINUTE) * MINUTE;
const iso = (ms: number) => new Date(ms).toISOString();

describe('ingest over MQTT', () => {
  it('stores exactly what mosquitto_pub and MQTT.js published, at QoS 0 and 1, and aggregates it', async () => {
    const dev = seedDevice('air-quality', 0);
    const other = seedDevice('air-quality', 1);
    const reading = (offsetMs: number, seq: number, pm25: number) =>
      JSON.stringify({
        ts: BASE + offsetMs,
        seq,
        data: { pm25_ugm3: pm25, pm10_ugm3: 50, no2_ugm3: 20 },
      });

    // bucket 0: 10 and 20 (mosquitto_pub, QoS 1 and 0); bucket 1: 35.5 (MQTT.js QoS 1) and 4 (MQTT.js QoS 0)
    expect((await mosquittoPubTelemetry(gw, dev, reading(1000, 1, 10), 1)).code).toBe(0);
    expect((await mosquittoPubTelemetry(gw, dev, reading(30_000, 2, 20), 0)).code).toBe(0);
    const client = await connectAs(gw, dev);
    await client.publishAsync(telemetryTopic(dev), reading(MINUTE + 5000, 3, 35.5), { qos: 1 });
    await client.publishAsync(telemetryTopic(dev), reading(MINUTE + 6000, 4, 4), { qos: 0 });
    await client.endAsync();
    // another device's data in the same window must not leak into a device filter
    const c2 = await connectAs(gw, other);
    await c2.publishAsync(telemetryTopic(other), reading(2000, 1, 999), { qos: 1 });
    await c2.endAsync();

    const q = (fn: string) =>
      gw.api(
        `/api/v1/aggregates?type=air-quality&field=pm25_ugm3&fn=${fn}&every=1m&from=${iso(BASE)}&to=${iso(BASE + 2 * MINUTE)}&device=${dev.id}`,
      );
    const expected: Record<string, [number, number]> = {
      mean: [15, 19.75],
      min: [10, 4],
      max: [20, 35.5],
      sum: [30, 39.5],
      count: [2, 2],
      first: [10, 35.5],
      last: [20, 4],
    };
    // QoS 0 has no ack to wait for: poll until the last reading is there.
    await eventually(async () => (await q('count')).body.series[0]?.points[1]?.value === 2);
    for (const [fn, [v0, v1]] of Object.entries(expected)) {
      const res = await q(fn);
      expect(res.status, fn).toBe(200);
      expect(res.body.series, fn).toEqual([
        {
          field: 'pm25_ugm3',
          group: {},
          points: [
            { t: iso(BASE), value: v0, count: 2 },
            { t: iso(BASE + MINUTE), value: v1, count: 2 },
          ],
        },
      ]);
    }
    const byDevice = await gw.api(
      `/api/v1/aggregates?type=air-quality&field=pm25_ugm3&fn=max&every=1m&from=${iso(BASE)}&to=${iso(BASE + MINUTE)}&groupBy=device`,
    );
    expect(byDevice.body.series).toEqual(
      [
        {
          field: 'pm25_ugm3',
          group: { device: dev.id },
          points: [{ t: iso(BASE), value: 20, count: 2 }],
        },
        {
          field: 'pm25_ugm3',
          group: { device: other.id },
          points: [{ t: iso(BASE), value: 999, count: 1 }],
        },
      ].sort((a, b) => a.group.device.localeCompare(b.group.device)),
    );
    const twoFields = await gw.api(
      `/api/v1/aggregates?type=air-quality&field=pm25_ugm3,no2_ugm3&fn=max&every=1m&from=${iso(BASE)}&to=${iso(BASE + MINUTE)}&device=${dev.id}`,
    );
    expect(twoFields.body.field).toBe('pm25_ugm3,no2_ugm3');
    expect(twoFields.body.series).toEqual([
      { field: 'pm25_ugm3', group: {}, points: [{ t: iso(BASE), value: 20, count: 2 }] },
      { field: 'no2_ugm3', group: {}, points: [{ t: iso(BASE), value: 20, count: 2 }] },
    ]);
  });

  it('refuses a wrong password with CONNACK "not authorized", from MQTT.js and mosquitto_pub', async () => {
    const dev = seedDevice('noise', 0);
    await expect(
      connect(gw.ports.mqtt, { clientId: dev.id, username: dev.id, password: 'wrong' }),
    ).rejects.toMatchObject({ code: 5 });
    const res = await mosquittoPub(gw.ports.mqtt, dev, 'wrong', telemetryTopic(dev), '{}');
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/not authori[sz]ed/i);
  });

  it.each(REFUSED_LOGINS)('refuses a connection with %s', async (_name, opts) => {
    const dev = seedDevice('noise', 1);
    await expect(connect(gw.ports.mqtt, opts(dev.id, gw.secret(dev.id)))).rejects.toMatchObject({
      code: expect.any(Number),
    });
  });

  it('closes the connection of a device publishing to another device topic and stores nothing', async () => {
    const dev = seedDevice('weather', 0);
    const victim = seedDevice('weather', 1);
    const client = await connectAs(gw, dev);
    const closed = new Promise((r) => client.once('close', () => r(undefined)));
    client.publish(
      telemetryTopic(victim),
      JSON.stringify({ ts: BASE, data: { temperature_c: 20 } }),
      { qos: 1 },
    );
    await closed;
    client.end(true);
    const res = await gw.api(
      `/api/v1/aggregates?type=weather&field=seq&fn=count&every=1h&from=now-2h&to=now&device=${victim.id}`,
    );
    expect(res.status).toBe(200);
    expect(res.body.series).toEqual([]);
  });

  it('refuses subscriptions outside the device own errors topic with SUBACK 0x80', async () => {
    const dev = seedDevice('parking', 0);
    const client = await connectAs(gw, dev);
    await expectOwnErrorsTopicOnly(client, dev);
  });

  it('reports an invalid payload on the device errors topic and in /api/v1/rejections', async () => {
    const dev = seedDevice('air-quality', 2);
    const client = await connectAs(gw, dev);
    await client.subscribeAsync(errorsTopic(dev), { qos: 1 });
    const notice = new Promise<any>((resolve) =>
      client.once('message', (_t, p) => resolve(JSON.parse(p.toString()))),
    );
    // Still acknowledged: MQTT 3.1.1 has no negative ack.
    await client.publishAsync(
      telemetryTopic(dev),
      JSON.stringify({ data: { pm25_ugm3: -5, pm10_ugm3: 1, no2_ugm3: 1 } }),
      { qos: 1 },
    );
    const n = await notice;
    expect(n).toMatchObject({
      code: 'SCHEMA_INVALID',
      topic: telemetryTopic(dev),
      reasons: [{ pointer: '/data/pm25_ugm3' }],
    });
    await client.endAsync();

    const viaCli = await mosquittoPubTelemetry(gw, dev, 'not json at all');
    expect(viaCli.code).toBe(0);
    const res = await eventually(async () => {
      const r = await gw.api(`/api/v1/rejections?device=${dev.id}`);
      return r.body.items.length === 2 ? r : undefined;
    });
    expect(res.body.items.map((i: any) => i.code)).toEqual(['PAYLOAD_NOT_JSON', 'SCHEMA_INVALID']);
    expect(res.body.items[0]).toMatchObject({
      deviceId: dev.id,
      type: 'air-quality',
      topic: telemetryTopic(dev),
      payload: 'not json at all',
    });
    expect(res.body.items[1].reasons[0].message).toMatch(/>= 0/);
  });

  it('serves the same MQTT over WebSocket', async () => {
    const dev = seedDevice('streetlight', 0);
    const mqtt = (await import('mqtt')).default;
    const client = await mqtt.connectAsync(`ws://127.0.0.1:${gw.ports.ws}/mqtt`, {
      clientId: dev.id,
      username: dev.id,
      password: gw.secret(dev.id),
      reconnectPeriod: 0,
    });
    const schema = (await gw.api('/api/v1/schemas/streetlight')).body;
    const data = Object.fromEntries(
      Object.entries(schema.properties as Record<string, any>).map(([k, p]) => [
        k,
        p.type === 'boolean' ? true : p.enum ? p.enum[0] : (p.minimum ?? 0),
      ]),
    );
    await client.publishAsync(telemetryTopic(dev), JSON.stringify({ seq: 7, data }), { qos: 1 });
    await client.endAsync();
    const d = (await gw.api(`/api/v1/devices/${dev.id}`)).body;
    expect(d.last).toMatchObject({ seq: 7 });
    expect(d.lastSeen).not.toBeNull();
  });
});

describe('device status', () => {
  it('is never before a device connects, online while connected, offline after its Will', async () => {
    const dev = seedDevice('manhole', 0);
    expect((await gw.api(`/api/v1/devices/${dev.id}`)).body.status).toBe('never');
    const statusTopic = `sensors/manhole/${dev.id}/status`;
    const client = await connect(gw.ports.mqtt, {
      clientId: dev.id,
      username: dev.id,
      password: gw.secret(dev.id),
      will: { topic: statusTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    expect((await gw.api(`/api/v1/devices/${dev.id}`)).body.status).toBe('online');
    client.stream.destroy(); // an unclean drop: the broker publishes the Will
    await eventually(
      async () => (await gw.api(`/api/v1/devices/${dev.id}`)).body.status === 'offline',
    );
    const list = await gw.api('/api/v1/devices?status=offline&type=manhole');
    expect(list.body.items.map((d: any) => d.id)).toContain(dev.id);
  });
});

describe('device status after a reconnect', () => {
  it('stays online when a new connection replaces the old one, whose Will says offline', async () => {
    const dev = seedDevice('manhole', 1);
    const statusTopic = `sensors/manhole/${dev.id}/status`;
    const opts = {
      clientId: dev.id,
      username: dev.id,
      password: gw.secret(dev.id),
      will: { topic: statusTopic, payload: Buffer.from('offline'), qos: 1 as const, retain: true },
    };
    const old = await connect(gw.ports.mqtt, opts);
    old.on('error', () => {});
    const replaced = new Promise((r) => old.once('close', () => r(undefined)));
    const fresh = await connect(gw.ports.mqtt, opts);
    await replaced; // the broker closed the old session and published its Will
    old.end(true);
    await sleep(300);
    expect((await gw.api(`/api/v1/devices/${dev.id}`)).body.status).toBe('online');
    await fresh.endAsync();
  });
});

describe('HTTP API', () => {
  it('asks for a key on API routes and answers 401 with a stable code', async () => {
    const res = await gw.api('/api/v1/devices', { key: null });
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({
      statusCode: 401,
      code: 'TAIHU_ERR_UNAUTHORIZED',
      error: 'Unauthorized',
    });
    expect((await gw.api('/api/v1/devices', { key: 'not-a-key' })).status).toBe(401);
    expect((await gw.api('/health', { key: null })).status).toBe(200);
  });

  it.each(BAD_AGGREGATE_PARAMS)(
    'answers 400 naming the parameter for %s',
    async (qs, param, message) => {
      const res = await gw.api(`/api/v1/aggregates?${qs}`);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('TAIHU_ERR_BAD_PARAM');
      expect(res.body.message).toContain(`'${param}'`);
      expect(res.body.message).toMatch(message);
    },
  );

  it('lists devices with paging and serves one device', async () => {
    const page = await gw.api('/api/v1/devices?type=air-quality&limit=5&offset=0');
    expect(page.body.items).toHaveLength(5);
    expect(page.body.total).toBeGreaterThanOrEqual(20);
    expect(page.body.items.every((d: any) => d.type === 'air-quality')).toBe(true);
    const dev = page.body.items[0];
    const one = await gw.api(`/api/v1/devices/${dev.id}`);
    expect(one.body).toMatchObject({
      id: dev.id,
      type: 'air-quality',
      district: dev.district,
      state: 'active',
    });
    expect((await gw.api('/api/v1/devices/nope-0000')).status).toBe(404);
  });

  it('serves every device schema and an OpenAPI document with every route', async () => {
    const list = await gw.api('/api/v1/schemas');
    expect(list.body.items.length).toBeGreaterThanOrEqual(9);
    for (const t of list.body.items) {
      const s = await gw.api(`/api/v1/schemas/${t.type}`);
      expect(s.body['x-type']).toBe(t.type);
    }
    const doc = await gw.api('/openapi.json', { key: null });
    const paths = doc.body.paths as Record<string, Record<string, any>>;
    expect(Object.keys(paths)).toEqual(
      expect.arrayContaining([
        '/health',
        '/ready',
        '/api/v1/aggregates',
        '/api/v1/devices',
        '/api/v1/devices/{id}',
        '/api/v1/devices/{id}/secret',
        '/api/v1/devices/{id}/disable',
        '/api/v1/devices/{id}/enable',
        '/api/v1/keys',
        '/api/v1/keys/{id}',
        '/api/v1/rejections',
        '/api/v1/schemas',
        '/api/v1/schemas/{type}',
      ]),
    );
    // Every operation documents itself and its successful answer.
    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(op.summary, `${method} ${path}`).toEqual(expect.any(String));
        expect(
          Object.keys(op.responses ?? {}).some((c) => /^2/.test(c)),
          `${method} ${path}`,
        ).toBe(true);
      }
    }
    expect((await gw.api('/ready', { key: null })).status).toBe(200);
  });
});

/** Live views of the built gateway: the SSE stream, /latest, and stale detection. */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { readStream } from '../helpers/stream.js';
import {
  connectAs,
  eventually,
  mosquittoPubTelemetry,
  seedDevice,
  telemetryTopic,
} from '../helpers/clients.js';

let gw: RunningGateway;
let schemas: string;
beforeAll(async () => {
  // A copy of the schemas where noise devices are expected every second, so a silent
  // noise device turns stale within seconds.
  schemas = mkdtempSync(join(tmpdir(), 'taihu-schemas-'));
  cpSync(join(ROOT, 'schemas'), schemas, { recursive: true });
  const file = join(schemas, 'noise.v1.json');
  const s = JSON.parse(readFileSync(file, 'utf8'));
  s['x-interval-seconds'] = 1;
  writeFileSync(file, JSON.stringify(s));
  gw = await startGateway({ env: { TAIHU_SCHEMAS_DIR: schemas } });
});
afterAll(async () => {
  await gw?.stop();
  gw?.cleanup();
  rmSync(schemas, { recursive: true, force: true });
});

describe('live stream', () => {
  it('streams a reading published with mosquitto_pub to an SSE client filtered to that device', async () => {
    const dev = seedDevice('air-quality', 15);
    const other = seedDevice('air-quality', 16);
    const { frames, contentType } = await readStream(
      gw,
      `device=${dev.id}`,
      (f) => f.some((x) => x.event === 'reading'),
      async () => {
        const body = (pm: number) =>
          JSON.stringify({ seq: 77, data: { pm25_ugm3: pm, pm10_ugm3: 1, no2_ugm3: 1 } });
        expect((await mosquittoPubTelemetry(gw, other, body(1))).code).toBe(0);
        expect((await mosquittoPubTelemetry(gw, dev, body(42.5))).code).toBe(0);
      },
    );
    expect(contentType).toMatch(/text\/event-stream/);
    const readings = frames.filter((f) => f.event === 'reading');
    expect(readings).toHaveLength(1);
    expect(JSON.stringify(readings[0]!.data)).toContain(dev.id);
    expect(JSON.stringify(readings[0]!.data)).toContain('42.5');
    expect(JSON.stringify(frames)).not.toContain(other.id);
  });

  it('answers 400 for an unknown type filter and 401 without a key', async () => {
    const bad = await gw.api('/api/v1/stream?type=toaster');
    expect(bad.status).toBe(400);
    expect(bad.body.message).toContain("'type'");
    expect((await gw.api('/api/v1/stream', { key: null })).status).toBe(401);
  });
});

describe('latest readings', () => {
  it('serves the last reading of each device of a type from memory', async () => {
    const dev = seedDevice('water-quality', 0);
    const client = await connectAs(gw, dev);
    const data = { water_temperature_c: 12.5, ph: 7.8, dissolved_oxygen_mgl: 9.1 };
    await client.publishAsync(
      telemetryTopic(dev),
      JSON.stringify({ seq: 1, data: { ...data, ph: 7.1 } }),
      { qos: 1 },
    );
    await client.publishAsync(telemetryTopic(dev), JSON.stringify({ seq: 2, data }), { qos: 1 });
    await client.endAsync();
    const res = await gw.api('/api/v1/latest?type=water-quality');
    expect(res.status).toBe(200);
    const item = res.body.items.find((i: any) => i.id === dev.id);
    expect(item).toMatchObject({ id: dev.id, type: 'water-quality', seq: 2, data });
    expect(res.body.items.every((i: any) => i.type === 'water-quality')).toBe(true);
  });
});

describe('stale detection', () => {
  it('marks a connected device stale after 3× its expected interval of silence', async () => {
    const dev = seedDevice('noise', 5);
    const client = await connectAs(gw, dev);
    await client.publishAsync(telemetryTopic(dev), JSON.stringify({ data: { laeq_dba: 55 } }), {
      qos: 1,
    });
    expect((await gw.api(`/api/v1/devices/${dev.id}`)).body.status).toBe('online');
    await eventually(
      async () => (await gw.api(`/api/v1/devices/${dev.id}`)).body.status === 'stale',
      8000,
    );
    const stale = await gw.api('/api/v1/devices?status=stale&type=noise');
    expect(stale.body.items.map((d: any) => d.id)).toContain(dev.id);
    await client.publishAsync(telemetryTopic(dev), JSON.stringify({ data: { laeq_dba: 56 } }), {
      qos: 1,
    });
    expect((await gw.api(`/api/v1/devices/${dev.id}`)).body.status).toBe('online');
    await client.endAsync();
  });
});

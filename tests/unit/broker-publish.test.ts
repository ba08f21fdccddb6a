/**
 * The broker's publish path and topic ACL, in memory (tests/helpers/memory.ts): a telemetry
 * PUBLISH reaches ingest and is acknowledged only once its points are committed (DESIGN §6);
 * other devices' topics, wildcards and `$SYS` are refused (DESIGN §3).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Point } from '../../src/points/point.js';
import { expectOwnErrorsTopicOnly } from '../helpers/cases.js';
import { errorsTopic, seedDevice, telemetryTopic, type SeedDevice } from '../helpers/clients.js';
import { memoryBroker, openParts, type MemoryBroker, type Parts } from '../helpers/memory.js';

let parts: Parts;
let mem: MemoryBroker;
/** Commits wait for `release()` while `holding` is set: the spool's fsync, slowed down at will. */
let holding = false;
let release: () => void = () => {};

beforeAll(async () => {
  parts = await openParts();
  mem = await memoryBroker(parts, (_points: readonly Point[]) =>
    holding ? new Promise<void>((r) => (release = r)) : Promise.resolve(),
  );
});

afterAll(async () => {
  await mem?.close();
  await parts?.close();
});

const login = (d: SeedDevice) => ({ clientId: d.id, username: d.id, password: parts.secret(d.id) });
const reading = (data: Record<string, unknown>) => JSON.stringify({ ts: Date.now(), seq: 1, data });

describe('broker publish path, in memory', () => {
  it('acknowledges a telemetry publish only after ingest committed its points', async () => {
    const dev = seedDevice('air-quality', 0);
    const client = await mem.connect(login(dev));
    const before = mem.committed.length;
    holding = true;
    let acked = false;
    const ack = client
      .publishAsync(telemetryTopic(dev), reading({ pm25_ugm3: 12.5, pm10_ugm3: 30, no2_ugm3: 8 }), {
        qos: 1,
      })
      .then(() => (acked = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(acked).toBe(false);
    expect(mem.committed.length).toBe(before);
    holding = false;
    release();
    await ack;
    const points = mem.committed[before]!;
    expect(points).toHaveLength(1);
    expect(points[0]).toMatchObject({
      measurement: 'air_quality',
      tags: { device_id: dev.id, district: dev.district, site_id: dev.siteId },
      fields: { pm25_ugm3: 12.5, pm10_ugm3: 30, no2_ugm3: 8, seq: 1 },
    });
    await client.endAsync();
  });

  it('acknowledges an invalid reading, commits nothing, and reports it on the device errors topic and in the rejection log', async () => {
    const dev = seedDevice('air-quality', 1);
    const client = await mem.connect(login(dev));
    await client.subscribeAsync(errorsTopic(dev), { qos: 1 });
    const notice = new Promise<{ topic: string; body: any }>((r) =>
      client.once('message', (topic, payload) => r({ topic, body: JSON.parse(String(payload)) })),
    );
    const before = mem.committed.length;
    await client.publishAsync(telemetryTopic(dev), reading({ pm25_ugm3: 'lots' }), { qos: 1 });
    expect(await notice).toMatchObject({
      topic: errorsTopic(dev),
      body: { code: 'SCHEMA_INVALID' },
    });
    expect(mem.committed.length).toBe(before);
    await parts.state.rejections.flush();
    const [latest] = await parts.state.rejections.query({ device: dev.id, limit: 1 });
    expect(latest).toMatchObject({ deviceId: dev.id, code: 'SCHEMA_INVALID' });
    await client.endAsync();
  });

  it('closes the connection of a device publishing to another device topic and commits nothing', async () => {
    const dev = seedDevice('weather', 0);
    const victim = seedDevice('weather', 1);
    const client = await mem.connect(login(dev));
    const before = mem.committed.length;
    const closed = new Promise((r) => client.once('close', () => r(undefined)));
    client.publish(telemetryTopic(victim), reading({ temperature_c: 20 }), { qos: 1 });
    await closed;
    client.end(true);
    expect(mem.committed.length).toBe(before);
  });

  it('refuses subscriptions outside the device own errors topic with SUBACK 0x80', async () => {
    const dev = seedDevice('parking', 0);
    const client = await mem.connect(login(dev));
    await expectOwnErrorsTopicOnly(client, dev);
  });
});

/**
 * A seeded device on a raw MQTT socket against a running gateway, and what the gateway
 * stored from it: for tests that must write packets no client library will.
 */
import { expect } from 'vitest';
import {
  connectPacket,
  rawSession,
  type ConnectFields,
  type RawSession,
} from '../fuzz/raw-mqtt.js';
import type { SeedDevice } from './clients.js';
import type { RunningGateway } from './gateway.js';

/** CONNECT fields of a seeded device: client id = user name = device id, enrollment secret. */
export function deviceCreds(g: RunningGateway, d: SeedDevice): ConnectFields {
  return { clientId: d.id, username: d.id, password: g.secret(d.id) };
}

/** A raw session that sent the device's CONNECT and got CONNACK 0. */
export async function deviceSession(
  g: RunningGateway,
  d: SeedDevice,
  extra: Partial<ConnectFields> = {},
): Promise<RawSession> {
  const s = await rawSession(g.ports.mqtt);
  await s.send(connectPacket({ ...deviceCreds(g, d), ...extra }));
  expect(await s.next('connack')).toMatchObject({ returnCode: 0 });
  return s;
}

/** How many readings of a device are stored over the last hour, and the sum of one field. */
export async function stored(
  g: RunningGateway,
  d: SeedDevice,
  field = 'pm25_ugm3',
): Promise<{ count: number; sum: number }> {
  const query = (fn: string) =>
    g.api(
      `/api/v1/aggregates?type=${d.type}&field=${field}&fn=${fn}&every=1d&from=now-1h&to=now&device=${d.id}&fill=none`,
    );
  const [count, sum] = await Promise.all([query('count'), query('sum')]);
  expect(count.status).toBe(200);
  expect(sum.status).toBe(200);
  const total = (body: any, key: 'count' | 'value') =>
    (body.series as any[]).reduce(
      (n, s) => n + s.points.reduce((m: number, p: any) => m + (p[key] ?? 0), 0),
      0,
    );
  return { count: total(count.body, 'count'), sum: total(sum.body, 'value') };
}

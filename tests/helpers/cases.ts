/**
 * Cases the in-memory unit tests (tests/unit/broker-*, http-*) and the integration tests
 * against the built gateway both run: one table, two ways of reaching the same rules.
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import { expect } from 'vitest';
import { errorsTopic, seedDevice, type SeedDevice } from './clients.js';

/** CONNECTs the broker refuses with a CONNACK code: [what, options for (device id, its secret)]. */
export const REFUSED_LOGINS: readonly [string, (id: string, pw: string) => IClientOptions][] = [
  ['no password', (id: string) => ({ clientId: id, username: id })],
  [
    'an unknown device',
    () => ({ clientId: 'zz-nowhere-0001', username: 'zz-nowhere-0001', password: 'x' }),
  ],
  [
    'a client id other than the username',
    (id: string, pw: string) => ({ clientId: `${id}-x`, username: id, password: pw }),
  ],
  [
    'a Will on a topic the device may not publish',
    (id: string, pw: string) => ({
      clientId: id,
      username: id,
      password: pw,
      will: {
        topic: 'sensors/noise/someone-else/status',
        payload: Buffer.from('x'),
        qos: 0 as const,
        retain: false,
      },
    }),
  ],
];

/**
 * Asserts a connected device may subscribe to its own errors topic only: `#`, `$SYS/#`, a
 * wildcard over every device and another device's errors topic get SUBACK 0x80, and the
 * connection stays up. Ends the client.
 */
export async function expectOwnErrorsTopicOnly(client: MqttClient, dev: SeedDevice) {
  const forbidden = ['#', '$SYS/#', 'sensors/+/+/telemetry', errorsTopic(seedDevice(dev.type, 1))];
  for (const topic of forbidden) {
    // MQTT.js turns a 0x80 return code into an error carrying the SUBACK packet.
    await expect(client.subscribeAsync(topic, { qos: 1 }), topic).rejects.toMatchObject({
      packet: { cmd: 'suback', granted: [0x80] },
    });
  }
  expect(client.connected).toBe(true);
  const granted = await client.subscribeAsync(errorsTopic(dev), { qos: 1 });
  expect(granted.map((g) => g.qos)).toEqual([1]);
  await client.endAsync();
}

/** Aggregate queries answered 400: [query string, the parameter the message names, message]. */
export const BAD_AGGREGATE_PARAMS: readonly [string, string, RegExp][] = [
  ['type=nope&field=x&fn=mean', 'type', /unknown device type "nope"/],
  ['type=air-quality&field=nope&fn=mean', 'field', /"nope" is not a field of air-quality/],
  [
    'type=air-quality&field=pm25_ugm3&fn=avg',
    'fn',
    /must be equal to one of the allowed values: mean, min/,
  ],
  ['type=air-quality&field=pm25_ugm3&fn=mean&from=yesterday', 'from', /is not a time/],
  ['type=air-quality&field=pm25_ugm3&fn=mean&from=now&to=now-1h', 'from', /must be before to/],
  [
    'type=air-quality&field=pm25_ugm3&fn=mean&every=1ms&from=now-1d',
    'every',
    /buckets between from and to; at most/,
  ],
  ['type=air-quality&field=pm25_ugm3&fn=mean&every=soon', 'every', /not a positive duration/],
  [
    'type=air-quality&field=pm25_ugm3&fn=mean&groupBy=street',
    'groupBy',
    /allowed values: device, district, site/,
  ],
  [
    'type=air-quality&field=pm25_ugm3&fn=mean&district=atlantis',
    'district',
    /unknown district "atlantis"/,
  ],
  ['field=pm25_ugm3&fn=mean', 'type', /is required/],
  ['type=air-quality&field=pm25_ugm3,nope&fn=mean', 'field', /"nope" is not a field/],
  [
    'type=air-quality&field=pm25_ugm3&fn=mean&from=now-400d&every=1d',
    'from',
    /longer than the 366 days/,
  ],
];

/**
 * MQTT 3.1.1 conformance of the built gateway (default configuration) on raw sockets: the
 * protocol violations that close a connection, and the MUSTs Aedes holds behind Taihu's
 * hooks, one behaviour each. docs/mqtt-conformance.md maps every clause to its test here.
 */
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { errorsTopic, eventually, seedDevice, telemetryTopic } from '../helpers/clients.js';
import { type RunningGateway, useGateway } from '../helpers/gateway.js';
import { deviceCreds, deviceSession, stored } from '../helpers/raw-device.js';
import {
  connectPacket,
  DISCONNECT,
  PINGREQ,
  publishPacket,
  rawSession,
  subscribePacket,
  unsubscribePacket,
  type ConnectFields,
  type RawSession,
} from '../fuzz/raw-mqtt.js';

let gw: RunningGateway;
useGateway((g) => (gw = g));

/** Sends every violation of this file; nothing it sends after one may be stored. */
const offender = seedDevice('air-quality', 19);
/** Connects after each violation: the gateway still serves devices. */
const bystander = seedDevice('air-quality', 20);

/** Readings with distinct timestamps (one series overwrites on equal timestamps). */
const BASE = Date.now() - 30 * 60_000;
let readings = 0;
const reading = (pm25: number) =>
  JSON.stringify({
    ts: BASE + ++readings,
    seq: readings,
    data: { pm25_ugm3: pm25, pm10_ugm3: 1, no2_ugm3: 1 },
  });

/** Before the violation: may be stored, and must be once acknowledged. */
const BEFORE_PM25 = 1;
/** After the violation: must never be stored. */
const AFTER_PM25 = 500;

const cmds = (s: RawSession) => s.packets.map((p) => p.cmd);
const ackedIds = (s: RawSession) =>
  s.packets.flatMap((p) => (p.cmd === 'puback' && p.messageId !== undefined ? [p.messageId] : []));

/** The bystander connects, publishes at QoS 1, is acknowledged, and its reading is stored. */
async function bystanderIsServed(): Promise<void> {
  const before = await stored(gw, bystander);
  const s = await deviceSession(gw, bystander);
  await s.send(
    publishPacket({ topic: telemetryTopic(bystander), payload: reading(1), qos: 1, messageId: 1 }),
  );
  expect(await s.next('puback')).toMatchObject({ messageId: 1 });
  s.end();
  // The spool drains in order: once this reading is stored, any reading the offender got
  // in before it is stored too, so the offender's count below is final.
  await eventually(async () => (await stored(gw, bystander)).count === before.count + 1, 10_000);
}

/** What the offender has stored now, against `before`: at most the reading before the violation. */
async function expectNothingStoredAfter(
  before: { count: number; sum: number },
  acked: number[],
): Promise<void> {
  const now = await stored(gw, offender);
  const added = now.sum - before.sum;
  expect(added, 'readings stored from the violating connection').toBeLessThan(AFTER_PM25);
  expect([0, BEFORE_PM25]).toContain(added);
  if (acked.includes(1)) expect(added).toBe(BEFORE_PM25);
}

const ack = (type: number, id: number, extra: number[] = []) =>
  Buffer.from([type, 2 + extra.length, id >> 8, id & 0xff, ...extra]);
const withFlags = (b: Buffer, flags: number) => {
  const out = Buffer.from(b);
  out[0] = (out[0] as number) | flags;
  return out;
};

describe('a device that breaks the protocol after CONNECT is disconnected', () => {
  const topic = telemetryTopic(offender);
  const violations: [string, () => Buffer][] = [
    ['a PUBACK of Remaining Length 3 [MQTT-4.8.0-1]', () => ack(0x40, 1, [0])],
    ['a PUBACK of Remaining Length 1 [MQTT-4.8.0-1]', () => Buffer.from([0x40, 1, 1])],
    ['a PUBREC of Remaining Length 0 [MQTT-4.8.0-1]', () => Buffer.from([0x50, 0])],
    ['a PUBREC of Remaining Length 3 [MQTT-4.8.0-1]', () => ack(0x50, 1, [0])],
    ['a PUBCOMP of Remaining Length 4 [MQTT-4.8.0-1]', () => ack(0x70, 1, [0, 0])],
    ['a PUBREL of Remaining Length 3 [MQTT-4.8.0-1]', () => ack(0x62, 1, [0])],
    ['a PUBREL with flags 0000 [MQTT-3.6.1-1]', () => ack(0x60, 1)],
    ['a PUBREL with flags 0011 [MQTT-3.6.1-1]', () => ack(0x63, 1)],
    ['a PUBACK with packet identifier 0 [MQTT-2.3.1-1]', () => ack(0x40, 0)],
    ['a PUBREC with packet identifier 0 [MQTT-2.3.1-1]', () => ack(0x50, 0)],
    ['a PUBREL with packet identifier 0 [MQTT-2.3.1-1]', () => ack(0x62, 0)],
    ['a PUBCOMP with packet identifier 0 [MQTT-2.3.1-1]', () => ack(0x70, 0)],
    ['a PINGREQ with a payload [MQTT-4.8.0-1]', () => Buffer.from([0xc0, 1, 0])],
    ['a DISCONNECT with a payload [MQTT-4.8.0-1]', () => Buffer.from([0xe0, 2, 0, 0])],
    [
      'a QoS 0 PUBLISH with DUP set [MQTT-3.3.1-2]',
      () => withFlags(publishPacket({ topic, payload: reading(AFTER_PM25) }), 0x08),
    ],
    // The filters Aedes's own check lets through as literal filters, and one it catches.
    [
      'a SUBSCRIBE filter whose + shares a level [MQTT-4.7.1-3]',
      () => subscribePacket(2, [['sensors/air-quality/+x', 1]]),
    ],
    [
      'a SUBSCRIBE filter whose # shares a level [MQTT-4.7.1-2]',
      () => subscribePacket(2, [['a#', 1]]),
    ],
    [
      'an UNSUBSCRIBE filter whose + and # share a level [MQTT-4.7.1-2] [MQTT-4.7.1-3]',
      () => unsubscribePacket(2, ['+#']),
    ],
    [
      'a SUBSCRIBE filter whose # is not last [MQTT-4.7.1-2]',
      () => subscribePacket(2, [['sensors/#/errors', 1]]),
    ],
    [
      'a SUBSCRIBE whose requested-QoS byte has a reserved bit set [MQTT-3-8.3-4]',
      () => subscribePacket(2, [[errorsTopic(offender), 0x05]]),
    ],
    [
      'a SUBSCRIBE requesting QoS 3 [MQTT-3-8.3-4]',
      () => subscribePacket(2, [[errorsTopic(offender), 3]]),
    ],
  ];

  it.each(violations)(
    'closes on %s, stores nothing sent after it, and serves the next device',
    async (_name, bad) => {
      const before = await stored(gw, offender);
      const s = await deviceSession(gw, offender);
      // One write: a valid reading, the violation, a valid reading.
      await s.send(
        publishPacket({ topic, payload: reading(BEFORE_PM25), qos: 1, messageId: 1 }),
        bad(),
        publishPacket({ topic, payload: reading(AFTER_PM25), qos: 1, messageId: 3 }),
      );
      expect(await s.closesWithin(2000)).toBe(true);
      const acked = ackedIds(s);
      expect(acked).not.toContain(3);
      // Nothing else is answered: no SUBACK, UNSUBACK, PINGRESP, PUBREL or PUBCOMP.
      expect(cmds(s).filter((c) => c !== 'connack' && c !== 'puback')).toEqual([]);
      await bystanderIsServed();
      await expectNothingStoredAfter(before, acked);
    },
  );
});

describe('a CONNECT of a protocol level the broker does not speak', () => {
  const cases: [string, Partial<ConnectFields>][] = [
    ['MQTT 5 ("MQTT", level 5)', { level: 5 }],
    ['an unknown level of MQTT (7)', { level: 7 }],
    ['"MQTT" with the 3.1 level (3)', { level: 3 }],
    ['"MQIsdp" with the 3.1.1 level (4)', { protocolName: 'MQIsdp', level: 4 }],
  ];
  it.each(cases)(
    'gets CONNACK 0x01 and nothing else for %s, is closed, stores nothing [MQTT-3.1.2-2]',
    async (_name, fields) => {
      const before = await stored(gw, offender);
      const s = await rawSession(gw.ports.mqtt);
      await s.send(
        connectPacket({ ...deviceCreds(gw, offender), ...fields }),
        publishPacket({
          topic: telemetryTopic(offender),
          payload: reading(AFTER_PM25),
          qos: 1,
          messageId: 3,
        }),
      );
      expect(await s.closesWithin(2000)).toBe(true);
      expect(s.packets).toHaveLength(1);
      expect(s.packets[0]).toMatchObject({ cmd: 'connack', returnCode: 1, sessionPresent: false });
      expect(s.garbage).toEqual([]);
      await bystanderIsServed();
      await expectNothingStoredAfter(before, []);
    },
  );

  it('closes, without CONNACK, a CONNECT whose protocol name is not MQTT [MQTT-3.1.2-1]', async () => {
    const s = await rawSession(gw.ports.mqtt);
    await s.send(connectPacket({ ...deviceCreds(gw, offender), protocolName: 'MQTX' }));
    expect(await s.closesWithin(2000)).toBe(true);
    expect(s.packets).toEqual([]);
  });
});

describe('MQTT 3.1 devices', () => {
  it('connect with "MQIsdp" level 3, publish, and are stored', async () => {
    const d = seedDevice('air-quality', 21);
    const before = await stored(gw, d);
    const s = await deviceSession(gw, d, { protocolName: 'MQIsdp', level: 3 });
    await s.send(
      publishPacket({ topic: telemetryTopic(d), payload: reading(7), qos: 1, messageId: 1 }),
      PINGREQ,
    );
    expect(await s.next('puback')).toMatchObject({ messageId: 1 });
    expect(await s.next('pingresp')).toBeDefined();
    await s.send(DISCONNECT);
    await s.closed;
    await eventually(async () => (await stored(gw, d)).count === before.count + 1, 10_000);
    expect((await stored(gw, d)).sum - before.sum).toBe(7);
  });
});

describe('CONNECT handling held by Aedes behind Taihu hooks', () => {
  it('sends nothing but CONNACK 0x05, with Session Present 0, to a refused CONNECT, and processes nothing after it [MQTT-3.1.4-5] [MQTT-3.2.2-4]', async () => {
    const d = seedDevice('air-quality', 22);
    // A stored session (a subscription), so that Session Present 1 would be possible.
    const first = await deviceSession(gw, d, { clean: false });
    await first.send(subscribePacket(1, [[errorsTopic(d), 1]]));
    expect(await first.next('suback')).toMatchObject({ granted: [1] });
    await first.send(DISCONNECT);
    await first.closed;
    try {
      const before = await stored(gw, d);
      const s = await rawSession(gw.ports.mqtt);
      await s.send(
        connectPacket({ ...deviceCreds(gw, d), clean: false, password: 'not-the-secret' }),
        publishPacket({ topic: telemetryTopic(d), payload: reading(3), qos: 1, messageId: 1 }),
        PINGREQ,
      );
      expect(await s.closesWithin(3000)).toBe(true);
      expect(s.packets).toHaveLength(1);
      expect(s.packets[0]).toMatchObject({ cmd: 'connack', returnCode: 5, sessionPresent: false });
      await bystanderIsServed();
      expect(await stored(gw, d)).toEqual(before);
    } finally {
      // Leave no session behind.
      const clean = await deviceSession(gw, d, { clean: true });
      await clean.send(DISCONNECT);
      await clean.closed;
    }
  });

  it('disconnects the connection of a client id that connects again [MQTT-3.1.4-2]', async () => {
    const d = seedDevice('air-quality', 23);
    const first = await deviceSession(gw, d);
    const second = await deviceSession(gw, d);
    expect(await first.closesWithin(2000)).toBe(true);
    await second.send(PINGREQ);
    expect(await second.next('pingresp')).toBeDefined();
    expect(second.isClosed()).toBe(false);
    second.end();
  });

  it('closes a connection that sends nothing for 1.5 × its Keep Alive, and keeps one that pings [MQTT-3.1.2-24]', async () => {
    const d = seedDevice('air-quality', 23);
    const silent = await deviceSession(gw, d, { keepalive: 1 });
    expect(await silent.closesWithin(5000)).toBe(true);
    const pinging = await deviceSession(gw, d, { keepalive: 1 });
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 500));
      await pinging.send(PINGREQ);
    }
    expect(pinging.isClosed()).toBe(false);
    expect(pinging.packets.filter((p) => p.cmd === 'pingresp').length).toBeGreaterThan(0);
    pinging.end();
  });

  it('publishes the Will of a connection that drops, and discards it on DISCONNECT [MQTT-3.1.2-8] [MQTT-3.14.4-3]', async () => {
    const d = seedDevice('air-quality', 24);
    // A status Will that is not "online"/"offline" is recorded as STATUS_INVALID when published.
    const will = { topic: `sensors/air-quality/${d.id}/status`, payload: 'gone', qos: 1 };
    const codes = async (): Promise<string[]> =>
      (await gw.api(`/api/v1/rejections?device=${d.id}`)).body.items.map((r: any) => r.code);

    const polite = await deviceSession(gw, d, { will });
    await polite.send(DISCONNECT);
    await polite.closed;
    const dropped = await deviceSession(gw, d, { will });
    dropped.end();
    // The dropped connection's Will arrives; had the first one been published too, it
    // would have been recorded before it.
    await eventually(async () => (await codes()).length > 0, 5000);
    await bystanderIsServed();
    expect(await codes()).toEqual(['STATUS_INVALID']);
  });
});

describe('packets Aedes answers', () => {
  const d = seedDevice('air-quality', 25);

  it('answers PINGREQ with PINGRESP [MQTT-3.12.4-1], and UNSUBSCRIBE of nothing with an UNSUBACK of its packet identifier [MQTT-3.10.4-4] [MQTT-3.10.4-5]', async () => {
    const s = await deviceSession(gw, d);
    await s.send(PINGREQ, unsubscribePacket(77, [errorsTopic(d)]));
    expect(await s.next('pingresp')).toBeDefined();
    expect(await s.next('unsuback')).toMatchObject({ messageId: 77 });
    expect(s.isClosed()).toBe(false);
    s.end();
  });

  it('compares filters byte for byte: U+FEFF is neither stripped nor normalised away [MQTT-1.5.3-3] [MQTT-4.7.3-4]', async () => {
    const s = await deviceSession(gw, d);
    // Its own errors topic is the only filter a device may hold (SUBACK 0x80 otherwise).
    await s.send(
      subscribePacket(5, [
        [`\uFEFF${errorsTopic(d)}`, 1],
        [`${errorsTopic(d)}\uFEFF`, 1],
        [errorsTopic(d), 1],
      ]),
    );
    expect(await s.next('suback')).toMatchObject({ messageId: 5, granted: [128, 128, 1] });
    s.end();
  });

  it('treats a QoS 1 PUBLISH reusing an acknowledged packet identifier as a new message [MQTT-4.3.2-2]', async () => {
    const before = await stored(gw, d);
    const s = await deviceSession(gw, d);
    const pub = (pm25: number) =>
      publishPacket({ topic: telemetryTopic(d), payload: reading(pm25), qos: 1, messageId: 9 });
    await s.send(pub(10));
    expect(await s.next('puback')).toMatchObject({ messageId: 9 });
    await s.send(pub(20));
    await eventually(async () => ackedIds(s).length === 2);
    s.end();
    await eventually(async () => (await stored(gw, d)).count === before.count + 2, 10_000);
    expect((await stored(gw, d)).sum - before.sum).toBe(30);
  });

  it('acknowledges QoS 1 readings in the order they arrived', async () => {
    const before = await stored(gw, d);
    const s = await deviceSession(gw, d);
    const ids = Array.from({ length: 30 }, (_, i) => i + 100);
    await s.send(
      ...ids.map((id) =>
        publishPacket({ topic: telemetryTopic(d), payload: reading(1), qos: 1, messageId: id }),
      ),
    );
    await eventually(async () => ackedIds(s).length === ids.length, 10_000);
    expect(ackedIds(s)).toEqual(ids);
    s.end();
    await eventually(async () => (await stored(gw, d)).count === before.count + ids.length, 10_000);
  });

  it('completes a QoS 2 exchange with PUBREC and PUBCOMP of its packet identifier, storing the reading once [MQTT-4.3.3-2]', async () => {
    const before = await stored(gw, d);
    const s = await deviceSession(gw, d);
    await s.send(
      publishPacket({ topic: telemetryTopic(d), payload: reading(40), qos: 2, messageId: 11 }),
    );
    expect(await s.next('pubrec')).toMatchObject({ messageId: 11 });
    await s.send(Buffer.from([0x62, 2, 0, 11]));
    expect(await s.next('pubcomp')).toMatchObject({ messageId: 11 });
    s.end();
    await eventually(async () => (await stored(gw, d)).count === before.count + 1, 10_000);
    expect((await stored(gw, d)).sum - before.sum).toBe(40);
  });

  it('stores a QoS 2 reading sent again before PUBREL once, on the same connection and after a reconnect [MQTT-4.3.3-2]', async () => {
    const d = seedDevice('air-quality', 21);
    // No ts: a second delivery would be a second reading, not an overwrite.
    const payload = JSON.stringify({ data: { pm25_ugm3: 2, pm10_ugm3: 1, no2_ugm3: 1 } });
    const pub = (dup: boolean) =>
      withFlags(
        publishPacket({ topic: telemetryTopic(d), payload, qos: 2, messageId: 21 }),
        dup ? 0x08 : 0,
      );
    const before = await stored(gw, d);
    const s = await deviceSession(gw, d, { clean: false });
    await s.send(pub(false));
    expect(await s.next('pubrec')).toMatchObject({ messageId: 21 });
    await s.send(pub(true));
    await eventually(async () => s.packets.filter((p) => p.cmd === 'pubrec').length === 2);
    s.end();
    await s.closed;
    const t = await deviceSession(gw, d, { clean: false });
    await t.send(pub(true));
    expect(await t.next('pubrec')).toMatchObject({ messageId: 21 });
    await t.send(Buffer.from([0x62, 2, 0, 21]));
    expect(await t.next('pubcomp')).toMatchObject({ messageId: 21 });
    await t.send(DISCONNECT);
    await bystanderIsServed();
    expect((await stored(gw, d)).sum - before.sum).toBe(2);
    const clean = await deviceSession(gw, d, { clean: true });
    await clean.send(DISCONNECT);
  });

  it('answers a 1-23 alphanumeric client id that is not the user name with CONNACK 0x05, not 0x02 [MQTT-3.1.3-5]', async () => {
    const d = seedDevice('air-quality', 22);
    const plain = await rawSession(gw.ports.mqtt);
    await plain.send(connectPacket({ ...deviceCreds(gw, d), clientId: 'Station42' }));
    expect(await plain.next('connack')).toMatchObject({ returnCode: 5 });
    plain.end();
    const dashed = await rawSession(gw.ports.mqtt);
    await dashed.send(connectPacket({ ...deviceCreds(gw, d), clientId: 'station-42' }));
    expect(await dashed.next('connack')).toMatchObject({ returnCode: 2 });
    dashed.end();
  });

  it('delivers its rejection notice as a QoS 1 PUBLISH with a packet identifier, DUP 0 and RETAIN 0 [MQTT-2.3.1-1] [MQTT-3.3.1-9] [MQTT-3.8.4-6]', async () => {
    const s = await deviceSession(gw, d);
    await s.send(subscribePacket(1, [[errorsTopic(d), 2]]));
    expect(await s.next('suback')).toMatchObject({ granted: [2] });
    // Granted QoS 2, published at QoS 1: delivered at the lower of the two.
    await s.send(
      publishPacket({ topic: telemetryTopic(d), payload: 'not json', qos: 1, messageId: 4 }),
    );
    const notice = await s.next('publish');
    expect(notice).toMatchObject({ topic: errorsTopic(d), qos: 1, dup: false, retain: false });
    expect(notice && 'messageId' in notice ? notice.messageId : 0).toBeGreaterThan(0);
    s.end();
  });
});

describe('MQTT over WebSocket', () => {
  const open = (protocols: string[]) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${gw.ports.ws}/mqtt`, protocols);
      ws.once('open', () => resolve(ws)).once('error', reject);
    });

  it('selects the "mqtt" subprotocol [MQTT-6.0.0-4]', async () => {
    const ws = await open(['mqttv3.1', 'mqtt']);
    expect(ws.protocol).toBe('mqtt');
    ws.terminate();
  });

  it('closes the connection on a text frame, even one holding a valid CONNECT [MQTT-6.0.0-1]', async () => {
    const d = seedDevice('air-quality', 25);
    const ws = await open(['mqtt']);
    const got: Buffer[] = [];
    ws.on('message', (m: Buffer) => got.push(m));
    const closed = new Promise<void>((r) => ws.once('close', () => r()));
    ws.send(connectPacket(deviceCreds(gw, d)).toString('latin1'));
    await closed;
    expect(Buffer.concat(got).length).toBe(0);
  });

  it('reads a CONNECT split over two binary frames [MQTT-6.0.0-2]', async () => {
    const d = seedDevice('air-quality', 25);
    const ws = await open(['mqtt']);
    const got: Buffer[] = [];
    ws.on('message', (m: Buffer) => got.push(m));
    const connect = connectPacket(deviceCreds(gw, d));
    ws.send(connect.subarray(0, 5));
    ws.send(connect.subarray(5));
    await eventually(async () => Buffer.concat(got).length >= 4);
    expect(Buffer.concat(got).subarray(0, 4)).toEqual(Buffer.from([0x20, 0x02, 0x00, 0x00]));
    ws.terminate();
  });
});

/**
 * Issue 5, MQTT layer: the built gateway against hostile bytes on raw sockets (packets no
 * client library will write), hostile clients (MQTT.js, ws) and floods. Every case is one
 * behaviour; "closed" means the broker closed the connection without answering.
 */
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectAs,
  errorsTopic,
  eventually,
  run,
  seedDevice,
  type SeedDevice,
  sleep,
  telemetryTopic,
} from '../helpers/clients.js';
import { requirePythonModule } from '../../support/tools.js';
import { runTaihu, startGateway, type RunningGateway } from '../helpers/gateway.js';
import {
  connectPacket,
  DISCONNECT,
  PINGREQ,
  varint,
  publishPacket,
  rawSession,
  subscribePacket,
  type ConnectFields,
  type RawSession,
} from '../fuzz/raw-mqtt.js';

let gw: RunningGateway;
let limited: RunningGateway;
let dev: RunningGateway;
beforeAll(async () => {
  [gw, limited, dev] = await Promise.all([
    startGateway({
      env: {
        TAIHU_MQTT_CONNECT_TIMEOUT: '1s',
        TAIHU_DEVICE_RATE: '10',
        TAIHU_DEVICE_BURST: '10',
        TAIHU_MQTT_IDLE_TIMEOUT: '2s',
      },
    }),
    startGateway({
      env: {
        TAIHU_MAX_CONNECTIONS: '5',
        TAIHU_MAX_CONNECTIONS_PER_IP: '3',
        TAIHU_DEVICE_MAX_INFLIGHT: '4',
        TAIHU_COMMIT_WINDOW: '300ms',
        TAIHU_LOG_LEVEL: 'debug',
        TAIHU_MQTT_KEEPALIVE_ZERO: 'refuse',
      },
    }),
    startGateway({ env: { TAIHU_MQTT_AUTH: 'off' } }),
  ]);
});
afterAll(async () => {
  for (const g of [gw, limited, dev]) {
    await g?.stop();
    g?.cleanup();
  }
});

const VALID = JSON.stringify({ data: { pm25_ugm3: 1, pm10_ugm3: 1, no2_ugm3: 1 } });
/** Distinct timestamps: readings of one series with the same timestamp overwrite each other. */
const reading = (i: number) =>
  JSON.stringify({
    ts: Date.now() - 60_000 + i,
    seq: i,
    data: { pm25_ugm3: 1, pm10_ugm3: 1, no2_ugm3: 1 },
  });
const creds = (g: RunningGateway, d: SeedDevice): ConnectFields => ({
  clientId: d.id,
  username: d.id,
  password: g.secret(d.id),
});

/** A raw session that sent CONNECT and got CONNACK 0. */
async function session(g: RunningGateway, d: SeedDevice, extra: Partial<ConnectFields> = {}) {
  const s = await rawSession(g.ports.mqtt);
  await s.send(connectPacket({ ...creds(g, d), ...extra }));
  const connack = await s.next('connack');
  expect(connack).toMatchObject({ returnCode: 0 });
  return s;
}

/** Sends bytes on a fresh socket; what the broker answered and whether it closed. */
async function answer(g: RunningGateway, ...bytes: Buffer[]) {
  const s = await rawSession(g.ports.mqtt);
  await s.send(...bytes);
  const closed = await s.closesWithin(1500);
  s.end();
  return { closed, packets: s.packets.map((p) => p.cmd), returnCode: connackCode(s) };
}

function connackCode(s: RawSession): number | undefined {
  const p = s.packets.find((x) => x.cmd === 'connack');
  return p && 'returnCode' in p ? p.returnCode : undefined;
}

/** Readings stored for a device (any type), over the last hour. */
async function storedCount(g: RunningGateway, d: SeedDevice, field = 'pm25_ugm3') {
  const res = await g.api(
    `/api/v1/aggregates?type=${d.type}&field=${field}&fn=count&every=1d&from=now-1h&to=now&device=${d.id}&fill=none`,
  );
  expect(res.status).toBe(200);
  return (res.body.series as any[]).reduce(
    (n, s) => n + s.points.reduce((m: number, p: any) => m + p.count, 0),
    0,
  );
}

/** The stored count once the spool has drained at least `atLeast` readings (drain: ~250 ms). */
async function drainedCount(g: RunningGateway, d: SeedDevice, atLeast: number) {
  await eventually(async () => (await storedCount(g, d)) >= atLeast, 10_000);
  await sleep(500);
  return storedCount(g, d);
}

async function rejections(g: RunningGateway, d: SeedDevice): Promise<any[]> {
  return (await g.api(`/api/v1/rejections?device=${d.id}`)).body.items;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1]);
}

describe('bytes before CONNECT and packet size', () => {
  it('drops a first packet declaring 256 MB after its 5 header bytes, and memory stays flat', async () => {
    const pid = gw.process.pid!;
    const before = rssKb(pid);
    const s = await rawSession(gw.ports.mqtt);
    const started = Date.now();
    s.socket.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f])); // CONNECT, 268,435,455 bytes
    // Keep pushing body bytes as a flooder would: 32 MB unless the broker closes first.
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    let sent = 0;
    while (sent < 32 * 1024 * 1024 && !s.isClosed()) {
      await new Promise<void>((r) => s.socket.write(chunk, () => r()));
      sent += chunk.length;
    }
    expect(await s.closesWithin(2000)).toBe(true);
    const closedAfterMs = Date.now() - started;
    await sleep(200);
    const after = rssKb(pid);
    console.log(
      `256 MB-declared CONNECT: closed after ${closedAfterMs} ms, ${(sent / 1048576).toFixed(1)} MB pushed by the client, gateway RSS ${before} kB → ${after} kB`,
    );
    expect(closedAfterMs).toBeLessThan(1000);
    expect(after - before).toBeLessThan(16 * 1024);
  });

  it('closes a connection sending a packet over TAIHU_MAX_PACKET_BYTES after CONNECT', async () => {
    const d = seedDevice('air-quality', 0);
    const s = await session(gw, d);
    // 262144 + 4096 is the default limit; declare one byte more.
    await s.send(Buffer.from([0x30]), varint(262_144 + 4096 + 1));
    expect(await s.closesWithin(1000)).toBe(true);
    s.end();
  });

  it.each([
    ['a PUBLISH', publishPacket({ topic: 'a/b', payload: 'x' })],
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['a PINGREQ', PINGREQ],
    ['a TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])],
  ])('closes a connection whose first packet is %s, without answering', async (_n, bytes) => {
    expect(await answer(gw, bytes)).toEqual({ closed: true, packets: [], returnCode: undefined });
  });

  it('closes a connection that sends a second CONNECT [MQTT-3.1.0-2]', async () => {
    const d = seedDevice('air-quality', 1);
    const s = await session(gw, d);
    await s.send(connectPacket(creds(gw, d)));
    expect(await s.closesWithin(1000)).toBe(true);
  });

  it('refuses a WebSocket message larger than a packet may be (close code 1009)', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${gw.ports.ws}/mqtt`, 'mqtt');
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.on('error', () => {});
    ws.send(Buffer.alloc(2 * 1024 * 1024));
    expect(await closed).toBe(1009);
  });
});

describe('idle sockets and connection limits', () => {
  it('closes a socket that sends nothing within TAIHU_MQTT_CONNECT_TIMEOUT (1 s here)', async () => {
    const s = await rawSession(gw.ports.mqtt);
    const t0 = Date.now();
    expect(await s.closesWithin(3000)).toBe(true);
    expect(Date.now() - t0).toBeGreaterThan(800);
  });

  it('closes a socket that sends half a CONNECT and stalls', async () => {
    const s = await rawSession(gw.ports.mqtt);
    await s.send(connectPacket({ clientId: 'slow' }).subarray(0, 7));
    expect(await s.closesWithin(3000)).toBe(true);
  });

  it('closes a WebSocket-port socket that never upgrades', async () => {
    const s = await rawSession(gw.ports.ws);
    await s.send(Buffer.from('GET /mqtt HTTP/1.1\r\n'));
    expect(await s.closesWithin(4000)).toBe(true);
  });

  it('closes sockets over the per-IP limit at accept, and over the total limit', async () => {
    const open = (localAddress: string) => rawSession(limited.ports.mqtt, { localAddress });
    const held: RawSession[] = [];
    try {
      for (let i = 0; i < 3; i++) held.push(await open('127.0.0.1'));
      const fourth = await open('127.0.0.1');
      expect(await fourth.closesWithin(1000), 'fourth from one IP').toBe(true);
      held.push(await open('127.0.0.2'), await open('127.0.0.2'));
      for (const s of held) expect(s.isClosed()).toBe(false);
      const sixth = await open('127.0.0.3');
      expect(await sixth.closesWithin(1000), 'sixth in total').toBe(true);
      held.shift()?.end();
      await sleep(100);
      const again = await open('127.0.0.3');
      expect(await again.closesWithin(300), 'a freed slot is usable').toBe(false);
      held.push(again);
      // An admitted socket is a normal MQTT connection.
      const d = seedDevice('air-quality', 2);
      await again.send(connectPacket(creds(limited, d)));
      expect(await again.next('connack')).toMatchObject({ returnCode: 0 });
    } finally {
      for (const s of held) s.end();
    }
  });
});

describe('strings: U+0000, invalid UTF-8, lone surrogates, U+FFFF, wildcards, size', () => {
  const id = seedDevice('air-quality', 3).id;
  const withBytes = (s: string, bytes: number[]) =>
    Buffer.concat([Buffer.from(s), Buffer.from(bytes)]);
  const cases: [string, Partial<ConnectFields>, 'closed' | number][] = [
    ['a client id with U+0000', { clientId: `${id}\u0000` }, 'closed'],
    [
      'a client id with invalid UTF-8 (decoded to U+FFFD by mqtt-packet)',
      { clientId: withBytes(id, [0xc3]) },
      'closed',
    ],
    [
      'a client id with a lone surrogate',
      { clientId: withBytes(id, [0xed, 0xa0, 0x80]) },
      'closed',
    ],
    ['a client id with U+FFFF', { clientId: withBytes(id, [0xef, 0xbf, 0xbf]) }, 'closed'],
    ['a client id with +', { clientId: 'aq-+' }, 2],
    ['a client id with #', { clientId: '#' }, 2],
    ['a user name with U+0000', { username: `${id}\u0000` }, 'closed'],
    ['a user name with invalid UTF-8', { username: withBytes(id, [0xff]) }, 'closed'],
    [
      'a user name with a lone surrogate',
      { username: withBytes(id, [0xed, 0xbf, 0xbf]) },
      'closed',
    ],
    ['a user name with +', { username: 'aq-+' }, 4],
    ['a user name with #', { username: '#' }, 4],
  ];
  it.each(cases)('refuses a CONNECT with %s', async (_n, extra, expected) => {
    const d = seedDevice('air-quality', 3);
    const r = await answer(gw, connectPacket({ ...creds(gw, d), ...extra }));
    expect(r.closed).toBe(true);
    if (expected === 'closed') expect(r.packets).toEqual([]);
    else expect(r.returnCode).toBe(expected);
  });

  const own = (d: SeedDevice) => telemetryTopic(d);
  const topicCases: [string, (d: SeedDevice) => Buffer | string][] = [
    ['U+0000', (d) => `${own(d)}\u0000`],
    ['invalid UTF-8', (d) => withBytes(own(d), [0xc0, 0xaf])],
    ['a lone surrogate', (d) => withBytes(`sensors/air-quality/${d.id}/`, [0xed, 0xa0, 0x80])],
    ['U+FFFF', (d) => withBytes(own(d), [0xef, 0xbf, 0xbf])],
    ['2,000 bytes', (d) => `${own(d)}/${'x'.repeat(2000)}`],
    ['40 levels', (d) => `${own(d)}${'/x'.repeat(36)}`],
    ['a + wildcard', () => 'sensors/air-quality/+/telemetry'],
  ];
  it.each(topicCases)(
    'closes the connection of a device publishing to a topic with %s, storing nothing',
    async (_n, topic) => {
      const d = seedDevice('air-quality', 4);
      const s = await session(gw, d);
      await s.send(publishPacket({ topic: topic(d), payload: VALID, qos: 1, messageId: 1 }));
      expect(await s.closesWithin(1500)).toBe(true);
      expect(s.packets.map((p) => p.cmd)).toEqual(['connack']);
    },
  );

  it.each([
    ['U+0000', 'sensors/\u0000/#'],
    ['invalid UTF-8', withBytes('sensors/', [0xfe])],
    ['U+FFFF', withBytes('', [0xef, 0xbf, 0xbf])],
    ['41 levels', `a${'/+'.repeat(40)}`],
  ])('closes the connection of a device subscribing to a filter with %s', async (_n, filter) => {
    const d = seedDevice('air-quality', 4);
    const s = await session(gw, d);
    await s.send(subscribePacket(1, [[filter, 1]]));
    expect(await s.closesWithin(1500)).toBe(true);
    expect(s.packets.map((p) => p.cmd)).toEqual(['connack']);
  });

  it('never stored or tagged anything from those connections', async () => {
    for (const n of [3, 4]) {
      const d = seedDevice('air-quality', n);
      expect(await storedCount(gw, d)).toBe(0);
      expect(await rejections(gw, d)).toEqual([]);
    }
    const all = await gw.api(
      '/api/v1/aggregates?type=air-quality&field=pm25_ugm3&fn=count&every=1d&from=now-1h&to=now&groupBy=device&fill=none',
    );
    const seeded = new Set(
      (await gw.api('/api/v1/devices?limit=1000')).body.items.map((x: any) => x.id),
    );
    for (const s of all.body.series) expect(seeded.has(s.group.device)).toBe(true);
  });
});

describe('MQTT 3.1.1 MUSTs that Aedes lets through', () => {
  const d = seedDevice('air-quality', 5);
  it('answers an empty client id with clean session 0 with CONNACK 0x02 and closes [MQTT-3.1.3-8]', async () => {
    const r = await answer(gw, connectPacket({ ...creds(gw, d), clientId: '', clean: false }));
    expect(r).toMatchObject({ closed: true, returnCode: 2 });
  });

  it('closes, without CONNACK, a CONNECT with a password but no user name [MQTT-3.1.2-22]', async () => {
    const r = await answer(gw, connectPacket({ clientId: d.id, password: gw.secret(d.id) }));
    expect(r).toEqual({ closed: true, packets: [], returnCode: undefined });
  });

  it('closes, without CONNACK, a CONNECT with Will QoS 3 [MQTT-3.1.2-14]', async () => {
    const will = { topic: `sensors/air-quality/${d.id}/status`, payload: 'offline', qos: 3 };
    const r = await answer(gw, connectPacket({ ...creds(gw, d), will }));
    expect(r).toEqual({ closed: true, packets: [], returnCode: undefined });
  });

  it.each([1, 2])(
    'closes a connection sending a QoS %i PUBLISH with packet id 0, without ack or storage [MQTT-2.3.1-1]',
    async (qos) => {
      const s = await session(gw, d);
      await s.send(publishPacket({ topic: telemetryTopic(d), payload: VALID, qos, messageId: 0 }));
      expect(await s.closesWithin(1500)).toBe(true);
      expect(s.packets.map((p) => p.cmd)).toEqual(['connack']);
      expect(await storedCount(gw, d)).toBe(0);
    },
  );

  it('closes a connection sending SUBSCRIBE with packet id 0 [MQTT-2.3.1-1]', async () => {
    const s = await session(gw, d);
    await s.send(subscribePacket(0, [[errorsTopic(d), 1]]));
    expect(await s.closesWithin(1500)).toBe(true);
    expect(s.packets.map((p) => p.cmd)).toEqual(['connack']);
  });

  it.each([
    [1201, 2],
    [65535, 2],
    [0, 0],
    [1200, 0],
    [1, 0],
  ])(
    'answers keepalive %i s with CONNACK %i (ceiling 1200 s; 3.1.1 has no code 6 [MQTT-3.2.2-6])',
    async (keepalive, code) => {
      const s = await rawSession(gw.ports.mqtt);
      await s.send(connectPacket({ ...creds(gw, d), keepalive }));
      expect(await s.next('connack')).toMatchObject({ returnCode: code });
      s.end();
    },
  );

  it('refuses keepalive 0 with CONNACK 0x02 where TAIHU_MQTT_KEEPALIVE_ZERO=refuse', async () => {
    const s = await rawSession(limited.ports.mqtt);
    await s.send(connectPacket({ ...creds(limited, d), keepalive: 0 }));
    expect(await s.next('connack')).toMatchObject({ returnCode: 2 });
    expect(await s.closesWithin(1500)).toBe(true);
  });
});

describe('keepalive 0 (MQTT 3.1.1 §3.1.2.10: "turns off the keep alive mechanism")', () => {
  // Debian's mosquitto_pub 2.0.11 refuses `-k 0` itself ("must be between 5 and 65535"), so
  // the other real client here is Debian's Eclipse Paho (python3-paho-mqtt 1.6), keepalive=0.
  it('lets Eclipse Paho connect with keepalive 0 and publish at QoS 1, and stores the reading', async () => {
    const d = seedDevice('air-quality', 16);
    const script = [
      'import sys, paho.mqtt.client as mqtt',
      'port, cid, pw, topic, msg = sys.argv[1:6]',
      'c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311)',
      'c.username_pw_set(cid, pw)',
      'c.connect("127.0.0.1", int(port), keepalive=0)',
      'c.loop_start()',
      'info = c.publish(topic, msg, qos=1)',
      'info.wait_for_publish(10)',
      'assert info.is_published(), "no PUBACK"',
      'c.disconnect(); c.loop_stop()',
      'print("acknowledged")',
    ].join('\n');
    requirePythonModule(
      'paho.mqtt.client',
      'python3-paho-mqtt',
      "Eclipse Paho for Debian's python3",
    );
    const r = await run('/usr/bin/python3', [
      ...['-c', script, String(gw.ports.mqtt), d.id, gw.secret(d.id)],
      ...[telemetryTopic(d), reading(1)],
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('acknowledged');
    expect(await drainedCount(gw, d, 1)).toBe(1);
  });

  it('lets MQTT.js connect with keepalive 0, publish, and stores the reading', async () => {
    const d = seedDevice('air-quality', 17);
    const c = await connectAs(gw, d, { keepalive: 0 });
    await c.publishAsync(telemetryTopic(d), reading(1), { qos: 1 });
    await c.endAsync();
    expect(await drainedCount(gw, d, 1)).toBe(1);
  });

  it('closes a silent keepalive-0 connection after TAIHU_MQTT_IDLE_TIMEOUT, not a busy one', async () => {
    const d = seedDevice('air-quality', 18);
    const silent = await session(gw, d, { keepalive: 0 });
    const e = seedDevice('air-quality', 19);
    const busy = await session(gw, e, { keepalive: 0 });
    // The busy one pings every 500 ms for 3 s; the silent one says nothing (idle timeout 2 s).
    for (let i = 0; i < 6; i++) {
      await busy.send(PINGREQ);
      await sleep(500);
    }
    expect(await silent.closesWithin(1000)).toBe(true);
    expect(await busy.closesWithin(300)).toBe(false);
    expect(busy.packets.filter((p) => p.cmd === 'pingresp').length).toBe(6);
    busy.end();
  });
});

describe('ACL: Wills, retained messages, subscriptions, disabled devices', () => {
  it('refuses a Will on another device topic with CONNACK 5, and a Will topic with a wildcard by closing', async () => {
    const d = seedDevice('air-quality', 6);
    const other = seedDevice('air-quality', 7);
    const foreign = { topic: `sensors/air-quality/${other.id}/status`, payload: 'offline', qos: 1 };
    expect(await answer(gw, connectPacket({ ...creds(gw, d), will: foreign }))).toMatchObject({
      closed: true,
      returnCode: 5,
    });
    const wild = { topic: 'sensors/air-quality/#', payload: 'offline', qos: 1 };
    expect(await answer(gw, connectPacket({ ...creds(gw, d), will: wild }))).toEqual({
      closed: true,
      packets: [],
      returnCode: undefined,
    });
  });

  it('refuses #, $SYS/#, other devices and its own status with SUBACK 0x80, grants its errors topic', async () => {
    const d = seedDevice('air-quality', 8);
    const s = await session(gw, d);
    const filters: [string, number][] = [
      ['#', 1],
      ['$SYS/#', 1],
      ['sensors/+/+/status', 1],
      [errorsTopic(seedDevice('air-quality', 9)), 1],
      [`sensors/air-quality/${d.id}/status`, 1],
      [errorsTopic(d), 1],
    ];
    await s.send(subscribePacket(9, filters));
    expect(await s.next('suback')).toMatchObject({ granted: [128, 128, 128, 128, 128, 1] });
    expect(s.isClosed()).toBe(false);
    s.end();
  });

  it('never delivers a retained status to a device that may not read it', async () => {
    const a = seedDevice('air-quality', 10);
    const b = seedDevice('air-quality', 11);
    const status = `sensors/air-quality/${a.id}/status`;
    const ca = await connectAs(gw, a);
    await ca.publishAsync(status, 'online', { qos: 1, retain: true });
    await ca.endAsync();
    const s = await session(gw, b);
    await s.send(
      subscribePacket(1, [
        [status, 1],
        ['sensors/#', 1],
        ['#', 1],
      ]),
    );
    expect(await s.next('suback')).toMatchObject({ granted: [128, 128, 128] });
    await sleep(300);
    expect(s.packets.filter((p) => p.cmd === 'publish')).toEqual([]);
    s.end();
  });

  it('forgets the session and subscriptions of a device disabled while connected', async () => {
    const d = seedDevice('air-quality', 12);
    const persistent = connectPacket({ ...creds(gw, d), clean: false });
    // Baseline: a persistent session with a subscription survives a reconnect.
    const first = await rawSession(gw.ports.mqtt);
    await first.send(persistent, subscribePacket(1, [[errorsTopic(d), 1]]));
    expect(await first.next('suback')).toMatchObject({ granted: [1] });
    await first.send(DISCONNECT);
    await first.closed;
    const second = await rawSession(gw.ports.mqtt);
    await second.send(persistent);
    expect(await second.next('connack')).toMatchObject({ returnCode: 0, sessionPresent: true });

    // Disabled while connected: the connection goes, and so does the session.
    expect((await gw.api(`/api/v1/devices/${d.id}/disable`, { method: 'POST' })).status).toBe(200);
    expect(await second.closesWithin(2000)).toBe(true);
    expect((await gw.api(`/api/v1/devices/${d.id}/enable`, { method: 'POST' })).status).toBe(200);

    const third = await rawSession(gw.ports.mqtt);
    await third.send(persistent);
    expect(await third.next('connack')).toMatchObject({ returnCode: 0, sessionPresent: false });
    // No subscription came back: the rejection notice on its errors topic is not delivered.
    await third.send(
      publishPacket({ topic: telemetryTopic(d), payload: 'not json', qos: 1, messageId: 5 }),
    );
    expect(await third.next('puback')).toBeDefined();
    await sleep(300);
    expect(third.packets.filter((p) => p.cmd === 'publish')).toEqual([]);
    // Leave no session behind.
    await third.send(DISCONNECT);
    await answer(gw, connectPacket({ ...creds(gw, d), clean: true }), DISCONNECT);
  });
});

describe('per-device rate and in-flight limits', () => {
  it('slows a QoS 1 flood over TAIHU_DEVICE_RATE to the rate and stores every message, refusing none', async () => {
    const d = seedDevice('air-quality', 13);
    const s = await session(gw, d);
    const flood = Array.from({ length: 40 }, (_, i) =>
      publishPacket({ topic: telemetryTopic(d), payload: reading(i), qos: 1, messageId: i + 1 }),
    );
    const t0 = performance.now();
    await s.send(...flood);
    await eventually(async () => s.packets.filter((p) => p.cmd === 'puback').length === 40, 15_000);
    const took = performance.now() - t0;
    // Burst 10, then 10 messages/s: the last 30 PUBACKs cannot come sooner than 3 s.
    expect(took).toBeGreaterThan(2_900);
    const acks = s.packets.filter((p) => p.cmd === 'puback').map((p) => (p as any).messageId);
    expect(acks).toEqual(Array.from({ length: 40 }, (_, i) => i + 1)); // in order
    s.end();
    expect(await drainedCount(gw, d, 40)).toBe(40);
    expect(await rejections(gw, d)).toEqual([]);
    const metrics = (await gw.api('/metrics')).body as string;
    expect(metrics).not.toMatch(/taihu_rejections_total\{code="RATE_LIMITED"\}/);
    expect(Number(/taihu_rate_slowed_messages_total (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(25);
  });

  it('drops a QoS 0 flood over TAIHU_DEVICE_RATE beyond the allowance, and counts it as RATE_LIMITED', async () => {
    const d = seedDevice('air-quality', 20);
    const s = await session(gw, d);
    await s.send(subscribePacket(1, [[errorsTopic(d), 0]]));
    await s.next('suback');
    const flood = Array.from({ length: 40 }, (_, i) =>
      publishPacket({ topic: telemetryTopic(d), payload: reading(i), qos: 0 }),
    );
    await s.send(...flood);
    const notice = await s.next('publish', 5000);
    expect(notice && 'payload' in notice && JSON.parse(String(notice.payload))).toMatchObject({
      code: 'RATE_LIMITED',
    });
    s.end();
    const stored = await drainedCount(gw, d, 10);
    expect(stored).toBeGreaterThanOrEqual(10);
    expect(stored).toBeLessThanOrEqual(12); // burst 10, plus at most the refill while sending
    const recorded = await rejections(gw, d);
    expect(recorded.length).toBeGreaterThanOrEqual(1);
    expect(recorded.every((r) => r.code === 'RATE_LIMITED')).toBe(true);
    const metrics = (await gw.api('/metrics')).body as string;
    const counted = /taihu_rejections_total\{code="RATE_LIMITED"\} (\d+)/.exec(metrics);
    expect(Number(counted?.[1])).toBe(40 - stored);
  });

  it('stops reading a device over TAIHU_DEVICE_MAX_INFLIGHT until acks catch up, losing nothing', async () => {
    const d = seedDevice('air-quality', 14);
    const s = await session(limited, d);
    const sends = Array.from({ length: 12 }, (_, i) =>
      publishPacket({ topic: telemetryTopic(d), payload: reading(i), qos: 1, messageId: i + 1 }),
    );
    await s.send(...sends);
    await sleep(50);
    // Held: a PINGREQ written now waits for the commit (300 ms window) before it is read.
    const t0 = Date.now();
    await s.send(PINGREQ);
    await s.next('pingresp', 3000);
    expect(Date.now() - t0).toBeGreaterThan(150);
    await eventually(async () => s.packets.filter((p) => p.cmd === 'puback').length === 12);
    s.end();
    expect(await drainedCount(limited, d, 12)).toBe(12);
    expect(await rejections(limited, d)).toEqual([]);
    expect(limited.logs.some((l) => l.msg === 'in-flight limit: reading paused')).toBe(true);
  });
});

describe('development mode (TAIHU_MQTT_AUTH=off)', () => {
  it('is refused at start unless the MQTT listeners are on loopback, naming the variable', async () => {
    const r = await runTaihu(['start'], {
      TAIHU_MQTT_AUTH: 'off',
      TAIHU_MQTT_HOST: '0.0.0.0',
      TAIHU_MQTT_PORT: '0',
      TAIHU_MQTT_WS_PORT: '0',
      TAIHU_HTTP_PORT: '0',
      TAIHU_DATA_DIR: dev.dataDir + '-refused',
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(/TAIHU_MQTT_AUTH=off .*TAIHU_MQTT_HOST/);
  });

  it('says so loudly at warn level on start', () => {
    const line = dev.logs.find((l) => /AUTHENTICATION IS OFF/.test(l.msg));
    expect(line?.level).toBe(40);
  });

  it('is off by default: a client without credentials is refused', async () => {
    const r = await answer(gw, connectPacket({ clientId: 'lab-bench-1' }));
    expect(r).toMatchObject({ closed: true, returnCode: 5 });
  });

  it('lets anyone publish and subscribe outside sensors/ and $SYS, retained messages included', async () => {
    const a = await mqtt.connectAsync(`mqtt://127.0.0.1:${dev.ports.mqtt}`, {
      clientId: 'lab-a',
      reconnectPeriod: 0,
    });
    await a.publishAsync('lab/retained', 'kept', { qos: 1, retain: true });
    const b = await mqtt.connectAsync(`mqtt://127.0.0.1:${dev.ports.mqtt}`, { reconnectPeriod: 0 });
    const got: string[] = [];
    b.on('message', (t, p) => got.push(`${t}=${p.toString()}`));
    await b.subscribeAsync('lab/#', { qos: 1 });
    await a.publishAsync('lab/live', 'hello', { qos: 1 });
    await eventually(async () => got.length === 2);
    expect(got.sort()).toEqual(['lab/live=hello', 'lab/retained=kept']);
    await a.endAsync();
    await b.endAsync();
  });

  it('still needs device credentials for sensors/, and keeps $SYS closed', async () => {
    const d = seedDevice('air-quality', 15);
    const device = await connectAs(dev, d);
    await device.publishAsync(`sensors/air-quality/${d.id}/status`, 'online', {
      qos: 1,
      retain: true,
    });
    await device.publishAsync(telemetryTopic(d), VALID, { qos: 1 });
    await device.endAsync();
    expect(await drainedCount(dev, d, 1)).toBe(1);

    const anon = await rawSession(dev.ports.mqtt);
    await anon.send(connectPacket({ clientId: 'lab-c' }));
    expect(await anon.next('connack')).toMatchObject({ returnCode: 0 });
    await anon.send(
      subscribePacket(1, [
        ['sensors/#', 1],
        ['$SYS/#', 1],
        ['#', 1],
      ]),
    );
    expect(await anon.next('suback')).toMatchObject({ granted: [128, 128, 1] });
    await sleep(300);
    // '#' brings the open retained message, never the device's retained status.
    const topics = anon.packets.flatMap((p) => (p.cmd === 'publish' ? [p.topic] : []));
    expect(topics).not.toContain(`sensors/air-quality/${d.id}/status`);
    expect(topics.every((t) => !t.startsWith('sensors/') && !t.startsWith('$'))).toBe(true);
    await anon.send(publishPacket({ topic: telemetryTopic(d), payload: VALID, qos: 1 }));
    expect(await anon.closesWithin(1500)).toBe(true);
    expect(await storedCount(dev, d)).toBe(1);

    // A device's client id without its credentials is not anonymous: refused.
    expect(await answer(dev, connectPacket({ clientId: d.id }))).toMatchObject({ returnCode: 5 });
  });
});

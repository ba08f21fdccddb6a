/**
 * Issue 10: three built gateways sharing one Redis (Debian redis-server) and one InfluxDB,
 * behind HAProxy (TCP for MQTT, HTTP for the API), all on loopback, act as one broker and
 * one API: devices spread over the instances, publishes reach subscribers on other
 * instances, every reading is ingested once by the instance that received it, a change made
 * through one instance holds on all of them, persistent sessions move between instances,
 * and neither a kill -9 nor an instance that never returns loses an acknowledged reading.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connect,
  eventually,
  seedDevice,
  sleep,
  telemetryTopic,
  type SeedDevice,
} from '../helpers/clients.js';
import { metric, startCluster, storedReadings, type RunningCluster } from '../helpers/cluster.js';
import { ADMIN_KEY, runTaihu, type RunningGateway } from '../helpers/gateway.js';
import { readStream } from '../helpers/stream.js';

const aq = (n: number) => seedDevice('air-quality', n);
const reading = (base: number, seq: number) =>
  JSON.stringify({
    ts: base + seq * 1000,
    seq,
    data: { pm25_ugm3: seq % 300, pm10_ugm3: 1, no2_ugm3: 1 },
  });

let cluster: RunningCluster;
const clients: MqttClient[] = [];

/** Each instance by its place: A, B and C of the issue. */
const gw = (i: number): RunningGateway => cluster.gateways[i]!;

function track(client: MqttClient): MqttClient {
  client.on('error', () => {});
  clients.push(client);
  return client;
}

/** A device connection to a port (an instance's, or the balancer's). */
async function device(port: number, d: SeedDevice, opts: IClientOptions = {}): Promise<MqttClient> {
  return track(
    await connect(port, { clientId: d.id, username: d.id, password: gw(0).secret(d.id), ...opts }),
  );
}

/** An operator's read-only connection: user name `apikey`, an API key, client id `op:…`. */
async function operator(port: number, key: string, clientId: string, opts: IClientOptions = {}) {
  return track(await connect(port, { clientId, username: 'apikey', password: key, ...opts }));
}

/** Messages arriving on a client, by topic. */
function collect(client: MqttClient): { topic: string; payload: string }[] {
  const got: { topic: string; payload: string }[] = [];
  client.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
  return got;
}

/** Sum of a metric over the instances. */
async function total(name: string, labels = ''): Promise<number[]> {
  return Promise.all(cluster.gateways.map((g) => metric(g, name, labels)));
}

/** The API through the balancer, with the admin key. */
async function lbApi(path: string, init: { method?: string; body?: unknown } = {}) {
  const res = await fetch(`${cluster.lb.url}${path}`, {
    method: init.method ?? 'GET',
    headers: {
      authorization: `Bearer ${ADMIN_KEY}`,
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

beforeAll(async () => {
  cluster = await startCluster(3);
}, 60_000);

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});

afterAll(async () => {
  await cluster?.stop();
}, 30_000);

describe('a cluster of three gateways behind HAProxy', () => {
  it('spreads devices over the instances and reports them from any instance', async () => {
    const devices = [0, 1, 2, 3, 4, 5].map(aq);
    const conns = await Promise.all(devices.map((d) => device(cluster.lb.mqttPort, d)));
    // Round robin: every instance has some (two each, unless a health check flapped).
    await eventually(async () => {
      const counts = await total('taihu_connected_devices');
      return counts.every((n) => n > 0) && counts.reduce((a, b) => a + b) === 6;
    });
    // Each instance writes its devices' state to Redis every 200 ms.
    await eventually(async () => {
      const r = await lbApi(`/api/v1/devices?type=air-quality&status=online`);
      const online = new Set(r.body.items.map((d: any) => d.id));
      return devices.every((d) => online.has(d.id));
    });
    await Promise.all(conns.map((c) => c.endAsync()));
    await eventually(async () => {
      const r = await lbApi(`/api/v1/devices?type=air-quality&status=online`);
      return r.body.items.every((d: any) => !devices.some((x) => x.id === d.id));
    });
  });

  it('delivers a publish on C to operators on A and B, and C alone ingests it', async () => {
    const created = await lbApi('/api/v1/keys', {
      method: 'POST',
      body: { role: 'read', name: 'watch' },
    });
    expect(created.status).toBe(201);
    const key: string = created.body.key;
    // A new key reaches the other instances' copies through the change channel, a moment after
    // the instance that made it answers: connect once each instance knows it.
    const onInstance = (i: number, clientId: string) =>
      eventually(
        async () =>
          (await operator(gw(i).ports.mqtt, key, clientId).catch(() => undefined)) ?? false,
        3000,
      );
    const onA = await onInstance(0, 'op:watch-a');
    const onB = await onInstance(1, 'op:watch-b');
    const gotA = collect(onA);
    const gotB = collect(onB);
    const d = aq(6);
    const topic = telemetryTopic(d);
    expect((await onA.subscribeAsync('sensors/+/+/telemetry', { qos: 1 }))[0]?.qos).toBe(1);
    expect((await onB.subscribeAsync(topic, { qos: 1 }))[0]?.qos).toBe(1);
    // Read-only and within the device namespaces: no `#`, and a publish ends the connection.
    await expect(onA.subscribeAsync('#', { qos: 1 })).rejects.toThrow(/Subscribe error/);

    const before = await total('taihu_ingest_readings_total', 'type="air-quality"');
    const onC = await device(gw(2).ports.mqtt, d);
    const base = Date.now() - 3_600_000;
    for (let s = 0; s < 20; s++) await onC.publishAsync(topic, reading(base, s), { qos: 1 });

    await eventually(async () => gotA.length >= 20 && gotB.length >= 20);
    expect(gotA.map((m) => JSON.parse(m.payload).seq)).toEqual([...Array(20).keys()]);
    expect(gotB.map((m) => m.payload)).toEqual(gotA.map((m) => m.payload));
    const after = await total('taihu_ingest_readings_total', 'type="air-quality"');
    expect(after.map((n, i) => n - before[i]!)).toEqual([0, 0, 20]);
    await eventually(async () => (await storedReadings(cluster.influx.url, [d.id])).points === 20);

    const closed = new Promise<void>((r) => onB.once('close', () => r()));
    onB.publish(topic, reading(base, 99), { qos: 0 });
    await closed;
  });

  it('stores each reading once with subscribers on every instance', async () => {
    const devices = [7, 8, 9, 10, 11, 12, 13, 14, 15].map(aq);
    const watchers = await Promise.all(
      [0, 1, 2].map((i) => operator(gw(i).ports.mqtt, ADMIN_KEY, `op:all-${i}`)),
    );
    const seen = watchers.map(collect);
    await Promise.all(watchers.map((w) => w.subscribeAsync('sensors/air-quality/#', { qos: 1 })));
    const before = (await total('taihu_ingest_readings_total', 'type="air-quality"')).reduce(
      (a, b) => a + b,
    );
    const base = Date.now() - 2 * 3_600_000;
    await Promise.all(
      devices.map(async (d) => {
        const c = await device(cluster.lb.mqttPort, d);
        for (let s = 0; s < 50; s++)
          await c.publishAsync(telemetryTopic(d), reading(base, s), { qos: 1 });
        await c.endAsync();
      }),
    );
    await eventually(async () =>
      seen.every((s) => s.filter((m) => m.topic.endsWith('/telemetry')).length >= 450),
    );
    const after = (await total('taihu_ingest_readings_total', 'type="air-quality"')).reduce(
      (a, b) => a + b,
    );
    expect(after - before).toBe(450);
    const stored = await eventually(async () => {
      const r = await storedReadings(
        cluster.influx.url,
        devices.map((d) => d.id),
      );
      return r.points >= 450 && r;
    }, 10_000);
    expect(stored.points).toBe(450);
    for (const d of devices) {
      expect(
        stored.seqs.get(d.id)?.sort((a, b) => a - b),
        d.id,
      ).toEqual([...Array(50).keys()]);
    }
  });

  it('answers status, latest readings, rejections and aggregates for the whole cluster on every instance', async () => {
    const [x, y] = [aq(16), aq(17)];
    const onA = await device(gw(0).ports.mqtt, x);
    const onC = await device(gw(2).ports.mqtt, y);
    const base = Date.now() - 60_000;
    await onA.publishAsync(telemetryTopic(x), reading(base, 1), { qos: 1 });
    await onA.publishAsync(telemetryTopic(x), '{"data":{"pm25_ugm3":"lots"}}', { qos: 1 });
    await onC.publishAsync(telemetryTopic(y), reading(base, 2), { qos: 1 });
    const from = new Date(base - 3_600_000).toISOString();
    for (const g of cluster.gateways) {
      await eventually(async () => {
        const dx = (await g.api(`/api/v1/devices/${x.id}`)).body;
        const dy = (await g.api(`/api/v1/devices/${y.id}`)).body;
        return dx.status === 'online' && dx.last?.seq === 1 && dy.last?.seq === 2;
      });
      const latest = (await g.api('/api/v1/latest?type=air-quality')).body.items;
      expect(latest.map((l: any) => l.id)).toEqual(expect.arrayContaining([x.id, y.id]));
      const rejected = (await g.api(`/api/v1/rejections?device=${x.id}`)).body.items;
      expect(rejected[0]).toMatchObject({ deviceId: x.id, code: 'SCHEMA_INVALID' });
      const agg = await eventually(async () => {
        const r = await g.api(
          `/api/v1/aggregates?type=air-quality&field=seq&fn=count&every=1d&from=${from}&to=now&groupBy=device&fill=none`,
        );
        const ids = r.body.series?.map((s: any) => s.group.device);
        return ids?.includes(x.id) && ids.includes(y.id) && r.body;
      });
      expect(agg.series.length).toBeGreaterThanOrEqual(2);
    }
  });

  it('streams to an event stream on A what a device does on C', async () => {
    const d = aq(17);
    const onC = await device(gw(2).ports.mqtt, d);
    const base = Date.now() - 120_000;
    let seq = 100;
    let timer: NodeJS.Timeout | undefined;
    // Other instances relay only once they know a stream is open (checked every 2 s).
    const { frames } = await readStream(
      gw(0),
      `device=${d.id}`,
      (f) => f.length > 0,
      async () => {
        timer = setInterval(() => {
          onC.publish(telemetryTopic(d), reading(base, seq++), { qos: 1 });
        }, 200);
      },
    ).finally(() => clearInterval(timer));
    expect(frames[0]).toMatchObject({
      event: 'reading',
      data: { id: d.id, type: 'air-quality', readings: [{ seq: expect.any(Number) }] },
    });
  });

  it("refuses on A, and disconnects there, a device disabled through B's API", async () => {
    const d = aq(18);
    const onA = await device(gw(0).ports.mqtt, d);
    const closed = new Promise<void>((r) => onA.once('close', () => r()));
    const disabled = await gw(1).api(`/api/v1/devices/${d.id}/disable`, { method: 'POST' });
    expect(disabled.body.state).toBe('disabled');
    await closed;
    for (const i of [0, 2]) {
      await expect(device(gw(i).ports.mqtt, d)).rejects.toMatchObject({ code: 5 });
    }
    await gw(2).api(`/api/v1/devices/${d.id}/enable`, { method: 'POST' });
    await eventually(async () => {
      const c = await device(gw(0).ports.mqtt, d).catch(() => undefined);
      await c?.endAsync();
      return c !== undefined;
    }, 3000);

    // API keys too: revoked through B, refused on A at once.
    const { body } = await gw(1).api('/api/v1/keys', { method: 'POST', body: { role: 'read' } });
    // A new key reaches A's copy through the change channel, a moment after B answers.
    await eventually(async () => {
      const c = await operator(gw(0).ports.mqtt, body.key, 'op:new').catch(() => undefined);
      await c?.endAsync();
      return c !== undefined;
    }, 3000);
    const watcher = await operator(gw(0).ports.mqtt, body.key, 'op:revoked');
    const gone = new Promise<void>((r) => watcher.once('close', () => r()));
    await gw(1).api(`/api/v1/keys/${body.id}`, { method: 'DELETE' });
    await eventually(async () => {
      const c = await operator(gw(0).ports.mqtt, body.key, 'op:revoked-2').catch(() => undefined);
      await c?.endAsync();
      return c === undefined;
    }, 3000);
    // The open connection goes at its next subscription or delivery.
    await watcher.subscribeAsync('sensors/#', { qos: 0 }).catch(() => {});
    await gone;
  });

  it('delivers the queued QoS 1 messages of a persistent session made on A after it reconnects through B', async () => {
    const d = aq(19);
    const topic = telemetryTopic(d);
    const first = await operator(gw(0).ports.mqtt, ADMIN_KEY, 'op:session', { clean: false });
    await first.subscribeAsync(topic, { qos: 1 });
    // Aedes tells the other instances of a new subscription over Redis pub/sub, a moment
    // after the SUBACK (docs/cluster.md): wait until a probe from C reaches the subscriber,
    // however loaded the machine, before taking the session offline.
    const onC = await device(gw(2).ports.mqtt, d);
    const base = Date.now() - 30_000;
    const probed = new Promise((r) => first.once('message', r));
    await eventually(async () => {
      await onC.publishAsync(topic, reading(base - 1000, 100), { qos: 1 });
      return Promise.race([probed.then(() => true), sleep(300).then(() => false)]);
    }, 15_000);
    await first.endAsync();
    await sleep(300);
    for (let s = 0; s < 5; s++) await onC.publishAsync(topic, reading(base, s), { qos: 1 });
    // Aedes acknowledges a QoS 1 PUBLISH before it queues the message for an offline session
    // and emits it over Redis (docs/cluster.md): a session resumed within that moment can get
    // the last message live as well as from the queue. Resume once all five are queued.
    const redis = new Redis(cluster.redis.url);
    try {
      await eventually(
        async () => (await redis.llen(`outgoing:${encodeURIComponent('op:session')}`)) >= 5,
        10_000,
      );
    } finally {
      redis.disconnect();
    }

    const got: number[] = [];
    const again = track(
      mqtt.connect(`mqtt://127.0.0.1:${gw(1).ports.mqtt}`, {
        clientId: 'op:session',
        username: 'apikey',
        password: ADMIN_KEY,
        clean: false,
        reconnectPeriod: 0,
      }),
    );
    again.on('message', (_t, payload) => {
      const seq = JSON.parse(payload.toString()).seq as number;
      if (seq < 100) got.push(seq); // a late probe may be queued too
    });
    const connack = await new Promise<{ sessionPresent: boolean }>((r) => again.once('connect', r));
    expect(connack.sessionPresent).toBe(true);
    await eventually(async () => got.length >= 5);
    expect(got).toEqual([0, 1, 2, 3, 4]);
  });

  it('loses no acknowledged reading when an instance is killed under load', async () => {
    const devices = [0, 1, 2, 3, 4, 5, 20, 21, 22, 23, 24, 25].map(aq);
    const base = Date.now() - 5 * 3_600_000;
    const runs = await Promise.all(
      devices.map(async (d) => {
        const c = await device(cluster.lb.mqttPort, d, { reconnectPeriod: 100 });
        return { d, c, pub: pump(c, telemetryTopic(d), base) };
      }),
    );
    await sleep(1000);
    expect(await metric(gw(2), 'taihu_connected_devices')).toBeGreaterThan(0);
    await gw(2).kill();
    await sleep(1500);
    // C's devices are back through HAProxy, on A and B.
    await eventually(async () => runs.every((r) => r.c.connected));
    await eventually(async () => {
      const ab =
        (await metric(gw(0), 'taihu_connected_devices')) +
        (await metric(gw(1), 'taihu_connected_devices'));
      return ab === devices.length;
    }, 5000);
    const sentAfterKill = runs.map((r) => r.pub.acked.size);
    await sleep(1000);
    for (const r of runs) r.pub.stop();
    await eventually(async () => runs.every((r) => r.pub.inFlight === 0), 5000);
    expect(runs.every((r, i) => r.pub.acked.size > sentAfterKill[i]!)).toBe(true);

    // C comes back on its disk: its spool replays what it acknowledged before the kill.
    await cluster.restart(2);
    const acked = runs.reduce((n, r) => n + r.pub.acked.size, 0);
    const stored = await eventually(async () => {
      await sleep(250); // each look reads every point back: not too often
      const s = await storedReadings(
        cluster.influx.url,
        devices.map((d) => d.id),
      );
      const have = (id: string) => new Set(s.seqs.get(id));
      const missing = runs.some((r) => [...r.pub.acked].some((seq) => !have(r.d.id).has(seq)));
      return !missing && s;
    }, 20_000);
    expect(stored.points).toBeGreaterThanOrEqual(acked);
    for (const r of runs) {
      const have = new Set(stored.seqs.get(r.d.id));
      expect(
        [...r.pub.acked].filter((s) => !have.has(s)),
        r.d.id,
      ).toEqual([]);
    }
  });

  it('drains the spool of an instance that never returns with taihu spool drain', async () => {
    const d = aq(7);
    const base = Date.now() - 6 * 3_600_000;
    // With InfluxDB down, what B acknowledges stays in its spool.
    await cluster.influx.pause();
    const onB = await device(gw(1).ports.mqtt, d);
    for (let s = 10_000; s < 10_030; s++)
      await onB.publishAsync(telemetryTopic(d), reading(base, s), { qos: 1 });
    onB.end(true);
    await gw(1).kill();
    await cluster.influx.resume();

    const dataDir = mkdtempSync(join(tmpdir(), 'taihu-drain-'));
    try {
      const run = await runTaihu(['spool', 'drain', '--dir', join(gw(1).dataDir, 'spool')], {
        TAIHU_INFLUX_URL: cluster.influx.url,
        TAIHU_INFLUX_API: 'v1',
        TAIHU_DATA_DIR: dataDir,
        TAIHU_LOG_LEVEL: 'warn',
      });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^drained 30 records \(30 points\) from .*spool into influxdb/);
      expect(run.stderr).toMatch(/spool drain: 30 of 30 records written/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
    const stored = await storedReadings(cluster.influx.url, [d.id]);
    const drained = stored.seqs.get(d.id)?.filter((s) => s >= 10_000);
    expect(drained?.sort((a, b) => a - b)).toEqual([...Array(30).keys()].map((k) => 10_000 + k));

    // Should B come back after all, it finds its spool empty.
    const back = await cluster.restart(1);
    expect(back.logs.some((l) => l.msg === 'replaying spool into the store')).toBe(false);
  });
});

/**
 * QoS 1 readings as fast as acknowledgements allow (a window of 10), resuming after each
 * reconnect; `acked` holds the seq of every reading whose PUBACK arrived.
 */
function pump(client: MqttClient, topic: string, base: number) {
  const acked = new Set<number>();
  let seq = 0;
  let inFlight = 0;
  let stopped = false;
  const go = () => {
    while (!stopped && client.connected && inFlight < 10) {
      const s = seq++;
      inFlight++;
      client.publish(topic, reading(base, s), { qos: 1 }, (err) => {
        inFlight--;
        if (err) return; // the connection went: 'connect' resumes
        acked.add(s);
        setImmediate(go);
      });
    }
  };
  client.on('connect', go);
  go();
  return {
    acked,
    get inFlight() {
      return inFlight;
    },
    stop() {
      stopped = true;
    },
  };
}

/**
 * DESIGN §6 with the default configuration (TAIHU_DEVICE_RATE 50, TAIHU_DEVICE_BURST 200): a
 * device over its rate is slowed, never refused. Every reading whose PUBACK a device received
 * is stored — from a device publishing as fast as it is acknowledged, and from one flushing its
 * offline queue after an outage — while other devices keep their latency.
 */
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { connectAs, eventually, seedDevice, sleep, telemetryTopic } from '../helpers/clients.js';
import { type RunningGateway, useGateway } from '../helpers/gateway.js';
import { storedSeqs } from '../helpers/stored.js';

/** The defaults these tests are about (src/config.ts); the gateway is started without overrides. */
const RATE = 50;
const BURST = 200;

let gw: RunningGateway;
useGateway((g) => (gw = g));

const reading = (base: number, seq: number) =>
  JSON.stringify({
    ts: base + seq,
    seq,
    data: { pm25_ugm3: seq % 500, pm10_ugm3: 1, no2_ugm3: 1 },
  });

async function device(n: number, keepalive = 30, reconnectPeriod = 0): Promise<MqttClient> {
  const d = seedDevice('air-quality', n);
  const c = await connectAs(gw, d, { keepalive, reconnectPeriod });
  c.on('error', () => {});
  return c;
}

async function rejectionsOf(deviceId: string): Promise<unknown[]> {
  return (await gw.api(`/api/v1/rejections?device=${deviceId}`)).body.items;
}

/** Waits until the store holds `n` readings of the device, then returns their seqs. */
async function storedOnce(deviceId: string, n: number): Promise<Set<number>> {
  let seqs = new Set<number>();
  await eventually(async () => {
    seqs = storedSeqs(gw.dataDir).get(deviceId) ?? new Set();
    return seqs.size >= n;
  }, 30_000);
  return seqs;
}

function p99(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? NaN;
}

describe('a device over its rate (default configuration)', () => {
  it('is slowed to about its rate and has every one of 5,000 QoS 1 readings stored, on one connection', async () => {
    const d = seedDevice('air-quality', 24);
    const client = await device(24, 30);
    let closes = 0;
    client.on('close', () => closes++);
    const base = Date.now() - 3_600_000;
    const N = 5_000;
    const ackedAt: number[] = [];
    const acked = new Set<number>();
    await new Promise<void>((resolve) => {
      for (let seq = 0; seq < N; seq++) {
        client.publish(telemetryTopic(d), reading(base, seq), { qos: 1 }, (err) => {
          if (err) return;
          acked.add(seq);
          ackedAt.push(performance.now());
          if (acked.size === N) resolve();
        });
      }
    });
    expect(closes).toBe(0);
    expect(client.connected).toBe(true);
    await client.endAsync();

    // The PUBACK rate past the burst: never above the rate (plus rounding), and near it.
    const from = BURST + 500;
    const rate = (N - 1 - from) / ((ackedAt[N - 1]! - ackedAt[from]!) / 1000);
    console.log(`5,000 readings over the rate: PUBACKs at ${rate.toFixed(1)}/s past the burst`);
    expect(rate).toBeLessThan(RATE * 1.05);
    expect(rate).toBeGreaterThan(RATE * 0.6);

    const stored = await storedOnce(d.id, N);
    expect([...acked].filter((s) => !stored.has(s))).toEqual([]);
    expect(stored.size).toBe(N);
    expect(await rejectionsOf(d.id)).toEqual([]);
  }, 180_000);

  it('drains 2,000 readings queued offline at its rate, losing none, while 200 other devices keep their PUBACK p99', async () => {
    // 200 streetlights publish QoS 1 twice a second each and record their PUBACK latency.
    const lights = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const d = seedDevice('streetlight', i);
        const c = await connectAs(gw, d);
        c.on('error', () => {});
        return { d, c };
      }),
    );
    let phase: 'before' | 'catch-up' | 'after' | 'stop' = 'before';
    const latency = { before: [] as number[], 'catch-up': [] as number[], after: [] as number[] };
    const light = JSON.stringify({ data: { lamp_on: true, power_w: 120, lamp_fault: false } });
    const timers = lights.map(({ d, c }, i) =>
      setTimeout(() => {
        const tick = () => {
          if (phase === 'stop') return;
          const started = performance.now();
          const during = phase;
          c.publish(telemetryTopic(d), light, { qos: 1 }, (err) => {
            if (!err) latency[during].push(performance.now() - started);
          });
          timers[i] = setTimeout(tick, 500);
        };
        tick();
      }, i * 2.5),
    );
    await sleep(10_000);

    // The catch-up device: connected, then its connection drops; while it is offline MQTT.js
    // queues 2,000 readings, and sends them all when it is back.
    const d = seedDevice('air-quality', 25);
    const client = await device(25, 30, 500);
    const offline = new Promise<void>((r) => client.once('offline', () => r()));
    client.stream.destroy();
    await offline;
    const base = Date.now() - 7_200_000;
    const N = 2_000;
    const acked = new Set<number>();
    phase = 'catch-up';
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      for (let seq = 0; seq < N; seq++) {
        client.publish(telemetryTopic(d), reading(base, seq), { qos: 1 }, (err) => {
          if (err) return;
          acked.add(seq);
          if (acked.size === N) resolve();
        });
      }
    });
    const took = (performance.now() - t0) / 1000;
    phase = 'after';
    await sleep(10_000);
    phase = 'stop';
    for (const t of timers) clearTimeout(t);
    await client.endAsync();
    await Promise.all(lights.map(({ c }) => c.endAsync()));

    const stored = await storedOnce(d.id, N);
    expect([...acked].filter((s) => !stored.has(s))).toEqual([]);
    expect(stored.size).toBe(N);
    expect(await rejectionsOf(d.id)).toEqual([]);

    // Quiet p99: the worse of the windows before and after the catch-up. A shared machine drifts
    // over the minute this takes, and at p99s of a few ms one GC pause in the quiet window alone
    // moves the ratio by a third; the benchmark's noisy-neighbour scenario does the same.
    const quiet = Math.max(p99(latency.before), p99(latency.after));
    const during = p99(latency['catch-up']);
    console.log(
      `catch-up of ${N} readings in ${took.toFixed(1)} s (${(N / took).toFixed(1)}/s); ` +
        `200 devices' PUBACK p99 ${during.toFixed(1)} ms during vs ${quiet.toFixed(1)} ms quiet ` +
        `(${(during / quiet).toFixed(2)}×; ${latency['catch-up'].length} and ` +
        `${latency.before.length + latency.after.length} samples)`,
    );
    expect(latency['catch-up'].length).toBeGreaterThan(1000);
    expect(during / quiet).toBeLessThanOrEqual(1.5);
  }, 180_000);
});

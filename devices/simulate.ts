/**
 * The simulator: plays seeded Wuxi devices against a gateway over MQTT with the
 * enrollment-derived credentials, as real devices would. Used by the quick start,
 * the tests and (through its load mode) the benchmarks.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { deriveDeviceSecret } from '../src/registry/credentials.js';
import { createCity } from './city.js';
import { MODELS } from './models/index.js';
import type { DeviceGenerator, SimDevice } from './models/types.js';
import { createRng, deriveSeed } from './rng.js';

export interface SimulateOptions {
  /** mqtt://host:port or ws://host:port/mqtt */
  readonly broker: string;
  readonly enrollmentKey: string;
  readonly devices: readonly SimDevice[];
  /** Messages per second over all devices. */
  readonly rate: number;
  /** Stop after this long; undefined runs until the signal aborts. */
  readonly durationMs?: number | undefined;
  /** Share of messages deliberately broken, 0..1. */
  readonly faults: number;
  readonly seed: number;
  readonly qos: 0 | 1;
  readonly signal?: AbortSignal | undefined;
  /** Called about once a second. */
  readonly onProgress?: ((p: Progress) => void) | undefined;
}

export interface Progress {
  readonly elapsedMs: number;
  readonly devices: number;
  readonly connected: number;
  readonly sent: number;
  readonly acked: number;
  readonly rejected: number;
  readonly sentPerSec: number;
  readonly ackedPerSec: number;
  readonly ackP50Ms: number;
  readonly ackP99Ms: number;
}

/** The kinds of broken message `--faults` mixes in, each meeting a different check. */
export const FAULT_KINDS = [
  'malformed-json',
  'out-of-range',
  'unknown-field',
  'wrong-type',
  'seconds-timestamp',
] as const;

interface Sim {
  readonly device: SimDevice;
  readonly client: MqttClient;
  readonly next: DeviceGenerator;
  readonly topic: string;
  seq: number;
}

/** Picks `count` devices spread over the types (round-robin), deterministic for the input. */
export function pickDevices(all: readonly SimDevice[], count: number): SimDevice[] {
  const byType = new Map<string, SimDevice[]>();
  for (const d of [...all].sort((a, b) => a.id.localeCompare(b.id))) {
    const list = byType.get(d.type) ?? [];
    list.push(d);
    byType.set(d.type, list);
  }
  const queues = [...byType.values()];
  const out: SimDevice[] = [];
  for (let i = 0; out.length < count && queues.some((q) => i < q.length); i++) {
    for (const q of queues) {
      const d = q[i];
      if (d && out.length < count) out.push(d);
    }
  }
  return out;
}

export async function simulate(opts: SimulateOptions): Promise<Progress> {
  const city = createCity(opts.seed);
  const faultRng = createRng(deriveSeed(opts.seed, 'faults'));
  const started = Date.now();
  let sent = 0;
  let acked = 0;
  let rejected = 0;
  const latencies: number[] = [];

  const sims: Sim[] = opts.devices.map((device) => {
    const model = MODELS.get(device.type);
    if (!model) throw new Error(`no simulator model for device type "${device.type}"`);
    const rng = createRng(deriveSeed(opts.seed, device.id));
    const statusTopic = `sensors/${device.type}/${device.id}/status`;
    const client = mqtt.connect(opts.broker, {
      clientId: device.id,
      username: device.id,
      password: deriveDeviceSecret(opts.enrollmentKey, device.id),
      clean: true,
      keepalive: 60,
      reconnectPeriod: 2000,
      connectTimeout: 10_000,
      will: { topic: statusTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    client.on('connect', () => {
      client.publish(statusTopic, 'online', { qos: 1, retain: true });
      client.subscribe(`sensors/${device.type}/${device.id}/errors`, { qos: 1 });
    });
    client.on('message', () => {
      rejected++;
    });
    client.on('error', () => {
      // reconnects by itself; the progress line shows the connected count
    });
    return {
      device,
      client,
      next: model.create(device, rng, city),
      topic: `sensors/${device.type}/${device.id}/telemetry`,
      seq: 0,
    };
  });

  const progress = (lastSent: number, lastAcked: number, dt: number): Progress => {
    const sorted = latencies.splice(0).sort((a, b) => a - b);
    const pct = (p: number) =>
      sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
    return {
      elapsedMs: Date.now() - started,
      devices: sims.length,
      connected: sims.filter((s) => s.client.connected).length,
      sent,
      acked,
      rejected,
      sentPerSec: ((sent - lastSent) * 1000) / dt,
      ackedPerSec: ((acked - lastAcked) * 1000) / dt,
      ackP50Ms: pct(50),
      ackP99Ms: pct(99),
    };
  };

  const publishOne = (sim: Sim) => {
    if (!sim.client.connected) return;
    const now = Date.now();
    const reading = { ts: now, seq: sim.seq++, data: sim.next(now) };
    const payload =
      opts.faults > 0 && faultRng.chance(opts.faults)
        ? breakMessage(reading, faultRng.int(0, FAULT_KINDS.length - 1))
        : JSON.stringify(reading);
    sent++;
    const t0 = performance.now();
    sim.client.publish(sim.topic, payload, { qos: opts.qos }, (err) => {
      if (err) return;
      acked++;
      latencies.push(performance.now() - t0);
    });
  };

  const tickMs = 50;
  let credit = 0;
  let cursor = 0;
  let lastReport = Date.now();
  let lastSent = 0;
  let lastAcked = 0;

  await new Promise<void>((resolve) => {
    const finish = () => {
      clearInterval(timer);
      resolve();
    };
    const timer = setInterval(() => {
      const now = Date.now();
      if (
        opts.signal?.aborted ||
        (opts.durationMs !== undefined && now - started >= opts.durationMs)
      )
        return finish();
      credit += (opts.rate * tickMs) / 1000;
      while (credit >= 1 && sims.length > 0) {
        credit -= 1;
        const sim = sims[cursor++ % sims.length];
        if (sim) publishOne(sim);
      }
      if (now - lastReport >= 1000) {
        const p = progress(lastSent, lastAcked, now - lastReport);
        lastReport = now;
        lastSent = sent;
        lastAcked = acked;
        opts.onProgress?.(p);
      }
    }, tickMs);
    opts.signal?.addEventListener('abort', finish, { once: true });
  });

  // Give in-flight acks a moment, then leave cleanly (a clean DISCONNECT suppresses the Will,
  // so say "offline" ourselves).
  await new Promise((r) => setTimeout(r, 300));
  const final = progress(lastSent, lastAcked, Math.max(1, Date.now() - lastReport));
  await Promise.all(
    sims.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (!s.client.connected) return s.client.end(true, {}, () => resolve());
          s.client.publish(
            `sensors/${s.device.type}/${s.device.id}/status`,
            'offline',
            { qos: 1, retain: true },
            () => s.client.end(false, {}, () => resolve()),
          );
        }),
    ),
  );
  return final;
}

/** One deliberately broken message; each kind trips a different gateway check. */
function breakMessage(
  reading: { ts: number; seq: number; data: Record<string, unknown> },
  kind: number,
): string {
  const data = { ...reading.data };
  const first = Object.keys(data)[0] ?? 'value';
  switch (FAULT_KINDS[kind]) {
    case 'malformed-json':
      return JSON.stringify(reading).slice(0, -3);
    case 'out-of-range':
      data[first] = typeof data[first] === 'number' ? 1e9 : data[first];
      if (typeof reading.data[first] !== 'number') data.not_a_field = 1;
      return JSON.stringify({ ...reading, data });
    case 'unknown-field':
      return JSON.stringify({ ...reading, data: { ...data, firmware_build: 'x' } });
    case 'wrong-type':
      data[first] = 'n/a';
      return JSON.stringify({ ...reading, data });
    default:
      return JSON.stringify({ ...reading, ts: Math.floor(reading.ts / 1000) });
  }
}

export function formatProgress(p: Progress): string {
  return (
    `connected ${p.connected}/${p.devices} · sent ${p.sentPerSec.toFixed(0)}/s · acked ${p.ackedPerSec.toFixed(0)}/s` +
    ` · total acked ${p.acked} · rejected ${p.rejected} · ack p50 ${p.ackP50Ms.toFixed(1)} ms p99 ${p.ackP99Ms.toFixed(1)} ms`
  );
}

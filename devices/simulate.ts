/**
 * The simulator: plays seeded Wuxi devices against a gateway over MQTT with the
 * enrollment-derived credentials, as real devices would. Used by the quick start,
 * the tests and the benchmarks.
 *
 * A run has two phases: an optional backfill (the past N hours of readings, sent as
 * batched messages as fast as the gateway acknowledges them) and a live phase at a
 * fixed total rate until the duration ends or the signal aborts.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { deriveDeviceSecret } from '../src/registry/credentials.js';
import { createCity } from './city.js';
import { MODELS } from './models/index.js';
import type { DeviceGenerator, Rng, SimDevice } from './models/types.js';
import { createRng, deriveSeed } from './rng.js';

/** Broken messages `--faults` mixes in, each meeting a different gateway check. */
export const MESSAGE_FAULTS = [
  'malformed-json',
  'out-of-range',
  'unknown-field',
  'wrong-type',
  'seconds-timestamp',
  'future-timestamp',
  'duplicate',
  'wrong-topic',
] as const;
/** Connection-level faults, played every few seconds on a random device. */
export const CONNECTION_FAULTS = ['wrong-credentials', 'offline', 'reconnect-storm'] as const;
export const FAULT_KINDS = [...MESSAGE_FAULTS, ...CONNECTION_FAULTS] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface SimulateOptions {
  /** mqtt://host:port or ws://host:port/mqtt */
  readonly broker: string;
  readonly enrollmentKey: string;
  readonly devices: readonly SimDevice[];
  /** Each device type's reporting interval, ms (the schema's x-interval-seconds). */
  readonly intervalMsOf: (type: string) => number;
  /** Live messages per second over all devices. */
  readonly rate: number;
  /** Stop the live phase after this long; undefined runs until the signal aborts; 0 skips it. */
  readonly durationMs?: number | undefined;
  /** Publish this much history first, at each type's interval. */
  readonly backfillMs?: number | undefined;
  /** Share of live messages deliberately broken, 0..1 (also enables connection faults). */
  readonly faults: number;
  /** Which faults to play; default every kind. */
  readonly faultKinds?: readonly FaultKind[] | undefined;
  readonly seed: number;
  readonly qos: 0 | 1;
  readonly signal?: AbortSignal | undefined;
  /** Called about once a second. */
  readonly onProgress?: ((p: Progress) => void) | undefined;
}

export interface Progress {
  readonly phase: 'connecting' | 'backfill' | 'live' | 'done';
  readonly elapsedMs: number;
  readonly devices: number;
  readonly connected: number;
  /** Messages sent and acknowledged (a backfill message carries many readings). */
  readonly sent: number;
  readonly acked: number;
  /** Readings in acknowledged messages. */
  readonly readingsAcked: number;
  /** Rejection notices received on the devices' errors topics. */
  readonly rejected: number;
  /** Connections the gateway refused or closed (faults, or trouble). */
  readonly refused: number;
  readonly sentPerSec: number;
  readonly ackedPerSec: number;
  readonly readingsPerSec: number;
  readonly ackP50Ms: number;
  readonly ackP99Ms: number;
  /** Share of the backfill sent, 0..1. */
  readonly backfillDone: number;
}

/** Readings per backfill message: far below TAIHU_MAX_BATCH's default of 500. */
const BACKFILL_BATCH = 100;
/** Unacknowledged backfill messages per device. */
const BACKFILL_WINDOW = 4;
const TICK_MS = 50;
/** A connection fault every this long while faults are on. */
const CONNECTION_FAULT_EVERY_MS = 3_000;

interface Sim {
  readonly device: SimDevice;
  readonly client: MqttClient;
  readonly next: DeviceGenerator;
  readonly topic: string;
  readonly statusTopic: string;
  seq: number;
  last: { ts: number; seq: number; data: Record<string, unknown> } | undefined;
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
  const kinds = new Set<FaultKind>(opts.faultKinds ?? FAULT_KINDS);
  const messageFaults = MESSAGE_FAULTS.filter((k) => kinds.has(k));
  const connectionFaults = CONNECTION_FAULTS.filter((k) => kinds.has(k));
  const started = Date.now();
  let phase: Progress['phase'] = 'connecting';
  let sent = 0;
  let acked = 0;
  let readingsAcked = 0;
  let rejected = 0;
  let refused = 0;
  let backfillTotal = 0;
  let backfillSent = 0;
  const latencies: number[] = [];

  const sims: Sim[] = opts.devices.map((device) => {
    const model = MODELS.get(device.type);
    if (!model) throw new Error(`no simulator model for device type "${device.type}"`);
    const rng = createRng(deriveSeed(opts.seed, device.id));
    const statusTopic = `sensors/${device.type}/${device.id}/status`;
    const client = connectDevice(opts, device, statusTopic);
    client.on('message', () => rejected++);
    client.on('error', () => refused++);
    return {
      device,
      client,
      next: model.create(device, rng, city),
      topic: `sensors/${device.type}/${device.id}/telemetry`,
      statusTopic,
      seq: 0,
      last: undefined,
    };
  });

  const publish = (
    sim: Sim,
    topic: string,
    payload: string,
    readings: number,
    done?: () => void,
  ) => {
    sent++;
    const t0 = performance.now();
    sim.client.publish(topic, payload, { qos: opts.qos }, (err) => {
      if (!err) {
        acked++;
        readingsAcked += readings;
        latencies.push(performance.now() - t0);
      }
      done?.();
    });
  };

  // Progress, about once a second, from whichever phase is running.
  let last = { at: started, sent: 0, acked: 0, readings: 0 };
  const progress = (): Progress => {
    const now = Date.now();
    const dt = Math.max(1, now - last.at);
    const sorted = latencies.splice(0).sort((a, b) => a - b);
    const pct = (p: number) =>
      sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
    const p: Progress = {
      phase,
      elapsedMs: now - started,
      devices: sims.length,
      connected: sims.filter((s) => s.client.connected).length,
      sent,
      acked,
      readingsAcked,
      rejected,
      refused,
      sentPerSec: ((sent - last.sent) * 1000) / dt,
      ackedPerSec: ((acked - last.acked) * 1000) / dt,
      readingsPerSec: ((readingsAcked - last.readings) * 1000) / dt,
      ackP50Ms: pct(50),
      ackP99Ms: pct(99),
      backfillDone: backfillTotal === 0 ? 1 : backfillSent / backfillTotal,
    };
    last = { at: now, sent, acked, readings: readingsAcked };
    return p;
  };
  const reporter = setInterval(() => opts.onProgress?.(progress()), 1000);
  const aborted = () => opts.signal?.aborted === true;

  try {
    await waitForConnections(sims, 10_000, aborted);

    if (opts.backfillMs && opts.backfillMs > 0 && !aborted()) {
      phase = 'backfill';
      const to = Date.now();
      const from = to - opts.backfillMs;
      backfillTotal = sims.reduce(
        (n, s) => n + Math.floor(opts.backfillMs! / opts.intervalMsOf(s.device.type)),
        0,
      );
      await Promise.all(
        sims.map((sim) => backfill(sim, from, to, opts.intervalMsOf(sim.device.type))),
      );
    }

    if (opts.durationMs !== 0 && !aborted()) {
      phase = 'live';
      await live();
    }
  } finally {
    clearInterval(reporter);
  }

  // Give in-flight acks a moment, then leave cleanly (a clean DISCONNECT suppresses the
  // Will, so say "offline" ourselves).
  await new Promise((r) => setTimeout(r, 300));
  phase = 'done';
  const final = progress();
  await Promise.all(sims.map((s) => leave(s)));
  return final;

  /** One device's history, oldest first, in batched messages, a bounded window in flight. */
  function backfill(sim: Sim, from: number, to: number, intervalMs: number): Promise<void> {
    return new Promise((resolve) => {
      let t = from;
      let inFlight = 0;
      const pump = () => {
        while (inFlight < BACKFILL_WINDOW && t < to && !aborted()) {
          if (!sim.client.connected) return void setTimeout(pump, 200);
          const batch = [];
          for (let i = 0; i < BACKFILL_BATCH && t < to; i++, t += intervalMs) {
            batch.push({ ts: Math.round(t), seq: sim.seq++, data: sim.next(Math.round(t)) });
          }
          backfillSent += batch.length;
          inFlight++;
          publish(sim, sim.topic, JSON.stringify(batch), batch.length, () => {
            inFlight--;
            setImmediate(pump);
          });
        }
        if (inFlight === 0 && (t >= to || aborted())) resolve();
      };
      pump();
    });
  }

  function live(): Promise<void> {
    let credit = 0;
    let cursor = 0;
    let nextConnectionFault = Date.now() + CONNECTION_FAULT_EVERY_MS;
    const liveStart = Date.now();
    return new Promise<void>((resolve) => {
      const finish = () => {
        clearInterval(timer);
        resolve();
      };
      const timer = setInterval(() => {
        const now = Date.now();
        if (aborted() || (opts.durationMs !== undefined && now - liveStart >= opts.durationMs)) {
          return finish();
        }
        credit += (opts.rate * TICK_MS) / 1000;
        while (credit >= 1 && sims.length > 0) {
          credit -= 1;
          const sim = sims[cursor++ % sims.length];
          if (sim?.client.connected) publishLive(sim, now);
        }
        if (opts.faults > 0 && connectionFaults.length > 0 && now >= nextConnectionFault) {
          nextConnectionFault = now + CONNECTION_FAULT_EVERY_MS;
          const kind = connectionFaults[faultRng.int(0, connectionFaults.length - 1)];
          if (kind) playConnectionFault(kind, faultRng);
        }
      }, TICK_MS);
      opts.signal?.addEventListener('abort', finish, { once: true });
    });
  }

  function publishLive(sim: Sim, now: number): void {
    const reading = { ts: now, seq: sim.seq++, data: sim.next(now) };
    const faulty =
      opts.faults > 0 && messageFaults.length > 0 && faultRng.chance(opts.faults)
        ? messageFaults[faultRng.int(0, messageFaults.length - 1)]
        : undefined;
    if (faulty === 'duplicate' && sim.last) {
      sim.seq--; // the resent reading keeps its seq and ts; the gateway stores it once
      publish(sim, sim.topic, JSON.stringify(sim.last), 1);
      return;
    }
    if (faulty === 'wrong-topic') {
      const other = sims[faultRng.int(0, sims.length - 1)];
      const topic =
        other && other !== sim
          ? other.topic
          : `sensors/${sim.device.type}/${sim.device.id}-other/telemetry`;
      publish(sim, topic, JSON.stringify(reading), 1);
      return;
    }
    sim.last = reading;
    const payload =
      faulty && faulty !== 'duplicate' ? breakMessage(reading, faulty) : JSON.stringify(reading);
    publish(sim, sim.topic, payload, 1);
  }

  function playConnectionFault(kind: (typeof CONNECTION_FAULTS)[number], rng: Rng): void {
    const sim = sims[rng.int(0, sims.length - 1)];
    if (!sim) return;
    switch (kind) {
      case 'wrong-credentials': {
        // A second client under the device's name with a wrong password: CONNACK 5.
        const bad = mqtt.connect(opts.broker, {
          clientId: sim.device.id,
          username: sim.device.id,
          password: 'not-the-secret',
          reconnectPeriod: 0,
          connectTimeout: 5_000,
        });
        bad.on('error', () => {
          refused++;
          bad.end(true);
        });
        bad.on('connect', () => bad.end(true));
        break;
      }
      case 'offline':
        // The socket dies without DISCONNECT: the broker publishes the Will ("offline");
        // MQTT.js reconnects by itself after its reconnect period.
        sim.client.stream.destroy();
        break;
      case 'reconnect-storm':
        for (const s of sims) s.client.stream.destroy();
        break;
    }
  }
}

function connectDevice(opts: SimulateOptions, device: SimDevice, statusTopic: string): MqttClient {
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
  return client;
}

async function waitForConnections(sims: readonly Sim[], timeoutMs: number, aborted: () => boolean) {
  const until = Date.now() + timeoutMs;
  while (!aborted() && Date.now() < until && sims.some((s) => !s.client.connected)) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

function leave(s: Sim): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!s.client.connected) return s.client.end(true, {}, () => resolve());
    s.client.publish(s.statusTopic, 'offline', { qos: 1, retain: true }, () =>
      s.client.end(false, {}, () => resolve()),
    );
  });
}

/** One deliberately broken message; each kind trips a different gateway check. */
function breakMessage(
  reading: { ts: number; seq: number; data: Record<string, unknown> },
  kind: (typeof MESSAGE_FAULTS)[number],
): string {
  const data = { ...reading.data };
  const numeric = Object.keys(data).find((k) => typeof data[k] === 'number');
  switch (kind) {
    case 'malformed-json':
      return JSON.stringify(reading).slice(0, -3);
    case 'out-of-range':
      if (numeric) data[numeric] = 1e9;
      return JSON.stringify({ ...reading, data });
    case 'unknown-field':
      return JSON.stringify({ ...reading, data: { ...data, firmware_build: 'x' } });
    case 'wrong-type':
      data[numeric ?? Object.keys(data)[0] ?? 'value'] = 'n/a';
      return JSON.stringify({ ...reading, data });
    case 'seconds-timestamp':
      return JSON.stringify({ ...reading, ts: Math.floor(reading.ts / 1000) });
    case 'future-timestamp':
      return JSON.stringify({ ...reading, ts: reading.ts + 3_600_000 });
    default:
      return JSON.stringify(reading);
  }
}

export function formatProgress(p: Progress): string {
  const head =
    p.phase === 'backfill'
      ? `backfill ${(p.backfillDone * 100).toFixed(0)}% · ${p.readingsPerSec.toFixed(0)} readings/s`
      : `sent ${p.sentPerSec.toFixed(0)}/s · acked ${p.ackedPerSec.toFixed(0)}/s`;
  return (
    `connected ${p.connected}/${p.devices} · ${head} · readings acked ${p.readingsAcked}` +
    ` · rejected ${p.rejected} · ack p50 ${p.ackP50Ms.toFixed(1)} ms p99 ${p.ackP99Ms.toFixed(1)} ms`
  );
}

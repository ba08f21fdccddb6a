/**
 * The measuring shared by the scenarios: the options every scenario reads, a load phase sampled
 * once a second (throughput, PUBACK latency, CPU and RSS of the processes under test), the
 * publish→queryable probe, and counting readings in the store through the HTTP API.
 */
import type { Histogram } from 'hdr-histogram-js';
import mqtt from 'mqtt';
import { deriveDeviceSecret } from '../src/registry/credentials.js';
import {
  LoadGenerator,
  newHistogram,
  type ConnectResult,
  type LoadSample,
} from '../devices/load.js';
import type { SimDevice } from '../devices/models/types.js';
import type { Fleet } from './fleet.js';
import { ENROLLMENT_KEY, type RunningGateway } from './gateway.js';
import type { CpuWatch, Machine } from './proc.js';
import { fmt, type ProgressLine } from './report.js';

export interface BenchOptions {
  /** Results, charts and profiles go here. */
  readonly outDir: string;
  /** Measured time of one load phase, ms. */
  readonly durationMs: number;
  /** Devices carrying the load; undefined = the scenario's default. */
  readonly devices: number | undefined;
  /** Messages/s over all devices; undefined = half of the measured maximum. */
  readonly rate: number | undefined;
  readonly workers: number;
  /** QoS 1 messages in flight per connection. */
  readonly window: number;
  /** Readings per message. */
  readonly batch: number;
  /** Readings in the query scenario's store. */
  readonly readings: number;
  /** Points the drain scenario moves. */
  readonly points: number;
  readonly outageMs: number;
  readonly concurrency: number;
  readonly repeat: number;
  readonly cpuProf: boolean;
  /** Rebuild cached data sets (the query scenario's store). */
  readonly fresh: boolean;
  /** The noisy-neighbour gateway's store. */
  readonly store: 'embedded' | 'influxdb';
  readonly machine: Machine;
  readonly progress: ProgressLine;
}

export const ms = (us: number): number => us / 1000;
export const pct = (h: Histogram, p: number): number =>
  h.totalCount === 0 ? Number.NaN : ms(h.getValueAtPercentile(p));

export interface PhaseSample {
  /** Seconds since the scenario started. */
  readonly t: number;
  readonly ackedPerSec: number;
  readonly readingsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly cpu: Readonly<Record<string, number>>;
  readonly rssMiB: Readonly<Record<string, number>>;
  readonly otherCpu: number;
  readonly irqCpu: number;
  readonly extra: Readonly<Record<string, number>>;
}

export interface PhaseResult {
  readonly label: string;
  /** Epoch ms of the measured window (after warm-up). */
  readonly from: number;
  readonly to: number;
  readonly sent: number;
  readonly acked: number;
  readonly readingsAcked: number;
  /** Readings acknowledged over the whole phase, warm-up and stop included. */
  readonly totalReadingsAcked: number;
  /** Acknowledged messages/readings per second over the measured window. */
  readonly ackedPerSec: number;
  readonly readingsPerSec: number;
  readonly skipped: number;
  readonly notices: number;
  readonly closed: number;
  /** Messages never acknowledged within the stop's drain time. */
  readonly unacked: number;
  readonly latency: Histogram;
  readonly samples: readonly PhaseSample[];
  /** Average CPU % per watched process (100 = one core), of other processes, of interrupts. */
  readonly cpu: Readonly<Record<string, number>>;
  readonly otherCpu: number;
  readonly irqCpu: number;
  /** Peak RSS per watched process, MiB. */
  readonly peakRssMiB: Readonly<Record<string, number>>;
  /** Each sample's epoch ms and latency, when asked for. */
  readonly sampleLatency: readonly { readonly at: number; readonly latency: Histogram }[];
}

export interface PhaseSpec {
  readonly label: string;
  /** Messages/s over all devices; 0 = as fast as the broker acknowledges. */
  readonly rate: number;
  readonly durationMs: number;
  /** First part of the phase left out of the figures (connections settle, JIT warms). */
  readonly warmupMs: number;
  readonly watch: CpuWatch;
  /** Epoch ms the scenario's chart counts from. */
  readonly t0: number;
  readonly progress: ProgressLine;
  /** Called after each sample; returns extra numbers for the sample (spool bytes…). */
  readonly onSample?:
    | ((
        elapsedMs: number,
        sample: LoadSample,
      ) => Promise<Record<string, number>> | Record<string, number>)
    | undefined;
  /** Ends the phase before its duration when it answers true (checked after each sample). */
  readonly until?: ((elapsedMs: number) => boolean) | undefined;
  /** Keep each sample's latency histogram (to cut the phase into windows afterwards). */
  readonly keepSampleLatency?: boolean | undefined;
  /** Keep the load running after the phase (the caller stops it). */
  readonly keepRunning?: boolean | undefined;
}

/** Runs the generator for one phase and samples it once a second. */
export async function runPhase(gen: LoadGenerator, spec: PhaseSpec): Promise<PhaseResult> {
  await gen.sample(); // drop what came before the phase
  spec.watch.sample();
  const start = Date.now();
  gen.publish(spec.rate);
  const measuredFrom = start + spec.warmupMs;
  const end = measuredFrom + spec.durationMs;
  const latency = newHistogram();
  const samples: PhaseSample[] = [];
  const peak: Record<string, number> = {};
  let sent = 0;
  let acked = 0;
  let readings = 0;
  let skipped = 0;
  let notices = 0;
  let closed = 0;
  let cpuAcc: Record<string, number> = {};
  let otherAcc = 0;
  let irqAcc = 0;
  let measured = 0;
  let total = 0;
  const sampleLatency: { at: number; latency: Histogram }[] = [];
  for (;;) {
    const next = Math.min(end, Date.now() + 1000 - ((Date.now() - start) % 1000));
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    const s = await gen.sample();
    const c = spec.watch.sample();
    const extra = (await spec.onSample?.(s.at - start, s)) ?? {};
    if (spec.keepSampleLatency) sampleLatency.push({ at: s.at, latency: s.latency });
    const inWindow = s.at > measuredFrom + 500;
    total += s.readingsAcked;
    const perSec = (n: number) => (n * 1000) / s.intervalMs;
    const rssMiB: Record<string, number> = {};
    for (const [k, v] of Object.entries(c.rss)) {
      rssMiB[k] = v / 1024 ** 2;
      peak[k] = Math.max(peak[k] ?? 0, rssMiB[k]);
    }
    samples.push({
      t: (s.at - spec.t0) / 1000,
      ackedPerSec: perSec(s.acked),
      readingsPerSec: perSec(s.readingsAcked),
      p50Ms: pct(s.latency, 50),
      p99Ms: pct(s.latency, 99),
      cpu: c.cpu,
      rssMiB,
      otherCpu: c.otherCpu,
      irqCpu: c.irqCpu,
      extra,
    });
    if (inWindow) {
      latency.add(s.latency);
      sent += s.sent;
      acked += s.acked;
      readings += s.readingsAcked;
      skipped += s.skipped;
      notices += s.notices;
      closed += s.closed;
      measured += s.intervalMs;
      for (const [k, v] of Object.entries(c.cpu)) {
        cpuAcc[k] = (cpuAcc[k] ?? 0) + v * s.intervalMs;
      }
      otherAcc += c.otherCpu * s.intervalMs;
      irqAcc += c.irqCpu * s.intervalMs;
    }
    const main = Object.entries(c.cpu)
      .map(([k, v]) => `${k} ${fmt(v)}%`)
      .join(' · ');
    spec.progress.update(
      `[${spec.label}] ${fmt((s.at - start) / 1000)}/${fmt((spec.warmupMs + spec.durationMs) / 1000)} s · ` +
        `acked ${fmt(perSec(s.acked))}/s · readings ${fmt(perSec(s.readingsAcked))}/s · ` +
        `p50 ${fmt(pct(s.latency, 50), 1)} ms p99 ${fmt(pct(s.latency, 99), 1)} ms · CPU ${main} · ` +
        `other ${fmt(c.otherCpu)}% irq ${fmt(c.irqCpu)}%` +
        Object.entries(extra)
          .map(([k, v]) => ` · ${k} ${fmt(v)}`)
          .join(''),
    );
    if (s.at >= end || spec.until?.(s.at - start) === true) break;
  }
  let unacked = 0;
  if (!spec.keepRunning) {
    unacked = await gen.stop();
    total += (await gen.sample()).readingsAcked;
  }
  spec.progress.done();
  const seconds = Math.max(0.001, measured / 1000);
  cpuAcc = Object.fromEntries(
    Object.entries(cpuAcc).map(([k, v]) => [k, v / Math.max(1, measured)]),
  );
  return {
    label: spec.label,
    from: measuredFrom,
    to: Date.now(),
    sent,
    acked,
    readingsAcked: readings,
    totalReadingsAcked: total,
    ackedPerSec: acked / seconds,
    readingsPerSec: readings / seconds,
    skipped,
    notices,
    closed,
    unacked,
    latency,
    samples,
    cpu: cpuAcc,
    otherCpu: otherAcc / Math.max(1, measured),
    irqCpu: irqAcc / Math.max(1, measured),
    peakRssMiB: peak,
    sampleLatency,
  };
}

/** The gateway's event-loop delay over the last second, as sample extras. */
export async function loopLag(gw: RunningGateway): Promise<Record<string, number>> {
  const lag = await gw.eventLoopLag();
  return lag ? { loopLagMaxMs: lag.maxMs, loopLagP99Ms: lag.p99Ms } : {};
}

/** "median / worst" of the per-second maximum event-loop delay over a phase's samples. */
export function describeLoopLag(phases: readonly PhaseResult[]): string {
  const v = phases.flatMap((p) =>
    p.samples.map((s) => s.extra.loopLagMaxMs).filter((x): x is number => x !== undefined),
  );
  if (v.length === 0) return 'n/a (no /metrics)';
  return `${fmt(spread(v).median, 1)} / ${fmt(Math.max(...v), 1)} ms`;
}

/** PUBACK latency of the samples taken in [fromMs, toMs) (epoch ms). */
export function latencyBetween(p: PhaseResult, fromMs: number, toMs: number): Histogram {
  const h = newHistogram();
  for (const s of p.sampleLatency) if (s.at > fromMs && s.at <= toMs) h.add(s.latency);
  return h;
}

/** The gateway's maximum: `ms` as fast as it acknowledges, the last 2/3 measured; messages/s. */
export async function probeMaxRate(
  gen: LoadGenerator,
  watch: CpuWatch,
  t0: number,
  progress: ProgressLine,
  durationMs = 12_000,
): Promise<PhaseResult> {
  return runPhase(gen, {
    label: 'finding the maximum',
    rate: 0,
    durationMs: (durationMs * 2) / 3,
    warmupMs: durationMs / 3,
    watch,
    t0,
    progress,
  });
}

/** A load generator for the fleet's devices against the broker on loopback `port`, sized by `opts`. */
export function startFleetLoad(port: number, fleet: Fleet, opts: BenchOptions) {
  return LoadGenerator.start({
    host: '127.0.0.1',
    port,
    devices: fleet.devices,
    enrollmentKey: ENROLLMENT_KEY,
    workers: opts.workers,
    window: opts.window,
    batch: opts.batch,
  });
}

/** Connects every device of `gen`; a refused or lost device fails the scenario. */
export async function connectAll(
  gen: LoadGenerator,
  target: string,
  progress: ProgressLine,
): Promise<ConnectResult> {
  const c = await gen.connect();
  if (c.failed > 0) {
    throw new Error(
      `${target} refused ${c.failed} of ${gen.devices} connections: ${c.errors.join('; ')}`,
    );
  }
  if (c.retried > 0) {
    progress.note(
      `[${target}] ${c.retried} connection attempt(s) failed and were retried: ${c.errors.join('; ')}`,
    );
  }
  return c;
}

/** The JSON summary of a phase kept in result files (the histogram as percentiles). */
export function phaseFigures(p: PhaseResult): Record<string, unknown> {
  return {
    label: p.label,
    sent: p.sent,
    acked: p.acked,
    readingsAcked: p.readingsAcked,
    ackedPerSec: Math.round(p.ackedPerSec),
    readingsPerSec: Math.round(p.readingsPerSec),
    skipped: p.skipped,
    notices: p.notices,
    closed: p.closed,
    unacked: p.unacked,
    pubackMs: latencyFigures(p.latency),
    cpuPct: roundAll(p.cpu),
    otherCpuPct: Math.round(p.otherCpu),
    irqCpuPct: Math.round(p.irqCpu),
    peakRssMiB: roundAll(p.peakRssMiB),
  };
}

export function latencyFigures(h: Histogram): Record<string, number> {
  return {
    count: h.totalCount,
    p50: round3(pct(h, 50)),
    p90: round3(pct(h, 90)),
    p99: round3(pct(h, 99)),
    p999: round3(pct(h, 99.9)),
    max: round3(ms(h.maxValue)),
    mean: round3(ms(h.mean)),
  };
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;
function roundAll(o: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}

/** Median, min and max of repeated measurements, and their spread as a share of the median. */
export function spread(values: readonly number[]): {
  median: number;
  min: number;
  max: number;
  spreadPct: number;
} {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, spreadPct: 0 };
  const mid = v.length / 2;
  const median =
    v.length % 2
      ? (v[Math.floor(mid)] as number)
      : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
  const min = v[0] as number;
  const max = v.at(-1) as number;
  return { median, min, max, spreadPct: median > 0 ? ((max - min) * 100) / median : 0 };
}

/** "1,234 (min 1,100, max 1,300, ±x%)" for a repeated figure; just the value when run once. */
export function describeSpread(values: readonly number[], digits = 0, unit = ''): string {
  const s = spread(values);
  if (values.length < 2) return `${fmt(s.median, digits)}${unit}`;
  return `${fmt(s.median, digits)}${unit} (median of ${values.length}: ${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

// ---- store ---------------------------------------------------------------------------------

interface AggregateAnswer {
  series: {
    group: Record<string, string>;
    /** `t` is an RFC 3339 string in the HTTP answer (epoch ms in the store API). */
    points: { t: string | number; value: number | null; count: number }[];
  }[];
}

/** A field every reading of the bench types carries (the schema requires it). */
export const COUNT_FIELD: Readonly<Record<string, string>> = {
  'air-quality': 'pm25_ugm3',
  weather: 'temperature_c',
};

/** Readings of `types` with ts in [fromMs, toMs), counted by the store (`fn=count`). */
export async function countReadings(
  gw: RunningGateway,
  types: readonly string[],
  fromMs: number,
  toMs: number,
  device?: string,
): Promise<number> {
  let total = 0;
  for (const type of types) {
    const field = COUNT_FIELD[type];
    if (!field) throw new Error(`no count field for ${type}`);
    const q = new URLSearchParams({
      type,
      field,
      fn: 'count',
      every: `${Math.max(1, toMs - fromMs)}ms`,
      from: String(fromMs),
      to: String(toMs),
      fill: 'none',
    });
    if (device) q.set('device', device);
    const a = await gw.get<AggregateAnswer>(`/api/v1/aggregates?${q}`);
    for (const s of a.series) for (const p of s.points) total += p.value ?? 0;
  }
  return total;
}

/**
 * Waits until the store holds `expected` readings in the window, or until it stops growing for
 * `stallMs`; returns the count and when it was last seen to grow (epoch ms).
 */
export async function waitForStore(
  gw: RunningGateway,
  types: readonly string[],
  fromMs: number,
  toMs: number,
  expected: number,
  progress: ProgressLine,
  stallMs = 30_000,
): Promise<{ count: number; at: number }> {
  let count = -1;
  let grewAt = Date.now();
  for (;;) {
    const n = await countReadings(gw, types, fromMs, toMs);
    if (n > count) {
      count = n;
      grewAt = Date.now();
    }
    progress.update(`[store] ${fmt(count)} of ${fmt(expected)} readings queryable`);
    if (count >= expected || Date.now() - grewAt > stallMs) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  progress.done();
  return { count, at: grewAt };
}

// ---- publish→queryable ---------------------------------------------------------------------

/**
 * Publish→queryable latency: one device publishes a reading every `everyMs` (QoS 1) with a
 * unique timestamp and a poller asks the aggregates API every POLL_MS for those timestamps
 * (`fn=count&every=1ms&fill=none&device=…`, one request for all outstanding readings); the
 * latency runs from the publish to the first answer that holds the reading (so it includes up
 * to POLL_MS of polling granularity).
 */
export class QueryableProbe {
  static readonly POLL_MS = 25;
  readonly #gw: RunningGateway;
  readonly #device: SimDevice;
  readonly #client: mqtt.MqttClient;
  readonly #outstanding = new Map<number, number>();
  #latency = newHistogram();
  #timer: NodeJS.Timeout | undefined;
  #poller: Promise<void> | undefined;
  #stopped = false;
  #lastTs = 0;
  #seq = 0;
  /** Readings the probe had acknowledged (they are part of the store's count). */
  acked = 0;
  lost = 0;

  private constructor(gw: RunningGateway, device: SimDevice, client: mqtt.MqttClient) {
    this.#gw = gw;
    this.#device = device;
    this.#client = client;
  }

  static async connect(gw: RunningGateway, device: SimDevice): Promise<QueryableProbe> {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, {
      clientId: device.id,
      username: device.id,
      password: deriveDeviceSecret(ENROLLMENT_KEY, device.id),
      reconnectPeriod: 0,
      keepalive: 60,
    });
    return new QueryableProbe(gw, device, client);
  }

  /** Starts publishing and polling; `take()` hands over what was measured so far. */
  start(everyMs = 200): void {
    this.#stopped = false;
    this.#timer = setInterval(() => this.#publish(), everyMs);
    this.#poller = this.#poll();
  }

  #publish(): void {
    const ts = (this.#lastTs = Math.max(this.#lastTs + 1, Date.now()));
    const at = performance.now();
    const payload = JSON.stringify({
      ts,
      seq: this.#seq++,
      data: { pm25_ugm3: 35.5, pm10_ugm3: 60.25, no2_ugm3: 20.5, o3_ugm3: 40, co_mgm3: 0.5 },
    });
    this.#outstanding.set(ts, at);
    this.#client.publish(
      `sensors/${this.#device.type}/${this.#device.id}/telemetry`,
      payload,
      { qos: 1 },
      (err) => {
        if (err) this.#outstanding.delete(ts);
        else this.acked++;
      },
    );
  }

  async #poll(): Promise<void> {
    while (!this.#stopped || this.#outstanding.size > 0) {
      await new Promise((r) => setTimeout(r, QueryableProbe.POLL_MS));
      if (this.#outstanding.size === 0) continue;
      const now = performance.now();
      for (const [ts, at] of this.#outstanding) {
        if (now - at > 60_000) {
          this.#outstanding.delete(ts); // not queryable within a minute: counted, not measured
          this.lost++;
        }
      }
      const keys = [...this.#outstanding.keys()];
      if (keys.length === 0) continue;
      const from = Math.min(...keys);
      // the API allows 10,000 buckets: newer readings wait for the next poll
      const to = Math.min(Math.max(...keys) + 1, from + 9_999);
      const q = new URLSearchParams({
        type: this.#device.type,
        field: COUNT_FIELD[this.#device.type] ?? 'pm25_ugm3',
        fn: 'count',
        every: '1ms',
        from: String(from),
        to: String(to),
        device: this.#device.id,
        fill: 'none',
      });
      try {
        const a = await this.#gw.get<AggregateAnswer>(`/api/v1/aggregates?${q}`);
        const seen = performance.now();
        for (const s of a.series) {
          for (const p of s.points) {
            const t = typeof p.t === 'number' ? p.t : Date.parse(p.t);
            const at = this.#outstanding.get(t);
            if (at !== undefined && p.count > 0) {
              this.#outstanding.delete(t);
              this.#latency.recordValue(Math.max(1, Math.round((seen - at) * 1000)));
            }
          }
        }
      } catch {
        // the gateway is busy or restarting; poll again
      }
    }
  }

  /** The latencies measured since the previous take (publishing goes on). */
  take(): Histogram {
    const h = this.#latency;
    this.#latency = newHistogram();
    return h;
  }

  /** Stops publishing, waits for the outstanding readings (at most a minute). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stopped = true;
    await this.#poller;
  }

  async close(): Promise<void> {
    await this.stop();
    // forced: the gateway may be gone, and a clean end would wait for its answer
    await this.#client.endAsync(true);
  }
}

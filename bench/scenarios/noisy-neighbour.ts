/**
 * noisy-neighbour: `--devices` (1,000) well-behaved devices at half the gateway's maximum (or
 * `--rate`) on the embedded store; in alternate phases one more device floods the gateway with
 * schema-invalid readings as fast as it acknowledges them (32 in flight; subscribed to its
 * errors topic, so every rejection also costs a notice). Measured: the well-behaved devices'
 * PUBACK p99 with and without the flood.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoadGenerator, newHistogram } from '../../devices/load.js';
import { createFleet } from '../fleet.js';
import { ENROLLMENT_KEY, ROOT, startGateway } from '../gateway.js';
import {
  connectAll,
  describeLoopLag,
  describeSpread,
  latencyFigures,
  loopLag,
  pct,
  phaseFigures,
  probeMaxRate,
  runPhase,
  spread,
  type BenchOptions,
  type PhaseResult,
} from '../measure.js';
import { CpuWatch } from '../proc.js';
import { summarizeProfiles } from '../profile.js';
import { fmt, judge, type Row, type ScenarioResult, type Series } from '../report.js';
import { startInfluxDB } from '../../support/servers.js';

const WARMUP_MS = 3_000;
const FLOOD_WINDOW = 32;

interface Pair {
  readonly quiet: PhaseResult;
  readonly noisy: PhaseResult;
  readonly floodPerSec: number;
  readonly floodNotices: number;
}

export async function noisyNeighbour(opts: BenchOptions): Promise<ScenarioResult> {
  const startedAt = new Date();
  const t0 = Date.now();
  const devices = opts.devices ?? 1000;
  const dir = mkdtempSync(join(tmpdir(), 'taihu-bench-noisy-'));
  const fleet = createFleet(join(ROOT, 'seeds'), dir, devices, ['bench-noisy-0001']);
  const profileDir = opts.cpuProf ? join(opts.outDir, 'profiles', `noisy-${t0}`) : undefined;
  // On InfluxDB the store writes leave the event loop (HTTP), which separates the flood's own
  // cost from the embedded store's synchronous writes.
  const influx = opts.store === 'influxdb' ? await startInfluxDB() : undefined;
  const gw = await startGateway({
    env: {
      TAIHU_SEEDS_DIR: fleet.seedsDir,
      ...(influx
        ? { TAIHU_STORE: 'influxdb', TAIHU_INFLUX_URL: influx.url, TAIHU_INFLUX_API: 'v1' }
        : {}),
    },
    cpuProfDir: profileDir,
  });
  const common = { host: '127.0.0.1', port: gw.ports.mqtt, enrollmentKey: ENROLLMENT_KEY };
  const gen = await LoadGenerator.start({
    ...common,
    devices: fleet.devices,
    workers: opts.workers,
    window: opts.window,
    batch: opts.batch,
  });
  const flood = await LoadGenerator.start({
    ...common,
    devices: fleet.extras,
    workers: 1,
    window: FLOOD_WINDOW,
    payload: 'schema-invalid',
  });
  const markers: { t: number; label: string }[] = [];
  const mark = (label: string) => markers.push({ t: (Date.now() - t0) / 1000, label });
  const pairs: Pair[] = [];
  let tail: PhaseResult | undefined;
  let rate = opts.rate;
  try {
    for (const g of [gen, flood]) await connectAll(g, 'the gateway', opts.progress);
    const watch = new CpuWatch(() => ({ gateway: gw.pid, loadgen: process.pid }));
    if (rate === undefined) {
      mark('max');
      const max = await probeMaxRate(gen, watch, t0, opts.progress);
      rate = Math.max(1, Math.round(max.ackedPerSec / 2));
      opts.progress.note(
        `[noisy-neighbour] maximum ${fmt(max.ackedPerSec)} msgs/s; running at ${fmt(rate)}/s`,
      );
    }
    const phase = (label: string) =>
      runPhase(gen, {
        label,
        rate: rate ?? 1,
        durationMs: opts.durationMs,
        warmupMs: WARMUP_MS,
        watch,
        t0,
        progress: opts.progress,
        keepRunning: true,
        onSample: () => loopLag(gw),
      });
    for (let r = 1; r <= opts.repeat; r++) {
      mark(`quiet #${r}`);
      const quiet = await phase(`quiet #${r}`);
      mark(`flood #${r}`);
      await flood.sample();
      flood.publish(0);
      const noisy = await phase(`flood #${r}`);
      const f = await flood.sample();
      await flood.stop(5_000);
      pairs.push({
        quiet,
        noisy,
        floodPerSec: (f.acked * 1000) / f.intervalMs,
        floodNotices: (f.notices * 1000) / f.intervalMs,
      });
    }
    mark('quiet again');
    tail = await phase('quiet again');
    await gen.stop();
  } finally {
    await flood.close();
    await gen.close();
    await gw.stop();
    await influx?.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const quietP99 = pairs.map((p) => pct(p.quiet.latency, 99));
  const noisyP99 = pairs.map((p) => pct(p.noisy.latency, 99));
  const ratios = pairs.map((p) => pct(p.noisy.latency, 99) / pct(p.quiet.latency, 99));
  const quietAll = newHistogram();
  const noisyAll = newHistogram();
  for (const p of pairs) {
    quietAll.add(p.quiet.latency);
    noisyAll.add(p.noisy.latency);
  }
  const rows: Row[] = [
    {
      metric: 'well-behaved load',
      value: `${fmt(rate ?? 0)} msgs/s from ${fmt(devices)} devices, ${opts.store} store`,
    },
    {
      metric: 'well-behaved PUBACK p50 / p99, quiet (ms)',
      value: `${fmt(pct(quietAll, 50), 2)} / ${describeSpread(quietP99, 2)}`,
    },
    {
      metric: 'well-behaved PUBACK p50 / p99, with the flood (ms)',
      value: `${fmt(pct(noisyAll, 50), 2)} / ${describeSpread(noisyP99, 2)}`,
    },
    {
      metric: 'p99 with the flood ÷ quiet',
      value: describeSpread(ratios, 2, '×'),
      target: '≤ 1.5×',
      verdict: judge(spread(ratios).median, 1.5, 'max'),
    },
    {
      metric: 'well-behaved acknowledged msgs/s: quiet / with the flood',
      value: `${describeSpread(pairs.map((p) => p.quiet.ackedPerSec))} / ${describeSpread(pairs.map((p) => p.noisy.ackedPerSec))}`,
    },
    {
      metric: 'gateway event-loop delay, worst per second: median / max, quiet',
      value: describeLoopLag(pairs.map((p) => p.quiet)),
    },
    {
      metric: 'gateway event-loop delay, worst per second: median / max, with the flood',
      value: describeLoopLag(pairs.map((p) => p.noisy)),
    },
    {
      metric: 'flood: invalid messages rejected (and acknowledged) per second',
      value: describeSpread(pairs.map((p) => p.floodPerSec)),
    },
    {
      metric: 'flood: rejection notices received per second',
      value: describeSpread(pairs.map((p) => p.floodNotices)),
    },
    {
      metric: 'gateway CPU: quiet / with the flood',
      value: `${describeSpread(
        pairs.map((p) => p.quiet.cpu.gateway ?? 0),
        0,
        '%',
      )} / ${describeSpread(
        pairs.map((p) => p.noisy.cpu.gateway ?? 0),
        0,
        '%',
      )}`,
    },
    {
      metric: 'other processes CPU: quiet / with the flood',
      value: `${describeSpread(
        pairs.map((p) => p.quiet.otherCpu),
        0,
        '%',
      )} / ${describeSpread(
        pairs.map((p) => p.noisy.otherCpu),
        0,
        '%',
      )}`,
    },
  ];
  if (tail) {
    rows.push({
      metric: 'well-behaved PUBACK p99, quiet again at the end (drift check)',
      value: `${fmt(pct(tail.latency, 99), 2)} ms`,
    });
  }
  const phases = [...pairs.flatMap((p) => [p.quiet, p.noisy]), ...(tail ? [tail] : [])];
  const series = (name: string, f: (s: PhaseResult['samples'][number]) => number): Series => ({
    name,
    points: phases.flatMap((p) => p.samples.map((s) => [s.t, f(s)] as const)),
  });
  return {
    scenario: 'noisy-neighbour',
    startedAt: startedAt.toISOString(),
    machine: opts.machine,
    params: {
      devices,
      rate,
      durationS: opts.durationMs / 1000,
      floodWindow: FLOOD_WINDOW,
      repeat: opts.repeat,
    },
    rows,
    figures: {
      pairs: pairs.map((p) => ({
        quiet: phaseFigures(p.quiet),
        noisy: phaseFigures(p.noisy),
        floodPerSec: Math.round(p.floodPerSec),
        floodNoticesPerSec: Math.round(p.floodNotices),
      })),
      quietMs: latencyFigures(quietAll),
      noisyMs: latencyFigures(noisyAll),
      tail: tail ? phaseFigures(tail) : undefined,
      profiles: profileDir ? summarizeProfiles(profileDir) : undefined,
    },
    chart: {
      title: `noisy neighbour: ${fmt(devices)} devices at ${fmt(rate ?? 0)} msgs/s (${opts.store} store), one device flooding invalid readings`,
      panels: [
        {
          title: 'well-behaved acknowledged msgs/s',
          unit: 'msgs/s',
          series: [series('acked/s', (s) => s.ackedPerSec)],
        },
        {
          title: 'well-behaved PUBACK latency',
          unit: 'ms',
          series: [series('p99', (s) => s.p99Ms), series('p50', (s) => s.p50Ms)],
        },
        {
          title: 'CPU',
          unit: '% of one core',
          series: [
            series('gateway', (s) => s.cpu.gateway ?? 0),
            series('other processes', (s) => s.otherCpu),
          ],
        },
      ],
      markers,
    },
    notes: [
      'the gateway keeps its default per-device rate limit (TAIHU_DEVICE_RATE, in builds that have one): it is the defence against this neighbour; the per-address connection cap is lifted as everywhere',
      'the flood is out-of-range readings (SCHEMA_INVALID): JSON parse, AJV validation, the rejection log and a notice on the errors topic per message, the costliest rejection path',
    ],
  };
}

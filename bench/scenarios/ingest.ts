/**
 * ingest: `--devices` (1,000) devices publish QoS 1 readings as fast as the broker acknowledges
 * them, first against mosquitto (no validation, no storage: the reference, and the load
 * generator's own ceiling), then against the gateway on its embedded store; then the gateway
 * again at half its maximum rate for the PUBACK latency there. Readings persisted are counted in
 * the store afterwards; publish→queryable is probed throughout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Histogram } from 'hdr-histogram-js';
import { newHistogram } from '../../devices/load.js';
import { createFleet, type Fleet } from '../fleet.js';
import { NO_DEVICE_RATE_LIMIT, ROOT, startGateway } from '../gateway.js';
import {
  connectAll,
  startFleetLoad,
  describeLoopLag,
  describeSpread,
  loopLag,
  latencyFigures,
  pct,
  phaseFigures,
  QueryableProbe,
  runPhase,
  spread,
  waitForStore,
  type BenchOptions,
  type PhaseResult,
} from '../measure.js';
import { CpuWatch } from '../proc.js';
import { summarizeProfiles } from '../profile.js';
import { fmt, judge, type Row, type ScenarioResult, type Series } from '../report.js';
import { startMosquitto } from '../../support/servers.js';

const WARMUP_MS = 5_000;
const TYPES = ['air-quality', 'weather'];

interface Round {
  readonly mosquitto: PhaseResult;
  readonly gateway: PhaseResult;
  readonly half: PhaseResult;
  readonly persisted: number;
  readonly expected: number;
  readonly persistedPerSec: number;
  readonly queryableMax: Histogram;
  readonly queryableHalf: Histogram;
  readonly queryableLost: number;
}

export interface IngestOutcome {
  readonly result: ScenarioResult;
  /** The gateway's maximum, messages/s (median over rounds): other scenarios run at half. */
  readonly maxRate: number;
}

export async function ingest(opts: BenchOptions): Promise<IngestOutcome> {
  const startedAt = new Date();
  const t0 = Date.now();
  const devices = opts.devices ?? 1000;
  const dir = mkdtempSync(join(tmpdir(), 'taihu-bench-ingest-'));
  const fleet = createFleet(join(ROOT, 'seeds'), dir, devices, ['bench-probe-0001']);
  const rounds: Round[] = [];
  const markers: { t: number; label: string }[] = [];
  const profileDir = opts.cpuProf ? join(opts.outDir, 'profiles', `ingest-${t0}`) : undefined;
  try {
    for (let r = 1; r <= opts.repeat; r++) {
      const tag = opts.repeat > 1 ? ` #${r}` : '';
      markers.push({ t: (Date.now() - t0) / 1000, label: `mosquitto${tag}` });
      const mosquitto = await againstMosquitto(opts, fleet, t0, `mosquitto${tag}`);
      markers.push({ t: (Date.now() - t0) / 1000, label: `gateway${tag}` });
      const g = await againstGateway(opts, fleet, t0, tag, profileDir, markers);
      rounds.push({ mosquitto, ...g });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    result: report(opts, startedAt, devices, rounds, markers, profileDir),
    maxRate: maxRate(rounds),
  };
}

function maxRate(rounds: readonly Round[]): number {
  return spread(rounds.map((r) => r.gateway.ackedPerSec)).median;
}

async function againstMosquitto(
  opts: BenchOptions,
  fleet: Fleet,
  t0: number,
  label: string,
): Promise<PhaseResult> {
  const broker = await startMosquitto();
  const gen = await startFleetLoad(broker.port, fleet, opts);
  try {
    await connectAll(gen, 'mosquitto', opts.progress);
    const watch = new CpuWatch(() => ({ mosquitto: broker.pid(), loadgen: process.pid }));
    return await runPhase(gen, {
      label: `${label} max`,
      rate: 0,
      durationMs: opts.durationMs,
      warmupMs: WARMUP_MS,
      watch,
      t0,
      progress: opts.progress,
    });
  } finally {
    await gen.close();
    await broker.stop();
  }
}

async function againstGateway(
  opts: BenchOptions,
  fleet: Fleet,
  t0: number,
  tag: string,
  profileDir: string | undefined,
  markers: { t: number; label: string }[],
): Promise<Omit<Round, 'mosquitto'>> {
  const gw = await startGateway({
    env: { TAIHU_SEEDS_DIR: fleet.seedsDir, ...NO_DEVICE_RATE_LIMIT },
    cpuProfDir: profileDir,
  });
  const probeDevice = fleet.extras[0];
  if (!probeDevice) throw new Error('the fleet has no probe device');
  const gen = await startFleetLoad(gw.ports.mqtt, fleet, opts);
  const probe = await QueryableProbe.connect(gw, probeDevice);
  try {
    await connectAll(gen, 'the gateway', opts.progress);
    const watch = new CpuWatch(() => ({ gateway: gw.pid, loadgen: process.pid }));
    const windowFrom = Date.now() - 60_000;
    probe.start();
    const gateway = await runPhase(gen, {
      label: `gateway${tag} max`,
      rate: 0,
      durationMs: opts.durationMs,
      warmupMs: WARMUP_MS,
      watch,
      t0,
      progress: opts.progress,
      onSample: () => loopLag(gw),
    });
    await probe.stop();
    const queryableMax = probe.take();
    const loadStart = gateway.from - WARMUP_MS;
    // Everything the generator sent was acknowledged or counted as unacked; the store must end
    // up with every acknowledged reading (the probe's included).
    const ackedTotal = gateway.totalReadingsAcked + probe.acked;
    markers.push({ t: (Date.now() - t0) / 1000, label: 'drain' });
    const stored = await waitForStore(
      gw,
      TYPES,
      windowFrom,
      Date.now() + 600_000,
      ackedTotal,
      opts.progress,
    );
    const persistedPerSec = (stored.count * 1000) / Math.max(1, stored.at - loadStart);

    const halfRate = Math.max(1, Math.round(gateway.ackedPerSec / 2));
    markers.push({ t: (Date.now() - t0) / 1000, label: `half rate${tag}` });
    probe.start();
    const half = await runPhase(gen, {
      label: `gateway${tag} half (${fmt(halfRate)}/s)`,
      rate: halfRate,
      durationMs: opts.durationMs,
      warmupMs: WARMUP_MS,
      watch,
      t0,
      progress: opts.progress,
      onSample: () => loopLag(gw),
    });
    await probe.stop();
    const queryableHalf = probe.take();
    if (gw.warnings.length > 0) opts.progress.note(`gateway warnings:\n${gw.warnings.join('\n')}`);
    return {
      gateway,
      half,
      persisted: stored.count,
      expected: ackedTotal,
      persistedPerSec,
      queryableMax,
      queryableHalf,
      queryableLost: probe.lost,
    };
  } finally {
    await probe.close().catch(() => {});
    await gen.close();
    await gw.stop();
  }
}

function report(
  opts: BenchOptions,
  startedAt: Date,
  devices: number,
  rounds: readonly Round[],
  markers: readonly { t: number; label: string }[],
  profileDir: string | undefined,
): ScenarioResult {
  const g = rounds.map((r) => r.gateway.readingsPerSec);
  const m = rounds.map((r) => r.mosquitto.readingsPerSec);
  const ratios = rounds.map((r) => r.gateway.readingsPerSec / r.mosquitto.readingsPerSec);
  const persisted = rounds.map((r) => r.persistedPerSec);
  const halfP99 = rounds.map((r) => pct(r.half.latency, 99));
  const maxP = (p: number) => rounds.map((r) => pct(r.gateway.latency, p));
  const qMax = newHistogram();
  const qHalf = newHistogram();
  for (const r of rounds) {
    qMax.add(r.queryableMax);
    qHalf.add(r.queryableHalf);
  }
  const med = (v: number[]) => spread(v).median;
  const usPer = (p: PhaseResult, proc: string) => ((p.cpu[proc] ?? 0) * 1e4) / p.readingsPerSec;
  const gwUs = rounds.map((r) => usPer(r.gateway, 'gateway'));
  const mqUs = rounds.map((r) => usPer(r.mosquitto, 'mosquitto'));
  const lost = rounds.reduce((n, r) => n + Math.max(0, r.expected - r.persisted), 0);
  const rows: Row[] = [
    {
      metric: 'accepted readings/s (PUBACKed), gateway, embedded store',
      value: describeSpread(g),
      target: '≥ 40,000',
      verdict: judge(med(g), 40_000, 'min'),
    },
    {
      metric: 'persisted readings/s (counted in the store)',
      value: describeSpread(persisted),
      target: '≥ 40,000',
      verdict: judge(med(persisted), 40_000, 'min'),
    },
    {
      metric: 'readings acknowledged but not in the store',
      value: fmt(lost),
      target: '0',
      verdict: lost === 0 ? 'met' : 'missed',
    },
    {
      metric: 'messages the gateway rejected (notices on the errors topics)',
      value: fmt(rounds.reduce((n, r) => n + r.gateway.notices + r.half.notices, 0)),
    },
    { metric: 'mosquitto QoS 1 readings/s, same load', value: describeSpread(m) },
    {
      metric: 'gateway ÷ mosquitto',
      value: describeSpread(ratios, 2, '×'),
      target: '≥ 0.7×',
      verdict: judge(med(ratios), 0.7, 'min'),
    },
    {
      metric: 'PUBACK p50 / p99 / p99.9 at max (ms)',
      value: `${fmt(med(maxP(50)), 1)} / ${fmt(med(maxP(99)), 1)} / ${fmt(med(maxP(99.9)), 1)}`,
    },
    {
      metric: `PUBACK p50 / p99 / p99.9 at half max (ms)`,
      value: `${fmt(med(rounds.map((r) => pct(r.half.latency, 50))), 1)} / ${fmt(med(halfP99), 1)} / ${fmt(med(rounds.map((r) => pct(r.half.latency, 99.9))), 1)}`,
      target: 'p99 ≤ 15',
      verdict: judge(med(halfP99), 15, 'max'),
    },
    {
      metric: 'gateway event-loop delay, worst per second: median / max, at half max',
      value: describeLoopLag(rounds.map((r) => r.half)),
    },
    {
      metric: 'publish→queryable p50 / p99 at max (ms)',
      value: `${fmt(pct(qMax, 50))} / ${fmt(pct(qMax, 99))} (${qMax.totalCount} probes)`,
      target: 'p99 ≤ 2,000',
      verdict: judge(pct(qMax, 99), 2000, 'max'),
    },
    {
      metric: 'publish→queryable p50 / p99 at half max (ms)',
      value: `${fmt(pct(qHalf, 50))} / ${fmt(pct(qHalf, 99))} (${qHalf.totalCount} probes)`,
      target: 'p99 ≤ 2,000',
      verdict: judge(pct(qHalf, 99), 2000, 'max'),
    },
    {
      metric: 'gateway CPU at max (100% = one core)',
      value: describeSpread(
        rounds.map((r) => r.gateway.cpu.gateway ?? 0),
        0,
        '%',
      ),
    },
    {
      // CPU time per reading does not depend on how much of the machine others took: it gives
      // the rate one uncontended core would reach, the gateway's real ceiling (one event loop).
      metric: 'gateway CPU per reading at max → rate on one whole core',
      value: `${describeSpread(gwUs, 1, ' µs')} → ${describeSpread(
        gwUs.map((u) => 1e6 / u),
        0,
        '/s',
      )}`,
    },
    {
      metric: 'mosquitto CPU per message → rate on one whole core',
      value: `${describeSpread(mqUs, 1, ' µs')} → ${describeSpread(
        mqUs.map((u) => 1e6 / u),
        0,
        '/s',
      )}`,
    },
    {
      metric: 'gateway ÷ mosquitto, per core',
      value: describeSpread(
        gwUs.map((u, i) => (mqUs[i] ?? Number.NaN) / u),
        2,
        '×',
      ),
    },
    {
      metric: 'gateway peak RSS at max',
      value: describeSpread(
        rounds.map((r) => r.gateway.peakRssMiB.gateway ?? 0),
        0,
        ' MiB',
      ),
    },
    {
      metric: 'load generator CPU: vs mosquitto / vs gateway',
      value: `${describeSpread(
        rounds.map((r) => r.mosquitto.cpu.loadgen ?? 0),
        0,
        '%',
      )} / ${describeSpread(
        rounds.map((r) => r.gateway.cpu.loadgen ?? 0),
        0,
        '%',
      )}`,
    },
    {
      metric: 'mosquitto CPU',
      value: describeSpread(
        rounds.map((r) => r.mosquitto.cpu.mosquitto ?? 0),
        0,
        '%',
      ),
    },
    {
      metric: 'other processes / interrupts CPU during the gateway runs',
      value: `${describeSpread(
        rounds.map((r) => r.gateway.otherCpu),
        0,
        '%',
      )} / ${describeSpread(
        rounds.map((r) => r.gateway.irqCpu),
        0,
        '%',
      )}`,
    },
  ];
  const series = (
    phase: 'mosquitto' | 'gateway' | 'half',
    name: string,
    f: (s: PhaseResult['samples'][number]) => number,
  ): Series => ({
    name,
    points: rounds.flatMap((r) => r[phase].samples.map((s) => [s.t, f(s)] as const)),
  });
  const profiles = profileDir ? summarizeProfiles(profileDir) : undefined;
  return {
    scenario: 'ingest',
    startedAt: startedAt.toISOString(),
    machine: opts.machine,
    params: {
      devices,
      durationS: opts.durationMs / 1000,
      warmupS: WARMUP_MS / 1000,
      workers: opts.workers,
      window: opts.window,
      batch: opts.batch,
      repeat: opts.repeat,
      qos: 1,
      store: 'embedded',
    },
    rows,
    figures: {
      rounds: rounds.map((r) => ({
        mosquitto: phaseFigures(r.mosquitto),
        gateway: phaseFigures(r.gateway),
        half: phaseFigures(r.half),
        persisted: r.persisted,
        expected: r.expected,
        persistedPerSec: Math.round(r.persistedPerSec),
        queryableMaxMs: latencyFigures(r.queryableMax),
        queryableHalfMs: latencyFigures(r.queryableHalf),
        queryableLost: r.queryableLost,
      })),
      profiles,
    },
    chart: {
      title: `ingest: ${fmt(devices)} devices, QoS 1, ${opts.batch} reading(s) per message`,
      panels: [
        {
          title: 'acknowledged readings per second',
          unit: 'readings/s',
          series: [
            series('mosquitto', 'mosquitto', (s) => s.readingsPerSec),
            series('gateway', 'gateway max', (s) => s.readingsPerSec),
            series('half', 'gateway half', (s) => s.readingsPerSec),
          ],
        },
        {
          title: 'PUBACK latency',
          unit: 'ms',
          series: [
            series('mosquitto', 'mosquitto p99', (s) => s.p99Ms),
            series('gateway', 'gateway p99', (s) => s.p99Ms),
            series('gateway', 'gateway p50', (s) => s.p50Ms),
            series('half', 'half-rate p99', (s) => s.p99Ms),
          ],
        },
        {
          title: 'CPU',
          unit: '% of one core',
          series: [
            series('gateway', 'gateway', (s) => s.cpu.gateway ?? 0),
            series('half', 'gateway (half)', (s) => s.cpu.gateway ?? 0),
            series('mosquitto', 'mosquitto', (s) => s.cpu.mosquitto ?? 0),
            series('gateway', 'load generator', (s) => s.cpu.loadgen ?? 0),
            series('gateway', 'other processes', (s) => s.otherCpu),
          ],
        },
      ],
      markers,
    },
    notes: [
      'accepted = readings in PUBACKed messages over the measured window (warm-up excluded);',
      'persisted = readings counted in the store (GET /api/v1/aggregates fn=count) ÷ time from the first publish until the count stopped growing;',
      `publish→queryable is polled every ${QueryableProbe.POLL_MS} ms through the aggregates API;`,
      'the load generator shares the 2 cores with the gateway; "other processes" is CPU taken by everything else on the machine.',
      ...(profiles ? [`CPU profile: ${profiles.files.join(', ')}`] : []),
    ],
  };
}

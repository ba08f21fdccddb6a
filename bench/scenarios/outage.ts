/**
 * outage: the gateway on InfluxDB 1.6.7 (v1 write API) under `--devices` (1,000) devices at half
 * its maximum rate (or `--rate`); InfluxDB is stopped for `--outage` (60 s) and started again on
 * the same port and data. Measured: spool growth while it is down, PUBACK latency before, during
 * and after, and the drain rate once it is back, until the backlog is gone; then every
 * acknowledged reading is counted in InfluxDB.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFleet } from '../fleet.js';
import { NO_DEVICE_RATE_LIMIT, ROOT, startGateway } from '../gateway.js';
import {
  connectAll,
  startFleetLoad,
  countReadings,
  latencyBetween,
  latencyFigures,
  pct,
  phaseFigures,
  probeMaxRate,
  runPhase,
  type BenchOptions,
} from '../measure.js';
import { CpuWatch } from '../proc.js';
import { summarizeProfiles } from '../profile.js';
import { fmt, type Row, type ScenarioResult } from '../report.js';
import { startInfluxDB } from '../../support/servers.js';

const BEFORE_MS = 20_000;
/** After InfluxDB is back: at least this long, and until the backlog is drained… */
const AFTER_MIN_MS = 15_000;
/** …but no longer than this multiple of the outage (plus a minute). */
const AFTER_MAX_FACTOR = 3;
const TYPES = ['air-quality', 'weather'];

export async function outage(opts: BenchOptions): Promise<ScenarioResult> {
  const startedAt = new Date();
  const t0 = Date.now();
  const devices = opts.devices ?? 1000;
  const dir = mkdtempSync(join(tmpdir(), 'taihu-bench-outage-'));
  const fleet = createFleet(join(ROOT, 'seeds'), dir, devices);
  const influx = await startInfluxDB();
  const profileDir = opts.cpuProf ? join(opts.outDir, 'profiles', `outage-${t0}`) : undefined;
  const gw = await startGateway({
    env: {
      TAIHU_SEEDS_DIR: fleet.seedsDir,
      ...NO_DEVICE_RATE_LIMIT,
      TAIHU_STORE: 'influxdb',
      TAIHU_INFLUX_URL: influx.url,
      TAIHU_INFLUX_API: 'v1',
      TAIHU_INFLUX_BUCKET: 'taihu',
    },
    cpuProfDir: profileDir,
  });
  const gen = await startFleetLoad(gw.ports.mqtt, fleet, opts);
  const markers: { t: number; label: string }[] = [];
  const mark = (label: string) => markers.push({ t: (Date.now() - t0) / 1000, label });
  try {
    await connectAll(gen, 'the gateway', opts.progress);
    const watch = new CpuWatch(() => ({
      gateway: gw.pid,
      influxd: influx.pid(),
      loadgen: process.pid,
    }));
    const windowFrom = Date.now() - 60_000;
    // Records the spool received: one per acknowledged message.
    let records = 0;
    let rate = opts.rate;
    let maxFigures: Record<string, unknown> | undefined;
    let maxReadings = 0;
    if (rate === undefined) {
      mark('max');
      const max = await probeMaxRate(gen, watch, t0, opts.progress);
      maxReadings = max.totalReadingsAcked;
      records += Math.round(max.totalReadingsAcked / opts.batch);
      rate = Math.max(1, Math.round(max.ackedPerSec / 2));
      maxFigures = phaseFigures(max);
      opts.progress.note(
        `[outage] maximum on InfluxDB ${fmt(max.ackedPerSec)} msgs/s; running at ${fmt(rate)}/s`,
      );
    }
    // Let the drainer catch up with the probe before the timeline starts.
    await waitDrained(gw, () => records, 60_000);

    let downAt = 0;
    let upAt = 0;
    let caughtUpAt = 0;
    let lastConfirmed = gw.spool().confirmedSeq;
    let firstDrainAfterUp = 0;
    let phaseStart = 0;
    const spoolAt: { at: number; bytes: number; pending: number; drained: number }[] = [];
    const recordsBefore = records;
    let transition: Promise<void> = Promise.resolve();
    mark(`load ${fmt(rate)}/s`);
    const phase = await runPhase(gen, {
      label: `outage ${fmt(opts.outageMs / 1000)} s at ${fmt(rate)}/s`,
      rate,
      durationMs: BEFORE_MS + opts.outageMs + opts.outageMs * AFTER_MAX_FACTOR + 60_000,
      warmupMs: 0,
      watch,
      t0,
      progress: opts.progress,
      keepSampleLatency: true,
      onSample: (elapsed, s) => {
        const now = s.at;
        if (phaseStart === 0) phaseStart = now - elapsed;
        records += Math.round(s.readingsAcked / opts.batch);
        const sp = gw.spool();
        const drained = ((sp.confirmedSeq - lastConfirmed) * 1000) / s.intervalMs;
        lastConfirmed = sp.confirmedSeq;
        const pending = Math.max(0, records - sp.confirmedSeq);
        spoolAt.push({ at: now, bytes: sp.bytes, pending, drained });
        if (downAt === 0 && elapsed >= BEFORE_MS) {
          downAt = now;
          mark('InfluxDB down');
          transition = influx.pause();
        } else if (downAt > 0 && upAt === 0 && now - downAt >= opts.outageMs) {
          upAt = now;
          mark('InfluxDB up');
          transition = transition.then(() => influx.resume());
        } else if (upAt > 0 && firstDrainAfterUp === 0 && drained > 0) {
          firstDrainAfterUp = now;
          mark('draining');
        }
        if (upAt > 0 && caughtUpAt === 0 && now - upAt > 2000 && pending <= rate * 2) {
          caughtUpAt = now;
          mark('caught up');
        }
        return { spoolMiB: sp.bytes / 1024 ** 2, pending, drainedPerSec: drained };
      },
      until: (elapsed) =>
        caughtUpAt > 0 &&
        phaseStart + elapsed - upAt >= AFTER_MIN_MS &&
        phaseStart + elapsed - caughtUpAt >= 5_000,
    });
    await transition;
    const unacked = phase.unacked;
    mark('load stopped');
    // the acknowledgements that came after the last sample are in the phase's total
    records = recordsBefore + Math.round(phase.totalReadingsAcked / opts.batch);
    const drainedAll = await waitDrained(gw, () => records, 180_000);
    const totalAcked = maxReadings + phase.totalReadingsAcked;
    const counted = await countReadings(gw, TYPES, windowFrom, Date.now() + 600_000);

    // windows
    const before = latencyBetween(phase, phaseStart + 5_000, downAt);
    const during = latencyBetween(phase, downAt, upAt);
    const after = latencyBetween(phase, upAt, caughtUpAt || Date.now());
    const atDown = spoolAt.find((x) => x.at >= downAt);
    const atUp = [...spoolAt].reverse().find((x) => x.at <= upAt + 1000);
    const growthMiB = ((atUp?.bytes ?? 0) - (atDown?.bytes ?? 0)) / 1024 ** 2;
    const growthRecords = (atUp?.pending ?? 0) - (atDown?.pending ?? 0);
    const drainWindow = spoolAt.filter(
      (x) => x.at > (firstDrainAfterUp || upAt) && x.at <= (caughtUpAt || Date.now()),
    );
    const drainAvg = drainWindow.length
      ? drainWindow.reduce((n, x) => n + x.drained, 0) / drainWindow.length
      : Number.NaN;
    const drainPeak = Math.max(0, ...drainWindow.map((x) => x.drained));
    const catchUpS = caughtUpAt ? (caughtUpAt - upAt) / 1000 : Number.NaN;
    const backlogDrainRate = drainAvg - rate;

    const rows: Row[] = [
      {
        metric: 'load (half the maximum on InfluxDB, or --rate)',
        value: `${fmt(rate)} msgs/s from ${fmt(devices)} devices`,
      },
      { metric: 'outage', value: `${fmt((upAt - downAt) / 1000)} s` },
      {
        metric: 'spool growth during the outage',
        value: `${fmt(growthMiB, 1)} MiB, ${fmt(growthRecords)} records (${fmt(growthMiB / Math.max(1, (upAt - downAt) / 1000), 2)} MiB/s)`,
      },
      {
        metric: 'PUBACK p50 / p99 / p99.9 before (ms)',
        value: `${fmt(pct(before, 50), 1)} / ${fmt(pct(before, 99), 1)} / ${fmt(pct(before, 99.9), 1)}`,
      },
      {
        metric: 'PUBACK p50 / p99 / p99.9 during the outage (ms)',
        value: `${fmt(pct(during, 50), 1)} / ${fmt(pct(during, 99), 1)} / ${fmt(pct(during, 99.9), 1)}`,
        target: 'acks go on',
        verdict: during.totalCount > 0 ? 'met' : 'missed',
      },
      {
        metric: 'PUBACK p50 / p99 / p99.9 while catching up (ms)',
        value: `${fmt(pct(after, 50), 1)} / ${fmt(pct(after, 99), 1)} / ${fmt(pct(after, 99.9), 1)}`,
      },
      {
        metric: 'first write after InfluxDB is back',
        value: firstDrainAfterUp
          ? `${fmt((firstDrainAfterUp - upAt) / 1000, 1)} s (drainer backoff)`
          : 'n/a',
      },
      {
        metric: 'drain rate after recovery: average / peak (records/s, load included)',
        value: `${fmt(drainAvg)} / ${fmt(drainPeak)} (backlog shrinks by ${fmt(backlogDrainRate)}/s)`,
      },
      { metric: 'time to catch up after InfluxDB is back', value: `${fmt(catchUpS, 1)} s` },
      {
        metric: 'acknowledged readings missing from InfluxDB afterwards',
        value: `${fmt(Math.max(0, totalAcked - counted))} (${fmt(counted)} counted of ${fmt(totalAcked)} acknowledged${drainedAll ? '' : '; the spool had not drained'})`,
        target: '0',
        verdict: totalAcked - counted <= 0 ? 'met' : 'missed',
      },
    ];
    if (unacked > 0)
      rows.push({ metric: 'messages never acknowledged at the end', value: fmt(unacked) });
    await gen.close();
    await gw.stop(); // the CPU profile is written at exit
    const pts = (f: (x: (typeof spoolAt)[number]) => number) =>
      spoolAt.map((x) => [(x.at - t0) / 1000, f(x)] as const);
    return {
      scenario: 'outage',
      startedAt: startedAt.toISOString(),
      machine: opts.machine,
      params: {
        devices,
        rate,
        outageS: opts.outageMs / 1000,
        beforeS: BEFORE_MS / 1000,
        influxdb: '1.6.7, v1 write API',
      },
      rows,
      figures: {
        max: maxFigures,
        phase: phaseFigures(phase),
        beforeMs: latencyFigures(before),
        duringMs: latencyFigures(during),
        afterMs: latencyFigures(after),
        spoolGrowthMiB: growthMiB,
        spoolGrowthRecords: growthRecords,
        drainAvgPerSec: drainAvg,
        drainPeakPerSec: drainPeak,
        firstWriteAfterUpS: firstDrainAfterUp ? (firstDrainAfterUp - upAt) / 1000 : null,
        catchUpS,
        acknowledged: totalAcked,
        counted,
        profiles: profileDir ? summarizeProfiles(profileDir) : undefined,
        spool: spoolAt.map((x) => ({
          t: (x.at - t0) / 1000,
          bytes: x.bytes,
          pending: x.pending,
          drained: Math.round(x.drained),
        })),
      },
      chart: {
        title: `outage: InfluxDB down ${fmt(opts.outageMs / 1000)} s at ${fmt(rate)} msgs/s`,
        panels: [
          {
            title: 'throughput',
            unit: 'per second',
            series: [
              {
                name: 'acknowledged msgs/s',
                points: phase.samples.map((s) => [s.t, s.ackedPerSec] as const),
              },
              { name: 'drained records/s', points: pts((x) => x.drained) },
            ],
          },
          {
            title: 'PUBACK latency',
            unit: 'ms',
            series: [
              { name: 'p99', points: phase.samples.map((s) => [s.t, s.p99Ms] as const) },
              { name: 'p50', points: phase.samples.map((s) => [s.t, s.p50Ms] as const) },
            ],
          },
          {
            title: 'spool',
            unit: 'MiB on disk / thousands of records pending',
            series: [
              { name: 'MiB', points: pts((x) => x.bytes / 1024 ** 2) },
              { name: 'k records pending', points: pts((x) => x.pending / 1000) },
            ],
          },
        ],
        markers,
      },
      notes: [
        'spool MiB is the size of the segment files on disk: a segment (64 MiB) is deleted only once every record in it is confirmed, so it falls in steps',
        'pending = records acknowledged − the spool checkpoint (confirmed records)',
        'the drainer retries with full-jitter exponential backoff up to 30 s, so the first write after InfluxDB returns may wait up to that long',
      ],
    };
  } finally {
    await gen.close();
    await gw.stop();
    await influx.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Waits until the spool's checkpoint reaches `records()`; false on timeout. */
async function waitDrained(
  gw: { spool(): { confirmedSeq: number } },
  records: () => number,
  timeoutMs: number,
): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (gw.spool().confirmedSeq >= records()) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

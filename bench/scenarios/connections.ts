/**
 * connections: `--devices` (10,000) devices connect (keepalive 60 s, subscribed to their errors
 * topic, as the simulator's devices are) and stay idle; measured: connect rate, and the RSS the
 * connections add to the gateway, per connection. The same against mosquitto for reference.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoadGenerator, type ConnectResult } from '../../devices/load.js';
import { createFleet, type Fleet } from '../fleet.js';
import { ENROLLMENT_KEY, ROOT, startGateway } from '../gateway.js';
import { describeSpread, ms, spread, type BenchOptions } from '../measure.js';
import { procStat } from '../proc.js';
import { fmt, judge, type Row, type ScenarioResult } from '../report.js';
import { startMosquitto } from '../../support/servers.js';

/** How long the idle connections are held before RSS is read, ms (at most --duration). */
const HOLD_MS = 20_000;
/** Settling time before the baseline RSS is read, ms. */
const SETTLE_MS = 3_000;

interface Hold {
  readonly target: string;
  readonly connect: ConnectResult;
  readonly rssBeforeMiB: number;
  readonly rssAfterMiB: number;
  readonly kibPerConnection: number;
  readonly series: readonly (readonly [number, number])[];
  readonly cpuSeries: readonly (readonly [number, number])[];
}

export async function connections(opts: BenchOptions): Promise<ScenarioResult> {
  const startedAt = new Date();
  const t0 = Date.now();
  const devices = opts.devices ?? 10_000;
  const limit = Number(opts.machine.openFilesLimit);
  const notes: string[] = [];
  if (Number.isFinite(limit) && limit < devices + 200) {
    throw new Error(
      `ulimit -n is ${limit}: too low to hold ${devices} connections in one process (raise it with ulimit -n ${devices + 1000})`,
    );
  }
  notes.push(
    `ulimit -n ${opts.machine.openFilesLimit}: the gateway and the load generator each hold ${fmt(devices)} sockets, within the limit`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'taihu-bench-conn-'));
  const fleet = createFleet(join(ROOT, 'seeds'), dir, devices);
  const holdMs = Math.min(HOLD_MS, opts.durationMs);
  const markers: { t: number; label: string }[] = [];
  const gateway: Hold[] = [];
  const mosquitto: Hold[] = [];
  try {
    for (let r = 1; r <= opts.repeat; r++) {
      markers.push({ t: (Date.now() - t0) / 1000, label: `gateway #${r}` });
      gateway.push(await hold('gateway', opts, fleet, holdMs, t0));
      markers.push({ t: (Date.now() - t0) / 1000, label: `mosquitto #${r}` });
      mosquitto.push(await hold('mosquitto', opts, fleet, holdMs, t0));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const perConn = gateway.map((h) => h.kibPerConnection);
  const rows: Row[] = [
    {
      metric: `gateway RSS per idle connection at ${fmt(devices)}`,
      value: describeSpread(perConn, 1, ' KiB'),
      target: '≤ 30 KB',
      // KB as the issue writes it; KiB is the stricter reading (30 KiB = 30.7 kB)
      verdict: judge(spread(perConn).median, 30, 'max'),
    },
    {
      metric: 'gateway connections held / refused',
      value: gateway
        .map((h) => `${fmt(h.connect.connected)} / ${fmt(h.connect.failed)}`)
        .join(', '),
    },
    {
      metric: 'gateway connect rate (CONNECT → CONNACK + SUBACK)',
      value: describeSpread(
        gateway.map((h) => h.connect.perSec),
        0,
        '/s',
      ),
    },
    {
      metric: 'gateway connect latency p50 / p99',
      value: `${fmt(spread(gateway.map((h) => ms(h.connect.latency.getValueAtPercentile(50)))).median, 1)} / ${fmt(spread(gateway.map((h) => ms(h.connect.latency.getValueAtPercentile(99)))).median, 1)} ms`,
    },
    {
      metric: 'gateway RSS idle → with connections',
      value: gateway.map((h) => `${fmt(h.rssBeforeMiB)} → ${fmt(h.rssAfterMiB)} MiB`).join(', '),
    },
    {
      metric: 'mosquitto RSS per idle connection',
      value: describeSpread(
        mosquitto.map((h) => h.kibPerConnection),
        1,
        ' KiB',
      ),
    },
    {
      metric: 'mosquitto connect rate',
      value: describeSpread(
        mosquitto.map((h) => h.connect.perSec),
        0,
        '/s',
      ),
    },
  ];
  const summary = (h: Hold) => ({
    target: h.target,
    connected: h.connect.connected,
    failed: h.connect.failed,
    errors: h.connect.errors,
    connectMs: h.connect.ms,
    connectPerSec: Math.round(h.connect.perSec),
    connectLatencyMs: {
      p50: ms(h.connect.latency.getValueAtPercentile(50)),
      p99: ms(h.connect.latency.getValueAtPercentile(99)),
      max: ms(h.connect.latency.maxValue),
    },
    rssBeforeMiB: Math.round(h.rssBeforeMiB * 10) / 10,
    rssAfterMiB: Math.round(h.rssAfterMiB * 10) / 10,
    kibPerConnection: Math.round(h.kibPerConnection * 100) / 100,
  });
  return {
    scenario: 'connections',
    startedAt: startedAt.toISOString(),
    machine: opts.machine,
    params: {
      devices,
      holdS: holdMs / 1000,
      keepaliveS: 60,
      subscribeErrors: true,
      repeat: opts.repeat,
    },
    rows,
    figures: { gateway: gateway.map(summary), mosquitto: mosquitto.map(summary) },
    chart: {
      title: `connections: ${fmt(devices)} idle devices`,
      panels: [
        {
          title: 'RSS of the broker process',
          unit: 'MiB',
          series: [
            { name: 'gateway', points: gateway.flatMap((h) => h.series) },
            { name: 'mosquitto', points: mosquitto.flatMap((h) => h.series) },
          ],
        },
        {
          title: 'CPU of the broker process',
          unit: '% of one core',
          series: [
            { name: 'gateway', points: gateway.flatMap((h) => h.cpuSeries) },
            { name: 'mosquitto', points: mosquitto.flatMap((h) => h.cpuSeries) },
          ],
        },
      ],
      markers,
    },
    notes: [
      ...notes,
      'RSS per connection = (RSS after connecting and holding idle − RSS before) ÷ connections, from /proc/<pid>/status VmRSS',
    ],
  };
}

interface Broker {
  readonly pid: number;
  readonly port: number;
  stop(): Promise<void>;
}

async function startBroker(target: 'gateway' | 'mosquitto', fleet: Fleet): Promise<Broker> {
  if (target === 'gateway') {
    const gw = await startGateway({ env: { TAIHU_SEEDS_DIR: fleet.seedsDir } });
    return { pid: gw.pid, port: gw.ports.mqtt, stop: () => gw.stop() };
  }
  const m = await startMosquitto();
  const pid = m.pid();
  if (pid === undefined) throw new Error('mosquitto has no process id');
  return { pid, port: m.port, stop: () => m.stop() };
}

async function hold(
  target: 'gateway' | 'mosquitto',
  opts: BenchOptions,
  fleet: Fleet,
  holdMs: number,
  t0: number,
): Promise<Hold> {
  const server = await startBroker(target, fleet);
  const { pid, port } = server;
  const series: [number, number][] = [];
  const cpuSeries: [number, number][] = [];
  let last = procStat(pid);
  let lastAt = performance.now();
  const sample = () => {
    const s = procStat(pid);
    const now = performance.now();
    if (s) {
      const t = (Date.now() - t0) / 1000;
      series.push([t, s.rssBytes / 1024 ** 2]);
      if (last) cpuSeries.push([t, ((s.cpuMs - last.cpuMs) * 100) / Math.max(1, now - lastAt)]);
      last = s;
      lastAt = now;
    }
    return s;
  };
  const sampler = setInterval(sample, 500);
  let gen: LoadGenerator | undefined;
  try {
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const before = sample()?.rssBytes ?? 0;
    gen = await LoadGenerator.start({
      host: '127.0.0.1',
      port,
      devices: fleet.devices,
      enrollmentKey: ENROLLMENT_KEY,
      workers: opts.workers,
      keepaliveSec: 60,
    });
    opts.progress.update(
      `[connections ${target}] connecting ${fmt(fleet.devices.length)} devices…`,
    );
    const connect = await gen.connect();
    opts.progress.note(
      `[connections ${target}] ${fmt(connect.connected)} connected, ${fmt(connect.failed)} refused in ${fmt(connect.ms)} ms (${fmt(connect.perSec)}/s)` +
        (connect.errors.length ? `; ${connect.errors.join('; ')}` : ''),
    );
    const until = Date.now() + holdMs;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 1000));
      const s = procStat(pid);
      opts.progress.update(
        `[connections ${target}] holding ${fmt(connect.connected)} idle · ${fmt((until - Date.now()) / 1000)} s left · RSS ${fmt((s?.rssBytes ?? 0) / 1024 ** 2)} MiB`,
      );
    }
    opts.progress.done();
    const after = sample()?.rssBytes ?? 0;
    return {
      target,
      connect,
      rssBeforeMiB: before / 1024 ** 2,
      rssAfterMiB: after / 1024 ** 2,
      kibPerConnection: (after - before) / 1024 / Math.max(1, connect.connected),
      series,
      cpuSeries,
    };
  } finally {
    clearInterval(sampler);
    await gen?.close();
    await server.stop();
  }
}

/**
 * drain: `--points` (500,000) readings, one per spool record as one-reading messages leave them,
 * drained from the spool into InfluxDB 1.6.7 by the gateway's own Spool + Drainer +
 * createInfluxStore (in this process), next to a plain line-protocol HTTP writer posting the same
 * points in the same batch size to the same server (once as plain text, once gzipped as the
 * store sends large bodies), each into a fresh database, in alternating order.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createCity } from '../../devices/city.js';
import { MODELS } from '../../devices/models/index.js';
import { createRng, deriveSeed, hash32 } from '../../devices/rng.js';
import { loadCatalog } from '../../src/ingest/catalog.js';
import { defaultDrainerOptions, Drainer } from '../../src/spool/drainer.js';
import { Spool } from '../../src/spool/spool.js';
import { createInfluxStore } from '../../src/store/influx/index.js';
import type { FieldKind } from '../../src/store/types.js';
import type { FieldValue, Point } from '../../src/points/point.js';
import { createFleet } from '../fleet.js';
import { ROOT } from '../gateway.js';
import { describeSpread, spread, type BenchOptions } from '../measure.js';
import { procStat } from '../proc.js';
import { summarizeProfiles } from '../profile.js';
import { fmt, judge, type Row, type ScenarioResult } from '../report.js';
import { startInfluxDB, type Server } from '../../support/servers.js';

const BATCH = defaultDrainerOptions.maxBatchPoints;
/** Appends in flight while filling the spool: they share fdatasyncs (group commit). */
const APPEND_CONCURRENCY = 1_000;

type Method = 'spool → drainer → influx store' | 'plain writer' | 'plain writer, gzip';

interface Run {
  readonly method: Method;
  readonly round: number;
  readonly pointsPerSec: number;
  readonly seconds: number;
  readonly counted: number;
  readonly influxCpu: number;
  readonly selfCpu: number;
  readonly series: [number, number][];
}

export async function drain(opts: BenchOptions): Promise<ScenarioResult> {
  const startedAt = new Date();
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'taihu-bench-drain-'));
  const catalog = loadCatalog(join(ROOT, 'schemas'));
  const kinds = new Map(catalog.measurements().map((m) => [m.measurement, m.fields]));
  const points = makePoints(dir, opts.points, catalog);
  // the drainer runs in this process: --cpu-prof profiles it while it drains, nothing else
  const profileDir = opts.cpuProf ? join(opts.outDir, 'profiles', `drain-${t0}`) : undefined;
  const influx = await startInfluxDB();
  const runs: Run[] = [];
  const appendRates: number[] = [];
  const markers: { t: number; label: string }[] = [];
  try {
    const order: Method[][] = [
      ['plain writer', 'spool → drainer → influx store', 'plain writer, gzip'],
      ['spool → drainer → influx store', 'plain writer, gzip', 'plain writer'],
    ];
    for (let r = 1; r <= opts.repeat; r++) {
      for (const method of order[(r - 1) % 2] ?? []) {
        const db = `drain_${r}_${method === 'plain writer' ? 'plain' : method === 'plain writer, gzip' ? 'gzip' : 'spool'}`;
        markers.push({ t: (Date.now() - t0) / 1000, label: `${method} #${r}` });
        const run =
          method === 'spool → drainer → influx store'
            ? await viaSpool(opts, profileDir, dir, influx, db, points, catalog, t0, appendRates)
            : await plain(opts, influx, db, points, kinds, method === 'plain writer, gzip', t0);
        runs.push({ ...run, method, round: r });
        opts.progress.note(
          `[drain] ${method} #${r}: ${fmt(run.pointsPerSec)} points/s, ${fmt(run.counted)} of ${fmt(points.length)} points in InfluxDB`,
        );
      }
    }
  } finally {
    await influx.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const rate = (m: Method) => runs.filter((r) => r.method === m).map((r) => r.pointsPerSec);
  const spoolRates = rate('spool → drainer → influx store');
  const plainBest = Math.max(
    spread(rate('plain writer')).median,
    spread(rate('plain writer, gzip')).median,
  );
  const ratio = spread(spoolRates).median / plainBest;
  const missing = runs.filter((r) => r.counted !== points.length);
  const rows: Row[] = [
    {
      metric: 'spool → drainer → InfluxDB store, points/s',
      value: describeSpread(spoolRates),
    },
    { metric: 'plain line-protocol writer, points/s', value: describeSpread(rate('plain writer')) },
    {
      metric: 'plain writer with gzip, points/s',
      value: describeSpread(rate('plain writer, gzip')),
    },
    {
      metric: 'drain ÷ the faster plain writer',
      value: `${fmt(ratio, 2)}×`,
      target: '≥ 0.8×',
      verdict: judge(ratio, 0.8, 'min'),
    },
    {
      metric: 'points counted in InfluxDB afterwards',
      value:
        missing.length === 0
          ? `all ${fmt(points.length)} in every run`
          : missing.map((r) => `${r.method} #${r.round}: ${fmt(r.counted)}`).join('; '),
    },
    {
      metric: 'influxd CPU: drain / plain / plain gzip',
      value: (['spool → drainer → influx store', 'plain writer', 'plain writer, gzip'] as const)
        .map(
          (m) =>
            `${fmt(spread(runs.filter((r) => r.method === m).map((r) => r.influxCpu)).median)}%`,
        )
        .join(' / '),
    },
    {
      metric: 'bench process CPU (writer side): drain / plain / plain gzip',
      value: (['spool → drainer → influx store', 'plain writer', 'plain writer, gzip'] as const)
        .map(
          (m) => `${fmt(spread(runs.filter((r) => r.method === m).map((r) => r.selfCpu)).median)}%`,
        )
        .join(' / '),
    },
    {
      metric: 'filling the spool (append + group-commit fdatasync), records/s',
      value: describeSpread(appendRates),
    },
  ];
  return {
    scenario: 'drain',
    startedAt: startedAt.toISOString(),
    machine: opts.machine,
    params: {
      points: points.length,
      batchPoints: BATCH,
      influxdb: '1.6.7 (Debian), v1 write API',
      recordsPerPoint: 1,
      repeat: opts.repeat,
    },
    rows,
    figures: {
      runs: runs.map(({ series: _s, ...r }) => ({
        ...r,
        pointsPerSec: Math.round(r.pointsPerSec),
      })),
      appendRecordsPerSec: appendRates.map(Math.round),
      profiles: profileDir ? summarizeProfiles(profileDir) : undefined,
      ratio,
    },
    chart: {
      title: `drain: ${fmt(points.length)} points into InfluxDB 1.6.7, batches of ${fmt(BATCH)}`,
      panels: [
        {
          title: 'points written per second',
          unit: 'points/s',
          series: (
            ['spool → drainer → influx store', 'plain writer', 'plain writer, gzip'] as const
          ).map((m) => ({
            name: m,
            points: runs.filter((r) => r.method === m).flatMap((r) => r.series),
          })),
        },
      ],
      markers,
    },
    notes: [
      'every run writes the same points into its own fresh database of the same influxd; the order of the methods alternates between rounds',
      'the drain figure counts from the drainer start until the spool has no unconfirmed record (the checkpoint fsync after each batch included); filling the spool is not counted',
    ],
  };
}

/** `count` readings of the benchmark fleet (air-quality and weather), one second apart per device. */
function makePoints(dir: string, count: number, catalog: ReturnType<typeof loadCatalog>): Point[] {
  const fleet = createFleet(join(ROOT, 'seeds'), dir, 1000);
  const city = createCity(1);
  const gens = fleet.devices.map((d) => ({
    d,
    measurement: catalog.get(d.type)?.measurement ?? d.type,
    tags: { device_id: d.id, district: d.district, site_id: d.siteId },
    next: MODELS.get(d.type)?.create(d, createRng(deriveSeed(1, d.id)), city),
    offset: hash32('drain', d.id) % 1000,
  }));
  const ticks = Math.ceil(count / gens.length);
  const start = Math.floor(Date.now() / 1000) * 1000 - ticks * 1000;
  const out: Point[] = [];
  for (let k = 0; k < ticks && out.length < count; k++) {
    for (const g of gens) {
      if (out.length >= count || !g.next) break;
      const ts = start + k * 1000 + g.offset;
      const fields: Record<string, FieldValue> = Object.create(null);
      for (const [name, v] of Object.entries(g.next(ts))) fields[name] = v;
      fields.seq = k;
      out.push({ measurement: g.measurement, tags: g.tags, fields, ts });
    }
  }
  return out;
}

const quietLog = { info() {}, warn() {}, error() {} };

/** Profiles this process (the drainer runs in it) with the inspector: `--cpu-prof`. */
async function startProfiler(): Promise<Session> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return session;
}

async function stopProfiler(session: Session, dir: string, name: string): Promise<void> {
  const { profile } = await session.post('Profiler.stop');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
  session.disconnect();
}

async function viaSpool(
  opts: BenchOptions,
  profileDir: string | undefined,
  dir: string,
  influx: Server,
  db: string,
  points: readonly Point[],
  catalog: ReturnType<typeof loadCatalog>,
  t0: number,
  appendRates: number[],
): Promise<Omit<Run, 'method' | 'round'>> {
  const spoolDir = join(dir, `spool-${db}`);
  const spool = await Spool.open(spoolDir, {
    maxBytes: 8 * 1024 ** 3,
    commitWindowMs: 0,
    logger: quietLog,
  });
  const fillStart = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < points.length) {
      const p = points[next++] as Point;
      await spool.append([p]);
    }
  };
  await Promise.all(Array.from({ length: APPEND_CONCURRENCY }, lane));
  appendRates.push((points.length * 1000) / (performance.now() - fillStart));
  const store = createInfluxStore({ url: influx.url, api: 'v1', bucket: db, logger: quietLog });
  await store.open(catalog.measurements());
  // the drainer's defaults, as the gateway runs it
  const drainer = new Drainer(spool, store, {
    logger: quietLog,
    onRejected: (pts, err) => {
      throw new Error(`InfluxDB refused ${pts.length} points: ${err.message}`);
    },
  });
  const series: [number, number][] = [];
  const cpu0 = cpuOf(influx);
  const started = performance.now();
  const profiler = profileDir ? await startProfiler() : undefined;
  drainer.start();
  let last = 0;
  let lastAt = started;
  while (spool.pendingRecords > 0) {
    await new Promise((r) => setTimeout(r, 100));
    const now = performance.now();
    if (now - lastAt >= 1000) {
      const written = drainer.pointsWritten;
      series.push([(Date.now() - t0) / 1000, ((written - last) * 1000) / (now - lastAt)]);
      last = written;
      lastAt = now;
      opts.progress.update(`[drain spool] ${fmt(written)} of ${fmt(points.length)} points written`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  if (profiler && profileDir) await stopProfiler(profiler, profileDir, db);
  const cpu = cpuSince(cpu0, influx, seconds);
  opts.progress.done();
  await drainer.stop(5_000);
  await spool.close();
  await store.close();
  rmSync(spoolDir, { recursive: true, force: true });
  return finished(points.length, seconds, cpu, influx, db, series);
}

/** The simplest correct writer: line protocol by string concatenation, POST, next batch. */
async function plain(
  opts: BenchOptions,
  influx: Server,
  db: string,
  points: readonly Point[],
  kinds: ReadonlyMap<string, ReadonlyMap<string, FieldKind>>,
  gzip: boolean,
  t0: number,
): Promise<Omit<Run, 'method' | 'round'>> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  await post(agent, influx, `/query?q=${encodeURIComponent(`CREATE DATABASE "${db}"`)}`, '', false);
  const series: [number, number][] = [];
  const cpu0 = cpuOf(influx);
  const started = performance.now();
  let lastAt = started;
  let last = 0;
  for (let i = 0; i < points.length; i += BATCH) {
    let body = '';
    for (let j = i; j < Math.min(i + BATCH, points.length); j++) {
      const p = points[j] as Point;
      const fields = kinds.get(p.measurement);
      body += `${p.measurement},device_id=${p.tags.device_id},district=${p.tags.district},site_id=${p.tags.site_id} `;
      let sep = '';
      for (const name in p.fields) {
        const v = p.fields[name];
        const kind = fields?.get(name);
        body += `${sep}${name}=${kind === 'integer' ? `${String(v)}i` : kind === 'string' ? JSON.stringify(v) : String(v)}`;
        sep = ',';
      }
      body += ` ${p.ts}\n`;
    }
    await post(agent, influx, `/write?db=${db}&precision=ms`, body, gzip);
    const now = performance.now();
    if (now - lastAt >= 1000) {
      const written = Math.min(i + BATCH, points.length);
      series.push([(Date.now() - t0) / 1000, ((written - last) * 1000) / (now - lastAt)]);
      last = written;
      lastAt = now;
      opts.progress.update(
        `[drain plain${gzip ? ' gzip' : ''}] ${fmt(written)} of ${fmt(points.length)} points written`,
      );
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuSince(cpu0, influx, seconds);
  opts.progress.done();
  agent.destroy();
  return finished(points.length, seconds, cpu, influx, db, series);
}

function post(
  agent: Agent,
  influx: Server,
  path: string,
  body: string,
  gzip: boolean,
): Promise<void> {
  const payload = gzip ? gzipSync(body) : Buffer.from(body);
  return new Promise((resolve, reject) => {
    const req = request(
      `${influx.url}${path}`,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'text/plain; charset=utf-8',
          'content-length': payload.length,
          ...(gzip ? { 'content-encoding': 'gzip' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (b: Buffer) => (text += b.toString()));
        res.on('end', () =>
          (res.statusCode ?? 0) < 300
            ? resolve()
            : reject(new Error(`POST ${path}: ${res.statusCode} ${text.slice(0, 300)}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function countPoints(influx: Server, db: string): Promise<number> {
  let total = 0;
  for (const [m, f] of [
    ['air_quality', 'pm25_ugm3'],
    ['weather', 'temperature_c'],
  ]) {
    const q = encodeURIComponent(`SELECT count("${f}") FROM "${m}"`);
    const res = await fetch(`${influx.url}/query?db=${db}&q=${q}`);
    const body = (await res.json()) as {
      results?: { series?: { values?: [string, number][] }[] }[];
    };
    total += body.results?.[0]?.series?.[0]?.values?.[0]?.[1] ?? 0;
  }
  return total;
}

/** A writer's run once it has stopped: its rate, its CPU, and what InfluxDB counted. */
async function finished(
  written: number,
  seconds: number,
  cpu: { influx: number; self: number },
  influx: Server,
  db: string,
  series: [number, number][],
): Promise<Omit<Run, 'method' | 'round'>> {
  return {
    pointsPerSec: written / seconds,
    seconds,
    counted: await countPoints(influx, db),
    influxCpu: cpu.influx,
    selfCpu: cpu.self,
    series,
  };
}

function cpuOf(influx: Server): { influx: number; self: number } {
  const pid = influx.pid();
  return {
    influx: (pid === undefined ? undefined : procStat(pid)?.cpuMs) ?? 0,
    self: procStat(process.pid)?.cpuMs ?? 0,
  };
}

function cpuSince(
  before: { influx: number; self: number },
  influx: Server,
  seconds: number,
): { influx: number; self: number } {
  const now = cpuOf(influx);
  return {
    influx: ((now.influx - before.influx) * 100) / (seconds * 1000),
    self: ((now.self - before.self) * 100) / (seconds * 1000),
  };
}

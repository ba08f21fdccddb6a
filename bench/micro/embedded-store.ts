/**
 * Hand-run measurement of the embedded store (not a test; numbers depend on the machine):
 *
 *   npm run build && node dist/bench/micro/embedded-store.js [rows=1000000] [file]
 *
 * 1. write throughput: 100k points of 6 fields in batches of 1000, synchronous=FULL, on a file;
 * 2. aggregate latency on `rows` rows (150 devices, one reading a minute, 7 districts).
 * Without [file] it uses a temporary directory and deletes it afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AggregateQuery, FieldKind, Store } from '../../src/store/types.js';
import type { Point } from '../../src/points/point.js';
import { writePoints } from '../../src/points/batch.js';
import { createEmbeddedStore } from '../../src/store/embedded/index.js';

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const DEVICES = 150;
const DISTRICTS = ['liangxi', 'xinwu', 'xishan', 'huishan', 'binhu', 'jiangyin', 'yixing'];
const FIELDS = new Map<string, FieldKind>([
  ['seq', 'integer'],
  ['pm25_ugm3', 'float'],
  ['pm10_ugm3', 'float'],
  ['no2_ugm3', 'float'],
  ['o3_ugm3', 'float'],
  ['co_mgm3', 'float'],
]);
const T0 = Date.UTC(2026, 0, 1);

function point(n: number): Point {
  const device = n % DEVICES;
  const minute = Math.floor(n / DEVICES);
  const fields = Object.create(null) as Record<string, number>;
  fields.seq = minute;
  fields.pm25_ugm3 = 20 + Math.random() * 50;
  fields.pm10_ugm3 = 40 + Math.random() * 60;
  fields.no2_ugm3 = Math.random() * 40;
  fields.o3_ugm3 = Math.random() * 80;
  fields.co_mgm3 = Math.random() * 2;
  return {
    measurement: 'air_quality',
    tags: {
      device_id: `aq-${String(device).padStart(4, '0')}`,
      district: DISTRICTS[device % DISTRICTS.length] ?? 'liangxi',
      site_id: `site-${device % 40}`,
    },
    fields,
    ts: T0 + minute * MIN + device * 10,
  };
}

/** Writes points [from, to) in batches of 1000; the points are built before the clock starts. */
async function fill(store: Store, from: number, to: number): Promise<number> {
  let elapsed = 0;
  for (let chunk = from; chunk < to; chunk += 100_000) {
    const batches: Point[][] = [];
    for (let n = chunk; n < Math.min(chunk + 100_000, to); n += 1000) {
      const batch: Point[] = [];
      for (let i = n; i < Math.min(n + 1000, to); i++) batch.push(point(i));
      batches.push(batch);
    }
    const started = performance.now();
    for (const batch of batches) await writePoints(store, batch);
    elapsed += performance.now() - started;
  }
  return (to - from) / (elapsed / 1000);
}

async function time(store: Store, label: string, q: AggregateQuery): Promise<void> {
  const runs: number[] = [];
  let points = 0;
  for (let i = 0; i < 7; i++) {
    const started = performance.now();
    const series = await store.aggregate(q);
    runs.push(performance.now() - started);
    points = series.reduce((sum, s) => sum + s.points.length, 0);
  }
  runs.sort((a, b) => a - b);
  const p50 = runs[3] ?? Number.NaN;
  console.log(`${label.padEnd(52)} p50 ${p50.toFixed(1).padStart(7)} ms  (${points} points)`);
}

async function main(): Promise<void> {
  const rows = Number(process.argv[2] ?? 1_000_000);
  const dir =
    process.argv[3] === undefined ? mkdtempSync(join(tmpdir(), 'taihu-bench-')) : undefined;
  const path = process.argv[3] ?? join(dir ?? '.', 'bench.db');
  const store = createEmbeddedStore({ path, logger: { warn: (o, m) => console.warn(m, o) } });
  try {
    await store.open([{ type: 'air-quality', measurement: 'air_quality', fields: FIELDS }]);
    const warm = Math.min(rows, 100_000);
    console.log(
      `write: ${Math.round(await fill(store, 0, warm))} points/s (100k × 6 fields, 1000/batch)`,
    );
    if (rows > warm) {
      console.log(`loading to ${rows} rows: ${Math.round(await fill(store, warm, rows))} points/s`);
    }
    const end = T0 + Math.floor(rows / DEVICES) * MIN;
    const base = {
      measurement: 'air_quality',
      field: 'pm25_ugm3',
      filter: {},
      fill: 'null',
    } as const;
    const day = { fromMs: end - DAY, toMs: end };
    const week = { fromMs: Math.max(T0, end - 7 * DAY), toMs: end };
    for (const fn of ['mean', 'first', 'median', 'stddev', 'p95'] as const) {
      await time(store, `${fn} one device, 24 h at 1 min`, {
        ...base,
        ...day,
        fn,
        everyMs: MIN,
        filter: { device: 'aq-0042' },
      });
      await time(store, `${fn} one district, 24 h at 5 min`, {
        ...base,
        ...day,
        fn,
        everyMs: 5 * MIN,
        filter: { district: 'binhu' },
      });
      await time(store, `${fn} all devices, 7 days at 1 h`, {
        ...base,
        ...week,
        fn,
        everyMs: 60 * MIN,
      });
      await time(store, `${fn} all devices by district, 7 days at 1 h`, {
        ...base,
        ...week,
        fn,
        everyMs: 60 * MIN,
        groupBy: 'district',
      });
    }
  } finally {
    await store.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}

await main();

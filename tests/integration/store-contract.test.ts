/**
 * The storage contract (DESIGN §7): the same data written to the embedded store and
 * to a real InfluxDB (Debian's influxd 1.6.7) must give the same answer to every
 * aggregate — every fn, fill, groupBy, bucket width and window alignment.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/ingest/catalog.js';
import { createEmbeddedStore } from '../../src/store/embedded/index.js';
import { createInfluxStore } from '../../src/store/influx/index.js';
import {
  AGGREGATE_FNS,
  FILLS,
  GROUP_BYS,
  type AggregateQuery,
  type AggregateSeries,
  type Store,
} from '../../src/store/types.js';
import type { Point } from '../../src/points/point.js';
import { startInfluxDB, type TestServer } from '../helpers/servers.js';
import { writePoints } from '../../src/points/batch.js';

const catalog = loadCatalog('schemas');
const AIR = catalog.get('air-quality')!.info;
const FLOW = catalog.get('traffic-flow')!.info;

const T0 = Date.UTC(2026, 10, 20); // a Friday, midnight UTC
const MIN = 60_000;
const DEVICES = [
  { device_id: 'dev-a', district: 'binhu', site_id: 'site-1' },
  { device_id: 'dev-b', district: 'binhu', site_id: 'site-1' },
  { device_id: 'dev-c', district: 'binhu', site_id: 'site-2' },
  { device_id: 'dev-d', district: 'liangxi', site_id: 'site-3' },
  { device_id: 'dev-e', district: 'liangxi', site_id: 'site-3' },
  { device_id: 'dev-f', district: 'xishan', site_id: 'site-4' },
];

/** A deterministic pseudo-random source (the data must be the same in both stores). */
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/**
 * Two hours of readings with gaps: each device reports at irregular moments, skips
 * some 10-minute stretches entirely, and one bucket holds a single reading.
 */
function dataset(): Point[] {
  const rnd = lcg(42);
  const points: Point[] = [];
  DEVICES.forEach((tags, i) => {
    for (let t = T0 + i * 1013; t < T0 + 120 * MIN; t += 20_000 + Math.floor(rnd() * 100_000)) {
      const minute = Math.floor((t - T0) / MIN);
      if (minute >= 30 && minute < 40) continue; // a hole every series shares
      if (i === 5 && minute >= 60) continue; // dev-f stops early
      points.push({
        measurement: 'air_quality',
        tags,
        fields: Object.assign(Object.create(null), {
          pm25_ugm3: Math.round(rnd() * 2000) / 10,
          pm10_ugm3: Math.round(rnd() * 3000) / 10,
          no2_ugm3: Math.round(rnd() * 800) / 10,
          seq: points.length,
        }),
        ts: t,
      });
      points.push({
        measurement: 'traffic_flow',
        tags,
        fields: Object.assign(Object.create(null), {
          vehicle_count: Math.floor(rnd() * 60),
          occupancy_pct: Math.round(rnd() * 1000) / 10,
          seq: points.length,
        }),
        ts: t + 7,
      });
    }
  });
  // A single reading alone in its bucket, far from the rest.
  points.push({
    measurement: 'air_quality',
    tags: DEVICES[0]!,
    fields: Object.assign(Object.create(null), {
      pm25_ugm3: 33.3,
      pm10_ugm3: 1,
      no2_ugm3: 2,
      seq: 99_999,
    }),
    ts: T0 + 150 * MIN + 5_000,
  });
  return points;
}

/** Floats may differ in the last bits (summation order); integers and nulls must be equal. */
function expectSameAnswer(embedded: AggregateSeries[], influx: AggregateSeries[], label: string) {
  expect(
    embedded.map((s) => s.group),
    label,
  ).toEqual(influx.map((s) => s.group));
  embedded.forEach((s, i) => {
    const other = influx[i]!;
    expect(
      s.points.map((p) => [p.t, p.count]),
      `${label} ${JSON.stringify(s.group)}`,
    ).toEqual(other.points.map((p) => [p.t, p.count]));
    s.points.forEach((p, j) => {
      const q = other.points[j]!;
      const where = `${label} ${JSON.stringify(s.group)} t=${new Date(p.t).toISOString()}`;
      if (p.value === null || q.value === null) expect(p.value, where).toBe(q.value);
      else expect(p.value, where).toBeCloseTo(q.value, 9);
    });
  });
}

let influx: TestServer;
let dir: string;
const stores: { name: string; store: Store }[] = [];

beforeAll(async () => {
  influx = await startInfluxDB();
  dir = mkdtempSync(join(tmpdir(), 'taihu-contract-'));
  stores.push(
    { name: 'embedded', store: createEmbeddedStore({ path: join(dir, 'telemetry.db') }) },
    {
      name: 'influxdb',
      store: createInfluxStore({ url: influx.url, api: 'v1', bucket: 'contract' }),
    },
  );
  const data = dataset();
  for (const { store } of stores) {
    await store.open([AIR, FLOW]);
    for (let i = 0; i < data.length; i += 1000) await writePoints(store, data.slice(i, i + 1000));
  }
});

afterAll(async () => {
  for (const { store } of stores) await store.close();
  await influx?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function both(q: AggregateQuery): Promise<[AggregateSeries[], AggregateSeries[]]> {
  const [a, b] = await Promise.all(stores.map(({ store }) => store.aggregate(q)));
  return [a!, b!];
}

const base = {
  measurement: 'air_quality',
  field: 'pm25_ugm3',
  everyMs: 10 * MIN,
  fromMs: T0,
  toMs: T0 + 160 * MIN,
  filter: {},
  fill: 'null' as const,
};

describe('store contract: embedded store and InfluxDB answer alike', () => {
  it('holds the same data in both stores', async () => {
    const [a, b] = await both({ ...base, fn: 'count', everyMs: 1000 * MIN, fill: 'none' });
    expect(a[0]!.points[0]!.value).toBeGreaterThan(300);
    expectSameAnswer(a, b, 'total count');
  });

  for (const fn of AGGREGATE_FNS) {
    for (const fill of FILLS) {
      it(`answers ${fn} with fill(${fill}) identically, float and integer fields`, async () => {
        const [a, b] = await both({ ...base, fn, fill });
        expect(a.length).toBeGreaterThan(0);
        expectSameAnswer(a, b, `${fn} fill(${fill})`);
        const [c, d] = await both({
          ...base,
          measurement: 'traffic_flow',
          field: 'vehicle_count',
          fn,
          fill,
        });
        expectSameAnswer(c, d, `${fn} fill(${fill}) integer`);
      });
    }
  }

  for (const groupBy of GROUP_BYS) {
    for (const fn of ['mean', 'max', 'last', 'p95', 'stddev'] as const) {
      it(`groups ${fn} by ${groupBy} identically`, async () => {
        const [a, b] = await both({ ...base, fn, groupBy });
        expect(a.length).toBeGreaterThan(1);
        expectSameAnswer(a, b, `${fn} by ${groupBy}`);
      });
    }
  }

  it.each([
    ['a device', { device: 'dev-c' }],
    ['a district', { district: 'liangxi' }],
    ['a site', { site: 'site-1' }],
    ['a district and a site', { district: 'binhu', site: 'site-2' }],
  ])('filters by %s identically', async (_name, filter) => {
    const [a, b] = await both({ ...base, fn: 'sum', filter, groupBy: 'device' });
    expect(a.length).toBeGreaterThan(0);
    expectSameAnswer(a, b, JSON.stringify(filter));
  });

  it.each([
    ['a window starting mid-bucket', { fromMs: T0 + 17 * MIN + 12_345, toMs: T0 + 95 * MIN + 1 }],
    ['one-minute buckets', { everyMs: MIN }],
    ['odd 7-minute buckets', { everyMs: 7 * MIN }],
    ['a bucket wider than the window', { everyMs: 24 * 60 * MIN }],
    ['the lone reading', { fromMs: T0 + 140 * MIN, toMs: T0 + 160 * MIN, everyMs: 5 * MIN }],
  ])('aligns buckets to the epoch identically for %s', async (_name, window) => {
    for (const fn of ['mean', 'count', 'first', 'median'] as const) {
      const [a, b] = await both({ ...base, ...window, fn });
      expectSameAnswer(a, b, `${_name} ${fn}`);
    }
  });

  it('answers an empty window with no series in both', async () => {
    const [a, b] = await both({ ...base, fn: 'mean', fromMs: T0 + 31 * MIN, toMs: T0 + 39 * MIN });
    expect(a).toEqual([]);
    expect(b).toEqual([]);
    const [c, d] = await both({ ...base, fn: 'mean', filter: { device: 'nobody' } });
    expect(c).toEqual([]);
    expect(d).toEqual([]);
  });
});

/**
 * The InfluxDB store against real servers: Debian's influxd 1.6.7 through the v1 API (writes and
 * InfluxQL aggregates) and VictoriaMetrics through the v2 write API (the bytes on the wire).
 * A scripted HTTP server stands in only where no packaged server can answer: statuses on demand
 * (429, 503, 413, a request that never ends) and the InfluxDB 2.x bucket API.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInfluxStore, InfluxStoreError } from '../../src/store/influx/index.js';
import type {
  AggregateQuery,
  AggregateSeries,
  FieldKind,
  MeasurementInfo,
  Store,
} from '../../src/store/types.js';
import type { FieldValue, Point } from '../../src/points/point.js';
import {
  influxql,
  startInfluxDB,
  startVictoriaMetrics,
  type TestServer,
} from '../helpers/servers.js';
import { pointBatch, writePoints } from '../../src/points/batch.js';

const T0 = Date.UTC(2024, 0, 1);
const S = 1000;
const M = 60 * S;
/** Where the percentile data lives, away from the main data set. */
const T1 = T0 + 60 * M;

const AIR: MeasurementInfo = {
  type: 'air-quality',
  measurement: 'air_quality',
  fields: new Map<string, FieldKind>([
    ['pm25', 'float'],
    ['seq', 'integer'],
    ['ok', 'boolean'],
    ['note', 'string'],
  ]),
};

function point(
  device: string,
  district: string,
  ts: number,
  fields: Record<string, FieldValue>,
  site = `site-${district}`,
  measurement = 'air_quality',
): Point {
  return {
    measurement,
    tags: { device_id: device, district, site_id: site },
    fields: Object.assign(Object.create(null) as Record<string, FieldValue>, fields),
    ts,
  };
}

/**
 * The hand-computed data set. d1 (district A) per 1-minute bucket from T0:
 * [1, 2, 3, 4] | – | [10] | – | [5, 7]; seq 1…7 in time order.
 * d2 (district B): [100] | [200, 300]. d3 (district C): 1…10 shuffled, in the bucket at T1.
 */
const DATA: Point[] = [
  point('d1', 'A', T0, { pm25: 1, seq: 1, ok: true }),
  point('d1', 'A', T0 + 10 * S, { pm25: 2, seq: 2 }),
  point('d1', 'A', T0 + 20 * S, { pm25: 3, seq: 3 }),
  point('d1', 'A', T0 + 30 * S, { pm25: 4, seq: 4 }),
  point('d1', 'A', T0 + 2 * M + 5 * S, { pm25: 10, seq: 5 }),
  point('d1', 'A', T0 + 4 * M + 1 * S, { pm25: 5, seq: 6 }),
  point('d1', 'A', T0 + 4 * M + 2 * S, { pm25: 7, seq: 7 }),
  point('d2', 'B', T0, { pm25: 100, seq: 1 }),
  point('d2', 'B', T0 + M, { pm25: 200, seq: 2 }),
  point('d2', 'B', T0 + M + 1, { pm25: 300, seq: 3 }),
  ...[7, 3, 10, 1, 9, 2, 8, 4, 6, 5].map((v, k) =>
    point('d3', 'C', T1 + k * S, { pm25: v, seq: k + 1 }),
  ),
];

function query(over: Partial<AggregateQuery>): AggregateQuery {
  return {
    measurement: 'air_quality',
    field: 'pm25',
    fn: 'mean',
    everyMs: M,
    fromMs: T0,
    toMs: T0 + 5 * M,
    filter: {},
    fill: 'null',
    ...over,
  };
}

const valuesOf = (series: AggregateSeries[]) => series.map((s) => s.points.map((p) => p.value));
const countsOf = (series: AggregateSeries[]) => series.map((s) => s.points.map((p) => p.count));

async function rejection(p: Promise<unknown>): Promise<InfluxStoreError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(InfluxStoreError);
    return err as InfluxStoreError;
  }
  throw new Error('expected a rejection');
}

function captureLogger() {
  const lines: { level: string; obj: object; msg: string }[] = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, obj, msg });
  return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error') } };
}

describe('InfluxDB store on influxd 1.6.7 (v1 API)', () => {
  let influx: TestServer;
  let store: Store;
  const log = captureLogger();

  beforeAll(async () => {
    influx = await startInfluxDB();
    store = createInfluxStore({ url: influx.url, api: 'v1', bucket: 'taihu', logger: log.logger });
    await store.open([AIR]);
    await writePoints(store, DATA);
  });
  afterAll(async () => {
    await store?.close();
    await influx?.stop();
  });

  it('creates the missing database on open and finds it on the next open', async () => {
    const dbs = await influxql(influx, '', 'SHOW DATABASES');
    expect(dbs.results[0].series[0].values).toContainEqual(['taihu']);
    expect(log.lines).toContainEqual(
      expect.objectContaining({ level: 'info', msg: 'InfluxDB database created' }),
    );
    const again = createInfluxStore({ url: influx.url, api: 'v1', bucket: 'taihu' });
    await again.open([AIR]);
    await again.close();
  });

  it.each([
    ['mean', [2.5, null, 10, null, 6]],
    ['min', [1, null, 10, null, 5]],
    ['max', [4, null, 10, null, 7]],
    ['sum', [10, null, 10, null, 12]],
    ['count', [4, 0, 1, 0, 2]],
    ['first', [1, null, 10, null, 5]],
    ['last', [4, null, 10, null, 7]],
    // sample deviation; a single reading has none (null), an empty bucket is a gap (null)
    ['stddev', [1.2909944487358056, null, null, null, 1.4142135623730951]],
    // even count: mean of the two middle readings
    ['median', [2.5, null, 10, null, 6]],
    ['spread', [3, null, 0, null, 2]],
    ['p90', [4, null, 10, null, 7]],
    ['p95', [4, null, 10, null, 7]],
    ['p99', [4, null, 10, null, 7]],
  ] as const)('answers %s per 1-minute bucket with the readings counted', async (fn, values) => {
    const series = await store.aggregate(query({ fn, filter: { device: 'd1' } }));
    expect(series).toEqual([
      {
        group: {},
        points: values.map((value, i) => ({ t: T0 + i * M, value, count: [4, 0, 1, 0, 2][i] })),
      },
    ]);
  });

  it('picks percentiles by nearest rank and medians between the middle readings', async () => {
    const at = (fn: AggregateQuery['fn']) =>
      store.aggregate(query({ fn, fromMs: T1, toMs: T1 + M, filter: { device: 'd3' } }));
    // 10 readings 1…10: rank floor(n·p/100 + 0.5) → p90 is the 9th, p95 and p99 the 10th
    expect(valuesOf(await at('p90'))).toEqual([[9]]);
    expect(valuesOf(await at('p95'))).toEqual([[10]]);
    expect(valuesOf(await at('p99'))).toEqual([[10]]);
    expect(valuesOf(await at('median'))).toEqual([[5.5]]);
    expect(valuesOf(await at('first'))).toEqual([[7]]);
    expect(countsOf(await at('stddev'))).toEqual([[10]]);
  });

  it('groups by district and by device, sorted by the tag value', async () => {
    const byDistrict = await store.aggregate(
      query({ fn: 'sum', toMs: T0 + 2 * M, groupBy: 'district' }),
    );
    expect(byDistrict).toEqual([
      {
        group: { district: 'A' },
        points: [
          { t: T0, value: 10, count: 4 },
          { t: T0 + M, value: null, count: 0 },
        ],
      },
      {
        group: { district: 'B' },
        points: [
          { t: T0, value: 100, count: 1 },
          { t: T0 + M, value: 500, count: 2 },
        ],
      },
    ]);
    const byDevice = await store.aggregate(
      query({ fn: 'max', toMs: T0 + 2 * M, groupBy: 'device', filter: { district: 'B' } }),
    );
    expect(byDevice).toEqual([
      {
        group: { device: 'd2' },
        points: [
          { t: T0, value: 100, count: 1 },
          { t: T0 + M, value: 300, count: 2 },
        ],
      },
    ]);
  });

  it.each([
    ['none', [2.5, 10, 6], [T0, T0 + 2 * M, T0 + 4 * M], [4, 1, 2]],
    ['null', [null, 2.5, null, 10, null, 6, null]],
    ['zero', [0, 2.5, 0, 10, 0, 6, 0]],
    // nothing before the first bucket with data; the last value carries to the end
    ['previous', [null, 2.5, 2.5, 10, 10, 6, 6]],
    // interpolated between buckets with data, null at both edges
    ['linear', [null, 2.5, 6.25, 10, 8, 6, null]],
  ] as const)(
    'fills empty buckets with fill(%s) and counts them as 0 readings',
    async (fill, values, times?: readonly number[], counts?: readonly number[]) => {
      const series = await store.aggregate(
        query({ fill, fromMs: T0 - M, toMs: T0 + 6 * M, filter: { device: 'd1' } }),
      );
      expect(valuesOf(series)).toEqual([values]);
      expect(series[0]!.points.map((p) => p.t)).toEqual(
        times ?? values.map((_, i) => T0 + (i - 1) * M),
      );
      expect(countsOf(series)).toEqual([counts ?? [0, 4, 0, 1, 0, 2, 0]]);
    },
  );

  it('aligns buckets to the epoch when from falls inside a bucket', async () => {
    const series = await store.aggregate(
      query({ fromMs: T0 + 15 * S, toMs: T0 + 3 * M + 1, groupBy: 'district' }),
    );
    expect(series).toEqual([
      {
        group: { district: 'A' },
        points: [
          { t: T0, value: 3.5, count: 2 }, // only the readings at +20 s and +30 s
          { t: T0 + M, value: null, count: 0 },
          { t: T0 + 2 * M, value: 10, count: 1 },
          { t: T0 + 3 * M, value: null, count: 0 },
        ],
      },
      {
        group: { district: 'B' },
        points: [
          { t: T0, value: null, count: 0 },
          { t: T0 + M, value: 250, count: 2 },
          { t: T0 + 2 * M, value: null, count: 0 },
          { t: T0 + 3 * M, value: null, count: 0 },
        ],
      },
    ]);
  });

  it('answers [] when nothing matches, and for an empty or reversed range', async () => {
    expect(await store.aggregate(query({ filter: { device: 'nobody' } }))).toEqual([]);
    expect(await store.aggregate(query({ fromMs: T0 - 10 * M, toMs: T0 - 5 * M }))).toEqual([]);
    expect(await store.aggregate(query({ fromMs: T0, toMs: T0 }))).toEqual([]);
  });

  it('keeps integer fields integers: sum, max and a linear fill truncate like InfluxDB', async () => {
    const fields = await influxql(influx, 'taihu', 'SHOW FIELD KEYS FROM "air_quality"');
    expect(fields.results[0].series[0].values).toEqual(
      expect.arrayContaining([
        ['pm25', 'float'],
        ['seq', 'integer'],
        ['ok', 'boolean'],
      ]),
    );
    const q = { field: 'seq', filter: { device: 'd1' } } as const;
    expect(valuesOf(await store.aggregate(query({ ...q, fn: 'max' })))).toEqual([
      [4, null, 5, null, 7],
    ]);
    // (10 + 5) / 2 = 7.5 → 7, (5 + 13) / 2 = 9
    const sums = await store.aggregate(query({ ...q, fn: 'sum', fill: 'linear' }));
    expect(valuesOf(sums)).toEqual([[10, 7, 5, 9, 13]]);
    expect(countsOf(sums)).toEqual([[4, 0, 1, 0, 2]]);
    // a whole number in a float field stays a float: no field type conflict
    await writePoints(store, [point('d1', 'A', T0 - 30 * M, { pm25: 3, seq: 3 })]);
  });

  it('refuses a value of the wrong kind before sending, as a bad line (400, not retryable)', async () => {
    const bad: Record<string, FieldValue>[] = [
      { seq: 1.5 },
      { pm25: Number.NaN },
      { ok: 1 },
      { note: 5 },
      {},
    ];
    for (const fields of bad) {
      const err = await rejection(writePoints(store, [point('d1', 'A', T0 - 40 * M, fields)]));
      expect(err).toMatchObject({
        retryable: false,
        status: 400,
        code: 'TAIHU_ERR_STORE_REJECTED',
      });
    }
    const err = await rejection(
      writePoints(store, [point('d1', 'A', T0, { pm25: 1 }, 's', 'no_such_measurement')]),
    );
    expect(err.message).toMatch(/unknown measurement/);
  });

  it('round-trips tag values and string fields with separators, quotes, backslashes and unicode', async () => {
    const device = 'dev 1,a=b"c\\d 太湖';
    const district = 'Xinwu, "new" = 新吴';
    const site = "site\\1 'quoted'";
    const notes = [
      'say "hi", a=b c',
      'C:\\temp\\new\\',
      '\\"both\\"',
      '太湖 🌊 tab\there',
      'nul\u0000 del\u007f bom\ufeff \uffff',
    ];
    await writePoints(
      store,
      notes.map((note, i) => point(device, district, T0 - 20 * M + i, { note, pm25: i }, site)),
    );
    const res = await influxql(
      influx,
      'taihu',
      `SELECT "note", "device_id", "district", "site_id" FROM "air_quality" WHERE time >= ${T0 - 20 * M}ms AND time < ${T0 - 19 * M}ms`,
    );
    expect(res.results[0].series[0].values).toEqual(
      notes.map((note, i) => [T0 - 20 * M + i, note, device, district, site]),
    );
    const mine = await store.aggregate(
      query({
        fn: 'count',
        fromMs: T0 - 20 * M,
        toMs: T0 - 19 * M,
        filter: { device, district },
        groupBy: 'site',
      }),
    );
    expect(mine).toEqual([{ group: { site }, points: [{ t: T0 - 20 * M, value: 5, count: 5 }] }]);
  });

  it('refuses names line protocol cannot carry exactly instead of altering them', async () => {
    for (const device of ['ends with \\', 'a\\,b', 'two\nlines', 'cr\r', 'lone \ud800']) {
      const err = await rejection(writePoints(store, [point(device, 'A', T0, { pm25: 1 })]));
      expect(err).toMatchObject({ retryable: false, status: 400 });
      expect(err.message).toContain(JSON.stringify(device));
    }
  });

  it('refuses string fields with a line break or a lone surrogate instead of altering them', async () => {
    for (const note of ['line1\nline2', 'cr\r', 'half \udc00 pair']) {
      const err = await rejection(writePoints(store, [point('d9', 'A', T0, { note, pm25: 1 })]));
      expect(err).toMatchObject({ retryable: false, status: 400 });
      expect(err.message).toContain(JSON.stringify(note));
    }
  });

  it('keeps every digit of floats, large and small', async () => {
    const floats = [0.1 + 0.2, 1e21, 1e-7, -0.5, 2 / 3, Math.PI * 1e10, Number.MIN_VALUE];
    await writePoints(
      store,
      floats.map((pm25, i) => point('floats', 'F', T0 - 50 * M + i, { pm25 })),
    );
    const res = await influxql(
      influx,
      'taihu',
      `SELECT "pm25" FROM "air_quality" WHERE "device_id" = 'floats'`,
    );
    expect(res.results[0].series[0].values.map((r: unknown[]) => r[1])).toEqual(floats);
  });

  it('quotes every filter value: no quote, backslash, newline or semicolon escapes the literal', async () => {
    for (const device of [
      "x' OR device_id =~ /.*/ --",
      '\'; DROP DATABASE "taihu"; SELECT \'',
      'back\\',
      'new\nline',
      'd1\\',
      '.*',
      'cr\r',
    ]) {
      expect(await store.aggregate(query({ filter: { device } })), device).toEqual([]);
    }
    const dbs = await influxql(influx, '', 'SHOW DATABASES');
    expect(dbs.results[0].series[0].values).toContainEqual(['taihu']);
    expect(valuesOf(await store.aggregate(query({ filter: { device: 'd1' } })))).toEqual([
      [2.5, null, 10, null, 6],
    ]);
  });

  it('rejects a field type conflict with 400, the server message, and retryable: false', async () => {
    const asString: MeasurementInfo = {
      ...AIR,
      fields: new Map<string, FieldKind>([['pm25', 'string']]),
    };
    const other = createInfluxStore({ url: influx.url, api: 'v1', bucket: 'taihu' });
    await other.open([asString]);
    const err = await rejection(
      writePoints(other, [point('d1', 'A', T0 + 50 * M, { pm25: 'high' })]),
    );
    await other.close();
    expect(err).toMatchObject({
      code: 'TAIHU_ERR_STORE_REJECTED',
      retryable: false,
      status: 400,
    });
    expect(err.serverMessage).toMatch(/^partial write: field type conflict: input field "pm25"/);
    expect(err.message).toContain('HTTP 400');
  });

  it('refuses aggregate parameters the way the embedded store does', async () => {
    await expect(store.aggregate(query({ field: 'note', fn: 'mean' }))).rejects.toMatchObject({
      code: 'TAIHU_ERR_BAD_PARAM',
    });
    await expect(store.aggregate(query({ everyMs: 0 }))).rejects.toMatchObject({
      code: 'TAIHU_ERR_BAD_PARAM',
    });
    await expect(store.aggregate(query({ field: 'nope' }))).rejects.toMatchObject({
      retryable: false,
    });
  });
});

describe('InfluxDB store when influxd fails', () => {
  let influx: TestServer;
  let store: Store;

  beforeAll(async () => {
    influx = await startInfluxDB();
    store = createInfluxStore({ url: influx.url, api: 'v1', bucket: 'faults' });
    await store.open([AIR]);
  });
  afterAll(async () => {
    await store?.close();
    await influx?.stop();
  });

  const count = async () =>
    (await store.aggregate(query({ fn: 'count', toMs: T0 + M }))).map((s) => s.points[0]?.value);

  it('fails retryably while InfluxDB is down and writes once it is back', async () => {
    await influx.pause();
    const err = await rejection(writePoints(store, [point('d1', 'A', T0, { pm25: 1 })]));
    expect(err).toMatchObject({ code: 'TAIHU_ERR_STORE', retryable: true, status: undefined });
    expect(err.message).toMatch(/cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    const queried = await rejection(store.aggregate(query({})));
    expect(queried.retryable).toBe(true);
    await influx.resume();
    await writePoints(store, [point('d1', 'A', T0, { pm25: 1 })]);
    expect(await count()).toEqual([1]);
  });

  it('keeps an acknowledged write through a kill -9 of influxd', async () => {
    await writePoints(store, [point('d1', 'A', T0 + 1, { pm25: 2 })]);
    await influx.kill();
    await influx.resume();
    expect(await count()).toEqual([2]);
  });

  it('reports a dropped database as NOT_FOUND, retryable for writes so the spool keeps the data', async () => {
    await influxql(influx, '', 'DROP DATABASE "faults"');
    const err = await rejection(writePoints(store, [point('d1', 'A', T0 + 2, { pm25: 3 })]));
    expect(err).toMatchObject({
      code: 'TAIHU_ERR_STORE_NOT_FOUND',
      status: 404,
      retryable: true,
      serverMessage: 'database not found: "faults"',
    });
    const queried = await rejection(store.aggregate(query({})));
    expect(queried).toMatchObject({ code: 'TAIHU_ERR_STORE_NOT_FOUND', retryable: false });
    await store.open([AIR]); // creates it again
    await writePoints(store, [point('d1', 'A', T0 + 2, { pm25: 3 })]);
  });
});

describe('InfluxDB store with authentication on', () => {
  let influx: TestServer;
  const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  /** A v1 store on `bucket` that logs in as `username`. */
  const storeAs = (bucket: string, username: string, password: string) =>
    createInfluxStore({ url: influx.url, api: 'v1', bucket, username, password });

  beforeAll(async () => {
    influx = await startInfluxDB({ auth: true });
    // the first user of an auth-enabled influxd must be an admin
    await influxql(influx, '', 'CREATE USER "root" WITH PASSWORD \'r00t\' WITH ALL PRIVILEGES');
    const admin = basic('root', 'r00t');
    await influxql(influx, '', 'CREATE DATABASE "shared"', admin);
    await influxql(influx, '', 'CREATE USER "reader" WITH PASSWORD \'r\'', admin);
    await influxql(influx, '', 'GRANT READ ON "shared" TO "reader"', admin);
  });
  afterAll(async () => {
    await influx?.stop();
  });

  it('says the admin privilege is missing when a plain user cannot create the database', async () => {
    const store = storeAs('taihu', 'reader', 'r');
    const err = await rejection(store.open([AIR]));
    await store.close();
    expect(err).toMatchObject({ code: 'TAIHU_ERR_STORE_DENIED', retryable: false, status: 403 });
    expect(err.message).toMatch(/user 'reader' may not create it: CREATE DATABASE needs the admin/);
  });

  it('opens an existing database without the admin privilege and names the missing write right', async () => {
    const store = storeAs('shared', 'reader', 'r');
    await store.open([AIR]);
    const err = await rejection(writePoints(store, [point('d1', 'A', T0, { pm25: 1 })]));
    await store.close();
    expect(err).toMatchObject({ code: 'TAIHU_ERR_STORE_DENIED', status: 403, retryable: true });
    expect(err.serverMessage).toMatch(/not authorized to write to database/);
  });

  it('refuses a wrong password at open with 401, not retryable', async () => {
    const store = storeAs('taihu', 'root', 'wrong');
    const err = await rejection(store.open([AIR]));
    await store.close();
    expect(err).toMatchObject({ code: 'TAIHU_ERR_STORE_DENIED', status: 401, retryable: false });
    expect(err.message).toContain('SHOW DATABASES');
  });

  it('creates the database as an admin, sending credentials as Basic auth', async () => {
    const store = storeAs('taihu', 'root', 'r00t');
    await store.open([AIR]);
    await writePoints(store, [point('d1', 'A', T0, { pm25: 1 })]);
    expect(valuesOf(await store.aggregate(query({ fn: 'count', toMs: T0 + M })))).toEqual([[1]]);
    await store.close();
  });
});

describe('v2 write path on VictoriaMetrics (/api/v2/write)', () => {
  let vm: TestServer;
  let store: Store;
  const log = captureLogger();

  beforeAll(async () => {
    vm = await startVictoriaMetrics();
    store = createInfluxStore({
      url: vm.url,
      api: 'v2',
      token: 'unused',
      org: 'taihu',
      bucket: 'city',
      logger: log.logger,
      // loopback, where the default is never to gzip; the gzip path must be proven on the wire
      gzipThresholdBytes: 1000,
    });
    await store.open([AIR]);
  });
  afterAll(async () => {
    await store?.close();
    await vm?.stop();
  });

  async function exported(device: string): Promise<any[]> {
    await fetch(`${vm.url}/internal/force_flush`);
    const match = encodeURIComponent(`{device_id=${JSON.stringify(device)}}`);
    const text = await (await fetch(`${vm.url}/api/v1/export?match[]=${match}`)).text();
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .sort((a, b) => a.metric.__name__.localeCompare(b.metric.__name__));
  }

  it('opens without a bucket API, saying the bucket must exist', () => {
    expect(log.lines).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        msg: 'no bucket API on this server: the bucket must exist or be created by the first write',
      }),
    );
  });

  it('delivers tags and numeric fields intact, integers and floats alike', async () => {
    const device = 'vm dev,1=2 太湖';
    await writePoints(store, [
      point(device, 'Liangxi A', T0, { pm25: 12.5, seq: 41, ok: true }),
      point(device, 'Liangxi A', T0 + S, { pm25: -0.25, seq: 42, ok: false }),
    ]);
    const series = await exported(device);
    expect(series.map((s) => s.metric.__name__)).toEqual([
      'air_quality_ok',
      'air_quality_pm25',
      'air_quality_seq',
    ]);
    for (const s of series) {
      expect(s.metric).toEqual({
        __name__: s.metric.__name__,
        device_id: device,
        district: 'Liangxi A',
        site_id: 'site-Liangxi A',
      });
      expect(s.timestamps).toEqual([T0, T0 + S]);
    }
    expect(series[0].values).toEqual([1, 0]);
    // (VictoriaMetrics keeps about 12 significant digits, so no 0.1 + 0.2 here)
    expect(series[1].values).toEqual([12.5, -0.25]);
    expect(series[2].values).toEqual([41, 42]);
  });

  it('writes a batch of 5,000 points in one gzipped request', async () => {
    const batch = Array.from({ length: 5000 }, (_, i) =>
      point('vm-batch', 'B', T0 + i * S, { pm25: i / 4, seq: i }),
    );
    await writePoints(store, batch);
    const series = await exported('vm-batch');
    const seq = series.find((s) => s.metric.__name__ === 'air_quality_seq');
    expect(seq.values).toHaveLength(5000);
    expect(seq.values[4999]).toBe(4999);
  });
});

describe('error statuses no packaged server gives on demand (scripted HTTP server)', () => {
  interface Seen {
    method: string;
    url: string;
    headers: IncomingMessage['headers'];
    body: Buffer;
  }
  let server: Server;
  let url: string;
  const seen: Seen[] = [];
  interface Reply {
    status: number;
    headers?: Record<string, string>;
    body?: string;
  }
  /** The scripted answer; undefined leaves the request hanging. */
  let answer: (req: Seen) => Reply | undefined;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const r = {
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks),
        };
        seen.push(r);
        const a = answer(r);
        if (a !== undefined) res.writeHead(a.status, a.headers).end(a.body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  /** Answers the open() requests of a v2 store, then `write` for /api/v2/write. */
  function v2(write: Reply) {
    answer = (r) => {
      if (r.url === '/ping') return { status: 204 };
      if (r.url.startsWith('/api/v2/buckets')) {
        return {
          status: 200,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ buckets: [{ id: 'b1', name: 'city' }] }),
        };
      }
      return write;
    };
  }

  async function openV2(
    timeoutMs?: number,
    gzip: { gzipThresholdBytes?: number } = { gzipThresholdBytes: 1000 },
  ) {
    const store = createInfluxStore({
      url,
      api: 'v2',
      token: 'tok',
      org: 'taihu',
      bucket: 'city',
      timeoutMs,
      ...gzip,
    });
    await store.open([AIR]);
    return store;
  }

  it.each([
    [429, true, 'TAIHU_ERR_STORE', { 'retry-after': '7' }, 7000],
    [503, true, 'TAIHU_ERR_STORE', {}, undefined],
    [413, false, 'TAIHU_ERR_STORE_REJECTED', {}, undefined],
    [422, false, 'TAIHU_ERR_STORE_REJECTED', {}, undefined],
    // credentials, not data: the spool keeps the points until they are fixed
    [401, true, 'TAIHU_ERR_STORE_DENIED', {}, undefined],
    [403, true, 'TAIHU_ERR_STORE_DENIED', {}, undefined],
  ] as const)(
    'reports a write answered HTTP %i as retryable: %s, code %s',
    async (status, retryable, code, headers, retryAfterMs) => {
      v2({
        status,
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ code: 'x', message: `scripted ${status}` }),
      });
      const store = await openV2();
      const err = await rejection(writePoints(store, [point('d1', 'A', T0, { pm25: 1 })]));
      await store.close();
      expect(err).toMatchObject({ status, retryable, code, retryAfterMs });
      expect(err.serverMessage).toBe(`scripted ${status}`);
    },
  );

  it('sends the v2 write with token, org, bucket, ms precision, and gzips large bodies only', async () => {
    seen.length = 0;
    v2({ status: 204 });
    const store = await openV2();
    await writePoints(store, [point('d1', 'A', T0, { pm25: 1, seq: 2, ok: true, note: 'n' })]);
    await writePoints(
      store,
      Array.from({ length: 100 }, (_, i) => point('d1', 'A', T0 + i, { pm25: i })),
    );
    await store.close();
    const writes = seen.filter((r) => r.url.startsWith('/api/v2/write'));
    expect(writes.map((r) => r.url)).toEqual([
      '/api/v2/write?org=taihu&bucket=city&precision=ms',
      '/api/v2/write?org=taihu&bucket=city&precision=ms',
    ]);
    expect(writes[0]!.headers.authorization).toBe('Token tok');
    expect(writes[0]!.headers['content-encoding']).toBeUndefined();
    expect(writes[0]!.body.toString()).toBe(
      `air_quality,device_id=d1,district=A,site_id=site-A pm25=1,seq=2i,ok=true,note="n" ${T0}`,
    );
    expect(writes[1]!.headers['content-encoding']).toBe('gzip');
    const lines = gunzipSync(writes[1]!.body).toString().split('\n');
    expect(lines).toHaveLength(100);
    expect(lines[99]).toBe(`air_quality,device_id=d1,district=A,site_id=site-A pm25=99 ${T0 + 99}`);
  });

  it('sends a write prepared before open() once the store is open, and none after close()', async () => {
    seen.length = 0;
    v2({ status: 204 });
    const store = createInfluxStore({ url, api: 'v2', token: 'tok', org: 'taihu', bucket: 'city' });
    const send = store.prepare(pointBatch([point('d1', 'A', T0, { pm25: 1 })]));
    expect(await rejection(store.write(send))).toMatchObject({ retryable: true });
    await store.open([AIR]);
    await store.write(send);
    const again = store.prepare(pointBatch([point('d1', 'A', T0 + 1, { pm25: 2 })]));
    await store.close();
    expect(await rejection(store.write(again))).toMatchObject({ retryable: true });
    const writes = seen.filter((r) => r.url.startsWith('/api/v2/write'));
    expect(writes.map((r) => r.body.toString())).toEqual([
      `air_quality,device_id=d1,district=A,site_id=site-A pm25=1 ${T0}`,
    ]);
  });

  it('does not gzip on a loopback URL unless told to', async () => {
    seen.length = 0;
    v2({ status: 204 });
    expect(new URL(url).hostname).toBe('127.0.0.1');
    const store = await openV2(undefined, {});
    await writePoints(
      store,
      Array.from({ length: 100 }, (_, i) => point('d1', 'A', T0 + i, { pm25: i })),
    );
    await store.close();
    const writes = seen.filter((r) => r.url.startsWith('/api/v2/write'));
    expect(writes).toHaveLength(1);
    expect(writes[0]!.headers['content-encoding']).toBeUndefined();
    expect(writes[0]!.body.toString().split('\n')).toHaveLength(100);
  });

  it('fails retryably when the server does not answer within the deadline', async () => {
    v2({ status: 204 });
    const store = await openV2(300);
    answer = () => undefined; // the write hangs
    const started = Date.now();
    const err = await rejection(writePoints(store, [point('d1', 'A', T0, { pm25: 1 })]));
    await store.close();
    expect(err).toMatchObject({ code: 'TAIHU_ERR_STORE', retryable: true, status: undefined });
    expect(err.message).toMatch(/no answer from http:\/\/127\.0\.0\.1:\d+ within 300 ms/);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('refuses a URL that is not http(s) when the store is built, before any connection', () => {
    for (const bad of ['influx.local:8086', 'udp://127.0.0.1:8089', '']) {
      expect(() => createInfluxStore({ url: bad, api: 'v1', bucket: 'x' })).toThrow(
        /is not an http\(s\) URL/,
      );
    }
  });

  it('creates a missing bucket through the InfluxDB 2.x bucket API', async () => {
    seen.length = 0;
    answer = (r) => {
      const json = (status: number, body: unknown): Reply => ({
        status,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (r.url === '/ping') return { status: 204 };
      if (r.url === '/api/v2/buckets?name=city&org=taihu') return json(200, { buckets: [] });
      if (r.url === '/api/v2/orgs?org=taihu')
        return json(200, { orgs: [{ id: 'o1', name: 'taihu' }] });
      if (r.url === '/api/v2/buckets' && r.method === 'POST') return json(201, { id: 'b2' });
      return json(404, { code: 'not found', message: 'unexpected' });
    };
    const store = await openV2();
    await store.close();
    const create = seen.find((r) => r.method === 'POST');
    expect(JSON.parse(create!.body.toString())).toEqual({
      orgID: 'o1',
      name: 'city',
      retentionRules: [],
    });
    expect(create!.headers.authorization).toBe('Token tok');
  });
});

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEmbeddedStore } from '../../src/store/embedded/index.js';
import type {
  AggregateFn,
  AggregateQuery,
  AggregateSeries,
  FieldKind,
  Fill,
  MeasurementInfo,
  Store,
} from '../../src/store/types.js';
import type { FieldValue, Point, PointTags } from '../../src/points/point.js';
import { rejection } from '../helpers/errors.js';
import { airQuality } from '../helpers/measurements.js';
import { writePoints } from '../../src/points/batch.js';

const SEC = 1000;
const MIN = 60 * SEC;
/** 2027-01-15T08:00:00Z, a whole minute (and hour) since the epoch. */
const T0 = 30_000_000 * MIN;

const AQ = airQuality([
  ['seq', 'integer'],
  ['pm25_ugm3', 'float'],
  ['vehicles', 'integer'],
  ['cover_open', 'boolean'],
  ['mode', 'string'],
]);

const DEVICES: Record<string, PointTags> = {
  d1: { device_id: 'd1', district: 'binhu', site_id: 's1' },
  d2: { device_id: 'd2', district: 'binhu', site_id: 's2' },
  d3: { device_id: 'd3', district: 'liangxi', site_id: 's3' },
};

function pt(
  device: keyof typeof DEVICES | PointTags,
  ts: number,
  fields: Record<string, FieldValue>,
): Point {
  const tags = typeof device === 'string' ? DEVICES[device] : device;
  if (tags === undefined) throw new Error(`no device ${String(device)}`);
  return {
    measurement: 'air_quality',
    tags,
    fields: Object.assign(Object.create(null) as Record<string, FieldValue>, fields),
    ts,
  };
}

function query(q: Partial<AggregateQuery> = {}): AggregateQuery {
  return {
    measurement: 'air_quality',
    field: 'pm25_ugm3',
    fn: 'mean',
    everyMs: MIN,
    fromMs: T0,
    toMs: T0 + 4 * MIN,
    filter: {},
    fill: 'none',
    ...q,
  };
}

/** Points of one series as [minutes since T0, value, count]. */
function rows(series: AggregateSeries | undefined): [number, number | null, number][] {
  if (series === undefined) throw new Error('no such series');
  return series.points.map((p) => [(p.t - T0) / MIN, p.value, p.count]);
}

let store: Store;

beforeEach(async () => {
  store = createEmbeddedStore({ path: ':memory:' });
  await store.open([AQ]);
});

afterEach(async () => {
  await store.close();
});

/**
 * One device, minute buckets 0..3 from T0; bucket 1 is empty, bucket 2 holds a single reading,
 * bucket 0 an even number (4) and bucket 3 an odd number (3).
 */
async function writeReferenceData(): Promise<void> {
  await writePoints(store, [
    pt('d1', T0 + 0 * SEC, { pm25_ugm3: 3, vehicles: 12 }),
    pt('d1', T0 + 10 * SEC, { pm25_ugm3: 7, vehicles: 7 }),
    pt('d1', T0 + 20 * SEC, { pm25_ugm3: 1.5, vehicles: 20 }),
    pt('d1', T0 + 30 * SEC, { pm25_ugm3: 4.5, vehicles: 9 }),
    pt('d1', T0 + 2 * MIN + 5 * SEC, { pm25_ugm3: 10, vehicles: 5 }),
    pt('d1', T0 + 3 * MIN + 0 * SEC, { pm25_ugm3: 5, vehicles: 4 }),
    pt('d1', T0 + 3 * MIN + 20 * SEC, { pm25_ugm3: 8, vehicles: 6 }),
    pt('d1', T0 + 3 * MIN + 40 * SEC, { pm25_ugm3: 2, vehicles: 11 }),
  ]);
}

describe('embedded store: aggregate functions', () => {
  // Hand-computed from writeReferenceData. Buckets 0, 2, 3 (bucket 1 is empty, fill none).
  // float pm25: b0 = [3, 7, 1.5, 4.5] (time order), b2 = [10], b3 = [5, 8, 2]
  // integer vehicles: b0 = [12, 7, 20, 9], b2 = [5], b3 = [4, 6, 11]
  const cases: [AggregateFn, (number | null)[], (number | null)[]][] = [
    ['count', [4, 1, 3], [4, 1, 3]],
    ['sum', [16, 10, 15], [48, 5, 21]],
    ['mean', [4, 10, 5], [12, 5, 7]],
    ['min', [1.5, 10, 2], [7, 5, 4]],
    ['max', [7, 10, 8], [20, 5, 11]],
    ['first', [3, 10, 5], [12, 5, 4]],
    ['last', [4.5, 10, 2], [9, 5, 11]],
    ['spread', [5.5, 0, 6], [13, 0, 7]],
    // even count: mean of the two middle values; [1.5, 3, 4.5, 7] → 3.75, [7, 9, 12, 20] → 10.5
    ['median', [3.75, 10, 5], [10.5, 5, 6]],
    // nearest rank i = floor(n·p/100 + 0.5) − 1: n = 4 → i = 3, n = 3 → i = 2, n = 1 → i = 0
    ['p90', [7, 10, 8], [20, 5, 11]],
    ['p95', [7, 10, 8], [20, 5, 11]],
    ['p99', [7, 10, 8], [20, 5, 11]],
  ];

  it.each(cases)('%s gives the InfluxQL answer per bucket', async (fn, floats, integers) => {
    await writeReferenceData();
    for (const [field, expected] of [
      ['pm25_ugm3', floats],
      ['vehicles', integers],
    ] as const) {
      const series = await store.aggregate(query({ fn, field }));
      expect(series).toHaveLength(1);
      expect(series[0]?.group).toEqual({});
      expect(rows(series[0])).toEqual([
        [0, expected[0], 4],
        [2, expected[1], 1],
        [3, expected[2], 3],
      ]);
    }
  });

  it('stddev is the sample deviation (n − 1) and null for a single reading', async () => {
    await writeReferenceData();
    // pm25 b0: mean 4, squared deviations 1 + 9 + 6.25 + 0.25 = 16.5 → sqrt(16.5 / 3)
    // pm25 b3: mean 5, 0 + 9 + 9 = 18 → sqrt(18 / 2) = 3
    const floats = rows((await store.aggregate(query({ fn: 'stddev' })))[0]);
    expect(floats.map(([m, , n]) => [m, n])).toEqual([
      [0, 4],
      [2, 1],
      [3, 3],
    ]);
    expect(floats[0]?.[1]).toBeCloseTo(Math.sqrt(5.5), 12);
    expect(floats[1]?.[1]).toBeNull();
    expect(floats[2]?.[1]).toBeCloseTo(3, 12);
    // vehicles b0: mean 12, 0 + 25 + 64 + 9 = 98 → sqrt(98 / 3); b3: mean 7, 9 + 1 + 16 → sqrt(13)
    const integers = rows((await store.aggregate(query({ fn: 'stddev', field: 'vehicles' })))[0]);
    expect(integers[0]?.[1]).toBeCloseTo(Math.sqrt(98 / 3), 12);
    expect(integers[1]?.[1]).toBeNull();
    expect(integers[2]?.[1]).toBeCloseTo(Math.sqrt(13), 12);
  });

  it('percentiles use nearest rank, so p90, p95 and p99 of 1..20 are 18, 19 and 20', async () => {
    // written in a scrambled order so that time order is not value order
    const values = [7, 19, 3, 12, 20, 1, 15, 9, 4, 18, 11, 2, 16, 6, 14, 10, 5, 17, 8, 13];
    await writePoints(
      store,
      values.map((v, i) => pt('d1', T0 + i * SEC, { pm25_ugm3: v })),
    );
    const expected: [AggregateFn, number][] = [
      ['p90', 18], // i = floor(18 + 0.5) − 1 = 17
      ['p95', 19], // i = floor(19 + 0.5) − 1 = 18
      ['p99', 20], // i = floor(19.8 + 0.5) − 1 = 19
      ['median', 10.5],
    ];
    for (const [fn, value] of expected) {
      expect(rows((await store.aggregate(query({ fn })))[0])).toEqual([[0, value, 20]]);
    }
  });

  it('count counts readings of the field, not rows: readings without the field are ignored', async () => {
    await writePoints(store, [
      pt('d1', T0, { pm25_ugm3: 1, seq: 1 }),
      pt('d1', T0 + 10 * SEC, { seq: 2 }),
      pt('d1', T0 + 20 * SEC, { pm25_ugm3: 3, seq: 3 }),
      // bucket 1 only has rows without pm25: it is not a bucket of pm25 at all
      pt('d1', T0 + MIN, { seq: 4 }),
    ]);
    expect(rows((await store.aggregate(query({ fn: 'mean' })))[0])).toEqual([[0, 2, 2]]);
    expect(rows((await store.aggregate(query({ fn: 'count', field: 'seq' })))[0])).toEqual([
      [0, 3, 3],
      [1, 1, 1],
    ]);
  });

  it('first and last break timestamp ties between devices by the larger value, like InfluxDB', async () => {
    await writePoints(store, [
      pt('d1', T0 + 10 * SEC, { pm25_ugm3: 3 }),
      pt('d2', T0 + 10 * SEC, { pm25_ugm3: 9 }),
      pt('d1', T0 + 30 * SEC, { pm25_ugm3: 1 }),
      pt('d3', T0 + 50 * SEC, { pm25_ugm3: 5 }),
      pt('d1', T0 + 50 * SEC, { pm25_ugm3: 6 }),
      pt('d2', T0 + 50 * SEC, { pm25_ugm3: 2 }),
    ]);
    expect(rows((await store.aggregate(query({ fn: 'first' })))[0])).toEqual([[0, 9, 6]]);
    expect(rows((await store.aggregate(query({ fn: 'last' })))[0])).toEqual([[0, 6, 6]]);
    const byDistrict = await store.aggregate(query({ fn: 'last', groupBy: 'district' }));
    expect(byDistrict.map((s) => [s.group, rows(s)])).toEqual([
      [{ district: 'binhu' }, [[0, 6, 5]]],
      [{ district: 'liangxi' }, [[0, 5, 1]]],
    ]);
  });

  it('integer results keep their type: linear fill of an integer sum truncates, of a float does not', async () => {
    await writePoints(store, [
      pt('d1', T0 + 1 * MIN, { vehicles: 1, pm25_ugm3: 1 }),
      pt('d1', T0 + 4 * MIN, { vehicles: 5, pm25_ugm3: 5 }),
    ]);
    const range = { fromMs: T0, toMs: T0 + 6 * MIN, fill: 'linear' as const };
    // slope 4/3 per bucket: 1 + 4/3 = 2.33…, 1 + 8/3 = 3.66…; linearInteger truncates to 2 and 3
    expect(
      rows((await store.aggregate(query({ ...range, fn: 'sum', field: 'vehicles' })))[0]),
    ).toEqual([
      [0, null, 0],
      [1, 1, 1],
      [2, 2, 0],
      [3, 3, 0],
      [4, 5, 1],
      [5, null, 0],
    ]);
    const floats = rows((await store.aggregate(query({ ...range, fn: 'sum' })))[0]);
    expect(floats[2]?.[1]).toBeCloseTo(1 + 4 / 3, 12);
    expect(floats[3]?.[1]).toBeCloseTo(1 + 8 / 3, 12);
    // mean of an integer field is a float and is not truncated either
    const means = rows(
      (await store.aggregate(query({ ...range, fn: 'mean', field: 'vehicles' })))[0],
    );
    expect(means[2]?.[1]).toBeCloseTo(1 + 4 / 3, 12);
  });

  it('integers up to 2^53 − 1 come back exact', async () => {
    const big = Number.MAX_SAFE_INTEGER;
    await writePoints(store, [pt('d1', T0, { vehicles: big }), pt('d2', T0, { vehicles: 0 })]);
    expect(rows((await store.aggregate(query({ fn: 'max', field: 'vehicles' })))[0])).toEqual([
      [0, big, 2],
    ]);
    expect(rows((await store.aggregate(query({ fn: 'sum', field: 'vehicles' })))[0])).toEqual([
      [0, big, 2],
    ]);
  });

  it('booleans are stored and counted, false included', async () => {
    await writePoints(store, [
      pt('d1', T0, { cover_open: true }),
      pt('d1', T0 + 10 * SEC, { cover_open: false }),
      pt('d1', T0 + 20 * SEC, { cover_open: false }),
      pt('d1', T0 + 30 * SEC, { mode: 'auto' }),
    ]);
    expect(rows((await store.aggregate(query({ fn: 'count', field: 'cover_open' })))[0])).toEqual([
      [0, 3, 3],
    ]);
    expect(rows((await store.aggregate(query({ fn: 'count', field: 'mode' })))[0])).toEqual([
      [0, 1, 1],
    ]);
  });

  it.each([
    ['cover_open', 'mean'],
    ['cover_open', 'sum'],
    ['mode', 'first'],
    ['mode', 'max'],
  ] as const)('%s (not numeric) refuses %s with a bad-parameter error', async (field, fn) => {
    const err = await rejection(store.aggregate(query({ field, fn })));
    expect(err.code).toBe('TAIHU_ERR_BAD_PARAM');
    expect(err.message).toContain("'field'");
  });
});

describe('embedded store: buckets and fill', () => {
  it('aligns buckets to the epoch even when from is in the middle of a bucket', async () => {
    await writePoints(store, [
      pt('d1', T0 + 10 * SEC, { pm25_ugm3: 100 }), // before from: excluded
      pt('d1', T0 + 40 * SEC, { pm25_ugm3: 4 }),
      pt('d1', T0 + 50 * SEC, { pm25_ugm3: 6 }),
      pt('d1', T0 + 2 * MIN + 10 * SEC, { pm25_ugm3: 8 }),
      pt('d1', T0 + 2 * MIN + 30 * SEC, { pm25_ugm3: 1000 }), // at to: excluded
    ]);
    const series = await store.aggregate(
      query({ fromMs: T0 + 30 * SEC, toMs: T0 + 2 * MIN + 30 * SEC, fill: 'null' }),
    );
    // first bucket starts at T0 (floor of from), the last one is the bucket holding to − 1
    expect(rows(series[0])).toEqual([
      [0, 5, 2],
      [1, null, 0],
      [2, 8, 1],
    ]);
  });

  it('aligns hour buckets to the epoch, not to from', async () => {
    const HOUR = 60 * MIN;
    await writePoints(store, [
      pt('d1', T0 + 50 * MIN, { pm25_ugm3: 2 }),
      pt('d1', T0 + 70 * MIN, { pm25_ugm3: 4 }),
    ]);
    const series = await store.aggregate(
      query({ everyMs: HOUR, fromMs: T0 + 45 * MIN, toMs: T0 + 75 * MIN }),
    );
    expect(series[0]?.points).toEqual([
      { t: T0, value: 2, count: 1 },
      { t: T0 + HOUR, value: 4, count: 1 },
    ]);
  });

  // Readings in buckets 1 (10) and 4 (40) of buckets 0..5.
  const fills: [Fill, AggregateFn, (number | null)[]][] = [
    ['none', 'sum', [10, 40]],
    ['null', 'sum', [null, 10, null, null, 40, null]],
    ['zero', 'sum', [0, 10, 0, 0, 40, 0]],
    ['previous', 'sum', [null, 10, 10, 10, 40, 40]],
    ['linear', 'sum', [null, 10, 20, 30, 40, null]],
    // InfluxDB rewrites fill(null) to fill(0) for count()
    ['none', 'count', [1, 1]],
    ['null', 'count', [0, 1, 0, 0, 1, 0]],
    ['zero', 'count', [0, 1, 0, 0, 1, 0]],
    ['previous', 'count', [null, 1, 1, 1, 1, 1]],
    ['linear', 'count', [null, 1, 1, 1, 1, null]],
  ];

  it.each(fills)('fill(%s) of %s fills empty buckets like InfluxQL', async (fill, fn, values) => {
    await writePoints(store, [
      pt('d1', T0 + 1 * MIN + 5 * SEC, { pm25_ugm3: 10 }),
      pt('d1', T0 + 4 * MIN + 5 * SEC, { pm25_ugm3: 40 }),
    ]);
    const series = await store.aggregate(query({ fn, fill, toMs: T0 + 6 * MIN }));
    const minutes = fill === 'none' ? [1, 4] : [0, 1, 2, 3, 4, 5];
    // count is the number of readings, so a filled bucket always counts 0
    expect(rows(series[0])).toEqual(
      minutes.map((m, i) => [m, values[i], m === 1 || m === 4 ? 1 : 0]),
    );
  });

  it('a stddev of one reading is a null point that fill does not replace, and previous copies it', async () => {
    await writePoints(store, [
      pt('d1', T0, { pm25_ugm3: 2 }),
      pt('d1', T0 + 10 * SEC, { pm25_ugm3: 4 }),
      pt('d1', T0 + 1 * MIN, { pm25_ugm3: 7 }),
    ]);
    const none = await store.aggregate(query({ fn: 'stddev', toMs: T0 + 3 * MIN }));
    expect(rows(none[0]).map(([m, v, n]) => [m, v === null ? null : v.toFixed(6), n])).toEqual([
      [0, Math.SQRT2.toFixed(6), 2],
      [1, null, 1],
    ]);
    const previous = await store.aggregate(
      query({ fn: 'stddev', fill: 'previous', toMs: T0 + 3 * MIN }),
    );
    expect(rows(previous[0])[2]).toEqual([2, null, 0]);
    const zero = await store.aggregate(query({ fn: 'stddev', fill: 'zero', toMs: T0 + 3 * MIN }));
    expect(rows(zero[0]).slice(1)).toEqual([
      [1, null, 1],
      [2, 0, 0],
    ]);
  });

  it('fills each group separately, from the first bucket of the range to the last', async () => {
    await writePoints(store, [
      pt('d1', T0 + 1 * MIN, { pm25_ugm3: 1 }),
      pt('d3', T0 + 2 * MIN, { pm25_ugm3: 3 }),
    ]);
    const series = await store.aggregate(
      query({ groupBy: 'device', fill: 'previous', toMs: T0 + 3 * MIN }),
    );
    expect(series.map((s) => [s.group, rows(s)])).toEqual([
      [
        { device: 'd1' },
        [
          [0, null, 0],
          [1, 1, 1],
          [2, 1, 0],
        ],
      ],
      [
        { device: 'd3' },
        [
          [0, null, 0],
          [1, null, 0],
          [2, 3, 1],
        ],
      ],
    ]);
  });

  it('returns no series when the range holds no reading of the field', async () => {
    await writePoints(store, [
      pt('d1', T0 - MIN, { pm25_ugm3: 1 }),
      pt('d1', T0 + 5 * MIN, { pm25_ugm3: 1 }),
      pt('d1', T0 + MIN, { seq: 1 }),
      pt('d3', T0 + MIN, { pm25_ugm3: 1 }),
    ]);
    for (const fill of ['none', 'null', 'zero', 'previous', 'linear'] as const) {
      expect(await store.aggregate(query({ fill, filter: { device: 'd1' } }))).toEqual([]);
      expect(
        await store.aggregate(query({ fill, fn: 'count', filter: { district: 'binhu' } })),
      ).toEqual([]);
    }
    expect(await store.aggregate(query({ fromMs: T0 + MIN, toMs: T0 + MIN }))).toEqual([]);
  });

  it('skips long empty stretches quickly and still finds the data after them', async () => {
    await writePoints(store, [
      pt('d1', T0, { pm25_ugm3: 1 }),
      pt('d1', T0 + 50_000 * SEC, { pm25_ugm3: 2 }),
    ]);
    const series = await store.aggregate(query({ everyMs: SEC, toMs: T0 + 60_000 * SEC }));
    expect(series[0]?.points).toEqual([
      { t: T0, value: 1, count: 1 },
      { t: T0 + 50_000 * SEC, value: 2, count: 1 },
    ]);
  });

  it('refuses a range with more buckets than it will compute', async () => {
    const err = await rejection(store.aggregate(query({ everyMs: 1, toMs: T0 + 10 * MIN })));
    expect(err.code).toBe('TAIHU_ERR_BAD_PARAM');
    expect(err.message).toContain("'every'");
  });
});

describe('embedded store: groups and filters', () => {
  beforeEach(async () => {
    await writePoints(store, [
      pt('d1', T0, { pm25_ugm3: 1 }),
      pt('d2', T0 + 10 * SEC, { pm25_ugm3: 2 }),
      pt('d3', T0 + 20 * SEC, { pm25_ugm3: 4 }),
      pt('d1', T0 + MIN, { pm25_ugm3: 8 }),
      pt('d3', T0 + MIN, { pm25_ugm3: 16 }),
    ]);
  });

  const groupings: [
    AggregateQuery['groupBy'],
    [Record<string, string>, [number, number, number][]][],
  ][] = [
    [
      undefined,
      [
        [
          {},
          [
            [0, 7, 3],
            [1, 24, 2],
          ],
        ],
      ],
    ],
    [
      'device',
      [
        [
          { device: 'd1' },
          [
            [0, 1, 1],
            [1, 8, 1],
          ],
        ],
        [{ device: 'd2' }, [[0, 2, 1]]],
        [
          { device: 'd3' },
          [
            [0, 4, 1],
            [1, 16, 1],
          ],
        ],
      ],
    ],
    [
      'district',
      [
        [
          { district: 'binhu' },
          [
            [0, 3, 2],
            [1, 8, 1],
          ],
        ],
        [
          { district: 'liangxi' },
          [
            [0, 4, 1],
            [1, 16, 1],
          ],
        ],
      ],
    ],
    [
      'site',
      [
        [
          { site: 's1' },
          [
            [0, 1, 1],
            [1, 8, 1],
          ],
        ],
        [{ site: 's2' }, [[0, 2, 1]]],
        [
          { site: 's3' },
          [
            [0, 4, 1],
            [1, 16, 1],
          ],
        ],
      ],
    ],
  ];

  it.each(groupings)(
    'groupBy %s gives one series per tag value, sorted',
    async (groupBy, expected) => {
      const series = await store.aggregate(query({ fn: 'sum', groupBy }));
      expect(series.map((s) => [s.group, rows(s)])).toEqual(expected);
    },
  );

  const filters: [AggregateQuery['filter'], [number, number, number][]][] = [
    [
      { device: 'd3' },
      [
        [0, 4, 1],
        [1, 16, 1],
      ],
    ],
    [
      { district: 'binhu' },
      [
        [0, 3, 2],
        [1, 8, 1],
      ],
    ],
    [{ site: 's2' }, [[0, 2, 1]]],
    [
      { district: 'binhu', site: 's1' },
      [
        [0, 1, 1],
        [1, 8, 1],
      ],
    ],
    [{ district: 'liangxi', device: 'd1' }, []],
    [{ district: 'nowhere' }, []],
  ];

  it.each(filters)('filter %o keeps only matching readings', async (filter, expected) => {
    const series = await store.aggregate(query({ fn: 'sum', filter }));
    if (expected.length === 0) expect(series).toEqual([]);
    else expect(rows(series[0])).toEqual(expected);
  });

  it('combines a filter with a groupBy and omits groups without readings', async () => {
    const series = await store.aggregate(
      query({ fn: 'max', filter: { district: 'binhu' }, groupBy: 'device', fromMs: T0 + MIN }),
    );
    expect(series.map((s) => [s.group, rows(s)])).toEqual([[{ device: 'd1' }, [[1, 8, 1]]]]);
  });

  it.each(['median', 'stddev', 'first', 'p95'] as const)(
    '%s is computed per group, not across groups',
    async (fn) => {
      const series = await store.aggregate(query({ fn, groupBy: 'district', toMs: T0 + MIN }));
      // binhu: [1, 2] → median 1.5, stddev sqrt(0.5), first 1, p95 2 (i = floor(1.9 + .5) − 1 = 1)
      // liangxi: [4] → median 4, stddev null, first 4, p95 4
      const expected = {
        median: [1.5, 4],
        stddev: [Math.sqrt(0.5), null],
        first: [1, 4],
        p95: [2, 4],
      }[fn];
      const got = series.map((s) => s.points[0]?.value ?? null);
      expect(series.map((s) => s.group)).toEqual([{ district: 'binhu' }, { district: 'liangxi' }]);
      expect(got[0]).toBeCloseTo(expected[0] ?? Number.NaN, 12);
      expect(got[1]).toEqual(expected[1]);
    },
  );

  it('sorts groups by the bytes of their UTF-8 encoding, like InfluxDB', async () => {
    const tag = (site: string): PointTags => ({ device_id: site, district: 'x', site_id: site });
    await writePoints(store, [
      pt(tag('😀'), T0 + 2 * MIN, { pm25_ugm3: 1 }),
      pt(tag('Ａ'), T0 + 2 * MIN, { pm25_ugm3: 1 }),
      pt(tag('b'), T0 + 2 * MIN, { pm25_ugm3: 1 }),
      pt(tag('B'), T0 + 2 * MIN, { pm25_ugm3: 1 }),
    ]);
    const series = await store.aggregate(query({ groupBy: 'site', fromMs: T0 + 2 * MIN }));
    // UTF-16 order would put the emoji (D83D) before the fullwidth A (FF21); UTF-8 bytes do not
    expect(series.map((s) => s.group.site)).toEqual(['B', 'b', 'Ａ', '😀']);
  });
});

describe('embedded store: writes', () => {
  it('overwrites the same device and timestamp instead of adding a reading', async () => {
    const batch = [pt('d1', T0, { pm25_ugm3: 1, seq: 1 }), pt('d1', T0 + SEC, { pm25_ugm3: 2 })];
    await writePoints(store, batch);
    await writePoints(store, batch); // a replay
    expect(rows((await store.aggregate(query({ fn: 'sum' })))[0])).toEqual([[0, 3, 2]]);
  });

  it('merges a later write into the earlier one field by field, like InfluxDB', async () => {
    await writePoints(store, [pt('d1', T0, { pm25_ugm3: 1, seq: 7 })]);
    await writePoints(store, [pt('d1', T0, { pm25_ugm3: 5 })]);
    expect(rows((await store.aggregate(query({ fn: 'sum' })))[0])).toEqual([[0, 5, 1]]);
    expect(rows((await store.aggregate(query({ fn: 'sum', field: 'seq' })))[0])).toEqual([
      [0, 7, 1],
    ]);
  });

  it('keeps readings of different devices at the same timestamp apart', async () => {
    await writePoints(store, [pt('d1', T0, { pm25_ugm3: 1 }), pt('d2', T0, { pm25_ugm3: 2 })]);
    expect(rows((await store.aggregate(query({ fn: 'sum' })))[0])).toEqual([[0, 3, 2]]);
  });

  it('stores SQL-looking tag values verbatim and filters on them exactly', async () => {
    const nasty: PointTags = {
      device_id: `d'1"; DROP TABLE air_quality; --`,
      district: 'bin\nhu\u0000;',
      site_id: `s' OR '1'='1`,
    };
    await writePoints(store, [
      pt(nasty, T0, { pm25_ugm3: 2, mode: `'); DELETE FROM air_quality; --` }),
    ]);
    await writePoints(store, [pt('d1', T0, { pm25_ugm3: 1 })]);
    for (const groupBy of ['device', 'district', 'site'] as const) {
      const series = await store.aggregate(query({ fn: 'sum', groupBy }));
      const tag = { device: 'device_id', district: 'district', site: 'site_id' } as const;
      expect(series.map((s) => s.group[groupBy])).toContain(nasty[tag[groupBy]]);
    }
    const filtered = await store.aggregate(
      query({
        fn: 'sum',
        filter: { device: nasty.device_id, district: nasty.district, site: nasty.site_id },
      }),
    );
    expect(rows(filtered[0])).toEqual([[0, 2, 1]]);
    expect(await store.aggregate(query({ fn: 'sum', filter: { site: "s' OR '1'='1'" } }))).toEqual(
      [],
    );
    expect(rows((await store.aggregate(query({ fn: 'count', field: 'mode' })))[0])).toEqual([
      [0, 1, 1],
    ]);
  });

  const refusals: [string, Point][] = [
    ['an unknown field', pt('d1', T0, { pm25_ugm3: 1, no_such_field: 1 })],
    ['an unknown measurement', { ...pt('d1', T0, { pm25_ugm3: 1 }), measurement: 'weather' }],
    ['a field name that is SQL', pt('d1', T0, { 'pm25_ugm3" = 1; --': 1 })],
    ['a string in a float field', pt('d1', T0, { pm25_ugm3: '1' })],
    ['a fraction in an integer field', pt('d1', T0, { vehicles: 1.5 })],
    ['a number in a boolean field', pt('d1', T0, { cover_open: 1 })],
    ['NaN', pt('d1', T0, { pm25_ugm3: Number.NaN })],
    ['no fields at all', pt('d1', T0, {})],
    ['a fractional timestamp', pt('d1', T0 + 0.5, { pm25_ugm3: 1 })],
  ];

  it.each(refusals)(
    'refuses a batch with %s, writes none of it and says not to retry',
    async (_, bad) => {
      const good = pt('d2', T0, { pm25_ugm3: 1 });
      const err = await rejection(writePoints(store, [good, bad]));
      expect(err.code).toBe('TAIHU_ERR_STORE');
      expect(err.retryable).toBe(false);
      expect(await store.aggregate(query())).toEqual([]);
    },
  );

  it('refuses an aggregate of an undeclared field or measurement', async () => {
    for (const q of [query({ field: 'no_such_field' }), query({ measurement: 'weather' })]) {
      const err = await rejection(store.aggregate(q));
      expect(err.code).toBe('TAIHU_ERR_STORE');
    }
  });

  it.each(['air-quality', 'Air_quality', 'x"; DROP TABLE y; --', 'sqlite_master', '1abc'])(
    'refuses to open measurement %j',
    async (measurement) => {
      const s = createEmbeddedStore({ path: ':memory:' });
      try {
        const err = await rejection(s.open([{ ...AQ, measurement }]));
        expect(err.code).toBe('TAIHU_ERR_STORE');
      } finally {
        await s.close();
      }
    },
  );

  it.each(['ts', 'device_id', 'PM25', 'a b', 'x"y'])('refuses to open field %j', async (field) => {
    const s = createEmbeddedStore({ path: ':memory:' });
    try {
      const fields = new Map<string, FieldKind>([[field, 'float']]);
      const err = await rejection(s.open([{ ...AQ, fields }]));
      expect(err.code).toBe('TAIHU_ERR_STORE');
    } finally {
      await s.close();
    }
  });

  it('refuses writes after close', async () => {
    const s = createEmbeddedStore({ path: ':memory:' });
    await s.open([AQ]);
    await s.close();
    expect((await rejection(writePoints(s, [pt('d1', T0, { pm25_ugm3: 1 })]))).code).toBe(
      'TAIHU_ERR_STORE',
    );
  });
});

describe('embedded store: file and schema versions', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'taihu-embedded-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps data across reopen and adds the columns of a newer schema version', async () => {
    const path = join(dir, 'nested', 'taihu.db');
    const v1: MeasurementInfo = {
      ...AQ,
      fields: new Map<string, FieldKind>([
        ['seq', 'integer'],
        ['pm25_ugm3', 'float'],
      ]),
    };
    const first = createEmbeddedStore({ path });
    await first.open([v1]);
    await writePoints(first, [pt('d1', T0, { pm25_ugm3: 2, seq: 1 })]);
    await first.close();

    const warnings: string[] = [];
    const second = createEmbeddedStore({ path, logger: { warn: (_o, msg) => warnings.push(msg) } });
    try {
      await second.open([AQ]);
      await writePoints(second, [pt('d1', T0 + SEC, { pm25_ugm3: 4, vehicles: 3 })]);
      expect(rows((await second.aggregate(query({ fn: 'sum' })))[0])).toEqual([[0, 6, 2]]);
      expect(rows((await second.aggregate(query({ fn: 'sum', field: 'vehicles' })))[0])).toEqual([
        [0, 3, 1],
      ]);
      expect(warnings).toEqual([]);
    } finally {
      await second.close();
    }
  });

  it('warns and keeps the column when a schema changes the kind of an existing field', async () => {
    const path = join(dir, 'taihu.db');
    const asFloat = new Map<string, FieldKind>([['vehicles', 'float']]);
    const first = createEmbeddedStore({ path });
    await first.open([{ ...AQ, fields: asFloat }]);
    await first.close();
    const warnings: object[] = [];
    const second = createEmbeddedStore({ path, logger: { warn: (o) => warnings.push(o) } });
    try {
      await second.open([AQ]);
      expect(warnings).toEqual([
        { measurement: 'air_quality', field: 'vehicles', column: 'REAL', kind: 'integer' },
      ]);
    } finally {
      await second.close();
    }
  });

  it('reports a file that is not a database as a store error', async () => {
    const path = join(dir, 'not-a-db');
    writeFileSync(path, 'x'.repeat(4096));
    const s = createEmbeddedStore({ path });
    const err = await rejection(s.open([AQ]));
    expect(err.code).toBe('TAIHU_ERR_STORE');
    expect(err.cause).toBeDefined();
    await s.close();
  });
});

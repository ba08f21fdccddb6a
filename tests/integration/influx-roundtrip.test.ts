/**
 * Property (fast-check, seeded): every tag value and string field the InfluxDB store accepts is
 * read back from a real influxd 1.6.7 exactly as it was written; whatever it cannot carry exactly
 * it refuses before sending (400, not retryable, naming the value) instead of altering it.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInfluxStore, InfluxStoreError } from '../../src/store/influx/index.js';
import type { FieldKind, MeasurementInfo, Store } from '../../src/store/types.js';
import type { FieldValue, Point } from '../../src/points/point.js';
import { influxql, startInfluxDB, type TestServer } from '../helpers/servers.js';
import { writePoints } from '../../src/points/batch.js';

const SEED = 20261126;
const RUNS = 1_000;
const T0 = Date.UTC(2025, 0, 1);

const INFO: MeasurementInfo = {
  type: 'roundtrip',
  measurement: 'roundtrip',
  fields: new Map<string, FieldKind>([
    ['note', 'string'],
    ['n', 'integer'],
  ]),
};

/** Characters that line protocol or InfluxQL treat specially, and some that are just far away. */
const tricky = fc.constantFrom(
  ',',
  '=',
  ' ',
  '\\',
  '"',
  "'",
  '\n',
  '\r',
  '\t',
  '#',
  ';',
  '/',
  '*',
  '.',
  'a',
  'Z',
  '0',
  'é',
  '太',
  '湖',
  '🌊',
  '\u0000',
  '\u0001',
  '\u001f',
  '\u007f',
  '\u00a0',
  '\u2028',
  '\ufeff',
  '\uffff',
  '\ud800',
  '\udfff',
);
const text = (minLength: number) =>
  fc.oneof(
    fc.string({ unit: tricky, minLength, maxLength: 12 }),
    fc.string({ unit: 'binary', minLength, maxLength: 12 }),
    fc.string({
      unit: fc.oneof(tricky, fc.string({ unit: 'grapheme', maxLength: 1 })),
      minLength,
      maxLength: 24,
    }),
  );

const reading = fc.record({
  device: text(1),
  district: text(1),
  site: text(1),
  note: text(0),
});

/**
 * The documented limits, restated independently of the encoder: line breaks and lone
 * surrogates nowhere; in tag values also no U+0000 (InfluxQL could not filter on it) and no
 * backslash at the end or before ',', '=' or ' ' (InfluxDB never unescapes one in a name).
 */
const stringFits = (s: string) =>
  !/[\n\r]/.test(s) && Buffer.from(s, 'utf8').toString('utf8') === s;
const tagFits = (s: string) => stringFits(s) && !s.includes('\0') && !/\\([,= ]|$)/.test(s);
/** device_id is the series' identity: it may not be empty either. */
const tagsFit = (r: { device: string; district: string; site: string }) =>
  r.device !== '' && [r.device, r.district, r.site].every(tagFits);

describe('tag values and string fields through influxd 1.6.7', () => {
  let influx: TestServer;
  let store: Store;

  beforeAll(async () => {
    influx = await startInfluxDB();
    store = createInfluxStore({ url: influx.url, api: 'v1', bucket: 'taihu' });
    await store.open([INFO]);
  });
  afterAll(async () => {
    await store?.close();
    await influx?.stop();
  });

  it('reads back exactly what it accepted, and refuses the rest by name', async () => {
    let run = 0;
    const outcomes = { stored: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(reading, async (r) => {
        const ts = T0 + run++;
        const fields: Record<string, FieldValue> = Object.create(null);
        fields.note = r.note;
        fields.n = run;
        const point: Point = {
          measurement: 'roundtrip',
          tags: { device_id: r.device, district: r.district, site_id: r.site },
          fields,
          ts,
        };
        try {
          await writePoints(store, [point]);
        } catch (err) {
          if (!(err instanceof InfluxStoreError)) throw err;
          outcomes.refused++;
          expect(err).toMatchObject({ status: 400, retryable: false });
          expect(tagsFit(r) && stringFits(r.note)).toBe(false);
          const culprit = tagsFit(r)
            ? r.note
            : [r.device, r.district, r.site].find((t, i) => (i === 0 && t === '') || !tagFits(t));
          expect(err.message).toContain(JSON.stringify(culprit));
          return;
        }
        outcomes.stored++;
        expect(tagsFit(r) && stringFits(r.note)).toBe(true);
        const res = await influxql(
          influx,
          'taihu',
          `SELECT "note", "n", "device_id", "district", "site_id" FROM "roundtrip" WHERE time = ${ts}ms`,
        );
        expect(res.results[0].series?.[0]?.values).toEqual([
          // InfluxDB has no empty tag value: the store leaves an empty district or site out
          [ts, r.note, run, r.device, r.district || null, r.site || null],
        ]);
        // and an InfluxQL filter on each tag value finds exactly that point again
        const found = await store.aggregate({
          measurement: 'roundtrip',
          field: 'n',
          fn: 'count',
          everyMs: 1000,
          fromMs: ts,
          toMs: ts + 1,
          filter: {
            device: r.device,
            ...(r.district === '' ? {} : { district: r.district }),
            ...(r.site === '' ? {} : { site: r.site }),
          },
          fill: 'none',
        });
        expect(found).toEqual([
          { group: {}, points: [{ t: ts - (ts % 1000), value: 1, count: 1 }] },
        ]);
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    // both outcomes were exercised, so neither branch passed vacuously
    expect(outcomes.stored).toBeGreaterThan(RUNS / 10);
    expect(outcomes.refused).toBeGreaterThan(RUNS / 10);
  });
});

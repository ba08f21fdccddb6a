import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/ingest/catalog.js';
import { createPipeline, type IngestResult } from '../../src/ingest/pipeline.js';

const catalog = loadCatalog('schemas');
const NOW = Date.parse('2026-11-26T08:00:00.000Z');
const device = {
  id: 'aq-binhu-0007',
  type: 'air-quality',
  district: 'binhu',
  siteId: 'binhu-aq-01',
};
const ingest = createPipeline(catalog, {
  maxPayloadBytes: 4096,
  maxBatch: 10,
  maxClockSkewMs: 5 * 60_000,
  maxAgeMs: 7 * 86_400_000,
});
const run = (payload: string | Buffer) =>
  ingest(device, Buffer.isBuffer(payload) ? payload : Buffer.from(payload), NOW);
const data = { pm25_ugm3: 48.2, pm10_ugm3: 77, no2_ugm3: 31.5 };

function rejection(r: IngestResult) {
  if (r.ok) throw new Error('expected a rejection');
  return r.rejection;
}

describe('ingest pipeline', () => {
  it('turns one reading into one point tagged from the registry, not the payload', () => {
    const r = run(JSON.stringify({ ts: '2026-11-26T07:59:00.000Z', seq: 1043, data }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.points).toEqual([
      {
        measurement: 'air_quality',
        tags: { device_id: 'aq-binhu-0007', district: 'binhu', site_id: 'binhu-aq-01' },
        fields: Object.assign(Object.create(null), { ...data, seq: 1043 }),
        ts: Date.parse('2026-11-26T07:59:00.000Z'),
      },
    ]);
  });

  it('uses the receive time when ts is absent and accepts epoch milliseconds', () => {
    const a = run(JSON.stringify({ data }));
    const b = run(JSON.stringify({ ts: NOW - 1000, data }));
    expect(a.ok && a.points[0]?.ts).toBe(NOW);
    expect(b.ok && b.points[0]?.ts).toBe(NOW - 1000);
  });

  it('accepts an array of readings as one message', () => {
    const r = run(JSON.stringify([1, 2, 3].map((seq) => ({ ts: NOW - seq * 60_000, seq, data }))));
    expect(r.ok && r.points.map((p) => p.fields.seq)).toEqual([1, 2, 3]);
  });

  it('keeps integer-valued floats as numbers and never adds undeclared fields', () => {
    const r = run('{"data":{"pm25_ugm3":48,"pm10_ugm3":77.0,"no2_ugm3":31.5}}');
    expect(r.ok && Object.keys(r.points[0]!.fields).sort()).toEqual([
      'no2_ugm3',
      'pm10_ugm3',
      'pm25_ugm3',
    ]);
  });

  it.each([
    ['not JSON', '{"data":', 'PAYLOAD_NOT_JSON', ''],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'PAYLOAD_NOT_UTF8', ''],
    ['too large', `{"data":{},"x":"${'a'.repeat(5000)}"}`, 'PAYLOAD_TOO_LARGE', ''],
    ['a bare number', '42', 'ENVELOPE_INVALID', ''],
    ['an empty array', '[]', 'ENVELOPE_INVALID', ''],
    [
      'too many readings',
      JSON.stringify(Array.from({ length: 11 }, () => ({ data }))),
      'BATCH_TOO_LARGE',
      '',
    ],
    ['no data', '{"ts":1}', 'ENVELOPE_INVALID', '/data'],
    ['an unknown envelope key', JSON.stringify({ data, extra: 1 }), 'ENVELOPE_INVALID', '/extra'],
    ['a negative seq', JSON.stringify({ seq: -1, data }), 'ENVELOPE_INVALID', '/seq'],
    ['a fractional seq', JSON.stringify({ seq: 1.5, data }), 'ENVELOPE_INVALID', '/seq'],
    ['a non-RFC 3339 ts', JSON.stringify({ ts: 'yesterday', data }), 'ENVELOPE_INVALID', '/ts'],
    [
      'a wrong-typed field',
      JSON.stringify({ data: { ...data, pm25_ugm3: '48' } }),
      'SCHEMA_INVALID',
      '/data/pm25_ugm3',
    ],
    [
      'an out-of-range field',
      JSON.stringify({ data: { ...data, pm25_ugm3: 5000 } }),
      'SCHEMA_INVALID',
      '/data/pm25_ugm3',
    ],
    [
      'a missing required field',
      JSON.stringify({ data: { pm10_ugm3: 1, no2_ugm3: 1 } }),
      'SCHEMA_INVALID',
      '/data/pm25_ugm3',
    ],
    [
      'an unknown field',
      JSON.stringify({ data: { ...data, humidity_pct: 1 } }),
      'SCHEMA_INVALID',
      '/data/humidity_pct',
    ],
    [
      'a __proto__ key',
      `{"data":{"pm25_ugm3":1,"pm10_ugm3":1,"no2_ugm3":1,"__proto__":{"x":1}}}`,
      'SCHEMA_INVALID',
      '/data/__proto__',
    ],
    [
      'a constructor key',
      `{"data":{"pm25_ugm3":1,"pm10_ugm3":1,"no2_ugm3":1,"constructor":1}}`,
      'SCHEMA_INVALID',
      '/data/constructor',
    ],
    [
      'a repeated field',
      '{"data":{"pm25_ugm3":12,"pm10_ugm3":1,"no2_ugm3":1,"pm25_ugm3":900}}',
      'PAYLOAD_NOT_JSON',
      '/data/pm25_ugm3',
    ],
    [
      'a repeated envelope key',
      `{"ts":1,"data":${JSON.stringify(data)},"ts":2}`,
      'PAYLOAD_NOT_JSON',
      '/ts',
    ],
    [
      'a key repeated through an escape',
      '[{"data":{"pm25_ugm3":1,"pm10_ugm3":1,"no2_ugm3":1}},{"data":{"a/b":1,"a\\u002fb":2}}]',
      'PAYLOAD_NOT_JSON',
      '/1/data/a~1b',
    ],
    [
      'a bad reading inside an array',
      JSON.stringify([{ data }, { data: { ...data, no2_ugm3: -1 } }]),
      'SCHEMA_INVALID',
      '/1/data/no2_ugm3',
    ],
  ])('rejects %s with its code and a pointer to the culprit', (_name, payload, code, pointer) => {
    const r = rejection(run(payload));
    expect(r.code).toBe(code);
    expect(r.reasons[0]?.pointer).toBe(pointer);
    expect(r.reasons[0]?.message.length).toBeGreaterThan(5);
  });

  it('names the allowed fields when it meets an unknown one', () => {
    const r = rejection(run(JSON.stringify({ data: { ...data, humidity_pct: 1 } })));
    expect(r.reasons[0]?.message).toMatch(
      /"humidity_pct" is not a field of air-quality v1; fields are pm25_ugm3, pm10_ugm3/,
    );
  });

  it.each([
    [
      'a timestamp 10 minutes ahead',
      NOW + 600_000,
      'TIMESTAMP_IN_FUTURE',
      /ahead of the gateway clock/,
    ],
    ['a timestamp 8 days old', NOW - 8 * 86_400_000, 'TIMESTAMP_TOO_OLD', /older than/],
    ['epoch seconds', Math.floor(NOW / 1000), 'TIMESTAMP_TOO_OLD', /looks like seconds/],
    ['epoch microseconds', NOW * 1000, 'TIMESTAMP_IN_FUTURE', /looks like microseconds/],
    ['epoch nanoseconds', 1.7e18, 'TIMESTAMP_IN_FUTURE', /looks like nanoseconds/],
    ['a fractional number', NOW + 0.5, 'ENVELOPE_INVALID', /integer epoch milliseconds/],
  ])('rejects %s with a hint', (_name, ts, code, message) => {
    const r = rejection(run(JSON.stringify({ ts, data })));
    expect(r.code).toBe(code);
    expect(r.reasons[0]?.message).toMatch(message);
  });
});

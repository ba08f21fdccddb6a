/**
 * The InfluxDB store's two encoders: from points, and straight from the spool's JSON. They must
 * write the same lines and refuse the same points with the same words; what the lines mean to
 * influxd is checked against the real server in tests/integration (influx-*.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { encodePayload, payloadJson } from '../../src/points/codec.js';
import {
  compileMeasurement,
  encodePoints,
  encodeSpoolJson,
} from '../../src/store/influx/line-protocol.js';
import type { FieldKind } from '../../src/store/types.js';
import type { FieldValue, Point } from '../../src/points/point.js';
import { rejection } from '../helpers/errors.js';

const FIELDS = new Map<string, FieldKind>([
  ['speed_kmh', 'float'],
  ['vehicles', 'integer'],
  ['jammed', 'boolean'],
  ['note', 'string'],
  ['seq', 'integer'],
]);
const encoders = new Map([
  ['traffic flow', compileMeasurement({ type: 'tf', measurement: 'traffic flow', fields: FIELDS })],
]);

function point(n: number, fields: Record<string, FieldValue>, device = `tf-${n % 3}`): Point {
  return {
    measurement: 'traffic flow',
    tags: { device_id: device, district: 'Xi shan', site_id: n % 2 ? 'xs=12' : '' },
    fields: Object.assign(Object.create(null) as Record<string, FieldValue>, fields),
    ts: 1_795_766_400_000 + n,
  };
}

const fromSpool = (messages: Point[][]) =>
  encodeSpoolJson(
    messages.map((m) => payloadJson(encodePayload(m))),
    encoders,
  );

describe('line protocol from the spool JSON', () => {
  it('writes exactly the lines encodePoints writes for the same points', () => {
    const messages = [
      [point(1, { speed_kmh: 42.5, vehicles: 7, seq: 1 })],
      [
        point(2, { jammed: true, note: 'say "hi" \\ there', seq: 2 }, 'tf,a b'),
        point(3, { speed_kmh: -0.25, jammed: false, seq: 3 }, 'tf,a b'),
        point(4, { vehicles: 0, note: '', seq: 4 }),
      ],
      [point(5, { speed_kmh: 1e21, seq: 5 })],
    ];
    const lines = fromSpool(messages);
    expect(lines).toBe(encodePoints(messages.flat(), encoders));
    expect(lines.split('\n')).toHaveLength(5);
    expect(lines.split('\n')[1]).toBe(
      'traffic\\ flow,device_id=tf\\,a\\ b,district=Xi\\ shan jammed=true,note="say \\"hi\\" \\\\ there",seq=2i 1795766400002',
    );
  });

  it('refuses what encodePoints refuses, with the same words', async () => {
    const bad: Point[][] = [
      [point(1, { speed_kmh: 1, seq: 1 }), point(2, { vehicles: 2.5, seq: 2 })],
      [point(3, { lane: 1 })],
      [point(4, { note: 'two\nlines' })],
      [point(5, { seq: 5 }, '')],
      [{ ...point(6, { seq: 6 }), measurement: 'parking' }],
      [{ ...point(7, { seq: 7 }), ts: -1 }],
    ];
    for (const message of bad) {
      const expected = await rejection(
        Promise.resolve().then(() => encodePoints(message, encoders)),
      );
      const got = await rejection(Promise.resolve().then(() => fromSpool([message])));
      expect(got.message).toBe(expected.message);
      expect(got.retryable).toBe(false);
    }
  });

  it('throws on text that is not what the spool codec writes', () => {
    expect(() => encodeSpoolJson(['{"a":1}'], encoders)).toThrow(/not an array/);
    expect(() => encodeSpoolJson(['[["traffic flow","d","x","s"]]'], encoders)).toThrow(
      /series without readings/,
    );
    expect(() => encodeSpoolJson(['[[1'], encoders)).toThrow(SyntaxError);
  });
});

import { describe, expect, it } from 'vitest';
import {
  decodePacked,
  decodePayload,
  encodePayload,
  packPayloads,
  payloadCount,
} from '../../src/points/codec.js';
import type { FieldValue, Point } from '../../src/points/point.js';

function point(n: number, fields: Record<string, FieldValue> = { speed_kmh: 40 + n }): Point {
  return {
    measurement: 'traffic_flow',
    tags: { device_id: `tf-${n % 3}`, district: 'Xishan', site_id: 'xs-x12' },
    fields: Object.assign(Object.create(null) as Record<string, FieldValue>, fields, { seq: n }),
    ts: 1_795_766_400_000 + n,
  };
}
const plain = (points: readonly Point[]) =>
  points.map((p) => ({ ...p, tags: { ...p.tags }, fields: { ...p.fields } }));

describe('spool payload codec', () => {
  it('round-trips every kind of field value and says how many points without decoding', () => {
    const points = [point(1), point(2, { mode: 'auto\n"quoted"', ok: true, n: -0.5 }), point(3)];
    const payload = encodePayload(points);
    expect(payloadCount(payload)).toBe(3);
    expect(plain(decodePayload(payload))).toEqual(plain(points));
  });

  it('packs payloads into one buffer and decodes them back in order', () => {
    const a = [point(1), point(2)];
    const b = [point(3)];
    const packed = packPayloads([encodePayload(a), encodePayload(b)]);
    expect(plain(decodePacked(packed))).toEqual(plain([...a, ...b]));
    expect(decodePacked(packPayloads([]))).toEqual([]);
  });

  it('refuses a truncated pack, a count that does not match, and an unknown format', () => {
    const packed = packPayloads([encodePayload([point(1)])]);
    expect(() => decodePacked(packed.subarray(0, packed.length - 3))).toThrow(/truncated payload/);
    expect(() => decodePacked(packed.subarray(0, 2))).toThrow(/truncated length/);
    const wrong = encodePayload([point(1), point(2)]);
    wrong.writeUInt32LE(5, 1);
    expect(() => decodePayload(wrong)).toThrow(/says 5 points and holds 2/);
    wrong.writeUInt32LE(0, 1);
    expect(() => payloadCount(wrong)).toThrow(/no points/);
    expect(() => payloadCount(Buffer.of(7, 0, 0))).toThrow(/unknown record format 7/);
  });
});

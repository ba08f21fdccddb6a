/**
 * The payload of one spool record: the points of one MQTT message. Format 1 is compact JSON,
 * grouped by series so a message's measurement and tags are written once:
 *
 *   0x01 [[measurement, device_id, district, site_id, [ts, name, value, …], …], …]
 *
 * Measured against plain `JSON.stringify(points)` for one 7-field air-quality reading: 180 bytes
 * instead of 250, encode 1.26 µs instead of 1.61 µs, decode (null-prototype fields included)
 * 0.97 µs instead of 1.25 µs; for ten readings 1,251 bytes instead of 2,491. JSON keeps every
 * value's type that a Point can hold (number, boolean, string) and round-trips doubles exactly.
 */
import { CODES, TaihuError } from '../errors.js';
import type { FieldValue, Point } from '../store/types.js';

/** First byte of every payload; a reader refuses formats it does not know. */
export const CODEC_JSON_V1 = 1;

type Reading = (number | string | FieldValue)[];
type Series = (string | Reading)[];

/** Encodes points as the JSON text of format 1 (the caller writes the format byte). */
export function encodePoints(points: readonly Point[]): string {
  const groups: Series[] = [];
  let g: Series | undefined;
  let m = '';
  let d = '';
  let di = '';
  let s = '';
  for (const p of points) {
    const t = p.tags;
    if (
      g === undefined ||
      p.measurement !== m ||
      t.device_id !== d ||
      t.district !== di ||
      t.site_id !== s
    ) {
      m = p.measurement;
      d = t.device_id;
      di = t.district;
      s = t.site_id;
      g = [m, d, di, s];
      groups.push(g);
    }
    if (!Number.isFinite(p.ts)) throw notEncodable(`timestamp ${p.ts}`);
    const r: Reading = [p.ts];
    for (const name in p.fields) {
      const v = p.fields[name] as FieldValue;
      // JSON would turn NaN/Infinity into null; refuse rather than store something else.
      if (typeof v === 'number' && !Number.isFinite(v)) throw notEncodable(`field ${name}=${v}`);
      r.push(name, v);
    }
    g.push(r);
  }
  return JSON.stringify(groups);
}

/** Decodes format 1 JSON text back into points with null-prototype `fields`. */
export function decodePoints(json: string): Point[] {
  const groups: unknown = JSON.parse(json);
  if (!Array.isArray(groups)) throw new Error('payload is not an array');
  const points: Point[] = [];
  for (const g of groups as unknown[][]) {
    const [measurement, device_id, district, site_id] = g;
    if (
      typeof measurement !== 'string' ||
      typeof device_id !== 'string' ||
      typeof district !== 'string' ||
      typeof site_id !== 'string'
    ) {
      throw new Error('series header is not four strings');
    }
    const tags = { device_id, district, site_id };
    for (let i = 4; i < g.length; i++) {
      const r = g[i] as unknown[];
      const ts = r[0];
      if (typeof ts !== 'number') throw new Error('reading without a numeric timestamp');
      points.push({ measurement, tags, fields: readingFields(r), ts });
    }
  }
  return points;
}

/**
 * The fields of a reading `[ts, name, value, …]` as a null-prototype object. Built as a plain
 * object and detached from Object.prototype afterwards, which keeps V8's compact in-object
 * layout; Object.create(null) gives a hash-table object. Measured on the drain's path (spool
 * read → decode → line protocol, 7-field readings): 5.4 µs of CPU per point became 3.6–4.7, the
 * line-protocol encoder's `for…in` over the fields going from 2.2 to 1.1 µs.
 */
function readingFields(r: unknown[]): Record<string, FieldValue> {
  const fields: Record<string, FieldValue> = {};
  for (let j = 1; j + 1 < r.length; j += 2) {
    const name = r[j] as string;
    // assigned, `__proto__` would set the prototype instead of making a field
    if (name === '__proto__') {
      Object.defineProperty(fields, name, {
        value: r[j + 1],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else {
      fields[name] = r[j + 1] as FieldValue;
    }
  }
  return Object.setPrototypeOf(fields, null) as Record<string, FieldValue>;
}

function notEncodable(what: string): TaihuError {
  return new TaihuError(CODES.SPOOL_ENCODE, `spool: cannot encode ${what}`, {
    statusCode: 500,
  });
}

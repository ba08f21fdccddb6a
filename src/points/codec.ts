/**
 * The payload of one spool record: the points of one MQTT message, as compact JSON grouped by
 * series so a message's measurement and tags are written once:
 *
 *   0x02 count(u32 LE) [[measurement, device_id, district, site_id, [ts, name, value, …], …], …]
 *
 * Format 2 (written) carries the number of points ahead of the JSON, so the drainer can batch
 * records without decoding them and a store can decode them where it writes them (the embedded
 * store's writer thread). Format 1 (read, from older spools) is the same JSON without the count.
 *
 * Measured against plain `JSON.stringify(points)` for one 7-field air-quality reading: 180 bytes
 * instead of 250, encode 1.26 µs instead of 1.61 µs, decode (null-prototype fields included)
 * 0.97 µs instead of 1.25 µs; for ten readings 1,251 bytes instead of 2,491. JSON keeps every
 * value's type that a Point can hold (number, boolean, string) and round-trips doubles exactly.
 */
import { ERR_SPOOL_ENCODE } from '../errors.js';
import type { FieldValue, Point } from './point.js';

/** First byte of every payload; a reader refuses formats it does not know. */
const CODEC_JSON_V1 = 1;
const CODEC_JSON_V2 = 2;
/** Bytes before the JSON text of a format 2 payload: the format byte and the count. */
const V2_HEADER_BYTES = 5;

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
    if (!Number.isFinite(p.ts)) throw ERR_SPOOL_ENCODE(`timestamp ${p.ts}`);
    const r: Reading = [p.ts];
    for (const name in p.fields) {
      const v = p.fields[name] as FieldValue;
      // JSON would turn NaN/Infinity into null; refuse rather than store something else.
      if (typeof v === 'number' && !Number.isFinite(v))
        throw ERR_SPOOL_ENCODE(`field ${name}=${v}`);
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

/** Bytes of the format 2 payload around `json`, the text `encodePoints` returned. */
export function payloadBytes(json: string): number {
  return V2_HEADER_BYTES + Buffer.byteLength(json);
}

/** Writes the format 2 payload of `count` points encoded as `json` into `buf` at `at`. */
export function writePayload(buf: Buffer, at: number, json: string, count: number): void {
  buf[at] = CODEC_JSON_V2;
  buf.writeUInt32LE(count, at + 1);
  buf.write(json, at + V2_HEADER_BYTES, 'utf8');
}

/** The format 2 payload of `points`, on its own. */
export function encodePayload(points: readonly Point[]): Buffer {
  const json = encodePoints(points);
  const buf = Buffer.allocUnsafe(payloadBytes(json));
  writePayload(buf, 0, json, points.length);
  return buf;
}

/**
 * How many points a payload holds, from its header alone; undefined for format 1, which must be
 * decoded to know. Throws on a format it does not know or a count that cannot be right.
 */
export function payloadCount(payload: Uint8Array): number | undefined {
  const format = payload[0];
  if (format === CODEC_JSON_V1) return undefined;
  if (format !== CODEC_JSON_V2) throw new Error(`unknown record format ${String(format)}`);
  if (payload.length < V2_HEADER_BYTES + 2) throw new Error('format 2 record too short');
  const count = u32(payload, 1);
  if (count < 1) throw new Error('format 2 record holds no points');
  return count;
}

/** The u32 LE at `at`, read without making a Buffer view (one per record adds up when draining). */
function u32(b: Uint8Array, at: number): number {
  return (
    ((b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16)) +
    (b[at + 3] as number) * 0x1000000
  );
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length);
}

/**
 * The JSON text of a payload of either format (format byte first), as `encodePoints` wrote it:
 * for a reader that turns it into something other than points (line protocol).
 */
export function payloadJson(payload: Uint8Array): string {
  const buf = asBuffer(payload);
  const format = buf[0];
  if (format === CODEC_JSON_V1) return buf.toString('utf8', 1);
  if (format !== CODEC_JSON_V2) throw new Error(`unknown record format ${String(format)}`);
  return buf.toString('utf8', V2_HEADER_BYTES);
}

/** Decodes a payload of either format (format byte first) into its points. */
export function decodePayload(payload: Uint8Array): Point[] {
  const points = decodePoints(payloadJson(payload));
  const buf = asBuffer(payload);
  if (buf[0] === CODEC_JSON_V2 && points.length !== u32(buf, 1)) {
    throw new Error(`record says ${u32(buf, 1)} points and holds ${points.length}`);
  }
  return points;
}

/**
 * Payloads packed into one buffer of its own, each behind its length (u32 LE): how a batch of
 * spool records crosses to another thread as one memory copy instead of a clone per object.
 */
export function packPayloads(payloads: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of payloads) total += 4 + p.length;
  const out = Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (const p of payloads) {
    out.writeUInt32LE(p.length, at);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/** The points of every payload in a `packPayloads` buffer, in order. */
export function decodePacked(packed: Uint8Array): Point[] {
  const buf = asBuffer(packed);
  const points: Point[] = [];
  for (let at = 0; at < buf.length;) {
    if (at + 4 > buf.length) throw new Error('packed payloads: truncated length');
    const n = buf.readUInt32LE(at);
    if (at + 4 + n > buf.length) throw new Error('packed payloads: truncated payload');
    for (const p of decodePayload(buf.subarray(at + 4, at + 4 + n))) points.push(p);
    at += 4 + n;
  }
  return points;
}

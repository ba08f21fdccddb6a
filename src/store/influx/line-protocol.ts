/**
 * Points → InfluxDB line protocol, precision ms. Escaping follows the line protocol reference
 * and what InfluxDB 1.x's parser (models/points.go) actually does, checked against influxd 1.6.7:
 * - measurement: `,` and space are backslash-escaped;
 * - tag keys, tag values, field keys: `,`, `=` and space are backslash-escaped;
 * - string field values: in double quotes, `"` → `\"` and `\` → `\\`.
 * A backslash in a name is kept as is: the 1.x/2.x parsers never unescape `\\` in names, so a
 * name whose backslash ends it or precedes `,` `=` or space cannot be written exactly, and is
 * refused rather than altered. So are CR and LF in names: a line ends there.
 * LF and CR inside string field values are refused too: influxd 1.x accepts a raw LF inside
 * quotes, but the reference says newlines are not supported in field values and line-splitting
 * parsers (VictoriaMetrics) drop such a line whole, numeric fields included; writing them as the
 * two characters `\n` (as Telegraf does) would read back as a different string. One point is
 * always exactly one line, and every value reads back as it was written or is refused.
 * A lone surrogate (not well-formed UTF-16) cannot be UTF-8 and would read back as U+FFFD, so
 * it is refused in every name and value. U+0000 is refused in names: it is stored, but InfluxQL's
 * scanner reads it as the end of input, so no query could ever filter on such a tag.
 */
import type { FieldKind, MeasurementInfo } from '../types.js';
import type { Point, PointTags } from '../../points/point.js';
import { isStorableText, LINE_BREAK, LONE_SURROGATE } from '../text.js';
import { refused } from './errors.js';

interface FieldEncoder {
  /** Escaped key followed by `=`. */
  readonly key: string;
  readonly kind: FieldKind;
}

export interface MeasurementEncoder {
  /** Escaped measurement name, the start of every line. */
  readonly prefix: string;
  readonly fields: ReadonlyMap<string, FieldEncoder>;
}

/** Tags in the order they are written: sorted by key, as InfluxDB prefers (no sort on ingest). */
const TAG_KEYS: readonly (keyof PointTags)[] = ['device_id', 'district', 'site_id'];
const TAG_PREFIXES: readonly string[] = TAG_KEYS.map((k) => `,${k}=`);

const MEASUREMENT_SPECIAL = /[, \\\n\r]/;
const NAME_SPECIAL = /[,= \\\n\r]/;
const STRING_SPECIAL = /["\\]/;

/** A backslash at the end or before a character the parser treats as escaped. */
const MEASUREMENT_BAD_BACKSLASH = /\\(?:[, ]|$)/;
const NAME_BAD_BACKSLASH = /\\(?:[,= ]|$)/;

/** A name no UTF-8 can carry, or that InfluxQL could never quote (its scanner ends at U+0000). */
function unsayable(name: string): boolean {
  return LONE_SURROGATE.test(name) || name.includes('\u0000');
}

function escapeMeasurement(name: string): string | undefined {
  if (unsayable(name)) return undefined;
  if (!MEASUREMENT_SPECIAL.test(name)) return name;
  if (LINE_BREAK.test(name) || MEASUREMENT_BAD_BACKSLASH.test(name)) return undefined;
  return name.replace(/[, ]/g, '\\$&');
}

/** Tag key, tag value or field key; undefined when line protocol cannot carry it exactly. */
function escapeName(name: string): string | undefined {
  if (unsayable(name)) return undefined;
  if (!NAME_SPECIAL.test(name)) return name;
  if (LINE_BREAK.test(name) || NAME_BAD_BACKSLASH.test(name)) return undefined;
  return name.replace(/[,= ]/g, '\\$&');
}

/** A string field value in quotes; undefined when it cannot be read back exactly. */
function quoteString(value: string): string | undefined {
  if (!isStorableText(value)) return undefined;
  if (!STRING_SPECIAL.test(value)) return `"${value}"`;
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** Checks a measurement's names once, at open(), and keeps their escaped forms. */
export function compileMeasurement(m: MeasurementInfo): MeasurementEncoder {
  const prefix = m.measurement === '' ? undefined : escapeMeasurement(m.measurement);
  // a line starting with '#' is a comment: the point would vanish without an error
  if (prefix === undefined || prefix.startsWith('#')) {
    throw refused(`measurement name ${JSON.stringify(m.measurement)} cannot be line protocol`);
  }
  const fields = new Map<string, FieldEncoder>();
  for (const [name, kind] of m.fields) {
    const key = name === '' ? undefined : escapeName(name);
    if (key === undefined) {
      throw refused(
        `field name ${JSON.stringify(name)} of '${m.measurement}' cannot be line protocol`,
      );
    }
    // InfluxDB refuses a field named time ("invalid field name")
    if (name === 'time') throw refused(`field name 'time' of '${m.measurement}' is reserved`);
    fields.set(name, { key: `${key}=`, kind });
  }
  return { prefix, fields };
}

/** Names a point in a refusal: only ever built when something is refused. */
function describe(measurement: unknown, device: unknown, ts: unknown, index: number): string {
  return `point ${index} (${String(measurement)}, device ${JSON.stringify(device)}, ts ${String(ts)})`;
}

/**
 * The start of a line: the escaped measurement and tags. `ts` and `index` only name the point
 * in a refusal.
 */
function seriesKey(
  m: MeasurementEncoder,
  measurement: unknown,
  device: unknown,
  district: unknown,
  site: unknown,
  ts: unknown,
  index: number,
): string {
  let key = m.prefix;
  for (let t = 0; t < TAG_KEYS.length; t++) {
    const tag = TAG_KEYS[t]!;
    const raw = t === 0 ? device : t === 1 ? district : site;
    if (typeof raw !== 'string') {
      throw refused(`${describe(measurement, device, ts, index)}: ${tag} is not a string`);
    }
    // InfluxDB has no empty tag values: an absent tag reads back as '' in GROUP BY
    if (raw === '') {
      if (tag === 'device_id') {
        throw refused(`${describe(measurement, device, ts, index)}: empty device_id`);
      }
      continue;
    }
    const value = escapeName(raw);
    if (value === undefined) {
      throw refused(
        `${describe(measurement, device, ts, index)}: ${tag} ${JSON.stringify(raw)} cannot be line protocol`,
      );
    }
    key += TAG_PREFIXES[t]! + value;
  }
  return key;
}

/** `key=value` of one field of a point of `m`; the arguments after `v` name it in a refusal. */
function fieldText(
  m: MeasurementEncoder,
  name: string,
  v: unknown,
  measurement: unknown,
  device: unknown,
  ts: unknown,
  index: number,
): string {
  const f = m.fields.get(name);
  if (f === undefined) {
    throw refused(`${describe(measurement, device, ts, index)}: unknown field '${name}'`);
  }
  let text: string | undefined;
  switch (f.kind) {
    case 'float':
      // a bare number is a float in line protocol; String() never yields NaN/Infinity here
      if (typeof v === 'number' && Number.isFinite(v)) text = String(v);
      break;
    case 'integer':
      if (typeof v === 'number' && Number.isSafeInteger(v)) text = `${v}i`;
      break;
    case 'boolean':
      if (typeof v === 'boolean') text = v ? 'true' : 'false';
      break;
    case 'string':
      if (typeof v === 'string') {
        text = quoteString(v);
        if (text === undefined) {
          throw refused(
            `${describe(measurement, device, ts, index)}: field '${name}' value ${JSON.stringify(v)} cannot be line protocol (a line break or a lone surrogate)`,
          );
        }
      }
      break;
  }
  if (text === undefined) {
    throw refused(
      `${describe(measurement, device, ts, index)}: field '${name}' expects ${f.kind}, got ${typeof v === 'number' ? String(v) : typeof v}`,
    );
  }
  return f.key + text;
}

/** The end of a line: the timestamp, checked. */
function timestamp(ts: unknown, measurement: unknown, device: unknown, index: number): string {
  if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) {
    throw refused(`${describe(measurement, device, ts, index)}: invalid timestamp`);
  }
  return String(ts);
}

function encoderOf(
  measurements: ReadonlyMap<string, MeasurementEncoder>,
  measurement: unknown,
  device: unknown,
  ts: unknown,
  index: number,
): MeasurementEncoder {
  const m = typeof measurement === 'string' ? measurements.get(measurement) : undefined;
  if (m === undefined) {
    throw refused(`${describe(measurement, device, ts, index)}: unknown measurement`);
  }
  return m;
}

/**
 * One line per point, joined by LF. The only allocations are the strings being built; names of
 * measurements and fields were escaped once by compileMeasurement().
 * Throws refused() (status 400) for the first point that cannot be written.
 */
export function encodePoints(
  points: readonly Point[],
  measurements: ReadonlyMap<string, MeasurementEncoder>,
): string {
  let body = '';
  for (let i = 0; i < points.length; i++) {
    const p = points[i]!;
    const d = p.tags.device_id;
    const m = encoderOf(measurements, p.measurement, d, p.ts, i);
    let line = seriesKey(m, p.measurement, d, p.tags.district, p.tags.site_id, p.ts, i);
    let sep = ' ';
    for (const name in p.fields) {
      line += sep + fieldText(m, name, p.fields[name], p.measurement, d, p.ts, i);
      sep = ',';
    }
    if (sep === ' ') throw refused(`${describe(p.measurement, d, p.ts, i)}: no fields`);
    line += ` ${timestamp(p.ts, p.measurement, d, i)}`;
    body += i === 0 ? line : `\n${line}`;
  }
  return body;
}

/**
 * The same lines as `encodePoints` for the points of spool record payloads, read straight from
 * their JSON (`points/codec.ts` `payloadJson`): no Point objects are built, and a series' key is
 * escaped once per message instead of once per point. Throws refused() as encodePoints does, or
 * an Error when a payload is not what the codec writes.
 */
export function encodeSpoolJson(
  texts: readonly string[],
  measurements: ReadonlyMap<string, MeasurementEncoder>,
): string {
  let body = '';
  let i = 0;
  for (const text of texts) {
    const groups: unknown = JSON.parse(text);
    if (!Array.isArray(groups)) throw new Error('payload is not an array');
    for (const g of groups as unknown[][]) {
      if (!Array.isArray(g) || g.length < 5) throw new Error('series without readings');
      const measurement = g[0];
      const d = g[1];
      const first = (g[4] as unknown[] | undefined)?.[0];
      const m = encoderOf(measurements, measurement, d, first, i);
      const key = seriesKey(m, measurement, d, g[2], g[3], first, i);
      for (let r = 4; r < g.length; r++) {
        const reading = g[r] as unknown[];
        if (!Array.isArray(reading)) throw new Error('reading is not an array');
        const ts = reading[0];
        let line = key;
        let sep = ' ';
        for (let j = 1; j + 1 < reading.length; j += 2) {
          const name = reading[j];
          if (typeof name !== 'string') throw new Error('field name is not a string');
          line += sep + fieldText(m, name, reading[j + 1], measurement, d, ts, i);
          sep = ',';
        }
        if (sep === ' ') throw refused(`${describe(measurement, d, ts, i)}: no fields`);
        line += ` ${timestamp(ts, measurement, d, i)}`;
        body += i === 0 ? line : `\n${line}`;
        i++;
      }
    }
  }
  return body;
}

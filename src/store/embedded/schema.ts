/**
 * Table layout of the embedded store: one wide table per measurement. Every name that reaches
 * SQL goes through `ident()`, which only accepts the snake_case alphabet and quotes anyway.
 */
import type { FieldKind, GroupBy, MeasurementInfo } from '../types.js';
import type { PointTags } from '../../points/point.js';
import { GROUP_TAG } from '../types.js';
import { ERR_STORE_FAILED, ERR_STORE_INVALID, type TaihuError } from '../../errors.js';

const NAME = /^[a-z][a-z0-9_]*$/;

/** Columns every table has before its fields; a field may not reuse these names. */
export const TAG_COLUMNS: readonly (keyof PointTags)[] = ['device_id', 'district', 'site_id'];
const RESERVED = new Set<string>(['ts', ...TAG_COLUMNS]);

export const COLUMN_TYPE: Readonly<Record<FieldKind, 'INTEGER' | 'REAL' | 'TEXT'>> = {
  integer: 'INTEGER',
  float: 'REAL',
  // why INTEGER: 0/1 keeps count() and comparisons trivial and costs one byte per value
  boolean: 'INTEGER',
  string: 'TEXT',
};

/**
 * A store error the caller must not retry (bad input, unknown name): retrying the same batch
 * can never succeed, so the drainer has to split it or drop it instead.
 */
export function refused(detail: string): TaihuError {
  return ERR_STORE_INVALID(detail);
}

/** A failure of SQLite itself (busy, disk full, I/O): the same operation may succeed later. */
export function failed(detail: string, cause: unknown): TaihuError {
  return ERR_STORE_FAILED(cause, detail);
}

export function isName(name: string): boolean {
  return NAME.test(name);
}

/** Double-quoted SQL identifier; throws on anything outside /^[a-z][a-z0-9_]*$/. */
export function ident(name: string): string {
  if (!NAME.test(name)) throw refused(`invalid identifier '${name}'`);
  return `"${name}"`;
}

export function checkMeasurement(name: string): void {
  // why: SQLite reserves every table name that starts with sqlite_
  if (!NAME.test(name) || name.startsWith('sqlite_')) {
    throw refused(`invalid measurement name '${name}' (expected /^[a-z][a-z0-9_]*$/)`);
  }
}

export function checkField(measurement: string, name: string, kind: FieldKind): void {
  if (!NAME.test(name) || RESERVED.has(name)) {
    throw refused(`invalid field name '${name}' in measurement '${measurement}'`);
  }
  if (!Object.hasOwn(COLUMN_TYPE, kind)) {
    throw refused(`field '${measurement}.${name}' has unknown kind '${String(kind)}'`);
  }
}

/**
 * The primary key is (ts, device_id), not (device_id, ts): it gives the same uniqueness (one row
 * per series and timestamp) but clusters rows by time, so a time range over many devices is
 * one contiguous scan. Measured on 10M rows, 150 devices: all devices over 7 days scanned in
 * 119 ms with this key vs 748 ms with (device_id, ts) + an index on ts; one device over 24 h
 * costs 2 ms vs 1 ms through the (device_id, ts) index below.
 */
export function createTableSql(
  measurement: string,
  fields: ReadonlyMap<string, FieldKind>,
): string {
  checkMeasurement(measurement);
  const columns = [
    '"ts" INTEGER NOT NULL',
    '"device_id" TEXT NOT NULL',
    '"district" TEXT NOT NULL',
    '"site_id" TEXT NOT NULL',
  ];
  for (const [name, kind] of fields) columns.push(`${ident(name)} ${COLUMN_TYPE[kind]}`);
  columns.push('PRIMARY KEY ("ts", "device_id")');
  return `CREATE TABLE IF NOT EXISTS ${ident(measurement)} (\n  ${columns.join(',\n  ')}\n) WITHOUT ROWID`;
}

/**
 * One (tag, ts) index per filter/groupBy tag. Index names contain ':' so they can never collide
 * with a table, whose names only use [a-z0-9_].
 */
export function createIndexSql(measurement: string): string[] {
  checkMeasurement(measurement);
  return (Object.keys(GROUP_TAG) as GroupBy[]).map((by) => {
    const tag = GROUP_TAG[by];
    return `CREATE INDEX IF NOT EXISTS "${measurement}:${tag}_ts" ON ${ident(measurement)} ("${tag}", "ts")`;
  });
}

/**
 * The tables `measurements` ask for: one entry per measurement, the fields of every device type
 * (and schema version) that writes to it merged; throws if two declare a field differently.
 */
export function mergeMeasurements(
  measurements: readonly MeasurementInfo[],
): Map<string, ReadonlyMap<string, FieldKind>> {
  const out = new Map<string, Map<string, FieldKind>>();
  for (const m of measurements) {
    checkMeasurement(m.measurement);
    let fields = out.get(m.measurement);
    if (fields === undefined) out.set(m.measurement, (fields = new Map()));
    for (const [name, kind] of m.fields) {
      checkField(m.measurement, name, kind);
      const known = fields.get(name);
      if (known !== undefined && known !== kind) {
        throw refused(`field '${m.measurement}.${name}' declared as both ${known} and ${kind}`);
      }
      fields.set(name, kind);
    }
  }
  return out;
}

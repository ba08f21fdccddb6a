/**
 * The SQLite side of the embedded store: one better-sqlite3 connection and everything that runs
 * on it, synchronously. It runs inside a worker thread (`worker.ts`), never on the gateway's
 * event loop: a 5,000-point transaction with its WAL fsync takes ~128 ms and an aggregate tens
 * of ms, time in which the loop could not acknowledge anything.
 *
 * Writes follow InfluxDB's point semantics (same series + timestamp merges fields) and
 * aggregates give InfluxQL's answers for
 * `SELECT fn(field), count(field) … GROUP BY time(every)[, tag] fill(x)`.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { TaihuError } from '../../errors.js';
import { GROUP_BYS, GROUP_TAG } from '../types.js';
import type { AggregateQuery, AggregateSeries, FieldKind } from '../types.js';
import type { FieldValue, Point, PointTags } from '../../points/point.js';
import { fillBuckets, integerResult } from './fill.js';
import { type Params, type Plan, buildPlan, runPlan } from './query.js';
import { COLUMN_TYPE, createIndexSql, createTableSql, failed, ident, refused } from './schema.js';

export type Tables = ReadonlyMap<string, ReadonlyMap<string, FieldKind>>;

export interface EngineOptions {
  /** SQLite file; its directory is created if missing (writer only). `:memory:` for tests. */
  readonly path: string;
  /** A reader opens the file read-only and only answers aggregates. */
  readonly readonly: boolean;
  readonly warn: (obj: object, msg: string) => void;
}

const defaults = {
  /** ms to wait for a lock held by another connection (a backup, the CLI) before SQLITE_BUSY. */
  busyTimeoutMs: 5000,
  /** Page cache per connection, KiB; a 7-day aggregate reads a few hundred MiB of pages. */
  cacheKiB: 64 * 1024,
  /** WAL file size kept after a checkpoint, bytes; the WAL is truncated down to it. */
  walLimitBytes: 64 * 1024 * 1024,
  /** Cached insert statements per table (one per distinct field set seen). */
  maxInserts: 64,
} as const;

interface Insert {
  readonly stmt: Database.Statement<unknown[]>;
  readonly names: readonly string[];
  readonly kinds: readonly FieldKind[];
}

interface Table {
  readonly fields: ReadonlyMap<string, FieldKind>;
  /** Keyed by the point's field names joined with ','. */
  readonly inserts: Map<string, Insert>;
}

export class SqliteEngine {
  readonly #opts: EngineOptions;
  #db: Database.Database | undefined;
  #writeBatch: ((points: readonly Point[]) => void) | undefined;
  readonly #tables = new Map<string, Table>();
  readonly #plans = new Map<string, Plan>();

  constructor(opts: EngineOptions) {
    this.#opts = opts;
  }

  /** Writer: connects, creates or migrates the tables. Reader: connects. */
  open(wanted: Tables): void {
    const db = this.#db ?? this.#connect();
    if (!this.#opts.readonly) {
      try {
        db.transaction(() => {
          for (const [measurement, fields] of wanted) this.#migrate(db, measurement, fields);
        }).immediate();
      } catch (err) {
        throw err instanceof TaihuError ? err : failed('cannot create tables', err);
      }
    }
    for (const [measurement, fields] of wanted) {
      this.#tables.set(measurement, { fields, inserts: new Map() });
    }
    this.#plans.clear();
  }

  write(points: readonly Point[]): void {
    const write = this.#writeBatch;
    if (write === undefined) throw refused('write before open() or after close()');
    if (points.length === 0) return;
    try {
      write(points);
    } catch (err) {
      throw err instanceof TaihuError ? err : failed('write failed', err);
    }
  }

  /**
   * `q` was checked by the caller (`checkAggregate`) against `kind`, the field's kind; a reader
   * connects on its first query.
   */
  aggregate(q: AggregateQuery, kind: FieldKind): AggregateSeries[] {
    const db = this.#db ?? (this.#opts.readonly ? this.#connect() : undefined);
    if (db === undefined) throw refused('aggregate before open() or after close()');
    if (q.fromMs >= q.toMs) return [];
    const first = Math.floor(q.fromMs / q.everyMs);
    const last = Math.floor((q.toMs - 1) / q.everyMs);
    const params: Params = { lo: 0, hi: 0, to: 0 };
    const filters: (keyof PointTags)[] = [];
    for (const by of GROUP_BYS) {
      const value = q.filter[by];
      if (value === undefined) continue;
      const tag = GROUP_TAG[by];
      filters.push(tag);
      params[tag] = value;
    }

    try {
      const plan = this.#plan(db, q, filters);
      const range = { fromMs: q.fromMs, toMs: q.toMs, everyMs: q.everyMs, first, last };
      // one read transaction: every bucket sees the same snapshot, and SQLite takes the read
      // lock once instead of once per statement
      const series = db.transaction(() => runPlan(plan, range, params))();
      const fill = {
        fn: q.fn,
        fill: q.fill,
        integer: integerResult(q.fn, kind === 'integer'),
        everyMs: q.everyMs,
        first,
        last,
      };
      const groupBy = q.groupBy;
      return [...series]
        .sort(([a], [b]) => compareUtf8(a, b))
        .map(([g, buckets]) => ({
          group: groupBy === undefined ? {} : { [groupBy]: g },
          points: fillBuckets(buckets, fill),
        }));
    } catch (err) {
      throw err instanceof TaihuError ? err : failed('aggregate failed', err);
    }
  }

  close(): void {
    const db = this.#db;
    this.#db = undefined;
    this.#writeBatch = undefined;
    this.#plans.clear();
    for (const table of this.#tables.values()) table.inserts.clear();
    db?.close();
  }

  #connect(): Database.Database {
    const { path, readonly } = this.#opts;
    let db: Database.Database | undefined;
    try {
      if (!readonly && path !== ':memory:' && path !== '') {
        mkdirSync(dirname(path), { recursive: true });
      }
      db = new Database(path, {
        timeout: defaults.busyTimeoutMs,
        readonly,
        fileMustExist: readonly,
      });
      if (!readonly) {
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (mode !== 'wal' && !db.memory) {
          this.#opts.warn({ path, mode }, 'embedded store: WAL mode unavailable');
        }
        // FULL: the WAL is fsync'd at every commit, so a write that resolved survives power
        // loss (NORMAL only survives a process crash).
        db.pragma('synchronous = FULL');
        db.pragma(`journal_size_limit = ${defaults.walLimitBytes}`);
      }
      db.pragma(`busy_timeout = ${defaults.busyTimeoutMs}`);
      db.pragma(`cache_size = -${defaults.cacheKiB}`);
      db.pragma('temp_store = MEMORY');
    } catch (err) {
      db?.close();
      throw failed(`cannot open ${path}`, err);
    }
    const conn = db;
    this.#db = conn;
    if (!readonly) {
      this.#writeBatch = conn.transaction((points: readonly Point[]) => {
        for (const point of points) this.#insert(conn, point);
      });
    }
    return conn;
  }

  #migrate(db: Database.Database, measurement: string, fields: ReadonlyMap<string, FieldKind>) {
    db.exec(createTableSql(measurement, fields));
    const existing = new Map<string, string>();
    const columns = db.pragma(`table_info(${ident(measurement)})`) as {
      name: string;
      type: string;
    }[];
    for (const c of columns) existing.set(c.name, c.type.toUpperCase());
    for (const [name, kind] of fields) {
      const type = existing.get(name);
      if (type === undefined) {
        // a new schema version added this field
        db.exec(`ALTER TABLE ${ident(measurement)} ADD COLUMN ${ident(name)} ${COLUMN_TYPE[kind]}`);
      } else if (type !== COLUMN_TYPE[kind]) {
        this.#opts.warn(
          { measurement, field: name, column: type, kind },
          'embedded store: existing column type differs from the schema; keeping the column',
        );
      }
    }
    for (const sql of createIndexSql(measurement)) db.exec(sql);
  }

  /** The hot path: one cached statement per (measurement, field set), values always bound. */
  #insert(db: Database.Database, p: Point): void {
    const table = this.#tables.get(p.measurement);
    if (table === undefined) throw refused(`unknown measurement '${p.measurement}'`);
    let key = '';
    for (const name in p.fields) key += name + ',';
    let ins = table.inserts.get(key);
    if (ins === undefined) {
      ins = prepareInsert(db, p.measurement, table, Object.keys(p.fields), key);
    }

    const params: unknown[] = new Array<unknown>(4 + ins.names.length);
    if (!Number.isSafeInteger(p.ts) || p.ts < 0) {
      throw refused(`point of '${p.measurement}' has an invalid timestamp ${String(p.ts)}`);
    }
    params[0] = p.ts;
    params[1] = tagValue(p, 'device_id');
    params[2] = tagValue(p, 'district');
    params[3] = tagValue(p, 'site_id');
    let i = 0;
    for (const name in p.fields) {
      // also guards against a key collision: a field literally named 'a,b'
      if (ins.names[i] !== name) throw refused(`unknown field '${name}' in '${p.measurement}'`);
      params[4 + i] = encode(p, name, ins.kinds[i], p.fields[name]);
      i++;
    }
    ins.stmt.run(params);
  }

  #plan(db: Database.Database, q: AggregateQuery, filters: readonly (keyof PointTags)[]): Plan {
    const key = [q.measurement, q.field, q.fn, q.groupBy ?? '', filters.join(',')].join('\0');
    let plan = this.#plans.get(key);
    if (plan === undefined) {
      plan = buildPlan(db, {
        measurement: q.measurement,
        field: q.field,
        fn: q.fn,
        groupBy: q.groupBy,
        filters,
      });
      this.#plans.set(key, plan);
    }
    return plan;
  }
}

/**
 * Upsert that sets only the fields the point carries: InfluxDB merges a later point with the
 * same series and timestamp into the earlier one field by field. INSERT OR REPLACE would
 * instead null the fields the later point lacks, so it is not equivalent.
 */
function prepareInsert(
  db: Database.Database,
  measurement: string,
  table: Table,
  names: readonly string[],
  key: string,
): Insert {
  if (names.length === 0) {
    // InfluxDB refuses a point without fields too ("missing fields")
    throw refused(`point of '${measurement}' has no fields`);
  }
  const kinds: FieldKind[] = [];
  for (const name of names) {
    const kind = table.fields.get(name);
    if (kind === undefined) throw refused(`unknown field '${name}' in '${measurement}'`);
    kinds.push(kind);
  }
  const cols = ['ts', 'device_id', 'district', 'site_id', ...names].map(ident);
  const updates = ['district', 'site_id', ...names].map(
    (n) => `${ident(n)} = excluded.${ident(n)}`,
  );
  const sql =
    `INSERT INTO ${ident(measurement)} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})` +
    ` ON CONFLICT ("device_id", "ts") DO UPDATE SET ${updates.join(', ')}`;
  const ins: Insert = { stmt: db.prepare<unknown[]>(sql), names, kinds };
  if (table.inserts.size >= defaults.maxInserts) table.inserts.clear();
  table.inserts.set(key, ins);
  return ins;
}

function tagValue(p: Point, tag: keyof PointTags): string {
  const v: unknown = p.tags[tag];
  if (typeof v !== 'string' || (tag === 'device_id' && v === '')) {
    throw refused(`point of '${p.measurement}' has an invalid ${tag}`);
  }
  return v;
}

function encode(
  p: Point,
  name: string,
  kind: FieldKind | undefined,
  v: FieldValue | undefined,
): number | string {
  switch (kind) {
    case 'float':
      if (typeof v === 'number' && Number.isFinite(v)) return v;
      break;
    case 'integer':
      // values are JS numbers; within 2^53 the double SQLite receives converts exactly
      if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
      break;
    case 'boolean':
      if (typeof v === 'boolean') return v ? 1 : 0;
      break;
    case 'string':
      if (typeof v === 'string') return v;
      break;
    case undefined:
      break;
  }
  throw refused(`field '${p.measurement}.${name}' expects ${kind ?? 'nothing'}, got ${typeof v}`);
}

/** Byte order of the UTF-8 encodings, the order InfluxDB sorts tag values in. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Embedded store: SQLite through better-sqlite3, used when no InfluxDB is configured. The
 * SQLite work itself is `SqliteEngine` (engine.ts); this facade makes the checks that need no
 * database (unknown measurement or field, `checkAggregateQuery`, the bucket limit).
 */
import { ERR_BAD_PARAM } from '../../errors.js';
import { checkAggregateQuery } from '../check-query.js';
import type { AggregateQuery, AggregateSeries, MeasurementInfo, Point, Store } from '../types.js';
import { SqliteEngine, type Tables } from './engine.js';
import { mergeMeasurements, refused } from './schema.js';

export interface EmbeddedStoreOptions {
  /** SQLite file; its directory is created if missing. `:memory:` for tests. */
  readonly path: string;
  readonly logger?: { warn(obj: object, msg: string): void } | undefined;
}

const defaults = {
  /** Buckets per query; bounds the work of one call, the HTTP layer sets its own lower limit. */
  maxBuckets: 100_000,
} as const;

export function createEmbeddedStore(opts: EmbeddedStoreOptions): Store {
  return new EmbeddedStore(opts);
}

class EmbeddedStore implements Store {
  readonly kind = 'embedded';
  readonly #engine: SqliteEngine;
  #tables: Tables | undefined;

  constructor(opts: EmbeddedStoreOptions) {
    this.#engine = new SqliteEngine({
      path: opts.path,
      readonly: false,
      warn: (obj, msg) => opts.logger?.warn(obj, msg),
    });
  }

  async open(measurements: readonly MeasurementInfo[]): Promise<void> {
    const tables = mergeMeasurements(measurements);
    this.#engine.open(tables);
    this.#tables = tables;
  }

  async write(points: readonly Point[]): Promise<void> {
    if (this.#tables === undefined) throw refused('write before open() or after close()');
    this.#engine.write(points);
  }

  async aggregate(q: AggregateQuery): Promise<AggregateSeries[]> {
    const tables = this.#tables;
    if (tables === undefined) throw refused('aggregate before open() or after close()');
    const table = tables.get(q.measurement);
    if (table === undefined) throw refused(`unknown measurement '${q.measurement}'`);
    const kind = table.get(q.field);
    if (kind === undefined) {
      throw refused(`unknown field '${q.field}' in measurement '${q.measurement}'`);
    }
    checkAggregateQuery(q, kind);
    if (q.fromMs >= q.toMs) return [];
    const first = Math.floor(q.fromMs / q.everyMs);
    const last = Math.floor((q.toMs - 1) / q.everyMs);
    if (last - first + 1 > defaults.maxBuckets) {
      throw ERR_BAD_PARAM('every', `more than ${defaults.maxBuckets} buckets in the time range`);
    }
    return this.#engine.aggregate(q, kind);
  }

  async close(): Promise<void> {
    this.#tables = undefined;
    this.#engine.close();
  }
}

/**
 * The storage contract shared by every store (embedded SQLite, InfluxDB).
 * One contract suite runs the same cases against each implementation.
 */
import type { BatchWriter } from '../points/batch.js';
import type { PointTags } from '../points/point.js';

/** How a field is stored; fixed by the device type's JSON Schema, never changes. */
export type FieldKind = 'integer' | 'float' | 'boolean' | 'string';

/** One measurement (= one device type) and the kinds of its fields, `seq` included. */
export interface MeasurementInfo {
  /** Device type, e.g. `air-quality`. */
  readonly type: string;
  /** Measurement / table name, e.g. `air_quality`. */
  readonly measurement: string;
  /** Field name → kind, in schema order; always contains `seq` as `integer`. */
  readonly fields: ReadonlyMap<string, FieldKind>;
}

export const AGGREGATE_FNS = [
  'mean',
  'min',
  'max',
  'sum',
  'count',
  'first',
  'last',
  'stddev',
  'median',
  'spread',
  'p90',
  'p95',
  'p99',
] as const;
export type AggregateFn = (typeof AGGREGATE_FNS)[number];

export const FILLS = ['none', 'null', 'previous', 'linear', 'zero'] as const;
export type Fill = (typeof FILLS)[number];

export const GROUP_BYS = ['device', 'district', 'site'] as const;
export type GroupBy = (typeof GROUP_BYS)[number];

/** Tag behind each groupBy / filter name. */
export const GROUP_TAG: Readonly<Record<GroupBy, keyof PointTags>> = {
  device: 'device_id',
  district: 'district',
  site: 'site_id',
};

export interface AggregateQuery {
  readonly measurement: string;
  /** A numeric or boolean-free field of the measurement (integer or float kind). */
  readonly field: string;
  readonly fn: AggregateFn;
  /** Bucket width in ms; buckets are aligned to the Unix epoch like InfluxQL GROUP BY time(). */
  readonly everyMs: number;
  /** Inclusive start, epoch ms. */
  readonly fromMs: number;
  /** Exclusive end, epoch ms. */
  readonly toMs: number;
  /** Exact-match tag filters. */
  readonly filter: Readonly<Partial<Record<GroupBy, string>>>;
  readonly groupBy?: GroupBy | undefined;
  readonly fill: Fill;
}

export interface AggregatePoint {
  /** Bucket start, epoch ms. */
  readonly t: number;
  /** null where the bucket is empty (fill=null) or the function has no answer. */
  readonly value: number | null;
  /** Number of raw readings of the field in the bucket. */
  readonly count: number;
}

export interface AggregateSeries {
  /** `{}` without groupBy, else `{ [groupBy]: tagValue }`. */
  readonly group: Readonly<Partial<Record<GroupBy, string>>>;
  readonly points: readonly AggregatePoint[];
}

/** A store: the write side every batch goes through (src/points/batch.ts), and queries. */
export interface Store extends BatchWriter {
  /** Creates what is missing (tables, columns, database) and checks the connection. */
  open(measurements: readonly MeasurementInfo[]): Promise<void>;
  /** Series sorted by group value; points sorted by t. */
  aggregate(query: AggregateQuery): Promise<AggregateSeries[]>;
  close(): Promise<void>;
}

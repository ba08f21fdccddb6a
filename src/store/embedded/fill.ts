/**
 * InfluxQL's per-bucket arithmetic and fill(), reproduced from InfluxDB 1.x so both stores give
 * the same answers. References are to influxdata/influxdb (1.x branch):
 * query/call_iterator.go (reducers), query/iterator.gen.go.tmpl (fill iterator),
 * query/iterator.go (linearFloat, linearInteger) and query/cursor.go (NaN output).
 */
import type { AggregateFn, AggregatePoint, Fill } from '../types.js';

/** A bucket that held at least one reading of the field. */
export interface Bucket {
  /** Bucket start / everyMs. */
  readonly index: number;
  /**
   * The function's answer. NaN means "computed, but no number" (stddev of one value): InfluxDB
   * emits such a point, prints it as null, and its fill() does not treat it as a gap
   * (query/cursor.go, "not mistaken for a null value that needs to be filled", PR #9637).
   */
  readonly value: number;
  readonly count: number;
}

/** Functions whose result keeps the field's integer type (everything else is a float). */
const KEEPS_TYPE = new Set<AggregateFn>([
  'min',
  'max',
  'sum',
  'first',
  'last',
  'spread',
  'p90',
  'p95',
  'p99',
]);

export function integerResult(fn: AggregateFn, integerField: boolean): boolean {
  return fn === 'count' || (integerField && KEEPS_TYPE.has(fn));
}

/** Nearest-rank index as in NewFloatPercentileReduceSliceFunc: floor(n·p/100 + 0.5) − 1. */
export function percentileIndex(n: number, percentile: number): number {
  return Math.floor((n * percentile) / 100 + 0.5) - 1;
}

/** FloatMedianReduceSlice: lo + (hi − lo) / 2, written that way to round like InfluxDB. */
export function midpoint(lo: number, hi: number): number {
  return lo + (hi - lo) / 2;
}

/**
 * FloatStddevReduceSlice step by step (a running mean, then the squared deviations from it,
 * divided by n − 1) so the result rounds like InfluxDB's. One value gives NaN (printed null).
 * `d * d` equals Go's math.Pow(d, 2), which squares the mantissa once and rescales exactly.
 */
export function sampleStddev(values: readonly number[]): number {
  const n = values.length;
  if (n < 2) return Number.NaN;
  let mean = 0;
  let count = 0;
  for (const v of values) {
    count++;
    mean += (v - mean) / count;
  }
  let variance = 0;
  for (const v of values) {
    const d = v - mean;
    variance += d * d;
  }
  return Math.sqrt(variance / (n - 1));
}

/**
 * linearFloat / linearInteger with times expressed in bucket indexes (InfluxDB divides the
 * nanosecond times by the interval first, which is exact for bucket starts). The integer
 * variant truncates toward zero like Go's int64() conversion.
 */
function linear(at: number, prev: Bucket, next: Bucket, integer: boolean): number {
  const m = (next.value - prev.value) / (next.index - prev.index);
  const x = at - prev.index;
  const y = m * x + prev.value;
  return integer ? Math.trunc(y) : y;
}

export interface FillOptions {
  readonly fn: AggregateFn;
  readonly fill: Fill;
  /** Whether the function's result is an integer (decides linear truncation). */
  readonly integer: boolean;
  readonly everyMs: number;
  /** Index of the first bucket (the one holding fromMs, even if fromMs is mid-bucket). */
  readonly first: number;
  /** Index of the last bucket (the one holding toMs − 1). */
  readonly last: number;
}

/**
 * Turns the non-empty buckets of one series (sorted by index) into its points, filling the gaps
 * between `first` and `last` like InfluxQL's fill iterator:
 * - null: gap → null, except count(), whose null fill is rewritten to fill(0) by InfluxDB;
 * - zero: gap → 0;
 * - previous: gap → value of the last non-empty bucket (null before the first one);
 * - linear: gap → interpolation between the non-empty buckets on each side, null at the edges.
 * `count` of a gap is always 0: it is the number of readings, not a filled value.
 */
export function fillBuckets(buckets: readonly Bucket[], o: FillOptions): AggregatePoint[] {
  const out: AggregatePoint[] = [];
  if (o.fill === 'none') {
    for (const b of buckets) out.push(point(b.index * o.everyMs, b.value, b.count));
    return out;
  }
  let next = 0;
  let prev: Bucket | undefined;
  for (let i = o.first; i <= o.last; i++) {
    const b = buckets[next];
    if (b !== undefined && b.index === i) {
      out.push(point(i * o.everyMs, b.value, b.count));
      prev = b;
      next++;
      continue;
    }
    out.push(point(i * o.everyMs, gap(i, prev, b, o), 0));
  }
  return out;
}

function gap(
  at: number,
  prev: Bucket | undefined,
  next: Bucket | undefined,
  o: FillOptions,
): number | null {
  switch (o.fill) {
    case 'null':
      return o.fn === 'count' ? 0 : null;
    case 'zero':
      return 0;
    case 'previous':
      return prev === undefined ? null : prev.value;
    case 'linear':
      return prev === undefined || next === undefined ? null : linear(at, prev, next, o.integer);
    case 'none':
      return null;
  }
}

function point(t: number, value: number | null, count: number): AggregatePoint {
  return { t, value: value === null || Number.isNaN(value) ? null : value, count };
}

/**
 * The aggregate query as InfluxQL over `/query`, which InfluxDB 1.x, 2.7+ (virtual DBRP: database
 * = bucket) and 3.x all answer, and its JSON answer back as AggregateSeries.
 * Every name and value is quoted and escaped (influxql/scanner.go ScanString: the only escapes are
 * \n \\ \" \'); numbers are checked to be whole before they are printed, so no input can end a
 * literal or add a statement.
 */
import type {
  AggregateFn,
  AggregatePoint,
  AggregateQuery,
  AggregateSeries,
  Fill,
} from '../types.js';
import { GROUP_BYS, GROUP_TAG } from '../types.js';
import { INFLUX_CODES, InfluxStoreError } from './errors.js';

const CALL: Readonly<Record<AggregateFn, (field: string) => string>> = {
  mean: (f) => `MEAN(${f})`,
  min: (f) => `MIN(${f})`,
  max: (f) => `MAX(${f})`,
  sum: (f) => `SUM(${f})`,
  count: (f) => `COUNT(${f})`,
  first: (f) => `FIRST(${f})`,
  last: (f) => `LAST(${f})`,
  stddev: (f) => `STDDEV(${f})`,
  median: (f) => `MEDIAN(${f})`,
  spread: (f) => `SPREAD(${f})`,
  p90: (f) => `PERCENTILE(${f}, 90)`,
  p95: (f) => `PERCENTILE(${f}, 95)`,
  p99: (f) => `PERCENTILE(${f}, 99)`,
};

const FILL: Readonly<Record<Fill, string>> = {
  none: 'fill(none)',
  null: 'fill(null)',
  previous: 'fill(previous)',
  linear: 'fill(linear)',
  zero: 'fill(0)',
};

const ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  '"': '\\"',
  "'": "\\'",
  '\n': '\\n',
};

function escape(s: string): string {
  return s.replace(/[\\"'\n]/g, (c) => ESCAPES[c] ?? c);
}

/**
 * InfluxQL's reader turns CR into LF before scanning and has no escape for it, and its scanner
 * takes U+0000 for the end of input, so a string with either cannot be said in InfluxQL. Nothing
 * this store writes has one in a name (refused by the line-protocol encoder), so a query naming
 * one has an empty answer.
 */
export function expressible(s: string): boolean {
  return !s.includes('\r') && !s.includes('\u0000');
}

export function quoteIdent(name: string): string {
  return `"${escape(name)}"`;
}

export function quoteLiteral(value: string): string {
  return `'${escape(value)}'`;
}

export interface AggregateStatements {
  /** SELECT <fn> AS value[, COUNT AS count] … fill(<fill>). */
  readonly main: string;
  /**
   * Per-bucket counts with fill(none), when `main` cannot carry them: fill(previous) and
   * fill(linear) fill every column, so the count column of an empty bucket would be the previous
   * or an interpolated count instead of 0 (seen on influxd 1.6.7).
   */
  readonly counts: string | undefined;
}

/** The caller has checked the query (whole numbers, from < to, names expressible). */
export function buildAggregate(q: AggregateQuery): AggregateStatements {
  const field = quoteIdent(q.field);
  let where = `WHERE time >= ${q.fromMs}ms AND time < ${q.toMs}ms`;
  for (const by of GROUP_BYS) {
    const value = q.filter[by];
    if (value !== undefined) where += ` AND ${quoteIdent(GROUP_TAG[by])} = ${quoteLiteral(value)}`;
  }
  const from = `FROM ${quoteIdent(q.measurement)} ${where}`;
  const groupBy =
    q.groupBy === undefined
      ? `GROUP BY time(${q.everyMs}ms)`
      : `GROUP BY time(${q.everyMs}ms), ${quoteIdent(GROUP_TAG[q.groupBy])}`;
  const value = `${CALL[q.fn](field)} AS "value"`;
  const count = `COUNT(${field}) AS "count"`;
  if (q.fill === 'previous' || q.fill === 'linear') {
    return {
      main: `SELECT ${value} ${from} ${groupBy} ${FILL[q.fill]}`,
      counts: `SELECT ${count} ${from} ${groupBy} ${FILL.none}`,
    };
  }
  return {
    main: `SELECT ${value}, ${count} ${from} ${groupBy} ${FILL[q.fill]}`,
    counts: undefined,
  };
}

interface RawSeries {
  readonly tags: Readonly<Record<string, string>> | undefined;
  readonly columns: readonly string[];
  readonly values: readonly (readonly unknown[])[];
}

function malformed(detail: string): InfluxStoreError {
  return new InfluxStoreError(INFLUX_CODES.REJECTED, `store: unexpected /query answer: ${detail}`, {
    retryable: false,
    status: 200,
  });
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The series of the single statement of a `/query` answer; throws its error if it has one. */
export function statementSeries(body: unknown): RawSeries[] {
  if (!isObject(body) || !Array.isArray(body.results)) throw malformed('no results');
  const result: unknown = body.results[0];
  if (!isObject(result)) throw malformed('no statement result');
  if (typeof result.error === 'string') {
    const notFound = result.error.startsWith('database not found');
    throw new InfluxStoreError(
      notFound ? INFLUX_CODES.NOT_FOUND : INFLUX_CODES.REJECTED,
      `store: InfluxQL query failed: ${result.error}`,
      { retryable: false, status: 200, serverMessage: result.error },
    );
  }
  if (result.partial === true) {
    // max-row-limit cut the answer: returning it would silently lose buckets
    throw new InfluxStoreError(
      INFLUX_CODES.REJECTED,
      'store: InfluxDB truncated the answer (partial: true, see [http] max-row-limit); ask for fewer buckets',
      { retryable: false, status: 200 },
    );
  }
  if (result.series === undefined) return [];
  if (!Array.isArray(result.series)) throw malformed('series is not an array');
  return result.series.map((s: unknown): RawSeries => {
    if (!isObject(s) || !Array.isArray(s.columns)) throw malformed('series without columns');
    // a series without rows has no `values` (SHOW DATABASES on a fresh server)
    if (s.values !== undefined && !Array.isArray(s.values)) throw malformed('values not an array');
    const tags = isObject(s.tags) ? (s.tags as Record<string, string>) : undefined;
    return { tags, columns: s.columns as string[], values: (s.values ?? []) as unknown[][] };
  });
}

function column(s: RawSeries, name: string): number {
  const i = s.columns.indexOf(name);
  if (i < 0) throw malformed(`no '${name}' column`);
  return i;
}

function numberOrNull(v: unknown, what: string): number | null {
  if (v === null || typeof v === 'number') return v;
  throw malformed(`${what} is ${typeof v}, not a number`);
}

/** Byte order of the UTF-8 encodings: the order InfluxDB sorts tag values in. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Turns the answers of buildAggregate()'s statements into AggregateSeries: group `{}` or
 * `{ [groupBy]: tagValue }` (a series without the tag is InfluxDB's '' group), series sorted by
 * group value, points by time, `count` 0 where InfluxDB has none.
 */
export function toAggregateSeries(
  q: AggregateQuery,
  main: readonly RawSeries[],
  counts: readonly RawSeries[] | undefined,
): AggregateSeries[] {
  const tag = q.groupBy === undefined ? undefined : GROUP_TAG[q.groupBy];
  const groupOf = (s: RawSeries) => (tag === undefined ? '' : (s.tags?.[tag] ?? ''));

  let countsByGroup: Map<string, Map<number, number>> | undefined;
  if (counts !== undefined) {
    countsByGroup = new Map();
    for (const s of counts) {
      const ti = column(s, 'time');
      const ci = column(s, 'count');
      const byTime = new Map<number, number>();
      for (const row of s.values) {
        const t = numberOrNull(row[ti], 'time');
        const c = numberOrNull(row[ci], 'count');
        if (t !== null && c !== null) byTime.set(t, c);
      }
      countsByGroup.set(groupOf(s), byTime);
    }
  }

  const out: { key: string; series: AggregateSeries }[] = [];
  for (const s of main) {
    const key = groupOf(s);
    const ti = column(s, 'time');
    const vi = column(s, 'value');
    const ci = countsByGroup === undefined ? column(s, 'count') : -1;
    const byTime = countsByGroup?.get(key);
    const points: AggregatePoint[] = [];
    for (const row of s.values) {
      const t = numberOrNull(row[ti], 'time');
      if (t === null) throw malformed('null time');
      const value = numberOrNull(row[vi], 'value');
      // defensive: influxd 1.6.7 already answers 0, not null, for an empty bucket's count
      const count = ci >= 0 ? (numberOrNull(row[ci], 'count') ?? 0) : (byTime?.get(t) ?? 0);
      points.push({ t, value, count });
    }
    points.sort((a, b) => a.t - b.t);
    const group = q.groupBy === undefined ? {} : { [q.groupBy]: key };
    out.push({ key, series: { group, points } });
  }
  out.sort((a, b) => compareUtf8(a.key, b.key));
  return out.map((x) => x.series);
}

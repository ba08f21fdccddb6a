/**
 * Checks of an aggregate query that every store makes before touching its database, so
 * both answer a malformed query with the same 400 in the same words, and the HTTP route's
 * bucket limit, which is the stores' too.
 */
import { ERR_BAD_PARAM } from '../errors.js';
import { AGGREGATE_FNS, FILLS, GROUP_BYS, type AggregateQuery, type FieldKind } from './types.js';

/**
 * Most buckets one series of an aggregate may have: a day at one second, a week at ten; more is
 * a mistake (or a denial of service), not a chart. It bounds the work of one store call, and the
 * HTTP route refuses such a query before any store sees it.
 */
export const MAX_BUCKETS = 100_000;

const FNS = new Set<string>(AGGREGATE_FNS);
const FILL_SET = new Set<string>(FILLS);
const GROUP_BY_SET = new Set<string>(GROUP_BYS);

/**
 * Checks `q` against the measurements a store holds (measurement → field → kind) and returns
 * the kind of its field, or undefined when its window is empty and so is the answer. An unknown
 * measurement or field is the store's own `refused` error; a bad parameter is ERR_BAD_PARAM.
 */
export function checkAggregate(
  q: AggregateQuery,
  measurements: ReadonlyMap<string, ReadonlyMap<string, FieldKind>>,
  refused: (detail: string) => Error,
): FieldKind | undefined {
  const fields = measurements.get(q.measurement);
  if (fields === undefined) throw refused(`unknown measurement '${q.measurement}'`);
  const kind = fields.get(q.field);
  if (kind === undefined) {
    throw refused(`unknown field '${q.field}' in measurement '${q.measurement}'`);
  }
  checkAggregateQuery(q, kind);
  if (q.fromMs >= q.toMs) return undefined;
  checkBuckets(q.fromMs, q.toMs, q.everyMs);
  return kind;
}

/** Throws ERR_BAD_PARAM naming the first parameter that is wrong for a field of `kind`. */
function checkAggregateQuery(q: AggregateQuery, kind: FieldKind): void {
  if (!FNS.has(q.fn)) throw ERR_BAD_PARAM('fn', `unknown function '${String(q.fn)}'`);
  if ((kind === 'boolean' || kind === 'string') && q.fn !== 'count') {
    throw ERR_BAD_PARAM('field', `${q.fn}() needs a numeric field; '${q.field}' is ${kind}`);
  }
  if (!FILL_SET.has(q.fill)) throw ERR_BAD_PARAM('fill', `unknown fill '${String(q.fill)}'`);
  if (!Number.isSafeInteger(q.everyMs) || q.everyMs <= 0) {
    throw ERR_BAD_PARAM('every', 'must be a positive whole number of milliseconds');
  }
  if (!Number.isSafeInteger(q.fromMs) || q.fromMs < 0) {
    throw ERR_BAD_PARAM('from', 'must be a non-negative epoch time in milliseconds');
  }
  if (!Number.isSafeInteger(q.toMs) || q.toMs < 0) {
    throw ERR_BAD_PARAM('to', 'must be a non-negative epoch time in milliseconds');
  }
  if (q.groupBy !== undefined && !GROUP_BY_SET.has(q.groupBy)) {
    throw ERR_BAD_PARAM('groupBy', `unknown groupBy '${String(q.groupBy)}'`);
  }
  for (const [name, value] of Object.entries(q.filter)) {
    if (!GROUP_BY_SET.has(name)) throw ERR_BAD_PARAM(name, 'not a filter');
    if (value !== undefined && typeof value !== 'string') throw ERR_BAD_PARAM(name, 'not a string');
  }
}

/** Throws ERR_BAD_PARAM when the epoch-aligned buckets of [fromMs, toMs) are over MAX_BUCKETS. */
export function checkBuckets(fromMs: number, toMs: number, everyMs: number): void {
  const buckets = Math.ceil(toMs / everyMs) - Math.floor(fromMs / everyMs);
  if (buckets > MAX_BUCKETS) {
    throw ERR_BAD_PARAM(
      'every',
      `${buckets} buckets between from and to; at most ${MAX_BUCKETS}: widen every or narrow the window`,
    );
  }
}

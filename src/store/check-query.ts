/**
 * Checks of an aggregate query that every store makes before touching its database, so
 * both answer a malformed query with the same 400 in the same words.
 */
import { ERR_BAD_PARAM } from '../errors.js';
import { AGGREGATE_FNS, FILLS, GROUP_BYS, type AggregateQuery, type FieldKind } from './types.js';

const FNS = new Set<string>(AGGREGATE_FNS);
const FILL_SET = new Set<string>(FILLS);
const GROUP_BY_SET = new Set<string>(GROUP_BYS);

/** Throws ERR_BAD_PARAM naming the first parameter that is wrong for a field of `kind`. */
export function checkAggregateQuery(q: AggregateQuery, kind: FieldKind): void {
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

/** Parsing of HTTP query parameters that JSON Schema alone cannot check. */
import { parseDuration } from '../config.js';
import { ERR_BAD_PARAM } from '../errors.js';

const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;
const RELATIVE_RE = /^now(?:-(\d+(?:ms|s|m|h|d)))?$/;

/** `2026-11-26T08:00:00Z`, epoch milliseconds, `now` or `now-6h`. */
export function parseTime(param: string, text: string, now: number): number {
  const rel = RELATIVE_RE.exec(text);
  if (rel) return rel[1] ? now - (parseDuration(rel[1]) ?? 0) : now;
  if (/^\d{1,15}$/.test(text)) return Number(text);
  const ms = RFC3339_RE.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(ms)) {
    throw ERR_BAD_PARAM(
      param,
      `"${text.slice(0, 40)}" is not a time; use RFC 3339 (2026-11-26T08:00:00Z), epoch milliseconds, now or now-6h`,
    );
  }
  return ms;
}

export function parseEvery(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    throw ERR_BAD_PARAM(
      'every',
      `"${text.slice(0, 40)}" is not a positive duration such as 30s, 5m, 1h or 1d`,
    );
  }
  return ms;
}

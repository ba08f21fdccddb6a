/** Parsing of HTTP query parameters that JSON Schema alone cannot check. */
import { parseDuration } from '../config.js';
import { ERR_BAD_PARAM } from '../errors.js';
import type { Catalog } from '../ingest/catalog.js';

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

/** The registry reads the parameter checks need. */
interface KnownIds {
  get(id: string): unknown;
  site(id: string): unknown;
  hasDistrict(id: string): boolean;
  districts(): { id: string }[];
}

/**
 * A 400 naming the parameter when a filter names a device type, district, device or site the
 * gateway does not know, listing the known ones where the list is short.
 */
export function checkKnown(
  q: {
    type?: string | undefined;
    district?: string | undefined;
    device?: string | undefined;
    site?: string | undefined;
  },
  catalog: Catalog,
  registry: KnownIds,
  param: { type?: string } = {},
): void {
  if (q.type !== undefined && !catalog.has(q.type)) {
    throw ERR_BAD_PARAM(
      param.type ?? 'type',
      `unknown device type "${q.type}"; known: ${catalog
        .list()
        .map((t) => t.type)
        .join(', ')}`,
    );
  }
  if (q.district !== undefined && !registry.hasDistrict(q.district)) {
    throw ERR_BAD_PARAM(
      'district',
      `unknown district "${q.district}"; known: ${registry
        .districts()
        .map((d) => d.id)
        .join(', ')}`,
    );
  }
  if (q.device !== undefined && !registry.get(q.device)) {
    throw ERR_BAD_PARAM('device', `unknown device "${q.device}"`);
  }
  if (q.site !== undefined && !registry.site(q.site)) {
    throw ERR_BAD_PARAM('site', `unknown site "${q.site}"`);
  }
}

/** A query-string name filter (device, type, district, site, code): bounded like every id. */
export const NAME_PARAM = { type: 'string', maxLength: 64 } as const;

/** The paging parameters of a list route, with its own default page size. */
export function pageParams(defaultLimit: number, maxLimit = 10_000) {
  return {
    limit: { type: 'integer', minimum: 1, maximum: maxLimit, default: defaultLimit },
    offset: { type: 'integer', minimum: 0, default: 0 },
  } as const;
}

/** A route's query-string schema: only the parameters it names, so a typo is a 400. */
export function queryString<P extends Record<string, unknown>>(properties: P) {
  return { type: 'object', additionalProperties: false, properties } as const;
}

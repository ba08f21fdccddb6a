import type { FastifyPluginAsync } from 'fastify';
import { ERR_BAD_PARAM } from '../../errors.js';
import {
  AGGREGATE_FNS,
  FILLS,
  GROUP_BYS,
  type AggregateFn,
  type Fill,
  type GroupBy,
} from '../../store/types.js';
import { checkBuckets, MAX_BUCKETS } from '../../store/check-query.js';
import type { AppDeps } from '../app.js';
import { ERROR_SCHEMA } from '../app.js';
import { checkKnown, NAME_PARAM, parseEvery, parseTime } from '../params.js';

/** The widest window one query may scan: a year and a day. */
export const MAX_RANGE_MS = 366 * 86_400_000;
/** Fields in one call (`field=a,b`). */
export const MAX_FIELDS = 8;

interface Query {
  type: string;
  field: string;
  fn: AggregateFn;
  every: string;
  from: string;
  to: string;
  device?: string;
  district?: string;
  site?: string;
  groupBy?: GroupBy;
  fill: Fill;
}

export function aggregateRoutes({
  catalog,
  registry,
  store,
  now = Date.now,
}: AppDeps): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Querystring: Query }>(
      '/aggregates',
      {
        schema: {
          summary:
            'Aggregate one field over epoch-aligned time buckets, optionally per device, district or site',
          description:
            'Same semantics as InfluxQL `SELECT fn(field) ... GROUP BY time(every) fill(...)` on both stores. ' +
            'Times: RFC 3339, epoch milliseconds, `now` or `now-6h`. The window is [from, to).',
          tags: ['aggregates'],
          querystring: {
            type: 'object',
            additionalProperties: false,
            required: ['type', 'field', 'fn'],
            properties: {
              type: { type: 'string', maxLength: 64, description: 'device type, e.g. air-quality' },
              field: {
                type: 'string',
                maxLength: 600,
                description:
                  'a field of that type, e.g. pm25_ugm3, or several: pm25_ugm3,pm10_ugm3',
              },
              fn: { type: 'string', enum: AGGREGATE_FNS },
              every: {
                type: 'string',
                maxLength: 16,
                default: '1m',
                description: `bucket width: 30s, 5m, 1h, 1d; at most ${MAX_BUCKETS.toLocaleString('en')} buckets between from and to`,
              },
              from: { type: 'string', maxLength: 40, default: 'now-1h' },
              to: { type: 'string', maxLength: 40, default: 'now' },
              device: NAME_PARAM,
              district: NAME_PARAM,
              site: NAME_PARAM,
              groupBy: { type: 'string', enum: GROUP_BYS },
              fill: { type: 'string', enum: FILLS, default: 'null' },
            },
          },
          response: {
            200: {
              type: 'object',
              properties: {
                type: { type: 'string' },
                field: { type: 'string' },
                fn: { type: 'string' },
                every: { type: 'string' },
                from: { type: 'string', format: 'date-time' },
                to: { type: 'string', format: 'date-time' },
                series: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      field: { type: 'string' },
                      group: { type: 'object', additionalProperties: { type: 'string' } },
                      points: {
                        type: 'array',
                        items: {
                          type: 'object',
                          properties: {
                            t: { type: 'string', format: 'date-time', description: 'bucket start' },
                            value: { type: ['number', 'null'] },
                            count: { type: 'integer', description: 'raw readings in the bucket' },
                          },
                        },
                      },
                    },
                  },
                },
              },
            },
            400: ERROR_SCHEMA,
          },
        },
      },
      async (req) => {
        const q = req.query;
        const type = catalog.get(q.type);
        if (!type) {
          throw ERR_BAD_PARAM(
            'type',
            `unknown device type "${q.type}"; known: ${catalog
              .list()
              .map((t) => t.type)
              .join(', ')}`,
          );
        }
        const fields = [...new Set(q.field.split(',').map((f) => f.trim()))];
        if (fields.length > MAX_FIELDS) {
          throw ERR_BAD_PARAM(
            'field',
            `${fields.length} fields in one call; at most ${MAX_FIELDS}`,
          );
        }
        for (const field of fields) {
          const kind = type.info.fields.get(field);
          if (!kind) {
            throw ERR_BAD_PARAM(
              'field',
              `"${field}" is not a field of ${type.type}; fields: ${[...type.info.fields.keys()].join(', ')}`,
            );
          }
          if ((kind === 'boolean' || kind === 'string') && q.fn !== 'count') {
            throw ERR_BAD_PARAM('fn', `${field} is a ${kind} field; only count applies to it`);
          }
        }
        const t = now();
        const fromMs = parseTime('from', q.from, t);
        const toMs = parseTime('to', q.to, t);
        if (fromMs >= toMs)
          throw ERR_BAD_PARAM('from', `from (${iso(fromMs)}) must be before to (${iso(toMs)})`);
        if (toMs - fromMs > MAX_RANGE_MS) {
          throw ERR_BAD_PARAM(
            'from',
            `the window from ${iso(fromMs)} to ${iso(toMs)} is longer than the ${MAX_RANGE_MS / 86_400_000} days one query may scan`,
          );
        }
        const everyMs = parseEvery(q.every);
        checkBuckets(fromMs, toMs, everyMs);
        checkKnown({ district: q.district, device: q.device, site: q.site }, catalog, registry);
        const filter: Partial<Record<GroupBy, string>> = {};
        if (q.device !== undefined) filter.device = q.device;
        if (q.district !== undefined) filter.district = q.district;
        if (q.site !== undefined) filter.site = q.site;
        // One query per field, side by side: the stores answer one field at a time.
        const answers = await Promise.all(
          fields.map((field) =>
            store.aggregate({
              measurement: type.measurement,
              field,
              fn: q.fn,
              everyMs,
              fromMs,
              toMs,
              filter,
              groupBy: q.groupBy,
              fill: q.fill,
            }),
          ),
        );
        return {
          type: type.type,
          field: fields.join(','),
          fn: q.fn,
          every: q.every,
          from: iso(fromMs),
          to: iso(toMs),
          series: answers.flatMap((series, i) =>
            series.map((s) => ({
              field: fields[i],
              group: s.group,
              points: s.points.map((p) => ({ t: iso(p.t), value: p.value, count: p.count })),
            })),
          ),
        };
      },
    );
  };
}

function iso(ms: number): string {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) throw ERR_BAD_PARAM('from', 'time out of range');
  return d.toISOString();
}

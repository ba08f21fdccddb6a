import type { FastifyPluginAsync } from 'fastify';
import { DEVICE_STATUSES } from '../../state/live.js';
import type { AppDeps } from '../app.js';
import { checkKnown, NAME_PARAM, pageParams, queryString } from '../params.js';
import { ERROR_SCHEMA } from '../app.js';

export type LatestDeps = Pick<AppDeps, 'registry' | 'catalog' | 'live' | 'now'>;

const ITEM_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    type: { type: 'string' },
    district: { type: 'string' },
    siteId: { type: 'string' },
    status: { type: 'string', enum: DEVICE_STATUSES },
    lastSeen: { type: 'string', format: 'date-time' },
    ts: { type: 'string', format: 'date-time' },
    seq: { type: ['integer', 'null'] },
    data: { type: 'object', additionalProperties: true },
  },
} as const;

interface LatestQuery {
  type?: string;
  district?: string;
  limit: number;
  offset: number;
}

/** `GET /latest`: every device's last reading, from memory (nothing is read from the store). */
export function latestRoutes({
  registry,
  catalog,
  live,
  now = Date.now,
}: LatestDeps): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Querystring: LatestQuery }>(
      '/latest',
      {
        schema: {
          summary: 'The last reading of every device that has sent one since the gateway started',
          description:
            'Answered from memory, sorted by device id. A device appears once a reading of it is durable; ' +
            '`ts` is the reading time, `lastSeen` when the gateway received it.',
          tags: ['devices'],
          querystring: queryString({
            type: NAME_PARAM,
            district: NAME_PARAM,
            ...pageParams(1000),
          }),
          response: {
            200: {
              type: 'object',
              additionalProperties: false,
              properties: {
                items: { type: 'array', items: ITEM_SCHEMA },
                total: { type: 'integer' },
              },
            },
            400: ERROR_SCHEMA,
          },
        },
      },
      async (req) => {
        const q = req.query;
        checkKnown({ type: q.type, district: q.district }, catalog, registry);
        const t = now();
        const snapshot = await live.read();
        const all = snapshot.latest((id) => {
          // A deleted device may linger in memory until it is forgotten: not listed.
          const d = registry.get(id);
          return (
            d !== undefined &&
            (q.type === undefined || d.type === q.type) &&
            (q.district === undefined || d.district === q.district)
          );
        });
        const items = [];
        for (const l of all.slice(q.offset, q.offset + q.limit)) {
          const d = registry.get(l.id);
          if (!d) continue;
          const intervalMs = (catalog.get(d.type)?.intervalSeconds ?? 60) * 1000;
          items.push({
            id: d.id,
            type: d.type,
            district: d.district,
            siteId: d.siteId,
            status: snapshot.status(d.id, intervalMs, t),
            lastSeen: new Date(l.lastSeen).toISOString(),
            ts: new Date(l.last.ts).toISOString(),
            seq: l.last.seq ?? null,
            data: l.last.data,
          });
        }
        return { items, total: all.length };
      },
    );
  };
}

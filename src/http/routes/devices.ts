import type { FastifyPluginAsync } from 'fastify';
import { ERR_BAD_PARAM, ERR_NOT_FOUND } from '../../errors.js';
import { DEVICE_STATUSES, type DeviceStatus } from '../../ingest/live.js';
import type { DeviceRecord } from '../../registry/registry.js';
import type { AppDeps } from '../app.js';
import { ERROR_SCHEMA } from '../app.js';

const DEVICE_PROPS = {
  id: { type: 'string' },
  type: { type: 'string' },
  district: { type: 'string' },
  siteId: { type: 'string' },
  lat: { type: 'number' },
  lon: { type: 'number' },
  state: { type: 'string', enum: ['active', 'disabled'] },
  createdAt: { type: 'string', format: 'date-time' },
  status: { type: 'string', enum: DEVICE_STATUSES },
  lastSeen: { type: ['string', 'null'], format: 'date-time' },
} as const;

const DETAIL_SCHEMA = {
  type: 'object',
  properties: {
    ...DEVICE_PROPS,
    last: {
      type: ['object', 'null'],
      properties: {
        ts: { type: 'string', format: 'date-time' },
        seq: { type: ['integer', 'null'] },
        data: { type: 'object', additionalProperties: true },
      },
    },
  },
} as const;

interface ListQuery {
  type?: string;
  district?: string;
  status?: DeviceStatus;
  limit: number;
  offset: number;
}

export function deviceRoutes({
  registry,
  catalog,
  live,
  now = Date.now,
}: AppDeps): FastifyPluginAsync {
  const intervalMs = (d: DeviceRecord) => (catalog.get(d.type)?.intervalSeconds ?? 60) * 1000;

  return async (app) => {
    app.get<{ Querystring: ListQuery }>(
      '/devices',
      {
        schema: {
          summary: 'Registered devices with their live status',
          tags: ['devices'],
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              type: { type: 'string', maxLength: 64 },
              district: { type: 'string', maxLength: 64 },
              status: { type: 'string', enum: DEVICE_STATUSES },
              limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 100 },
              offset: { type: 'integer', minimum: 0, default: 0 },
            },
          },
          response: {
            200: {
              type: 'object',
              properties: {
                items: { type: 'array', items: { type: 'object', properties: DEVICE_PROPS } },
                total: { type: 'integer' },
              },
            },
            400: ERROR_SCHEMA,
          },
        },
      },
      async (req) => {
        const q = req.query;
        if (q.type !== undefined && !catalog.has(q.type)) {
          throw ERR_BAD_PARAM(
            'type',
            `unknown device type "${q.type}"; known: ${catalog
              .list()
              .map((t) => t.type)
              .join(', ')}`,
          );
        }
        const t = now();
        const want = q.status;
        const { items, total } = registry.list({
          type: q.type,
          district: q.district,
          where: want ? (d) => live.status(d.id, intervalMs(d), t) === want : undefined,
          limit: q.limit,
          offset: q.offset,
        });
        return {
          items: items.map((d) => {
            const v = live.view(d.id, intervalMs(d), t);
            return { ...d, status: v.status, lastSeen: v.lastSeen };
          }),
          total,
        };
      },
    );

    app.get<{ Params: { id: string } }>(
      '/devices/:id',
      {
        schema: {
          summary:
            'One device: its record, live status, when it was last seen and its last reading',
          tags: ['devices'],
          params: {
            type: 'object',
            properties: { id: { type: 'string', maxLength: 64 } },
            required: ['id'],
          },
          response: { 200: DETAIL_SCHEMA, 404: ERROR_SCHEMA },
        },
      },
      async (req) => {
        const d = registry.get(req.params.id);
        if (!d) throw ERR_NOT_FOUND('device', req.params.id);
        return { ...d, ...live.view(d.id, intervalMs(d), now()) };
      },
    );
  };
}

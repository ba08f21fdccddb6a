import type { FastifyPluginAsync } from 'fastify';
import { ERR_NOT_FOUND } from '../../errors.js';
import type { AppDeps } from '../app.js';
import { ERROR_SCHEMA } from '../app.js';

const SUMMARY_SCHEMA = {
  type: 'object',
  properties: {
    type: { type: 'string' },
    version: { type: 'integer' },
    category: { type: 'string' },
    measurement: { type: 'string' },
    intervalSeconds: { type: 'integer' },
    title: { type: 'string' },
    topic: { type: 'string' },
    fields: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          kind: { type: 'string' },
          unit: { type: 'string' },
        },
      },
    },
  },
} as const;

export function schemaRoutes({ catalog }: AppDeps): FastifyPluginAsync {
  return async (app) => {
    app.get(
      '/schemas',
      {
        schema: {
          summary: 'Device types with their fields, units and topics',
          tags: ['schemas'],
          response: {
            200: {
              type: 'object',
              properties: { items: { type: 'array', items: SUMMARY_SCHEMA } },
            },
          },
        },
      },
      async () => ({
        items: catalog.list().map((t) => ({
          type: t.type,
          version: t.version,
          category: t.category,
          measurement: t.measurement,
          intervalSeconds: t.intervalSeconds,
          title: t.title,
          topic: `sensors/${t.type}/{deviceId}/telemetry`,
          fields: [...t.info.fields].map(([name, kind]) => ({
            name,
            kind,
            unit: t.units.get(name),
          })),
        })),
      }),
    );
    app.get<{ Params: { type: string } }>(
      '/schemas/:type',
      {
        schema: {
          summary:
            'The JSON Schema of the `data` object of one device type, as served to device makers',
          tags: ['schemas'],
          params: {
            type: 'object',
            properties: { type: { type: 'string', maxLength: 64 } },
            required: ['type'],
          },
          response: {
            200: {
              type: 'object',
              additionalProperties: true,
              description: 'a JSON Schema (draft-07)',
            },
            404: ERROR_SCHEMA,
          },
        },
      },
      async (req) => {
        const t = catalog.get(req.params.type);
        if (!t) throw ERR_NOT_FOUND('device type', req.params.type);
        return t.schema;
      },
    );
  };
}

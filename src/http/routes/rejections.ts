import type { FastifyPluginAsync } from 'fastify';
import type { AppDeps } from '../app.js';
import { NAME_PARAM, queryString } from '../params.js';

interface Query {
  device?: string;
  type?: string;
  code?: string;
  limit: number;
}

export function rejectionRoutes({ rejections }: AppDeps): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Querystring: Query }>(
      '/rejections',
      {
        schema: {
          summary:
            'Recently rejected messages, newest first, with the reasons a device maker can act on',
          tags: ['rejections'],
          querystring: queryString({
            device: NAME_PARAM,
            type: NAME_PARAM,
            code: NAME_PARAM,
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          }),
          response: {
            200: {
              type: 'object',
              properties: {
                items: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      id: { type: 'integer' },
                      receivedAt: { type: 'string', format: 'date-time' },
                      deviceId: { type: 'string' },
                      type: { type: 'string' },
                      topic: { type: 'string' },
                      code: { type: 'string' },
                      reasons: {
                        type: 'array',
                        items: {
                          type: 'object',
                          properties: { pointer: { type: 'string' }, message: { type: 'string' } },
                        },
                      },
                      payload: {
                        type: 'string',
                        description: 'the first 512 bytes of the payload as text',
                      },
                      payloadBytes: { type: 'integer' },
                    },
                  },
                },
              },
            },
          },
        },
      },
      async (req) => ({ items: await rejections.query(req.query) }),
    );
  };
}

import type { FastifyPluginAsync } from 'fastify';
import { ERR_NOT_FOUND } from '../../errors.js';
import type { Role } from '../../registry/api-keys.js';
import type { AppDeps } from '../app.js';
import { ERROR_SCHEMA } from '../app.js';

const KEY_PROPS = {
  id: { type: 'string' },
  role: { type: 'string', enum: ['read', 'admin'] },
  name: { type: ['string', 'null'] },
  createdAt: { type: 'string', format: 'date-time' },
} as const;

export function keyRoutes({ apiKeys }: AppDeps): FastifyPluginAsync {
  return async (app) => {
    app.get(
      '/keys',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'API keys (admin): ids, roles and names, never the keys',
          tags: ['keys'],
          response: {
            200: {
              type: 'object',
              properties: {
                items: { type: 'array', items: { type: 'object', properties: KEY_PROPS } },
              },
            },
          },
        },
      },
      async () => ({ items: await apiKeys.list() }),
    );

    app.post<{ Body: { role: Role; name?: string } }>(
      '/keys',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Create an API key (admin); the key is returned once and stored hashed',
          tags: ['keys'],
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['role'],
            properties: {
              role: { type: 'string', enum: ['read', 'admin'] },
              name: { type: 'string', maxLength: 100 },
            },
          },
          response: {
            201: { type: 'object', properties: { ...KEY_PROPS, key: { type: 'string' } } },
            400: ERROR_SCHEMA,
          },
        },
      },
      async (req, reply) => {
        const { id, key } = await apiKeys.create(req.body.role, req.body.name);
        const record = (await apiKeys.list()).find((k) => k.id === id);
        req.log.info({ keyId: id, role: req.body.role }, 'API key created');
        return reply.status(201).send({ ...record, key });
      },
    );

    app.delete<{ Params: { id: string } }>(
      '/keys/:id',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Revoke an API key (admin); it stops working at once',
          tags: ['keys'],
          params: {
            type: 'object',
            properties: { id: { type: 'string', maxLength: 64 } },
            required: ['id'],
          },
          response: { 204: { type: 'null' }, 404: ERROR_SCHEMA },
        },
      },
      async (req, reply) => {
        if (!(await apiKeys.revoke(req.params.id))) throw ERR_NOT_FOUND('API key', req.params.id);
        req.log.info({ keyId: req.params.id }, 'API key revoked');
        return reply.status(204).send();
      },
    );
  };
}

import type { FastifyPluginAsync } from 'fastify';
import type { AppDeps } from '../app.js';

const CHECKS_SCHEMA = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ready', 'not ready'] },
    checks: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        properties: { ok: { type: 'boolean' }, detail: { type: 'string' } },
      },
    },
  },
} as const;

export function healthRoutes(deps: AppDeps): FastifyPluginAsync {
  return async (app) => {
    app.get(
      '/health',
      {
        config: { auth: 'public' },
        schema: {
          summary: 'Liveness: 200 while the process serves',
          tags: ['health'],
          security: [],
          response: { 200: { type: 'object', properties: { status: { type: 'string' } } } },
        },
      },
      async () => ({ status: 'ok' }),
    );
    app.get(
      '/ready',
      {
        config: { auth: 'public' },
        schema: {
          summary:
            'Readiness: 200 when the broker listens and the store answers, else 503 with the failing check',
          tags: ['health'],
          security: [],
          response: { 200: CHECKS_SCHEMA, 503: CHECKS_SCHEMA },
        },
      },
      async (_req, reply) => {
        const r = deps.ready();
        return reply
          .status(r.ok ? 200 : 503)
          .send({ status: r.ok ? 'ready' : 'not ready', checks: r.checks });
      },
    );
  };
}

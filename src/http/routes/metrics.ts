import type { FastifyPluginAsync } from 'fastify';
import type { AppDeps } from '../app.js';

export function metricsRoutes({ metrics }: AppDeps): FastifyPluginAsync {
  return async (app) => {
    app.get(
      '/metrics',
      {
        schema: {
          summary: 'Prometheus metrics: ingest, rejections, spool, store, connections, process',
          tags: ['health'],
          response: { 200: { type: 'string', description: 'Prometheus text exposition format' } },
        },
      },
      async (_req, reply) => {
        const body = await metrics.registry.metrics();
        return reply.type(metrics.registry.contentType).send(body);
      },
    );
  };
}

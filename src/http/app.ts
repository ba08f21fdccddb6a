/**
 * The HTTP API (DESIGN §8). Built here, started by the gateway; tests use inject().
 * Every route declares its request and response schemas, which drive validation,
 * serialisation and the OpenAPI document alike.
 */
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from 'pino';
import {
  CODES,
  ERR_BAD_PARAM,
  ERR_FORBIDDEN,
  ERR_NOT_FOUND,
  ERR_TOO_MANY_AUTH_FAILURES,
  ERR_UNAUTHORIZED,
  TaihuError,
} from '../errors.js';
import type { Catalog } from '../ingest/catalog.js';
import type { LiveEvents } from '../state/events.js';
import type { LiveState } from '../state/live.js';
import type { Role } from '../registry/api-keys.js';
import type { ApiKeyStore, Provisioning, RegistryView, RejectionStore } from '../state/types.js';
import type { Store } from '../store/types.js';
import type { Metrics } from '../telemetry/metrics.js';
import { AuthFailureLimit, defaultAuthLimit } from './auth-limit.js';
import { aggregateRoutes } from './routes/aggregates.js';
import { cityRoutes } from './routes/city.js';
import { deviceRoutes } from './routes/devices.js';
import { healthRoutes } from './routes/health.js';
import { keyRoutes } from './routes/keys.js';
import { latestRoutes } from './routes/latest.js';
import { metricsRoutes } from './routes/metrics.js';
import { rejectionRoutes } from './routes/rejections.js';
import { schemaRoutes } from './routes/schemas.js';
import { streamRoutes, type StreamCounters } from './routes/stream.js';
import { webRoutes } from './routes/web.js';

export interface AppDeps {
  /** Failed API-key attempts per address before it waits (TAIHU_HTTP_AUTH_FAILURES); 0 = off. */
  readonly authFailures?: number | undefined;
  /** Serve HTTPS with this certificate (TAIHU_TLS_CERT/TAIHU_TLS_KEY). */
  readonly tls?: { key: Buffer; cert: Buffer } | undefined;
  /** Registry reads (memory); changes go through `provisioning` (one gateway or a cluster). */
  readonly registry: RegistryView;
  readonly provisioning: Provisioning;
  readonly apiKeys: ApiKeyStore;
  readonly catalog: Catalog;
  readonly store: Store;
  readonly rejections: RejectionStore;
  /** This instance's live state; `live.read()` answers for the whole cluster. */
  readonly live: LiveState;
  readonly log: Logger;
  /** Readiness checks beyond the process being up. */
  /** Live readings and status changes, for GET /stream. */
  readonly events: LiveEvents;
  /** Counts of live-stream clients, kept by the stream route for the metrics. */
  readonly streamCounters: StreamCounters;
  readonly metrics: Metrics;
  /** Closes a device's MQTT connection (after disable or delete). */
  readonly disconnect: (deviceId: string) => void;
  readonly ready: () => { ok: boolean; checks: Record<string, { ok: boolean; detail?: string }> };
  readonly now?: () => number;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route; `public` needs no key. Default: `read`. */
    auth?: Role | 'public';
  }
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    https: deps.tls ? { key: deps.tls.key, cert: deps.tls.cert } : null,
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    bodyLimit: 64 * 1024,
    routerOptions: { maxParamLength: 128 },
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false, allErrors: false } },
  });

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Taihu gateway API',
        description: 'Aggregates, devices, schemas and rejections of a Taihu sensor gateway.',
        version: '1',
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'Taihu API key' },
        },
      },
      security: [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  const authFailures = new AuthFailureLimit({
    ...defaultAuthLimit,
    burst: deps.authFailures ?? defaultAuthLimit.burst,
    perMinute: deps.authFailures ?? defaultAuthLimit.perMinute,
  });
  app.addHook('onRequest', async (req, reply) => {
    // API routes and /metrics need a key unless they say otherwise; docs and probes are public.
    const need =
      req.routeOptions.config.auth ??
      (req.url.startsWith('/api/') || req.url.startsWith('/metrics') ? 'read' : 'public');
    if (need === 'public') return;
    const header = req.headers.authorization;
    const key = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    const role = key ? deps.apiKeys.roleOf(key) : undefined;
    if (!role) {
      // A good key always works; an address that keeps failing is made to wait.
      const wait = deps.authFailures === 0 ? 0 : authFailures.waitMs(req.ip);
      if (wait > 0) {
        reply.header('retry-after', Math.ceil(wait / 1000));
        throw ERR_TOO_MANY_AUTH_FAILURES(Math.ceil(wait / 1000));
      }
      authFailures.failed(req.ip);
      throw ERR_UNAUTHORIZED();
    }
    if (need === 'admin' && role !== 'admin') throw ERR_FORBIDDEN('admin');
  });

  app.setErrorHandler((err: FastifyError | TaihuError, req, reply) => {
    if (err instanceof TaihuError) {
      if (err.statusCode >= 500) req.log.error({ err }, 'request failed');
      return reply.status(err.statusCode).send(errorBody(err.statusCode, err.code, err.message));
    }
    if ((err as FastifyError).validation) {
      return reply
        .status(400)
        .send(errorBody(400, ERR_BAD_PARAM.code, validationMessage(err as FastifyError)));
    }
    const status = (err as FastifyError).statusCode ?? 500;
    if (status >= 500) {
      req.log.error({ err }, 'request failed');
      return reply
        .status(500)
        .send(errorBody(500, CODES.INTERNAL, 'internal error; see the gateway log'));
    }
    return reply
      .status(status)
      .send(errorBody(status, (err as FastifyError).code ?? 'TAIHU_ERR_REQUEST', err.message));
  });
  app.setNotFoundHandler((req, reply) => {
    reply
      .status(404)
      .send(errorBody(404, ERR_NOT_FOUND.code, `no route ${req.method} ${req.url.split('?')[0]}`));
  });

  app.get('/openapi.json', { config: { auth: 'public' }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
  await app.register(healthRoutes(deps));
  await app.register(schemaRoutes(deps), { prefix: '/api/v1' });
  await app.register(deviceRoutes(deps), { prefix: '/api/v1' });
  await app.register(rejectionRoutes(deps), { prefix: '/api/v1' });
  await app.register(aggregateRoutes(deps), { prefix: '/api/v1' });
  await app.register(keyRoutes(deps), { prefix: '/api/v1' });
  await app.register(latestRoutes(deps), { prefix: '/api/v1' });
  await app.register(streamRoutes({ ...deps, counters: deps.streamCounters }), {
    prefix: '/api/v1',
  });
  await app.register(metricsRoutes(deps));
  await app.register(cityRoutes(deps), { prefix: '/api/v1' });
  // The dashboard page and its assets are public (outside /api/); the page asks for a key.
  await app.register(webRoutes(deps));
  return app;
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function errorBody(statusCode: number, code: string, message: string) {
  return { statusCode, code, error: STATUS_TEXT[statusCode] ?? 'Error', message };
}

/** "parameter 'fn' must be equal to one of the allowed values: mean, min, ..." */
function validationMessage(err: FastifyError): string {
  const v = err.validation?.[0];
  if (!v) return err.message;
  const params = v.params as Record<string, unknown>;
  const name =
    (params.missingProperty as string | undefined) ??
    (params.additionalProperty as string | undefined) ??
    v.instancePath.split('/').filter(Boolean).join('.');
  const allowed = Array.isArray(params.allowedValues) ? `: ${params.allowedValues.join(', ')}` : '';
  if (v.keyword === 'additionalProperties') return `parameter '${name}' is not known by this route`;
  if (v.keyword === 'required') return `parameter '${name}' is required`;
  return `parameter '${name}' ${v.message ?? 'is invalid'}${allowed}`;
}

/** Shared response schema of every error. */
export const ERROR_SCHEMA = {
  type: 'object',
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string' },
    error: { type: 'string' },
    message: { type: 'string' },
  },
} as const;

import type { FastifyPluginAsync } from 'fastify';
import { ERR_BAD_PARAM, ERR_CONFLICT, ERR_NOT_FOUND } from '../../errors.js';
import { DEVICE_ID_RE } from '../../registry/seeds.js';
import { hashSecret, newDeviceSecret } from '../../registry/credentials.js';
import { DEVICE_STATUSES, type DeviceStatus } from '../../state/live.js';
import type { DeviceRecord } from '../../registry/registry.js';
import type { AppDeps } from '../app.js';
import { checkKnown, NAME_PARAM, pageParams, queryString } from '../params.js';
import { ERROR_SCHEMA } from '../app.js';

const DEVICE_PROPS = {
  id: { type: 'string' },
  type: { type: 'string' },
  district: { type: 'string' },
  siteId: { type: 'string' },
  lat: { type: 'number' },
  lon: { type: 'number' },
  state: { type: 'string', enum: ['active', 'disabled'] },
  credential: { type: 'string', enum: ['enrollment', 'individual'] },
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

const RECORD_SCHEMA = { type: 'object', properties: DEVICE_PROPS } as const;
const ID_PARAMS = {
  type: 'object',
  properties: { id: { type: 'string', maxLength: 64 } },
  required: ['id'],
} as const;
const CREDENTIALS_SCHEMA = {
  type: 'object',
  description: 'MQTT credentials; the password is shown once and stored only as a scrypt hash',
  properties: {
    clientId: { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
  },
} as const;

interface CreateBody {
  id: string;
  type: string;
  siteId: string;
  lat?: number;
  lon?: number;
}

/** The device routes: reading the registry with live status, and provisioning (admin). */
export function deviceRoutes(deps: AppDeps): FastifyPluginAsync {
  const read = deviceReadRoutes(deps);
  const provision = provisioningRoutes(deps);
  return async (app) => {
    await read(app, {});
    await provision(app, {});
  };
}

function deviceReadRoutes({
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
          querystring: queryString({
            type: NAME_PARAM,
            district: NAME_PARAM,
            status: { type: 'string', enum: DEVICE_STATUSES },
            ...pageParams(100),
          }),
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
        checkKnown({ type: q.type, district: q.district }, catalog, registry);
        const t = now();
        const want = q.status;
        // A status filter needs every device's live state; a page needs only its own.
        const all = want ? await live.read({ readings: false }) : undefined;
        const { items, total } = registry.list({
          type: q.type,
          district: q.district,
          where: all ? (d) => all.status(d.id, intervalMs(d), t) === want : undefined,
          limit: q.limit,
          offset: q.offset,
        });
        const snapshot = all ?? (await live.read({ ids: items.map((d) => d.id), readings: false }));
        return {
          items: items.map((d) => {
            const v = snapshot.view(d.id, intervalMs(d), t);
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
        const snapshot = await live.read({ ids: [d.id] });
        return { ...d, ...snapshot.view(d.id, intervalMs(d), now()) };
      },
    );
  };
}

function provisioningRoutes({
  registry,
  provisioning,
  catalog,
  disconnect,
}: AppDeps): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Body: CreateBody }>(
      '/devices',
      {
        config: { auth: 'admin' },
        schema: {
          summary:
            'Register a device with individual credentials (admin); the secret is returned once',
          tags: ['devices'],
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['id', 'type', 'siteId'],
            properties: {
              id: {
                type: 'string',
                pattern: DEVICE_ID_RE.source,
                description: 'device id = MQTT username = client id',
              },
              type: { type: 'string', maxLength: 64 },
              siteId: {
                type: 'string',
                maxLength: 64,
                description: 'an existing site; the device takes its district',
              },
              lat: { type: 'number', minimum: -90, maximum: 90 },
              lon: { type: 'number', minimum: -180, maximum: 180 },
            },
          },
          response: {
            201: {
              type: 'object',
              properties: { device: RECORD_SCHEMA, credentials: CREDENTIALS_SCHEMA },
            },
            400: ERROR_SCHEMA,
            409: ERROR_SCHEMA,
          },
        },
      },
      async (req, reply) => {
        const b = req.body;
        if (!catalog.has(b.type)) {
          throw ERR_BAD_PARAM(
            'type',
            `unknown device type "${b.type}"; known: ${catalog
              .list()
              .map((t) => t.type)
              .join(', ')}`,
          );
        }
        const site = registry.site(b.siteId);
        if (!site) throw ERR_BAD_PARAM('siteId', `unknown site "${b.siteId}"`);
        if (registry.get(b.id)) throw ERR_CONFLICT('device', b.id);
        const secret = newDeviceSecret();
        const device = await provisioning.create(
          {
            id: b.id,
            type: b.type,
            siteId: site.id,
            lat: b.lat ?? site.lat,
            lon: b.lon ?? site.lon,
          },
          await hashSecret(secret),
        );
        req.log.info({ deviceId: device.id, type: device.type }, 'device registered');
        return reply.status(201).send({ device, credentials: credentials(device.id, secret) });
      },
    );

    app.post<{ Params: { id: string } }>(
      '/devices/:id/secret',
      {
        config: { auth: 'admin' },
        schema: {
          summary:
            'Issue a new individual secret (admin); the old one, or the enrollment-derived one, stops working',
          tags: ['devices'],
          params: ID_PARAMS,
          response: {
            200: { type: 'object', properties: { credentials: CREDENTIALS_SCHEMA } },
            404: ERROR_SCHEMA,
          },
        },
      },
      async (req) => {
        if (!registry.get(req.params.id)) throw ERR_NOT_FOUND('device', req.params.id);
        const secret = newDeviceSecret();
        await provisioning.setSecretHash(req.params.id, await hashSecret(secret));
        // A connection made with the old secret does not outlive it.
        disconnect(req.params.id);
        req.log.info({ deviceId: req.params.id }, 'device secret rotated');
        return { credentials: credentials(req.params.id, secret) };
      },
    );

    for (const [action, state] of [
      ['disable', 'disabled'],
      ['enable', 'active'],
    ] as const) {
      app.post<{ Params: { id: string } }>(
        `/devices/:id/${action}`,
        {
          config: { auth: 'admin' },
          schema: {
            summary:
              action === 'disable'
                ? 'Disable a device (admin): it is disconnected and refused until enabled'
                : 'Enable a disabled device (admin)',
            tags: ['devices'],
            params: ID_PARAMS,
            response: { 200: RECORD_SCHEMA, 404: ERROR_SCHEMA },
          },
        },
        async (req) => {
          const d = await provisioning.setState(req.params.id, state);
          if (!d) throw ERR_NOT_FOUND('device', req.params.id);
          if (state === 'disabled') disconnect(d.id);
          req.log.info({ deviceId: d.id, state }, `device ${action}d`);
          return d;
        },
      );
    }

    app.delete<{ Params: { id: string } }>(
      '/devices/:id',
      {
        config: { auth: 'admin' },
        schema: {
          summary:
            'Delete a device (admin): disconnected, refused, and not restored by seeds; its readings stay',
          tags: ['devices'],
          params: ID_PARAMS,
          response: { 204: { type: 'null' }, 404: ERROR_SCHEMA },
        },
      },
      async (req, reply) => {
        if (!(await provisioning.remove(req.params.id)))
          throw ERR_NOT_FOUND('device', req.params.id);
        disconnect(req.params.id);
        req.log.info({ deviceId: req.params.id }, 'device deleted');
        return reply.status(204).send();
      },
    );
  };
}

function credentials(id: string, password: string) {
  return { clientId: id, username: id, password };
}

/**
 * The city's geography from the registry: districts with their outlines and sites with
 * their positions. What a map needs to draw Wuxi without tiles from anywhere else.
 */
import type { FastifyPluginAsync } from 'fastify';
import { ERR_BAD_PARAM } from '../../errors.js';
import type { AppDeps } from '../app.js';
import { ERROR_SCHEMA } from '../app.js';

export type CityDeps = Pick<AppDeps, 'registry'>;

const POSITION = {
  type: 'array',
  description: 'WGS 84 [longitude, latitude]',
  items: { type: 'number' },
  minItems: 2,
  maxItems: 2,
} as const;

const DISTRICT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    nameZh: { type: ['string', 'null'] },
    centroid: POSITION,
    boundary: {
      type: ['array', 'null'],
      description: 'the outline as a ring of positions, the first not repeated at the end',
      items: POSITION,
    },
    devices: { type: 'integer', description: 'registered devices in the district' },
  },
} as const;

const SITE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    district: { type: 'string' },
    kind: { type: 'string', description: 'intersection, aq-station, buoy, bridge, ...' },
    name: { type: 'string' },
    lat: { type: 'number' },
    lon: { type: 'number' },
  },
} as const;

interface SitesQuery {
  district?: string;
  kind?: string;
}

export function cityRoutes({ registry }: CityDeps): FastifyPluginAsync {
  return async (app) => {
    app.get(
      '/districts',
      {
        schema: {
          summary: 'Districts with their centroids, outlines and device counts',
          description: 'Coordinates are WGS 84 [longitude, latitude], as in GeoJSON.',
          tags: ['city'],
          response: {
            200: {
              type: 'object',
              additionalProperties: false,
              properties: { items: { type: 'array', items: DISTRICT_SCHEMA } },
            },
          },
        },
      },
      async () => ({
        items: registry.districtOutlines().map((d) => ({
          ...d,
          devices: registry.list({ district: d.id, limit: 0, offset: 0 }).total,
        })),
      }),
    );

    app.get<{ Querystring: SitesQuery }>(
      '/sites',
      {
        schema: {
          summary: 'Sites (intersections, stations, buoys, bridges, ...) with their positions',
          tags: ['city'],
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              district: { type: 'string', maxLength: 64 },
              kind: { type: 'string', maxLength: 64 },
            },
          },
          response: {
            200: {
              type: 'object',
              additionalProperties: false,
              properties: {
                items: { type: 'array', items: SITE_SCHEMA },
                total: { type: 'integer' },
              },
            },
            400: ERROR_SCHEMA,
          },
        },
      },
      async (req) => {
        const { district, kind } = req.query;
        if (district !== undefined && !registry.hasDistrict(district)) {
          throw ERR_BAD_PARAM(
            'district',
            `unknown district "${district}"; known: ${registry
              .districts()
              .map((d) => d.id)
              .join(', ')}`,
          );
        }
        const items = registry.sites(district).filter((s) => kind === undefined || s.kind === kind);
        return { items, total: items.length };
      },
    );
  };
}

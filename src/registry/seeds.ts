/**
 * Seed files: Wuxi's districts, sites and the device registry (no secrets). Each
 * file is checked against its own JSON Schema and against the others; a bad seed
 * stops the start with a message naming the file and the entry.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { ERR_SEED_FILE } from '../errors.js';
import type { Catalog } from '../ingest/catalog.js';
import type { DevicePlacement, SiteRecord } from './registry.js';

export interface District {
  readonly id: string;
  readonly name: string;
  readonly nameZh?: string;
  readonly centroid: readonly [number, number];
  readonly boundary?: readonly (readonly [number, number])[];
}

export type Site = SiteRecord;

export type SeedDevice = DevicePlacement;

export interface Seeds {
  readonly districts: readonly District[];
  readonly sites: readonly Site[];
  readonly devices: readonly SeedDevice[];
}

/** Device ids travel in topics, client ids and tags: keep them to a safe alphabet. */
export const DEVICE_ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function loadSeeds(dir: string, catalog: Catalog): Seeds {
  const ajv = new Ajv({ allErrors: true });
  const read = <T>(name: string): T[] => {
    const file = join(dir, `${name}.json`);
    const schemaFile = join(dir, 'schema', `${name}.schema.json`);
    const data = readJson(file);
    const validate = ajv.compile(readJson(schemaFile) as object);
    if (!Array.isArray(data)) throw ERR_SEED_FILE(file, 'must be a JSON array');
    // The schema describes the whole file (an array); point at the entry that broke it.
    if (!validate(data)) {
      const e = validate.errors?.[0];
      const [, index = '', ...rest] = (e?.instancePath ?? '').split('/');
      const i = Number(index);
      const where =
        index !== '' && Number.isInteger(i) ? `${entryName(data[i], i)}: /${rest.join('/')}` : '/';
      throw ERR_SEED_FILE(file, `${where} ${e?.message ?? 'is invalid'}`);
    }
    return data as T[];
  };
  const districts = read<District>('districts');
  const sites = read<Site>('sites');
  const devices = read<SeedDevice>('devices');

  const districtIds = new Set(districts.map((d) => d.id));
  const siteById = new Map<string, Site>();
  sites.forEach((s, i) => {
    const fail = (detail: string) =>
      ERR_SEED_FILE(join(dir, 'sites.json'), `${entryName(s, i)}: ${detail}`);
    if (siteById.has(s.id)) throw fail('duplicate id');
    if (!districtIds.has(s.district)) throw fail(`unknown district "${s.district}"`);
    siteById.set(s.id, s);
  });
  const deviceIds = new Set<string>();
  devices.forEach((d, i) => {
    const fail = (detail: string) =>
      ERR_SEED_FILE(join(dir, 'devices.json'), `${entryName(d, i)}: ${detail}`);
    if (!DEVICE_ID_RE.test(d.id)) throw fail(`id must match ${DEVICE_ID_RE}`);
    if (deviceIds.has(d.id)) throw fail('duplicate id');
    if (!catalog.has(d.type)) throw fail(`unknown device type "${d.type}" (no schema for it)`);
    const site = siteById.get(d.siteId);
    if (!site) throw fail(`unknown siteId "${d.siteId}"`);
    if (site.district !== d.district) {
      throw fail(`district "${d.district}" differs from its site's "${site.district}"`);
    }
    deviceIds.add(d.id);
  });
  return { districts, sites, devices };
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw ERR_SEED_FILE(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw ERR_SEED_FILE(file, `not valid JSON (${(err as Error).message})`);
  }
}

function entryName(entry: unknown, index: number): string {
  const id = (entry as { id?: unknown } | null)?.id;
  return typeof id === 'string' ? `entry ${index} ("${id}")` : `entry ${index}`;
}

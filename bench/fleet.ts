/**
 * The benchmark fleet: Wuxi's seeded districts and sites with a generated device registry of any
 * size, written to a temporary seeds dir the gateway is started with (TAIHU_SEEDS_DIR), so that
 * enrollment-derived secrets work for every device without the admin API's per-device scrypt.
 *
 * Devices are air-quality stations and weather stations (5–8 fields a reading, 6–9 stored with
 * `seq`), alternating, spread over the seeded stations' sites and so over every district.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SimDevice } from '../devices/models/types.js';
import type { SeedDevice, Site } from '../src/registry/seeds.js';

const KINDS = [
  { type: 'air-quality', prefix: 'bench-aq', site: 'aq-station' },
  { type: 'weather', prefix: 'bench-wx', site: 'weather-station' },
] as const;

export interface Fleet {
  /** A seeds dir holding districts.json, sites.json, schema/ and the generated devices.json. */
  readonly seedsDir: string;
  /** The devices that carry the load, in a stable order. */
  readonly devices: readonly SimDevice[];
  /** Extra devices, not part of the load: publish→queryable probes, the noisy neighbour. */
  readonly extras: readonly SimDevice[];
}

/** Writes a seeds dir with `count` load devices and `extras` more (air-quality) under `dir`. */
export function createFleet(
  seedsSource: string,
  dir: string,
  count: number,
  extras: readonly string[] = [],
): Fleet {
  const seedsDir = join(dir, 'seeds');
  mkdirSync(seedsDir, { recursive: true });
  for (const name of ['districts.json', 'sites.json']) {
    cpSync(join(seedsSource, name), join(seedsDir, name));
  }
  cpSync(join(seedsSource, 'schema'), join(seedsDir, 'schema'), { recursive: true });
  const sites = JSON.parse(readFileSync(join(seedsSource, 'sites.json'), 'utf8')) as Site[];
  const sitesOf = KINDS.map((k) => sites.filter((s) => s.kind === k.site));
  const devices: SeedDevice[] = [];
  const counters = KINDS.map(() => 0);
  const make = (kind: number, id?: string): SeedDevice => {
    const k = KINDS[kind] as (typeof KINDS)[number];
    const pool = sitesOf[kind] ?? [];
    const n = ++(counters[kind] as number);
    const site = pool[n % pool.length];
    if (!site) throw new Error(`seeds have no ${k.site} site for the benchmark fleet`);
    return {
      id: id ?? `${k.prefix}-${String(n).padStart(5, '0')}`,
      type: k.type,
      district: site.district,
      siteId: site.id,
      // a few metres apart around the station
      lat: Math.round((site.lat + ((n % 50) - 25) * 1e-5) * 1e6) / 1e6,
      lon: Math.round((site.lon + (Math.floor(n / 50) % 50) * 1e-5) * 1e6) / 1e6,
    };
  };
  for (let i = 0; i < count; i++) devices.push(make(i % KINDS.length));
  const extra = extras.map((id) => make(0, id));
  writeFileSync(join(seedsDir, 'devices.json'), JSON.stringify([...devices, ...extra]));
  return { seedsDir, devices, extras: extra };
}

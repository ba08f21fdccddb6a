/** The committed seed files, seeds/*.json, as they are on disk. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './gateway.js';

/** [lon, lat] */
export type Position = [number, number];

export interface SeedDistrict {
  id: string;
  name: string;
  nameZh: string;
  centroid: Position;
  boundary: Position[];
}

export interface SeedSite {
  id: string;
  district: string;
  kind: string;
  name: string;
  lat: number;
  lon: number;
}

export interface SeedEntry {
  id: string;
  type: string;
  district: string;
  siteId: string;
  lat: number;
  lon: number;
}

const read = <T>(name: string): T[] =>
  JSON.parse(readFileSync(join(ROOT, 'seeds', `${name}.json`), 'utf8')) as T[];

export const readSeeds = () => ({
  districts: read<SeedDistrict>('districts'),
  sites: read<SeedSite>('sites'),
  devices: read<SeedEntry>('devices'),
});

/**
 * The device registry: records in SQLite (`registry.db`), mirrored in a Map so the
 * per-message path (authenticate, tags) never touches the disk.
 */
import Database from 'better-sqlite3';
import type { Seeds } from './seeds.js';

export type DeviceState = 'active' | 'disabled';

export interface DeviceRecord {
  readonly id: string;
  readonly type: string;
  readonly district: string;
  readonly siteId: string;
  readonly lat: number;
  readonly lon: number;
  readonly state: DeviceState;
  /** ISO 8601. */
  readonly createdAt: string;
}

export interface DeviceFilter {
  type?: string | undefined;
  district?: string | undefined;
  /** Optional predicate applied after the indexed filters (e.g. live status). */
  where?: ((d: DeviceRecord) => boolean) | undefined;
  limit: number;
  offset: number;
}

export function openDatabase(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // The registry changes rarely; FULL keeps an admin's change across a crash.
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  return db;
}

export class Registry {
  readonly #db: Database.Database;
  readonly #devices = new Map<string, DeviceRecord>();

  constructor(db: Database.Database) {
    this.#db = db;
    db.exec(`
      CREATE TABLE IF NOT EXISTS districts (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, name_zh TEXT, centroid TEXT NOT NULL, boundary TEXT);
      CREATE TABLE IF NOT EXISTS sites (
        id TEXT PRIMARY KEY, district TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
        lat REAL NOT NULL, lon REAL NOT NULL);
      CREATE TABLE IF NOT EXISTS devices (
        id TEXT PRIMARY KEY, type TEXT NOT NULL, district TEXT NOT NULL, site_id TEXT NOT NULL,
        lat REAL NOT NULL, lon REAL NOT NULL, state TEXT NOT NULL DEFAULT 'active',
        created_at TEXT NOT NULL);
    `);
    for (const row of db.prepare('SELECT * FROM devices ORDER BY id').all() as DeviceRow[]) {
      this.#devices.set(row.id, fromRow(row));
    }
  }

  /**
   * Adds seed entries that are not there yet. Existing rows are left alone, so a
   * restart is idempotent and an operator's change (a disabled device) survives.
   */
  applySeeds(seeds: Seeds): number {
    const now = new Date().toISOString();
    const insDistrict = this.#db.prepare(
      'INSERT OR IGNORE INTO districts (id, name, name_zh, centroid, boundary) VALUES (?, ?, ?, ?, ?)',
    );
    const insSite = this.#db.prepare(
      'INSERT OR IGNORE INTO sites (id, district, kind, name, lat, lon) VALUES (?, ?, ?, ?, ?, ?)',
    );
    const insDevice = this.#db.prepare(
      `INSERT OR IGNORE INTO devices (id, type, district, site_id, lat, lon, state, created_at)
       VALUES (?, ?, ?, ?, ?, ?, 'active', ?) RETURNING *`,
    );
    const added: DeviceRow[] = [];
    this.#db.transaction(() => {
      for (const d of seeds.districts) {
        insDistrict.run(
          d.id,
          d.name,
          d.nameZh ?? null,
          JSON.stringify(d.centroid),
          d.boundary ? JSON.stringify(d.boundary) : null,
        );
      }
      for (const s of seeds.sites) insSite.run(s.id, s.district, s.kind, s.name, s.lat, s.lon);
      for (const d of seeds.devices) {
        const row = insDevice.get(d.id, d.type, d.district, d.siteId, d.lat, d.lon, now) as
          DeviceRow | undefined;
        if (row) added.push(row);
      }
    })();
    for (const row of added) this.#devices.set(row.id, fromRow(row));
    return added.length;
  }

  get(id: string): DeviceRecord | undefined {
    return this.#devices.get(id);
  }

  get size(): number {
    return this.#devices.size;
  }

  /** Matching devices sorted by id, paged. */
  list(filter: DeviceFilter): { items: DeviceRecord[]; total: number } {
    const items: DeviceRecord[] = [];
    let total = 0;
    for (const d of this.#devices.values()) {
      if (filter.type !== undefined && d.type !== filter.type) continue;
      if (filter.district !== undefined && d.district !== filter.district) continue;
      if (filter.where && !filter.where(d)) continue;
      if (total >= filter.offset && items.length < filter.limit) items.push(d);
      total++;
    }
    return { items, total };
  }

  setState(id: string, state: DeviceState): DeviceRecord | undefined {
    const d = this.#devices.get(id);
    if (!d) return undefined;
    this.#db.prepare('UPDATE devices SET state = ? WHERE id = ?').run(state, id);
    const next = { ...d, state };
    this.#devices.set(id, next);
    return next;
  }

  districts(): { id: string; name: string }[] {
    return this.#db.prepare('SELECT id, name FROM districts ORDER BY id').all() as {
      id: string;
      name: string;
    }[];
  }

  hasDistrict(id: string): boolean {
    return this.#db.prepare('SELECT 1 FROM districts WHERE id = ?').get(id) !== undefined;
  }
}

interface DeviceRow {
  id: string;
  type: string;
  district: string;
  site_id: string;
  lat: number;
  lon: number;
  state: DeviceState;
  created_at: string;
}

function fromRow(r: DeviceRow): DeviceRecord {
  return {
    id: r.id,
    type: r.type,
    district: r.district,
    siteId: r.site_id,
    lat: r.lat,
    lon: r.lon,
    state: r.state,
    createdAt: r.created_at,
  };
}

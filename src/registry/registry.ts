/**
 * The device registry: records in SQLite (`registry.db`), mirrored in a Map so the
 * per-message path (authenticate, tags) never touches the disk.
 */
import Database from 'better-sqlite3';
import type { Seeds } from './seeds.js';

export type DeviceState = 'active' | 'disabled';
/** enrollment: secret derived from the enrollment key; individual: own secret, stored hashed. */
export type CredentialKind = 'enrollment' | 'individual';

/** Where a device is and what it is: the part of its record that seeds and the simulator hold. */
export interface DevicePlacement {
  readonly id: string;
  readonly type: string;
  readonly district: string;
  readonly siteId: string;
  readonly lat: number;
  readonly lon: number;
}

export interface DeviceRecord extends DevicePlacement {
  readonly state: DeviceState;
  readonly credential: CredentialKind;
  /** ISO 8601. */
  readonly createdAt: string;
}

export interface NewDevice {
  readonly id: string;
  readonly type: string;
  readonly siteId: string;
  readonly lat: number;
  readonly lon: number;
}

export interface SiteRecord {
  readonly id: string;
  readonly district: string;
  readonly kind: string;
  readonly name: string;
  readonly lat: number;
  readonly lon: number;
}

/** A district with its outline, for maps. Positions are WGS 84 [longitude, latitude]. */
export interface DistrictRecord {
  readonly id: string;
  readonly name: string;
  readonly nameZh: string | null;
  readonly centroid: readonly [number, number];
  /** The outline as a closed ring (first point not repeated); null when the seed has none. */
  readonly boundary: readonly (readonly [number, number])[] | null;
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
  /** Scrypt hashes of individual secrets; kept apart so a record never carries one. */
  readonly #secretHashes = new Map<string, string>();
  /** Device ids in order, rebuilt lazily after a change (listing is paged by id). */
  #sortedIds: string[] | undefined;

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
        created_at TEXT NOT NULL, secret_hash TEXT);
      -- Deleted devices stay deleted: seeds never bring them back.
      CREATE TABLE IF NOT EXISTS deleted_devices (id TEXT PRIMARY KEY, deleted_at TEXT NOT NULL);
    `);
    for (const row of db.prepare('SELECT * FROM devices ORDER BY id').all() as DeviceRow[]) {
      this.#put(row);
    }
  }

  #put(row: DeviceRow): DeviceRecord {
    const d = fromRow(row);
    if (!this.#devices.has(d.id)) this.#sortedIds = undefined;
    this.#devices.set(d.id, d);
    if (row.secret_hash) this.#secretHashes.set(d.id, row.secret_hash);
    else this.#secretHashes.delete(d.id);
    return d;
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
       SELECT @id, @type, @district, @siteId, @lat, @lon, 'active', @now
       WHERE NOT EXISTS (SELECT 1 FROM deleted_devices WHERE id = @id) RETURNING *`,
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
        const row = insDevice.get({ ...d, now }) as DeviceRow | undefined;
        if (row) added.push(row);
      }
    })();
    for (const row of added) this.#put(row);
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
    this.#sortedIds ??= [...this.#devices.keys()].sort();
    for (const id of this.#sortedIds) {
      const d = this.#devices.get(id);
      if (!d) continue;
      if (filter.type !== undefined && d.type !== filter.type) continue;
      if (filter.district !== undefined && d.district !== filter.district) continue;
      if (filter.where && !filter.where(d)) continue;
      if (total >= filter.offset && items.length < filter.limit) items.push(d);
      total++;
    }
    return { items, total };
  }

  setState(id: string, state: DeviceState): DeviceRecord | undefined {
    const row = this.#db
      .prepare('UPDATE devices SET state = ? WHERE id = ? RETURNING *')
      .get(state, id) as DeviceRow | undefined;
    return row && this.#put(row);
  }

  /** The scrypt hash of a device's individual secret, if it has one. */
  secretHashOf(id: string): string | undefined {
    return this.#secretHashes.get(id);
  }

  /** Sets (or rotates) a device's individual secret; undefined if the device is unknown. */
  setSecretHash(id: string, hash: string): DeviceRecord | undefined {
    const row = this.#db
      .prepare('UPDATE devices SET secret_hash = ? WHERE id = ? RETURNING *')
      .get(hash, id) as DeviceRow | undefined;
    return row && this.#put(row);
  }

  /** Registers a device with individual credentials; its district is its site's. */
  create(d: NewDevice, secretHash: string): DeviceRecord {
    const site = this.site(d.siteId);
    if (!site) throw new Error(`unknown site ${d.siteId}`);
    const row = this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM deleted_devices WHERE id = ?').run(d.id);
      return this.#db
        .prepare(
          `INSERT INTO devices (id, type, district, site_id, lat, lon, state, created_at, secret_hash)
           VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?) RETURNING *`,
        )
        .get(
          d.id,
          d.type,
          site.district,
          site.id,
          d.lat,
          d.lon,
          new Date().toISOString(),
          secretHash,
        ) as DeviceRow;
    })();
    return this.#put(row);
  }

  /** Deletes a device for good (seeds will not restore it). */
  remove(id: string): boolean {
    if (!this.#devices.has(id)) return false;
    this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM devices WHERE id = ?').run(id);
      this.#db
        .prepare('INSERT OR REPLACE INTO deleted_devices (id, deleted_at) VALUES (?, ?)')
        .run(id, new Date().toISOString());
    })();
    this.#devices.delete(id);
    this.#secretHashes.delete(id);
    this.#sortedIds = undefined;
    return true;
  }

  /**
   * Stores a record exactly as another source has it: a cluster peer's change, mirrored into
   * this instance's copy (state/redis). Single-node code never calls it.
   */
  mirror(d: DeviceRecord, secretHash: string | undefined): DeviceRecord {
    const row = this.#db
      .prepare(
        `INSERT INTO devices (id, type, district, site_id, lat, lon, state, created_at, secret_hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET type = excluded.type, district = excluded.district,
           site_id = excluded.site_id, lat = excluded.lat, lon = excluded.lon,
           state = excluded.state, created_at = excluded.created_at,
           secret_hash = excluded.secret_hash
         RETURNING *`,
      )
      .get(
        d.id,
        d.type,
        d.district,
        d.siteId,
        d.lat,
        d.lon,
        d.state,
        d.createdAt,
        secretHash ?? null,
      ) as DeviceRow;
    return this.#put(row);
  }

  site(id: string): SiteRecord | undefined {
    return this.#db
      .prepare('SELECT id, district, kind, name, lat, lon FROM sites WHERE id = ?')
      .get(id) as SiteRecord | undefined;
  }

  districts(): { id: string; name: string }[] {
    return this.#db.prepare('SELECT id, name FROM districts ORDER BY id').all() as {
      id: string;
      name: string;
    }[];
  }

  /** Every district with its centroid and outline, by id. */
  districtOutlines(): DistrictRecord[] {
    const rows = this.#db
      .prepare('SELECT id, name, name_zh, centroid, boundary FROM districts ORDER BY id')
      .all() as DistrictRow[];
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      nameZh: r.name_zh,
      centroid: JSON.parse(r.centroid) as [number, number],
      boundary: r.boundary === null ? null : (JSON.parse(r.boundary) as [number, number][]),
    }));
  }

  /** Sites by id, optionally of one district. */
  sites(district?: string): SiteRecord[] {
    const cols = 'SELECT id, district, kind, name, lat, lon FROM sites';
    return (
      district === undefined
        ? this.#db.prepare(`${cols} ORDER BY id`).all()
        : this.#db.prepare(`${cols} WHERE district = ? ORDER BY id`).all(district)
    ) as SiteRecord[];
  }

  hasDistrict(id: string): boolean {
    return this.#db.prepare('SELECT 1 FROM districts WHERE id = ?').get(id) !== undefined;
  }
}

interface DistrictRow {
  id: string;
  name: string;
  name_zh: string | null;
  /** JSON text of [lon, lat]. */
  centroid: string;
  /** JSON text of [[lon, lat], ...], or null. */
  boundary: string | null;
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
  secret_hash: string | null;
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
    credential: r.secret_hash ? 'individual' : 'enrollment',
    createdAt: r.created_at,
  };
}

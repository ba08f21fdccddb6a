/**
 * HTTP API keys with roles. Keys are random 256-bit values, so a single SHA-256 is
 * enough to store them (no dictionary to defend against, unlike passwords).
 */
import { createHash, randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';

export type Role = 'read' | 'admin';

export interface ApiKeyRecord {
  readonly id: string;
  readonly role: Role;
  readonly name: string | null;
  readonly createdAt: string;
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export class ApiKeys {
  readonly #db: Database.Database;
  /** hash → role; the env admin key is kept here too, never written to disk. */
  readonly #byHash = new Map<string, Role>();

  constructor(db: Database.Database, envAdminKey?: string) {
    this.#db = db;
    db.exec(`CREATE TABLE IF NOT EXISTS api_keys (
      id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL, name TEXT,
      created_at TEXT NOT NULL, revoked_at TEXT)`);
    for (const r of db
      .prepare('SELECT hash, role FROM api_keys WHERE revoked_at IS NULL')
      .all() as {
      hash: string;
      role: Role;
    }[]) {
      this.#byHash.set(r.hash, r.role);
    }
    if (envAdminKey) this.#byHash.set(hashKey(envAdminKey), 'admin');
  }

  /** The role of a presented key, or undefined. */
  roleOf(key: string): Role | undefined {
    return this.#byHash.get(hashKey(key));
  }

  /** Number of stored, unrevoked keys. */
  get storedCount(): number {
    return (
      this.#db.prepare('SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL').get() as {
        n: number;
      }
    ).n;
  }

  /** Creates a key; the plaintext is returned once and only its hash is kept. */
  create(role: Role, name?: string): { id: string; key: string } {
    const id = randomBytes(6).toString('hex');
    const key = `taihu_${randomBytes(32).toString('base64url')}`;
    const hash = hashKey(key);
    this.#db
      .prepare('INSERT INTO api_keys (id, hash, role, name, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(id, hash, role, name ?? null, new Date().toISOString());
    this.#byHash.set(hash, role);
    return { id, key };
  }

  /** Unrevoked stored keys (never the keys themselves). */
  list(): ApiKeyRecord[] {
    return this.#db
      .prepare(
        'SELECT id, role, name, created_at AS createdAt FROM api_keys WHERE revoked_at IS NULL ORDER BY created_at, id',
      )
      .all() as ApiKeyRecord[];
  }

  /** Revokes a stored key at once; false if there is no such unrevoked key. */
  revoke(id: string): boolean {
    const row = this.#db
      .prepare(
        'UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING hash',
      )
      .get(new Date().toISOString(), id) as { hash: string } | undefined;
    if (!row) return false;
    this.#byHash.delete(row.hash);
    return true;
  }
}

/** What a stopped gateway's embedded store holds, read straight from its SQLite file. */
import { join } from 'node:path';
import Database from 'better-sqlite3';

/** The seq of every stored reading of a measurement (table), by device id. */
export function storedSeqs(dataDir: string, table = 'air_quality'): Map<string, Set<number>> {
  const db = new Database(join(dataDir, 'telemetry.db'), { readonly: true });
  const rows = db.prepare(`SELECT device_id, seq FROM ${table}`).all() as {
    device_id: string;
    seq: number;
  }[];
  db.close();
  const out = new Map<string, Set<number>>();
  for (const r of rows) {
    const set = out.get(r.device_id) ?? new Set();
    set.add(r.seq);
    out.set(r.device_id, set);
  }
  return out;
}

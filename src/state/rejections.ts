/**
 * The rejection log: every refused message with its code and reasons, queryable
 * over HTTP. Records are written in small batches off the per-message path.
 */
import type Database from 'better-sqlite3';
import type { NewRejection } from '../ingest/ingest.js';
import type { Reason } from '../ingest/pipeline.js';

/** A kept rejection, as GET /api/v1/rejections lists it. */
export interface RejectionRecord extends Omit<NewRejection, 'payload'> {
  readonly id: number;
  /** The start of the payload as text (invalid UTF-8 shown as U+FFFD). */
  readonly payload: string;
  readonly payloadBytes: number;
}

export interface RejectionQuery {
  device?: string | undefined;
  type?: string | undefined;
  code?: string | undefined;
  limit: number;
}

/** Enough of a payload to recognise it, little enough to keep the log small. */
export const PAYLOAD_KEEP_BYTES = 512;
/** The log keeps the newest records only. */
export const KEEP_ROWS = 100_000;
const TRIM_EVERY = 1_000;

export class RejectionLog {
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  #pending: NewRejection[] = [];
  #scheduled = false;
  #sinceTrim = 0;

  constructor(db: Database.Database) {
    this.#db = db;
    db.exec(`CREATE TABLE IF NOT EXISTS rejections (
      id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL, device_id TEXT NOT NULL,
      type TEXT NOT NULL, topic TEXT NOT NULL, code TEXT NOT NULL, reasons TEXT NOT NULL,
      payload TEXT NOT NULL, payload_bytes INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS rejections_device ON rejections (device_id, id);`);
    this.#insert = db.prepare(`INSERT INTO rejections
      (received_at, device_id, type, topic, code, reasons, payload, payload_bytes)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
  }

  record(r: NewRejection): void {
    this.#pending.push(r);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes pending records now (also called on shutdown). */
  flush(): void {
    this.#scheduled = false;
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#db.transaction(() => {
      for (const r of batch) {
        this.#insert.run(
          r.receivedAt,
          r.deviceId,
          r.type,
          r.topic,
          r.code,
          JSON.stringify(r.reasons),
          r.payload.subarray(0, PAYLOAD_KEEP_BYTES).toString('utf8'),
          r.payload.length,
        );
      }
    })();
    this.#sinceTrim += batch.length;
    if (this.#sinceTrim >= TRIM_EVERY) {
      this.#sinceTrim = 0;
      this.#db
        .prepare('DELETE FROM rejections WHERE id <= (SELECT max(id) FROM rejections) - ?')
        .run(KEEP_ROWS);
    }
  }

  /** Newest first. */
  query(q: RejectionQuery): RejectionRecord[] {
    this.flush();
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.device !== undefined) {
      where.push('device_id = ?');
      args.push(q.device);
    }
    if (q.type !== undefined) {
      where.push('type = ?');
      args.push(q.type);
    }
    if (q.code !== undefined) {
      where.push('code = ?');
      args.push(q.code);
    }
    const sql = `SELECT * FROM rejections ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    const rows = this.#db.prepare(sql).all(...args, q.limit) as {
      id: number;
      received_at: string;
      device_id: string;
      type: string;
      topic: string;
      code: string;
      reasons: string;
      payload: string;
      payload_bytes: number;
    }[];
    return rows.map((r) => ({
      id: r.id,
      receivedAt: r.received_at,
      deviceId: r.device_id,
      type: r.type,
      topic: r.topic,
      code: r.code,
      reasons: JSON.parse(r.reasons) as Reason[],
      payload: r.payload,
      payloadBytes: r.payload_bytes,
    }));
  }
}

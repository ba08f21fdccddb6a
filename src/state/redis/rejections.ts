/**
 * The rejection log of a cluster, in Redis: one newest-first list capped at the single-node
 * log's size, plus one short list per device (what `?device=` asks for most) that expires
 * when the device stops being rejected. Records are queued on the per-message path and
 * written in one script call per turn of the event loop, as the SQLite log batches them.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { NewRejection } from '../../ingest/ingest.js';
import {
  KEEP_ROWS,
  PAYLOAD_KEEP_BYTES,
  type RejectionQuery,
  type RejectionRecord,
} from '../rejections.js';
import type { RejectionStore } from '../types.js';
import { clusterError } from './connection.js';
import { KEY, Script } from './keys.js';

/** Records kept per device: the API's largest `limit`. */
const KEEP_PER_DEVICE = 1_000;
/** A device's own list expires this long after its last rejection, s. */
const DEVICE_LIST_TTL_S = 7 * 86_400;
/** Records queued while Redis is away; past it the oldest are dropped, counted and logged. */
const MAX_PENDING = 10_000;
/** Records read per round trip when a query filters by type or code only. */
const SCAN_PAGE = 1_000;

/**
 * ARGV: per record (deviceId, its JSON without the leading `{`). Each record gets the next id
 * from the counter and goes to the head of both lists.
 */
const APPEND = new Script(`
local i = 1
while i < #ARGV do
  local id = redis.call('INCR', '${KEY.rejectionSeq}')
  local json = '{"id":' .. id .. ',' .. ARGV[i + 1]
  local own = '${KEY.rejectionsOf('')}' .. ARGV[i]
  redis.call('LPUSH', '${KEY.rejections}', json)
  redis.call('LPUSH', own, json)
  redis.call('LTRIM', own, 0, ${KEEP_PER_DEVICE - 1})
  redis.call('EXPIRE', own, ${DEVICE_LIST_TTL_S})
  i = i + 2
end
redis.call('LTRIM', '${KEY.rejections}', 0, ${KEEP_ROWS - 1})
return 1
`);

export class RedisRejections implements RejectionStore {
  readonly #redis: Redis;
  readonly #log: Logger;
  #pending: NewRejection[] = [];
  #scheduled = false;
  #writing: Promise<void> = Promise.resolve();
  #dropped = 0;

  constructor(redis: Redis, log: Logger) {
    this.#redis = redis;
    this.#log = log;
  }

  record(r: NewRejection): void {
    if (this.#pending.length >= MAX_PENDING) {
      this.#pending.shift();
      if (this.#dropped++ % 1000 === 0) {
        this.#log.warn(
          { dropped: this.#dropped },
          'Redis away: oldest queued rejection records dropped',
        );
      }
    }
    this.#pending.push(r);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => void this.flush());
    }
  }

  flush(): Promise<void> {
    this.#scheduled = false;
    this.#writing = this.#writing.then(() => this.#write());
    return this.#writing;
  }

  async #write(): Promise<void> {
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    const args: string[] = [];
    for (const r of batch) {
      const json = JSON.stringify({
        receivedAt: r.receivedAt,
        deviceId: r.deviceId,
        type: r.type,
        topic: r.topic,
        code: r.code,
        reasons: r.reasons,
        payload: r.payload.subarray(0, PAYLOAD_KEEP_BYTES).toString('utf8'),
        payloadBytes: r.payload.length,
      });
      args.push(r.deviceId, json.slice(1));
    }
    try {
      await APPEND.run(this.#redis, args);
    } catch (err) {
      // Back to the front of the queue, in order, for the next flush.
      this.#pending = [...batch, ...this.#pending].slice(-MAX_PENDING);
      this.#log.warn(
        { err, records: batch.length },
        'rejection records not written to Redis; retrying',
      );
      if (!this.#scheduled) {
        this.#scheduled = true;
        setTimeout(() => void this.flush(), 1000).unref();
      }
    }
  }

  async query(q: RejectionQuery): Promise<RejectionRecord[]> {
    await this.flush();
    const match = (r: RejectionRecord) =>
      (q.type === undefined || r.type === q.type) && (q.code === undefined || r.code === q.code);
    try {
      if (q.device !== undefined) {
        const rows = await this.#redis.lrange(KEY.rejectionsOf(q.device), 0, KEEP_PER_DEVICE - 1);
        return rows
          .map(parse)
          .filter((r) => r.deviceId === q.device && match(r))
          .slice(0, q.limit);
      }
      if (q.type === undefined && q.code === undefined) {
        return (await this.#redis.lrange(KEY.rejections, 0, q.limit - 1)).map(parse);
      }
      const out: RejectionRecord[] = [];
      for (let start = 0; start < KEEP_ROWS && out.length < q.limit; start += SCAN_PAGE) {
        const rows = await this.#redis.lrange(KEY.rejections, start, start + SCAN_PAGE - 1);
        for (const row of rows) {
          const r = parse(row);
          if (match(r) && out.length < q.limit) out.push(r);
        }
        if (rows.length < SCAN_PAGE) break;
      }
      return out;
    } catch (err) {
      throw clusterError(err);
    }
  }
}

function parse(row: string): RejectionRecord {
  return JSON.parse(row) as RejectionRecord;
}

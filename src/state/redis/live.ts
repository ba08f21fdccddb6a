/**
 * Live device state of a cluster. Each instance keeps the state of the devices connected to
 * it in memory, exactly as a single gateway does (events, the stale sweep and the
 * connected-devices gauge work on it), and writes what changed to Redis in one script call
 * every FLUSH_EVERY_MS: a device publishing 100 messages in that time costs one hash write,
 * and the per-message path only touches a Map.
 *
 * Queries (`read`) answer for the whole cluster from Redis. A device belongs to the instance
 * holding its connection; an instance that died (its heartbeat key expired) holds nothing,
 * so its devices read as offline until they reconnect elsewhere.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  LiveState,
  STALE_AFTER_INTERVALS,
  type DeviceStatus,
  type LatestReading,
  type LiveOptions,
  type LiveQuery,
  type LiveScope,
  type LiveView,
} from '../live.js';
import type { AcceptedReading } from '../../ingest/pipeline.js';
import { clusterError } from './connection.js';
import { KEY, Script } from './keys.js';

/** How often changes go to Redis, ms: what a cluster-wide query may lag behind. */
const FLUSH_EVERY_MS = 200;
/** Devices per flush call: bounds one script's run time (Redis runs nothing else meanwhile). */
const FLUSH_CHUNK = 2_000;

/** What happened to one device since the last flush. */
interface Delta {
  /** true: connected here; false: disconnected here; undefined: neither. */
  connected: boolean | undefined;
  lastActivity: number;
  lastSeen: number | undefined;
  last: AcceptedReading | undefined;
}

/**
 * ARGV: instance id, then per device (id, conn '1'|'0'|'', lastActivity, lastSeen|'',
 * lastTs|'', lastJson|''). Times only move forward; a disconnect only clears the owner if the
 * owner is this instance (the device may already be connected to another one); a reading
 * only replaces an older one.
 */
const FLUSH = new Script(`
local me = ARGV[1]
local i = 2
while i + 5 <= #ARGV do
  local id, conn, la, ls, lts, lj = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local owner, cla, cls = '', '0', ''
  local cur = redis.call('HGET', '${KEY.liveActivity}', id)
  if cur then owner, cla, cls = string.match(cur, '^([^|]*)|([^|]*)|([^|]*)$') end
  if conn == '1' then owner = me elseif conn == '0' and owner == me then owner = '' end
  if tonumber(cla) > tonumber(la) then la = cla end
  if ls == '' or (cls ~= '' and tonumber(cls) > tonumber(ls)) then ls = cls end
  redis.call('HSET', '${KEY.liveActivity}', id, owner .. '|' .. la .. '|' .. ls)
  if lts ~= '' then
    local old = redis.call('HGET', '${KEY.liveLast}', id)
    local ots = old and tonumber(string.match(old, '^([^|]*)|'))
    if not ots or tonumber(lts) >= ots then redis.call('HSET', '${KEY.liveLast}', id, lts .. '|' .. lj) end
  end
  i = i + 6
end
return 1
`);

export interface ClusterLiveOptions extends LiveOptions {
  readonly redis: Redis;
  readonly instanceId: string;
  readonly log: Logger;
}

export class ClusterLive extends LiveState {
  readonly #redis: Redis;
  readonly #me: string;
  readonly #log: Logger;
  #dirty = new Map<string, Delta>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  #failing = false;

  constructor(options: ClusterLiveOptions) {
    super(options);
    this.#redis = options.redis;
    this.#me = options.instanceId;
    this.#log = options.log;
  }

  #delta(id: string, now: number): Delta {
    let d = this.#dirty.get(id);
    if (!d) {
      d = { connected: undefined, lastActivity: now, lastSeen: undefined, last: undefined };
      this.#dirty.set(id, d);
    } else if (now > d.lastActivity) d.lastActivity = now;
    return d;
  }

  override connected(id: string, now: number): void {
    super.connected(id, now);
    this.#delta(id, now).connected = true;
  }

  override disconnected(id: string, now: number): void {
    super.disconnected(id, now);
    this.#delta(id, now).connected = false;
  }

  override accepted(id: string, readings: readonly AcceptedReading[], now: number): void {
    super.accepted(id, readings, now);
    const d = this.#delta(id, now);
    if (d.lastSeen === undefined || now > d.lastSeen) d.lastSeen = now;
    for (const r of readings) if (!d.last || r.ts >= d.last.ts) d.last = r;
  }

  override forget(id: string): void {
    super.forget(id);
    this.#dirty.delete(id);
    this.#redis
      .multi()
      .hdel(KEY.liveActivity, id)
      .hdel(KEY.liveLast, id)
      .exec()
      .catch((err: unknown) =>
        this.#log.warn({ err, deviceId: id }, 'could not forget live state'),
      );
  }

  /** Starts writing changes to Redis (and the stale sweep, as a single gateway does). */
  override start(options: Parameters<LiveState['start']>[0]): void {
    super.start(options);
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.flush(), FLUSH_EVERY_MS);
    this.#timer.unref();
  }

  override stop(): void {
    super.stop();
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Writes what changed since the last flush; one flush at a time, in order. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#flushOnce());
    return this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    if (this.#dirty.size === 0) return;
    const batch = this.#dirty;
    this.#dirty = new Map();
    const entries = [...batch];
    try {
      for (let i = 0; i < entries.length; i += FLUSH_CHUNK) {
        const args: (string | number)[] = [this.#me];
        for (const [id, d] of entries.slice(i, i + FLUSH_CHUNK)) {
          args.push(
            id,
            d.connected === undefined ? '' : d.connected ? '1' : '0',
            d.lastActivity,
            d.lastSeen ?? '',
            d.last ? d.last.ts : '',
            d.last
              ? JSON.stringify({ ts: d.last.ts, seq: d.last.seq ?? null, data: d.last.data })
              : '',
          );
        }
        await FLUSH.run(this.#redis, args);
        for (const [id] of entries.slice(i, i + FLUSH_CHUNK)) batch.delete(id);
      }
      if (this.#failing) this.#log.info('live state reaches Redis again');
      this.#failing = false;
    } catch (err) {
      // Keep what was not written, merged under anything newer, for the next flush.
      for (const [id, old] of batch) {
        const newer = this.#dirty.get(id);
        this.#dirty.set(id, newer ? merge(old, newer) : old);
      }
      if (!this.#failing) this.#log.warn({ err }, 'live state not written to Redis; retrying');
      this.#failing = true;
    }
  }

  /**
   * The whole cluster's live state for a query: from Redis, these devices (or all), with their
   * last readings only when asked (they are the larger part).
   */
  override async read(scope: LiveScope = {}): Promise<LiveQuery> {
    await this.flush();
    const withReadings = scope.readings !== false;
    try {
      let activity: Map<string, string>;
      let last = new Map<string, string>();
      if (scope.ids) {
        const ids = [...scope.ids];
        if (ids.length === 0) return new ClusterLiveView(new Map(), new Map(), new Set());
        const m = this.#redis.multi().hmget(KEY.liveActivity, ...ids);
        if (withReadings) m.hmget(KEY.liveLast, ...ids);
        const replies = (await m.exec()) ?? [];
        activity = zip(ids, replies[0]?.[1] as (string | null)[] | undefined);
        if (withReadings) last = zip(ids, replies[1]?.[1] as (string | null)[] | undefined);
      } else {
        const m = this.#redis.multi().hgetall(KEY.liveActivity);
        if (withReadings) m.hgetall(KEY.liveLast);
        const replies = (await m.exec()) ?? [];
        activity = new Map(Object.entries((replies[0]?.[1] ?? {}) as Record<string, string>));
        if (withReadings) {
          last = new Map(Object.entries((replies[1]?.[1] ?? {}) as Record<string, string>));
        }
      }
      const owners = new Set<string>();
      for (const v of activity.values()) {
        const owner = v.slice(0, v.indexOf('|'));
        if (owner !== '') owners.add(owner);
      }
      const list = [...owners];
      const alive = new Set<string>();
      if (list.length > 0) {
        const found = await this.#redis.mget(...list.map((o) => KEY.instance(o)));
        list.forEach((o, i) => {
          if (found[i] !== null) alive.add(o);
        });
      }
      return new ClusterLiveView(activity, last, alive);
    } catch (err) {
      throw clusterError(err);
    }
  }
}

function merge(older: Delta, newer: Delta): Delta {
  return {
    connected: newer.connected ?? older.connected,
    lastActivity: Math.max(older.lastActivity, newer.lastActivity),
    lastSeen: Math.max(older.lastSeen ?? 0, newer.lastSeen ?? 0) || undefined,
    last: !older.last || (newer.last && newer.last.ts >= older.last.ts) ? newer.last : older.last,
  };
}

function zip(ids: readonly string[], values: (string | null)[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  ids.forEach((id, i) => {
    const v = values?.[i];
    if (v !== null && v !== undefined) m.set(id, v);
  });
  return m;
}

interface Entry {
  readonly online: boolean;
  readonly lastActivity: number;
  readonly lastSeen: number | undefined;
}

/** A snapshot of the cluster's live state, answering the same questions a LiveState does. */
class ClusterLiveView implements LiveQuery {
  readonly #activity: Map<string, string>;
  readonly #last: Map<string, string>;
  readonly #alive: Set<string>;

  constructor(activity: Map<string, string>, last: Map<string, string>, alive: Set<string>) {
    this.#activity = activity;
    this.#last = last;
    this.#alive = alive;
  }

  #entry(id: string): Entry | undefined {
    const v = this.#activity.get(id);
    if (v === undefined) return undefined;
    const [owner = '', la = '0', ls = ''] = v.split('|');
    return {
      online: owner !== '' && this.#alive.has(owner),
      lastActivity: Number(la),
      lastSeen: ls === '' ? undefined : Number(ls),
    };
  }

  #reading(id: string): AcceptedReading | undefined {
    const v = this.#last.get(id);
    if (v === undefined) return undefined;
    const r = JSON.parse(v.slice(v.indexOf('|') + 1)) as {
      ts: number;
      seq: number | null;
      data: Record<string, AcceptedReading['data'][string]>;
    };
    return { ts: r.ts, seq: r.seq ?? undefined, data: r.data };
  }

  status(id: string, intervalMs: number, now: number): DeviceStatus {
    const e = this.#entry(id);
    if (!e) return 'never';
    if (!e.online) return 'offline';
    return now - e.lastActivity > STALE_AFTER_INTERVALS * intervalMs ? 'stale' : 'online';
  }

  view(id: string, intervalMs: number, now: number): LiveView {
    const e = this.#entry(id);
    const last = this.#reading(id);
    return {
      status: this.status(id, intervalMs, now),
      lastSeen: e?.lastSeen === undefined ? null : new Date(e.lastSeen).toISOString(),
      last: last
        ? { ts: new Date(last.ts).toISOString(), seq: last.seq ?? null, data: { ...last.data } }
        : null,
    };
  }

  latest(where?: (id: string) => boolean): LatestReading[] {
    const out: LatestReading[] = [];
    for (const id of this.#last.keys()) {
      if (where && !where(id)) continue;
      const e = this.#entry(id);
      const last = this.#reading(id);
      if (!e || e.lastSeen === undefined || !last) continue;
      out.push({ id, lastSeen: e.lastSeen, last });
    }
    // Code-unit order, as the registry pages devices.
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}

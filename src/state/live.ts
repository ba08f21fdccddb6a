/**
 * Live device state kept in memory: connection, last reported status, when it was
 * last heard from and its last reading. Nothing here is on disk; it is rebuilt as
 * devices reconnect.
 *
 * Status is computed on read (`status()`), so it is exact whenever asked. Status
 * *events* go on the bus when a device connects, disconnects or speaks again after
 * going quiet; going quiet has no moment of its own, so a periodic sweep (`start()`)
 * finds devices that passed the stale limit and publishes that. Without the sweep
 * nothing is published for `stale` and everything else works the same.
 */
import type { LiveEvents } from './events.js';
import type { AcceptedReading, DeviceIdentity } from '../ingest/pipeline.js';

export type DeviceStatus = 'online' | 'offline' | 'stale' | 'never';
export const DEVICE_STATUSES: readonly DeviceStatus[] = ['online', 'offline', 'stale', 'never'];

/** A connected device silent for more than this many expected intervals is stale. */
export const STALE_AFTER_INTERVALS = 3;

interface Live {
  connected: boolean;
  /** Last time the device connected, published or disconnected (epoch ms). */
  lastActivity: number;
  /** Last accepted telemetry receive time (epoch ms). */
  lastSeen: number | undefined;
  last: AcceptedReading | undefined;
  /** The status last published for it; transitions are published once, by comparing to this. */
  reported: DeviceStatus;
}

export interface LiveView {
  readonly status: DeviceStatus;
  readonly lastSeen: string | null;
  readonly last: { ts: string; seq: number | null; data: Record<string, unknown> } | null;
}

/** A device's last reading, as `latest()` lists it. */
export interface LatestReading {
  readonly id: string;
  /** Receive time of the device's last accepted message (epoch ms). */
  readonly lastSeen: number;
  readonly last: AcceptedReading;
}

/** The questions the HTTP API asks of live state; a LiveState answers them, and so does a cluster's. */
export type LiveQuery = Pick<LiveState, 'status' | 'view' | 'latest'>;

/** What a live query needs: these devices only (every device when absent), with last readings or not. */
export interface LiveScope {
  readonly ids?: readonly string[] | undefined;
  readonly readings?: boolean | undefined;
}

export interface LiveOptions {
  /** Where status transitions are published. */
  readonly events: LiveEvents;
  /** The type and district an event names; the registry's `get`. Unknown ids publish nothing. */
  readonly identify: (id: string) => Pick<DeviceIdentity, 'id' | 'type' | 'district'> | undefined;
}

export interface SweepOptions {
  /** A device's expected reporting interval in ms (its type's `x-interval-seconds`). */
  readonly intervalMsOf: (id: string) => number;
  /** How often to look for devices that went quiet, ms. Default 5000; a `stale` event lags by up to this. */
  readonly everyMs?: number;
}

export class LiveState {
  readonly #byDevice = new Map<string, Live>();
  readonly #events: LiveEvents | undefined;
  readonly #identify: LiveOptions['identify'] | undefined;
  // Kept as transitions happen: metrics read it on every scrape.
  #connectedCount = 0;
  #sweep: NodeJS.Timeout | undefined;

  constructor(options?: LiveOptions) {
    this.#events = options?.events;
    this.#identify = options?.identify;
  }

  #entry(id: string, now: number): Live {
    let e = this.#byDevice.get(id);
    if (!e) {
      e = {
        connected: false,
        lastActivity: now,
        lastSeen: undefined,
        last: undefined,
        reported: 'never',
      };
      this.#byDevice.set(id, e);
    }
    return e;
  }

  /** Records the transition and publishes it if someone listens; a repeat is not a transition. */
  #report(id: string, e: Live, status: DeviceStatus, at: number): void {
    if (e.reported === status) return;
    e.reported = status;
    const events = this.#events;
    if (!events || events.size === 0) return;
    const device = this.#identify?.(id);
    if (device) events.status(device, status, at);
  }

  connected(id: string, now: number): void {
    const e = this.#entry(id, now);
    if (!e.connected) this.#connectedCount++;
    e.connected = true;
    // Never backwards: calls carry the time they were made, not the time they land.
    if (now > e.lastActivity) e.lastActivity = now;
    this.#report(id, e, 'online', now);
  }

  /** A disconnect, or an `offline` status message (the Last Will). */
  disconnected(id: string, now: number): void {
    const e = this.#entry(id, now);
    if (e.connected) this.#connectedCount--;
    e.connected = false;
    if (now > e.lastActivity) e.lastActivity = now;
    this.#report(id, e, 'offline', now);
  }

  /**
   * Readings made durable. `now` is the receive time, which can be older than a
   * disconnect recorded while the commit was pending: times only move forward, and a
   * commit that lands after a disconnect does not bring the device back online.
   */
  accepted(id: string, readings: readonly AcceptedReading[], now: number): void {
    const e = this.#entry(id, now);
    if (e.lastSeen === undefined || now > e.lastSeen) e.lastSeen = now;
    if (now > e.lastActivity) e.lastActivity = now;
    for (const r of readings) if (!e.last || r.ts >= e.last.ts) e.last = r;
    if (e.reported === 'stale' && e.connected) this.#report(id, e, 'online', now);
  }

  /** Drops what is known about a device (it was deleted); a later connect starts afresh. */
  forget(id: string): void {
    const e = this.#byDevice.get(id);
    if (e?.connected) this.#connectedCount--;
    this.#byDevice.delete(id);
  }

  /**
   * never: not heard from since start; offline: disconnected or said so;
   * stale: connected but silent for 3× its expected interval; else online.
   */
  status(id: string, intervalMs: number, now: number): DeviceStatus {
    const e = this.#byDevice.get(id);
    if (!e) return 'never';
    if (!e.connected) return 'offline';
    return now - e.lastActivity > STALE_AFTER_INTERVALS * intervalMs ? 'stale' : 'online';
  }

  view(id: string, intervalMs: number, now: number): LiveView {
    const e = this.#byDevice.get(id);
    return {
      status: this.status(id, intervalMs, now),
      lastSeen: e?.lastSeen === undefined ? null : new Date(e.lastSeen).toISOString(),
      last: e?.last
        ? {
            ts: new Date(e.last.ts).toISOString(),
            seq: e.last.seq ?? null,
            data: { ...e.last.data },
          }
        : null,
    };
  }

  /** Devices that have a last reading, sorted by id; `where` narrows by id. */
  latest(where?: (id: string) => boolean): LatestReading[] {
    const out: LatestReading[] = [];
    for (const [id, e] of this.#byDevice) {
      if (!e.last || e.lastSeen === undefined || (where && !where(id))) continue;
      out.push({ id, lastSeen: e.lastSeen, last: e.last });
    }
    // Code-unit order, as the registry pages devices.
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get connectedCount(): number {
    return this.#connectedCount;
  }

  /**
   * What HTTP queries are answered from. In one gateway that is this object (the scope changes
   * nothing); a cluster's live state reads every instance's devices from Redis instead.
   */
  read(_scope?: LiveScope): Promise<LiveQuery> {
    return Promise.resolve(this);
  }

  /**
   * Starts the stale sweep: every `everyMs`, each device still reported online but
   * silent past 3× its interval gets a `stale` event dated when it crossed the limit.
   * One pass is a walk over the map (no allocation for quiet devices); the timer is
   * unref'd so it never holds the process open. Calling it again changes nothing.
   */
  start(options: SweepOptions): void {
    if (this.#sweep) return;
    const { intervalMsOf, everyMs = 5_000 } = options;
    this.#sweep = setInterval(() => this.#sweepOnce(intervalMsOf, Date.now()), everyMs);
    this.#sweep.unref();
  }

  stop(): void {
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  #sweepOnce(intervalMsOf: (id: string) => number, now: number): void {
    for (const [id, e] of this.#byDevice) {
      if (!e.connected || e.reported !== 'online') continue;
      const limit = STALE_AFTER_INTERVALS * intervalMsOf(id);
      if (now - e.lastActivity > limit) this.#report(id, e, 'stale', e.lastActivity + limit);
    }
  }
}

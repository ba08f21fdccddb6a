/**
 * Ingest: runs a telemetry message through the pipeline and decides when it may be
 * acknowledged. Accepted points are committed (group commit) before the returned
 * promise resolves; rejected messages are logged, counted and told to whoever listens
 * (the gateway forwards them to the device's `errors` topic), and resolve at once (MQTT
 * 3.1.1 has no negative ack). Status messages and rate-limit refusals are recorded here too,
 * so every word a device or operator reads about its messages comes from this module.
 */
import type { Logger } from 'pino';
import { ERR_SPOOL_WRITE, REJECT, TaihuError, type RejectCode } from '../errors.js';
import type { Point } from '../points/point.js';
import type { Catalog } from './catalog.js';
import {
  createPipeline,
  type AcceptedReading,
  type DeviceIdentity,
  type PipelineOptions,
  type Reason,
  type Rejection,
} from './pipeline.js';

/** A refused message as ingest hands it to the rejection log (src/state/rejections.ts). */
export interface NewRejection {
  /** ISO 8601 receive time. */
  readonly receivedAt: string;
  readonly deviceId: string;
  readonly type: string;
  readonly topic: string;
  readonly code: string;
  readonly reasons: readonly Reason[];
  readonly payload: Buffer;
}

/** Where ingest outcomes are counted (Prometheus metrics in the gateway). */
export interface IngestCounter {
  accepted(type: string, readings: number): void;
  rejected(type: string, code: string): void;
  /** Seconds from receiving an accepted message to its durable commit (its ack). */
  ackLatency(seconds: number): void;
}

export interface IngestDeps {
  readonly catalog: Catalog;
  /** Makes points durable; the message may be acknowledged once it resolves. */
  readonly commit: (points: readonly Point[]) => Promise<void>;
  /** The rejection log (src/state/): ingest only adds to it. */
  readonly rejections: { record(rejection: NewRejection): void };
  /** Live state (src/state/): last values and when each device was last heard from. */
  readonly live: {
    accepted(id: string, readings: readonly AcceptedReading[], now: number): void;
    /** A device's `online` / `offline` status message. */
    connected(id: string, now: number): void;
    disconnected(id: string, now: number): void;
  };
  /** Hears each message's readings once durable (the HTTP stream); none: nobody hears. */
  readonly events?: {
    reading(device: DeviceIdentity, readings: readonly AcceptedReading[]): void;
  };
  readonly log: Logger;
  readonly options: PipelineOptions;
  readonly metrics?: IngestCounter | undefined;
  readonly now?: () => number;
}

/** Hears each rejected message (the gateway publishes it on the device's `errors` topic). */
export type RejectionListener = (
  device: DeviceIdentity,
  topic: string,
  rejection: Rejection,
) => void;

/** A device's message rate, as a QoS 0 refusal reports it. */
export interface RateLimit {
  readonly rate: number;
  readonly burst: number;
  /** Messages dropped since the previous report, counted but not recorded one by one. */
  readonly unreported: number;
}

export class Ingest {
  readonly #deps: IngestDeps;
  readonly #pipeline: ReturnType<typeof createPipeline>;
  readonly #now: () => number;
  readonly #listeners: RejectionListener[] = [];

  constructor(deps: IngestDeps) {
    this.#deps = deps;
    this.#pipeline = createPipeline(deps.catalog, deps.options);
    this.#now = deps.now ?? Date.now;
  }

  /** Resolves when the message may be acknowledged; rejects if it must not be. */
  telemetry(device: DeviceIdentity, topic: string, payload: Buffer): Promise<void> | undefined {
    const t0 = performance.now();
    const now = this.#now();
    const result = this.#pipeline(device, payload, now);
    if (!result.ok) {
      this.reject(device, topic, payload, result.rejection, now);
      return undefined;
    }
    return this.#deps.commit(result.points).then(
      () => {
        const m = this.#deps.metrics;
        if (m) {
          m.accepted(device.type, result.points.length);
          m.ackLatency((performance.now() - t0) / 1000);
        }
        this.#deps.live.accepted(device.id, result.readings, now);
        // Synchronous and free without listeners; a listener's error never reaches the ack.
        this.#deps.events?.reading(device, result.readings);
      },
      (err: unknown) => {
        this.#deps.log.error(
          { err, deviceId: device.id },
          'spool write failed; message not acknowledged',
        );
        throw err instanceof TaihuError ? err : ERR_SPOOL_WRITE(err);
      },
    );
  }

  /** Adds a listener for rejected messages; a listener's error never reaches the ack. */
  onRejected(listener: RejectionListener): void {
    this.#listeners.push(listener);
  }

  /** A status message: `online` / `offline` moves the live state; anything else is refused. */
  status(device: DeviceIdentity, topic: string, payload: Buffer): void {
    const text = payload.toString('utf8').trim();
    const now = this.#now();
    if (text === 'online') this.#deps.live.connected(device.id, now);
    else if (text === 'offline') this.#deps.live.disconnected(device.id, now);
    else {
      this.reject(device, topic, payload, {
        code: REJECT.STATUS_INVALID,
        reasons: [{ pointer: '', message: 'a status payload is "online" or "offline"' }],
      });
    }
  }

  /** A QoS 0 message dropped for the device's rate, with the count dropped since the last one. */
  rateLimited(device: DeviceIdentity, topic: string, payload: Buffer, limit: RateLimit): void {
    const since =
      limit.unreported > 0 ? `; ${limit.unreported} more dropped since the previous notice` : '';
    this.reject(device, topic, payload, {
      code: REJECT.RATE_LIMITED,
      reasons: [
        {
          pointer: '',
          message: `QoS 0 messages over ${limit.rate} messages/s (bursts of ${limit.burst}) from this device are dropped, not stored (TAIHU_DEVICE_RATE, TAIHU_DEVICE_BURST; QoS 1 is slowed instead, never dropped)${since}`,
        },
      ],
    });
  }

  /** Counts a refusal that is not recorded one by one (a flood's summarised messages). */
  counted(device: DeviceIdentity, code: RejectCode): void {
    this.#deps.metrics?.rejected(device.type, code);
  }

  /** Records a refused message everywhere a person or the device will look. */
  reject(
    device: DeviceIdentity,
    topic: string,
    payload: Buffer,
    rejection: Rejection,
    now = this.#now(),
  ): void {
    this.#deps.metrics?.rejected(device.type, rejection.code);
    this.#deps.rejections.record({
      receivedAt: new Date(now).toISOString(),
      deviceId: device.id,
      type: device.type,
      topic,
      code: rejection.code,
      reasons: rejection.reasons,
      payload,
    });
    this.#deps.log.debug({ deviceId: device.id, topic, code: rejection.code }, 'message rejected');
    for (const listener of this.#listeners) {
      try {
        listener(device, topic, rejection);
      } catch (err) {
        this.#deps.log.warn({ err, deviceId: device.id }, 'rejection listener failed');
      }
    }
  }
}

/**
 * Ingest: runs a telemetry message through the pipeline and decides when it may be
 * acknowledged. Accepted points are committed (group commit) before the returned
 * promise resolves; rejected messages are logged, reported on the device's
 * `errors` topic and counted, and resolve at once (MQTT 3.1.1 has no negative ack).
 */
import type { Logger } from 'pino';
import { CODES, TaihuError } from '../errors.js';
import type { Point } from '../store/types.js';
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
  readonly live: { accepted(id: string, readings: readonly AcceptedReading[], now: number): void };
  /** Hears each message's readings once durable (the HTTP stream); none: nobody hears. */
  readonly events?: {
    reading(device: DeviceIdentity, readings: readonly AcceptedReading[]): void;
  };
  readonly log: Logger;
  readonly options: PipelineOptions;
  readonly metrics?: IngestCounter | undefined;
  /** Publishes a rejection notice to the device (the broker's `errors` topic). */
  readonly notify: (device: DeviceIdentity, topic: string, rejection: Rejection) => void;
  readonly now?: () => number;
}

export class Ingest {
  readonly #deps: IngestDeps;
  readonly #pipeline: ReturnType<typeof createPipeline>;
  readonly #now: () => number;

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
        throw err instanceof TaihuError
          ? err
          : new TaihuError(CODES.SPOOL_IO, 'spool write failed', {
              cause: err,
              retryable: true,
            });
      },
    );
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
    this.#deps.notify(device, topic, rejection);
  }
}

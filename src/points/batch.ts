/**
 * Points on their way into a store, and the two steps that write them. Writing is split so the
 * spool's drainer can pipeline (src/spool/drainer.ts): it prepares batch n+1, the CPU work of
 * encoding it, while batch n is in flight, and a retry sends the prepared batch again without
 * encoding it twice.
 */
import type { Point } from './point.js';

/**
 * Points in the form they are at hand: decoded, or still the spool record payloads that hold
 * them (codec.ts), which a store can read without building a Point each (the embedded store
 * decodes them in its writer thread; the InfluxDB store turns their JSON into line protocol).
 */
export interface Batch {
  /** How many points. */
  readonly count: number;
  /** The records holding the points, format byte first, when they are still encoded. */
  readonly payloads?: readonly Uint8Array[] | undefined;
  /** The points; decoded on the first call when they were encoded. */
  points(): readonly Point[];
}

/** A batch a store has encoded for itself; only the store that prepared it can write it. */
export interface PreparedBatch {
  /** How many points. */
  readonly count: number;
}

/** What a batch is written into: the write side of every store (src/store/types.ts). */
export interface BatchWriter {
  /** Short name for logs and /ready, e.g. `embedded` or `influxdb`. */
  readonly kind: string;
  /**
   * Does the CPU work of writing `batch` now and returns it ready to send. Never throws: a
   * failure to encode is the rejection of its write().
   */
  prepare(batch: Batch): PreparedBatch;
  /**
   * Writes a batch this store prepared, durably: resolves only once it is committed. Writing it
   * again sends the same data again (a retry) with the same outcome.
   */
  write(batch: PreparedBatch): Promise<void>;
}

/** A batch of decoded points. */
export function pointBatch(points: readonly Point[]): Batch {
  return { count: points.length, points: () => points };
}

/** Prepares and writes `points` at once, for a caller that does not pipeline its writes. */
export function writePoints(to: BatchWriter, points: readonly Point[]): Promise<void> {
  return to.write(to.prepare(pointBatch(points)));
}

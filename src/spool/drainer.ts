/**
 * Moves spooled records into the store, in order, in batches (DESIGN §6). A batch is confirmed
 * to the spool only after the store accepted it, so a crash in between replays it; the store
 * overwrites the same series + timestamp, so a replay is harmless.
 *
 * - One write in flight at a time: records reach the store in spool order, and a later point
 *   for the same series and timestamp overwrites an earlier one as it did on the device.
 * - Pipelined around that write: while batch n is in flight, batch n+1 is read and prepared
 *   (`BatchWriter#prepare`: the store encodes it from the records as they are on disk), and
 *   batch n−1's checkpoint is written. Confirms follow the writes in order and never wait in the
 *   loop: a later confirm covers an earlier one, and a crash between a write and its checkpoint
 *   only replays. A serial loop left both the drainer and influxd idle half the time
 *   (`taihu bench drain`).
 * - Retryable failures (anything whose `retryable` is not `false`: a network error is not
 *   proof the data is bad) retry the same batch forever with exponential backoff and full
 *   jitter, or after the error's `retryAfterMs` when the store said how long to wait. The spool
 *   is the buffer; giving up would be a silent drop.
 * - `retryable === false` means "this data will never be accepted" (HTTP 400/422, a bad
 *   line): the batch is halved until the bad points are alone, those go to `onRejected`, the
 *   rest is written, and the drainer moves on. A store must therefore report errors that are
 *   not about the data (401, 404 bucket, 5xx) as retryable.
 */
import { CODES, ERR_STORE_REFUSED, TaihuError } from '../errors.js';
import { type Batch, type BatchWriter, pointBatch } from '../points/batch.js';
import type { Point } from '../points/point.js';
import type { Spool, SpoolLogger, SpoolRecord } from './spool.js';

export interface DrainerOptions {
  /** Most points per store write; a single record larger than this is written alone. */
  readonly maxBatchPoints?: number | undefined;
  /** How long the oldest record of a batch may wait for company, ms, counted from its append. */
  readonly maxBatchAgeMs?: number | undefined;
  /** Ceiling of the first retry delay, ms; doubled per attempt up to maxBackoffMs. */
  readonly baseBackoffMs?: number | undefined;
  /** Ceiling of any retry delay the drainer picks itself, ms. */
  readonly maxBackoffMs?: number | undefined;
  readonly logger: SpoolLogger;
  /** Points the store refused for good, with its reason; for the rejection log. */
  readonly onRejected: (points: Point[], error: TaihuError) => void;
  /** Source of jitter in [0, 1); tests make it deterministic. */
  readonly random?: (() => number) | undefined;
}

export const defaultDrainerOptions = {
  // Points per store write; InfluxDB's write guidance is batches of about 5,000 lines.
  maxBatchPoints: 5_000,
  // A lone record waits at most this for a fuller batch, ms, which bounds publish→queryable;
  // 0 = write whatever is there at once.
  maxBatchAgeMs: 250,
  // First retry within [0, 100] ms (full jitter), the ceiling doubling per attempt.
  baseBackoffMs: 100,
  // Retry delay ceiling, ms; a retryAfterMs from the store overrides it.
  maxBackoffMs: 30_000,
} as const;

/** Most bytes of records read from the spool per call. */
const READ_BYTES = 8 * 1024 * 1024;

/** Thrown inside the loop when stop()'s deadline passed: leave without confirming. */
class Abandoned extends Error {}

/** Records taken from the spool as one store write. */
interface Taken {
  /** Sequence number of the last record: what a confirm covers once the store accepted it. */
  readonly lastSeq: number;
  /** Points in the batch. */
  readonly count: number;
  /** The batch's points, decoded if they were not already; when a part must be found. */
  readonly points: () => Point[];
  /** Sends the prepared write; again on a retry. */
  readonly send: () => Promise<void>;
}

export class Drainer {
  readonly #spool: Spool;
  readonly #store: BatchWriter;
  readonly #log: SpoolLogger;
  readonly #onRejected: (points: Point[], error: TaihuError) => void;
  readonly #random: () => number;
  readonly #maxBatchPoints: number;
  readonly #maxBatchAgeMs: number;
  readonly #baseBackoffMs: number;
  readonly #maxBackoffMs: number;

  /** Records read from the spool and not yet confirmed; the next batch is a prefix of them. */
  #carry: SpoolRecord[] = [];
  #loop: Promise<void> | undefined;
  /** Aborted by stop(): waits for data or for a batch to fill end at once. */
  #wake = new AbortController();
  /** Aborted at stop()'s deadline: backoff sleeps end and nothing more is confirmed. */
  #deadline = new AbortController();
  /** Aborted when the loop has ended: a checkpoint retry waiting to run is dropped. */
  #done = new AbortController();
  /** Last sequence number of the last batch the store accepted; confirms go no further. */
  #accepted = 0;
  #checkpointFailures = 0;
  #checkpointRetry = false;
  #stopping = false;
  #stopped: Promise<void> | undefined;

  #pointsWritten = 0;
  #batches = 0;
  #retries = 0;
  #rejectedPoints = 0;
  #lastWriteLatencyMs = 0;
  #lastError: Error | undefined;

  constructor(spool: Spool, store: BatchWriter, opts: DrainerOptions) {
    const d = defaultDrainerOptions;
    this.#spool = spool;
    this.#store = store;
    this.#log = opts.logger;
    this.#onRejected = opts.onRejected;
    this.#random = opts.random ?? Math.random;
    this.#maxBatchPoints = Math.max(1, opts.maxBatchPoints ?? d.maxBatchPoints);
    this.#maxBatchAgeMs = Math.max(0, opts.maxBatchAgeMs ?? d.maxBatchAgeMs);
    this.#baseBackoffMs = Math.max(0, opts.baseBackoffMs ?? d.baseBackoffMs);
    this.#maxBackoffMs = Math.max(this.#baseBackoffMs, opts.maxBackoffMs ?? d.maxBackoffMs);
  }

  get pointsWritten(): number {
    return this.#pointsWritten;
  }
  /** Batches the store accepted; each one's confirm follows without holding up the next. */
  get batches(): number {
    return this.#batches;
  }
  /** Failed write attempts that were retried. */
  get retries(): number {
    return this.#retries;
  }
  get rejectedPoints(): number {
    return this.#rejectedPoints;
  }
  /** Duration of the last successful store write, ms. */
  get lastWriteLatencyMs(): number {
    return this.#lastWriteLatencyMs;
  }
  /** The last failed write's error while the store is failing; undefined once a write succeeds. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /**
   * Writes what the spool holds until it is empty or `deadlineMs` has passed, then stops.
   * Whatever is not confirmed by then stays in the spool and is replayed on the next start.
   */
  stop(deadlineMs: number): Promise<void> {
    this.#stopped ??= this.#stop(deadlineMs);
    return this.#stopped;
  }

  async #stop(deadlineMs: number): Promise<void> {
    const loop = this.#loop;
    this.#stopping = true;
    if (loop === undefined) return;
    this.#wake.abort();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#deadline.abort();
        resolve();
      }, deadlineMs);
    });
    await Promise.race([loop, deadline]);
    clearTimeout(timer);
    if (this.#deadline.signal.aborted) {
      this.#log.warn(
        { deadlineMs, pendingRecords: this.#spool.pendingRecords },
        'drainer stopped at its deadline; unconfirmed records are replayed on the next start',
      );
    }
  }

  async #run(): Promise<void> {
    let failures = 0;
    /** Taken from the spool and not yet accepted by the store: written before anything else. */
    let batch: Taken | undefined;
    /** The batch after it, being read and prepared while `batch` is in flight. */
    let next: Promise<Taken | undefined> | undefined;
    try {
      while (!this.#deadline.signal.aborted) {
        try {
          if (batch === undefined) {
            const pending = next ?? this.#next();
            next = undefined;
            batch = await pending;
            if (batch === undefined) {
              // Stopping, and the spool has nothing more: leave only once it is all confirmed.
              await this.#spool.confirm(this.#accepted);
              return;
            }
          }
          const written = this.#writeBatch(batch);
          if (next === undefined) {
            next = this.#next();
            next.catch(() => {}); // awaited, and so reported, at the top of the loop
          }
          await written;
          this.#accepted = batch.lastSeq;
          batch = undefined;
          this.#batches++;
          failures = 0;
          this.#confirm();
        } catch (err) {
          if (err instanceof Abandoned || this.#deadline.signal.aborted) return;
          if (err instanceof TaihuError && err.code === CODES.SPOOL_CLOSED) {
            this.#log.warn({}, 'drainer: spool closed before the drainer was stopped');
            return;
          }
          // A spool read or checkpoint failed (disk trouble): back off and go on; the loop
          // never ends by itself while the gateway runs. A batch in hand is written again.
          failures++;
          this.#log.error({ err, failures }, 'drainer: spool operation failed; retrying');
          await sleep(this.#backoff(failures), this.#deadline.signal);
        }
      }
    } finally {
      this.#done.abort();
    }
  }

  /**
   * Takes the next batch out of `#carry` and prepares its write. Undefined when stopping and
   * the spool has nothing more.
   */
  async #next(): Promise<Taken | undefined> {
    for (;;) {
      const n = await this.#collect();
      if (n === undefined) return undefined;
      if (n === 0) continue;
      const records = this.#carry.splice(0, n);
      let count = 0;
      for (const r of records) count += r.count;
      const points = (): Point[] => {
        const all: Point[] = [];
        for (const r of records) for (const p of r.points) all.push(p);
        return all;
      };
      const lastSeq = (records.at(-1) as SpoolRecord).seq;
      const send = this.#prepare({ count, payloads: records.map((r) => r.payload), points });
      return { lastSeq, count, points, send };
    }
  }

  /** The store's prepared write of `batch`: what sends it, again on each retry. */
  #prepare(batch: Batch): () => Promise<void> {
    const store = this.#store;
    try {
      const prepared = store.prepare(batch);
      return () => store.write(prepared);
    } catch (err) {
      return () => Promise.reject(err);
    }
  }

  /**
   * Checkpoints what the store accepted without waiting for it. A failed checkpoint is retried
   * after a backoff, and any later confirm covers it too.
   */
  #confirm(): void {
    if (this.#deadline.signal.aborted) return;
    this.#spool.confirm(this.#accepted).then(
      () => {
        this.#checkpointFailures = 0;
      },
      (err: unknown) => this.#checkpointFailed(err),
    );
  }

  #checkpointFailed(err: unknown): void {
    // A closed spool is noticed by the loop at its next read.
    if (err instanceof TaihuError && err.code === CODES.SPOOL_CLOSED) return;
    this.#checkpointFailures++;
    this.#log.error(
      { err, failures: this.#checkpointFailures },
      'drainer: spool checkpoint failed; retrying',
    );
    if (this.#checkpointRetry) return;
    this.#checkpointRetry = true;
    void sleep(this.#backoff(this.#checkpointFailures), this.#done.signal).then(() => {
      this.#checkpointRetry = false;
      if (!this.#done.signal.aborted) this.#confirm();
    });
  }

  /**
   * Makes the first records of `#carry` the next batch and returns how many: up to
   * maxBatchPoints, waiting for more while the oldest is younger than maxBatchAgeMs. Undefined
   * when stopping and the spool has nothing more.
   */
  async #collect(): Promise<number | undefined> {
    const max = this.#maxBatchPoints;
    for (;;) {
      let n = 0;
      let points = 0;
      for (const r of this.#carry) {
        if (n > 0 && points + r.count > max) break;
        n++;
        points += r.count;
      }
      if (n < this.#carry.length || points >= max) return n;
      // Every record holds at least one point: this many records is never more than a batch.
      const batch = await this.#spool.read(max - points, READ_BYTES);
      if (batch.records.length > 0) {
        for (const r of batch.records) this.#carry.push(r);
        continue;
      }
      const oldest = this.#carry[0];
      if (oldest === undefined) {
        if (this.#stopping) return undefined;
        await this.#spool.waitForData(this.#wake.signal);
        continue;
      }
      const waitMs = oldest.appendedAt + this.#maxBatchAgeMs - Date.now();
      if (this.#stopping || waitMs <= 0) return n;
      if (!(await this.#waitForData(waitMs))) return n;
    }
  }

  /** Waits for unread records at most `ms`; false when none came. */
  async #waitForData(ms: number): Promise<boolean> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), ms);
    const onWake = (): void => ctl.abort();
    this.#wake.signal.addEventListener('abort', onWake, { once: true });
    try {
      return await this.#spool.waitForData(ctl.signal);
    } finally {
      clearTimeout(timer);
      this.#wake.signal.removeEventListener('abort', onWake);
    }
  }

  /** Writes a batch, isolating and rejecting the points the store refuses for good. */
  async #writeBatch(batch: Taken): Promise<void> {
    const refused = await this.#writeRetrying(batch.count, batch.send);
    if (refused === undefined) return;
    const points = batch.points();
    // Fewer points than the batch held: records that do not decode (the spool logged them) were
    // what the store refused, perhaps alone; what is left is written as if it were new.
    if (points.length < batch.count) await this.#writeAll(points);
    else await this.#split(points, refused);
  }

  /** Writes `points`, isolating and rejecting the ones the store refuses for good. */
  async #writeAll(points: Point[]): Promise<void> {
    if (points.length === 0) return;
    const refused = await this.#writeRetrying(points.length, this.#prepare(pointBatch(points)));
    if (refused !== undefined) await this.#split(points, refused);
  }

  /** After `points` were refused together: writes each half, down to the refused points. */
  async #split(points: Point[], refused: TaihuError): Promise<void> {
    if (points.length === 1) {
      this.#reject(points, refused);
      return;
    }
    // Halving finds k bad points among n in about 2·k·log2(n) writes; order is kept.
    const mid = points.length >>> 1;
    await this.#writeAll(points.slice(0, mid));
    await this.#writeAll(points.slice(mid));
  }

  /** Undefined once written; the error when the store refused the data for good. */
  async #writeRetrying(points: number, send: () => Promise<void>): Promise<TaihuError | undefined> {
    for (let attempt = 1; ; attempt++) {
      if (this.#deadline.signal.aborted) throw new Abandoned();
      const t0 = performance.now();
      try {
        await send();
        this.#lastWriteLatencyMs = performance.now() - t0;
        this.#pointsWritten += points;
        this.#lastError = undefined;
        return undefined;
      } catch (err) {
        if (isRefusal(err)) return asTaihuError(err);
        this.#retries++;
        this.#lastError = err instanceof Error ? err : new Error(String(err));
        const hinted = retryAfterMs(err);
        const delayMs = hinted ?? this.#backoff(attempt);
        this.#log.warn(
          { err, attempt, delayMs, points, store: this.#store.kind },
          'store write failed; retrying the same batch',
        );
        await sleep(delayMs, this.#deadline.signal);
      }
    }
  }

  #reject(points: Point[], error: TaihuError): void {
    this.#rejectedPoints += points.length;
    this.#log.warn(
      { err: error, points: points.length, measurement: points[0]?.measurement },
      'store refused points; sent to the rejection log',
    );
    try {
      this.#onRejected(points, error);
    } catch (err) {
      this.#log.error({ err }, 'drainer onRejected callback threw');
    }
  }

  /** Full jitter: uniform in [0, min(max, base·2^(attempt-1))]. */
  #backoff(attempt: number): number {
    const ceiling = Math.min(this.#maxBackoffMs, this.#baseBackoffMs * 2 ** (attempt - 1));
    return Math.round(this.#random() * ceiling);
  }
}

function isRefusal(err: unknown): boolean {
  return (
    typeof err === 'object' && err !== null && (err as { retryable?: unknown }).retryable === false
  );
}

function asTaihuError(err: unknown): TaihuError {
  if (err instanceof TaihuError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return ERR_STORE_REFUSED(err, message);
}

function retryAfterMs(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const v = (err as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

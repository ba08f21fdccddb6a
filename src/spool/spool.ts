/**
 * The durable write-ahead spool: the reason "PUBACK means stored" holds while the store is down
 * (DESIGN §6). `append` resolves only after the record's bytes are fdatasync'd, and that is
 * the moment a QoS 1/2 message may be acknowledged; the drainer reads records back in order
 * and `confirm`s them once the store has them, and only then is their disk space given back.
 *
 * On disk, under `dir`: append-only segment files `NNNNNNNNNNNNNNNNNNNN.seg` (the zero-padded
 * sequence number of their first record, framing in frames.ts) and `checkpoint`, the last
 * confirmed sequence number, replaced atomically (temp file, fsync, rename, fsync dir).
 *
 * Failure handling, decided once:
 * - Torn or corrupt tail of the newest segment (a crash inside a write, or garbage after the
 *   last good record): found on open, the file is truncated to the last intact record with a
 *   warning naming file and offset. Nothing after it was acknowledged (an ack follows the
 *   fdatasync of the whole group), so nothing acknowledged is lost to a crash.
 * - A corrupt record with intact records after it (bit rot in any segment, found on open for
 *   the newest segment and while reading for the others): logged at error with file, offset
 *   and the sequence numbers lost, and reading resumes at the next intact record of the
 *   segment (or the next segment). Every bad frame moves the reader forward by at least one
 *   byte, so corruption never loops the drainer or stalls it.
 * - A CRC-intact record whose payload cannot be decoded (a format from a newer version):
 *   logged at error with its sequence number and skipped, for the same reason.
 * - A failed write or fdatasync: every append of the group rejects (retryable, so the message
 *   is not acknowledged and the device sends it again) and the segment is truncated back to
 *   its durable end. The pages are never fsync'd again and trusted: after a failed fsync
 *   Linux may have dropped them. If even the truncation fails, the next group starts a new
 *   segment.
 */
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  ERR_CONFIG,
  ERR_SPOOL_CLOSED,
  ERR_SPOOL_CONFIRM,
  ERR_SPOOL_FULL,
  ERR_SPOOL_IO,
  ERR_SPOOL_READ,
  ERR_SPOOL_RECORD_TOO_LARGE,
} from '../errors.js';
import type { Point } from '../points/point.js';
import {
  decodePayload,
  encodePoints,
  payloadBytes,
  payloadCount,
  writePayload,
} from '../points/codec.js';
import {
  FrameReader,
  HEADER_BYTES,
  MAX_PAYLOAD,
  MIN_FRAME,
  frameTime,
  newFrame,
  sealFrame,
} from './frames.js';

export type SpoolState = 'ok' | 'backpressure';

/** What the spool needs of a logger; a pino Logger fits. */
export interface SpoolLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SpoolOptions {
  /** Disk quota of the segment files, bytes (`TAIHU_SPOOL_MAX_BYTES`). */
  readonly maxBytes?: number | undefined;
  /** A segment is sealed when the next group would take it past this size, bytes. */
  readonly segmentBytes?: number | undefined;
  /** Fraction of maxBytes at which appends start waiting. */
  readonly highWatermark?: number | undefined;
  /** Fraction of maxBytes below which waiting appends go ahead again. */
  readonly lowWatermark?: number | undefined;
  /**
   * How long the first append of a group waits for company, ms (`TAIHU_COMMIT_WINDOW`); 0 =
   * next turn of the loop. Appends arriving during an fdatasync always form the next group,
   * whatever the window. Measured here (fdatasync ≈ 0.3 ms), 1- to 100-way: 2 ms gives p50
   * 2.4–2.8 ms and ≈ 400 fdatasyncs/s at any load; 0 gives p50 0.16–0.53 ms but up to ≈ 6,000
   * fdatasyncs/s. The window trades latency for IOPS, which a cloud volume bills.
   */
  readonly commitWindowMs?: number | undefined;
  /**
   * How long an append may wait in backpressure before it rejects, ms. Waiting withholds the
   * PUBACK, so the device's in-flight window fills and it stops sending; the bound keeps the
   * held messages' memory bounded, and the rejection (retryable) still acknowledges nothing.
   */
  readonly maxWaitMs?: number | undefined;
  readonly logger: SpoolLogger;
  /** Called on every change of `state` (for /ready and metrics); the spool logs it too. */
  readonly onStateChange?: ((state: SpoolState) => void) | undefined;
}

export const defaultSpoolOptions = {
  // Disk quota, bytes; 1 GiB. No "off": an unbounded spool fills the disk during an outage.
  maxBytes: 1024 ** 3,
  // 64 MiB; lowered to lowWatermark*maxBytes/2 so deleting confirmed segments ends backpressure.
  segmentBytes: 64 * 1024 ** 2,
  // Appends wait from 90% of maxBytes; 1 = only when the quota is full.
  highWatermark: 0.9,
  // Waiting appends resume under 70%; the gap keeps the state from flapping.
  lowWatermark: 0.7,
  // Group-commit window, ms; 0 = next turn of the loop (lower latency, more fdatasyncs).
  commitWindowMs: 0,
  // Then a retryable TAIHU_ERR_SPOOL_FULL, ms; 0 = reject at once, Infinity = wait forever.
  maxWaitMs: 30_000,
} as const;

export interface SpoolRecord {
  readonly seq: number;
  /** When the record was appended, epoch ms (from its header). */
  readonly appendedAt: number;
  /** How many points the record holds. */
  readonly count: number;
  /** The record as the codec wrote it, format byte first (src/points/codec.ts). */
  readonly payload: Buffer;
  /** The record's points, decoded on first use; none if the record cannot be decoded. */
  readonly points: Point[];
}

/**
 * A record read from disk. Its points are decoded only when asked for: a store that decodes
 * payloads itself (the embedded store, in its writer thread) never makes the loop pay for it.
 */
class ReadRecord implements SpoolRecord {
  readonly seq: number;
  readonly appendedAt: number;
  readonly count: number;
  readonly payload: Buffer;
  #points: Point[] | undefined;
  /** Where it was read, for the log line if it does not decode. */
  readonly #log: SpoolLogger;
  readonly #file: string;
  readonly #offset: number;

  constructor(
    fr: FrameReader,
    payload: Buffer,
    count: number,
    points: Point[] | undefined,
    log: SpoolLogger,
  ) {
    this.seq = fr.seq;
    this.appendedAt = fr.appendedAt;
    this.payload = payload;
    this.count = count;
    this.#points = points;
    this.#log = log;
    this.#file = fr.path;
    this.#offset = fr.offset;
  }

  get points(): Point[] {
    if (this.#points === undefined) {
      try {
        this.#points = decodePayload(this.payload);
      } catch (err) {
        // Its checksum held, so the writer wrote it so: skipped, as at read time, never retried.
        logUndecodable(this.#log, err, this.#file, this.#offset, this.seq);
        this.#points = [];
      }
    }
    return this.#points;
  }
}

/** Records in sequence order; empty when nothing unread is durable yet. */
export interface SpoolBatch {
  /** Sequence number of the first record; for an empty batch, lastSeq + 1. */
  readonly firstSeq: number;
  /** Sequence number of the last record; for an empty batch, the last one read before. */
  readonly lastSeq: number;
  readonly records: readonly SpoolRecord[];
}

const errFull = ERR_SPOOL_FULL;
const errClosed = ERR_SPOOL_CLOSED;
const errIo = ERR_SPOOL_IO;

interface Resolved {
  readonly maxBytes: number;
  readonly segmentBytes: number;
  readonly highBytes: number;
  readonly lowBytes: number;
  readonly commitWindowMs: number;
  readonly maxWaitMs: number;
}

interface Segment {
  readonly firstSeq: number;
  readonly path: string;
  /** Bytes in the file, durable or not. */
  size: number;
  /** End of the last fdatasync'd whole frame; readers never look past it. */
  durable: number;
}

interface Append {
  readonly frame: Buffer;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

interface Waiter extends Append {
  readonly since: number;
  timer: NodeJS.Timeout | undefined;
}

/** (seq, time) pairs, coarse on purpose, from which the oldest unconfirmed age is read. */
interface Marker {
  readonly seq: number;
  readonly at: number;
}

const SEGMENT_RE = /^\d{20}\.seg$/;
const CHECKPOINT = 'checkpoint';
const CHECKPOINT_TMP = 'checkpoint.tmp';
/** A group this large is written without waiting for the rest of its window. */
const MAX_GROUP_BYTES = 4 * 1024 * 1024;
/** Resolution of `oldestUnconfirmedAgeMs`; one marker per second bounds their memory. */
const MARKER_MS = 1000;

const segmentName = (firstSeq: number): string => `${String(firstSeq).padStart(20, '0')}.seg`;

export class Spool {
  readonly #dir: string;
  readonly #opts: Resolved;
  readonly #log: SpoolLogger;
  readonly #onStateChange: ((state: SpoolState) => void) | undefined;

  /** Live segments, oldest first; the last one is written to. */
  #segments: Segment[] = [];
  #active: Segment | undefined;
  #wh: FileHandle | undefined;
  /** Set when the active segment's end is not trustworthy, or its name no longer fits. */
  #rollNext = false;
  /** Sequence number the next written record gets. */
  #nextSeq = 1;
  /** Last record known durable. */
  #durableSeq = 0;
  /** Last record covered by a durable checkpoint. */
  #confirmed = 0;
  #confirmTarget = 0;
  #confirmChain: Promise<void> = Promise.resolve();
  #lastConfirm: Promise<void> = Promise.resolve();

  // writer
  #queue: Append[] = [];
  #queuedBytes = 0;
  #inflightBytes = 0;
  #writing = false;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #idle: (() => void)[] = [];
  #diskBytes = 0;
  #fsyncs = 0;
  #state: SpoolState = 'ok';
  /** Appends held by backpressure, in arrival order (a Set: timeouts remove in O(1)). */
  #waiters = new Set<Waiter>();
  #markers: Marker[] = [];

  // reader
  #rSeg: Segment | undefined;
  #rFrames: FrameReader | undefined;
  /** Sequence number the reader expects at its position. */
  #rExpect = 1;
  /** Highest sequence number the reader has gone past, delivered or skipped. */
  #readSeq = 0;
  /** Highest sequence number handed out by `read`. */
  #deliveredSeq = 0;
  #reading: Promise<unknown> | undefined;
  #dataWaiters = new Set<(data: boolean) => void>();

  #closing = false;
  #closed: Promise<void> | undefined;

  private constructor(dir: string, opts: Resolved, options: SpoolOptions) {
    this.#dir = dir;
    this.#opts = opts;
    this.#log = options.logger;
    this.#onStateChange = options.onStateChange;
  }

  /** Opens (or creates) the spool in `dir`, recovering what a crash left. */
  static async open(dir: string, options: SpoolOptions): Promise<Spool> {
    const opts = resolveOptions(options);
    if (opts.segmentBytes < (options.segmentBytes ?? defaultSpoolOptions.segmentBytes)) {
      options.logger.info(
        { segmentBytes: opts.segmentBytes, maxBytes: opts.maxBytes },
        'spool segment size lowered to half the low watermark',
      );
    }
    const created = await mkdir(dir, { recursive: true });
    // The directory entry of a new spool must itself survive a crash.
    if (created !== undefined) await syncDir(dirname(created));
    const spool = new Spool(dir, opts, options);
    await spool.#recover();
    return spool;
  }

  /** Bytes of segment files on disk, the quota's measure; a partly confirmed segment counts. */
  get bytes(): number {
    return this.#diskBytes;
  }

  /** Records appended durably and not yet confirmed. */
  get pendingRecords(): number {
    return this.#durableSeq - this.#confirmed;
  }

  /** Age of the oldest unconfirmed record, ms; to the second (to the segment when replayed). */
  get oldestUnconfirmedAgeMs(): number {
    const m = this.#markers[0];
    if (this.pendingRecords === 0 || m === undefined) return 0;
    return Math.max(0, Date.now() - m.at);
  }

  get state(): SpoolState {
    return this.#state;
  }

  /** fdatasync calls on segment files since open (one per group commit). */
  get fsyncs(): number {
    return this.#fsyncs;
  }

  /** Last durable sequence number. */
  get lastSeq(): number {
    return this.#durableSeq;
  }

  get confirmedSeq(): number {
    return this.#confirmed;
  }

  /**
   * Appends one record holding `points` (one MQTT message: all or nothing) and resolves once
   * it is on disk, fdatasync'd. In backpressure the promise stays pending until there is room
   * again, at most `maxWaitMs`, then rejects with a retryable TAIHU_ERR_SPOOL_FULL; nothing is
   * ever dropped without the caller knowing (DESIGN §6).
   */
  append(points: readonly Point[]): Promise<void> {
    if (this.#closing) return Promise.reject(errClosed());
    if (points.length === 0) return Promise.resolve();
    let frame: Buffer;
    try {
      frame = encodeFrame(points);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const a: Append = { frame, resolve, reject };
      // Behind earlier waiters too: a device's messages keep their order.
      if (this.#state === 'backpressure' || this.#waiters.size > 0) this.#hold(a);
      else this.#admit(a);
    });
  }

  /**
   * The next unconfirmed records in order, at most `maxRecords` and about `maxBytes` (one
   * record always fits). Resolves at once, with an empty batch when nothing unread is durable;
   * use `waitForData` to wait. One reader at a time.
   */
  read(maxRecords: number, maxBytes: number): Promise<SpoolBatch> {
    if (this.#closing) return Promise.reject(errClosed());
    if (this.#reading !== undefined) {
      return Promise.reject(ERR_SPOOL_READ());
    }
    const p = this.#read(maxRecords, maxBytes);
    this.#reading = p;
    return p.finally(() => {
      this.#reading = undefined;
    });
  }

  /** Resolves true once unread durable records exist; false when `signal` aborts or on close. */
  waitForData(signal?: AbortSignal): Promise<boolean> {
    if (this.#readSeq < this.#durableSeq) return Promise.resolve(true);
    if (this.#closing || signal?.aborted === true) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (data: boolean): void => {
        this.#dataWaiters.delete(done);
        signal?.removeEventListener('abort', onAbort);
        resolve(data);
      };
      const onAbort = (): void => done(false);
      this.#dataWaiters.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Records that the store has everything up to `uptoSeq`: persists the checkpoint atomically,
   * then deletes segments whose records are all confirmed. Concurrent calls coalesce.
   */
  confirm(uptoSeq: number): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(errClosed());
    if (uptoSeq > this.#deliveredSeq) {
      return Promise.reject(ERR_SPOOL_CONFIRM(uptoSeq, this.#deliveredSeq));
    }
    if (uptoSeq <= this.#confirmed) return Promise.resolve();
    if (uptoSeq <= this.#confirmTarget) return this.#lastConfirm;
    this.#confirmTarget = uptoSeq;
    const p = this.#confirmChain.then(() => this.#checkpoint(uptoSeq));
    // A failed checkpoint is reported to its caller and must not fail every later one.
    this.#confirmChain = p.catch(() => {});
    this.#lastConfirm = p;
    return p;
  }

  /**
   * Writes what was accepted, rejects (retryably) what was still waiting for room, and closes
   * the files. Appends after this reject.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    // Never written, so never acknowledged: the devices send them again.
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(errClosed());
    }
    this.#waiters.clear();
    for (const done of this.#dataWaiters) done(false);
    if (!this.#writing && this.#queue.length > 0) void this.#commit();
    await new Promise<void>((resolve) => {
      if (!this.#writing && this.#queue.length === 0) resolve();
      else this.#idle.push(resolve);
    });
    await this.#reading?.catch(() => {});
    await this.#confirmChain;
    await this.#wh?.close();
    await this.#rFrames?.close();
    this.#wh = undefined;
    this.#rFrames = undefined;
  }

  // ---- writer -----------------------------------------------------------------------------

  get #usage(): number {
    return this.#diskBytes + this.#queuedBytes + this.#inflightBytes;
  }

  #admit(a: Append): void {
    this.#queue.push(a);
    this.#queuedBytes += a.frame.length;
    if (this.#usage >= this.#opts.highBytes) this.#setState('backpressure');
    if (this.#writing) return; // the queue is written as soon as the fsync in flight ends
    if (this.#queuedBytes >= MAX_GROUP_BYTES) {
      void this.#commit();
    } else if (this.#timer === undefined && this.#immediate === undefined) {
      if (this.#opts.commitWindowMs > 0) {
        this.#timer = setTimeout(this.#onWindow, this.#opts.commitWindowMs);
      } else {
        this.#immediate = setImmediate(this.#onWindow);
      }
    }
  }

  readonly #onWindow = (): void => {
    this.#timer = undefined;
    this.#immediate = undefined;
    if (!this.#writing && this.#queue.length > 0) void this.#commit();
  };

  #hold(a: Append): void {
    if (this.#opts.maxWaitMs <= 0) {
      a.reject(errFull(this.#diskBytes, 0));
      return;
    }
    const w: Waiter = { ...a, since: Date.now(), timer: undefined };
    if (Number.isFinite(this.#opts.maxWaitMs)) {
      w.timer = setTimeout(() => {
        this.#waiters.delete(w);
        w.reject(errFull(this.#diskBytes, Date.now() - w.since));
      }, this.#opts.maxWaitMs);
    }
    this.#waiters.add(w);
  }

  /** Leaves backpressure below the low watermark and lets waiting appends in, in order. */
  #maybeRelease(): void {
    if (this.#state !== 'backpressure' || this.#usage >= this.#opts.lowBytes) return;
    this.#setState('ok');
    for (const w of this.#waiters) {
      if ((this.#state as SpoolState) !== 'ok') break; // #admit may have re-entered backpressure
      this.#waiters.delete(w);
      clearTimeout(w.timer);
      this.#admit(w);
    }
  }

  #setState(state: SpoolState): void {
    if (state === this.#state) return;
    this.#state = state;
    const info = {
      bytes: this.#usage,
      maxBytes: this.#opts.maxBytes,
      pendingRecords: this.pendingRecords,
    };
    if (state === 'backpressure') {
      this.#log.warn(
        { ...info, highBytes: this.#opts.highBytes },
        'spool above its high watermark: acknowledgements held until the store catches up',
      );
    } else {
      this.#log.info({ ...info, lowBytes: this.#opts.lowBytes }, 'spool below its low watermark');
    }
    try {
      this.#onStateChange?.(state);
    } catch (err) {
      this.#log.error({ err }, 'spool onStateChange callback threw');
    }
  }

  /** Writes the queued appends as one group: one write, one fdatasync. Never rejects. */
  async #commit(): Promise<void> {
    clearTimeout(this.#timer);
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
    const group = this.#queue;
    const bytes = this.#queuedBytes;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#inflightBytes = bytes;
    this.#writing = true;
    const firstSeq = this.#nextSeq;
    try {
      for (let i = 0; i < group.length; i++) sealFrame((group[i] as Append).frame, 0, firstSeq + i);
      const buf =
        group.length === 1
          ? (group[0] as Append).frame
          : Buffer.concat(
              group.map((a) => a.frame),
              bytes,
            );
      const seg = await this.#segmentFor(firstSeq, bytes);
      const wh = this.#wh as FileHandle;
      for (let off = 0; off < bytes;) {
        const { bytesWritten } = await wh.write(buf, off, bytes - off);
        if (bytesWritten <= 0) throw new Error('write made no progress');
        off += bytesWritten;
        seg.size += bytesWritten;
        this.#diskBytes += bytesWritten;
        this.#inflightBytes -= bytesWritten;
      }
      await wh.datasync();
      this.#fsyncs++;
      seg.durable = seg.size;
      this.#nextSeq = firstSeq + group.length;
      this.#durableSeq = this.#nextSeq - 1;
      const at = frameTime(buf, 0);
      const last = this.#markers.at(-1);
      if (last === undefined || at - last.at >= MARKER_MS)
        this.#markers.push({ seq: firstSeq, at });
      for (const a of group) a.resolve();
      for (const done of this.#dataWaiters) done(true);
    } catch (err) {
      await this.#rollback(err, group);
    } finally {
      this.#inflightBytes = 0;
      this.#writing = false;
      // Appends that arrived during the fsync have waited long enough: write them now.
      if (this.#queue.length > 0) void this.#commit();
      else for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  /** The segment the group goes to: the active one, or a new one named after `firstSeq`. */
  async #segmentFor(firstSeq: number, bytes: number): Promise<Segment> {
    const a = this.#active;
    if (
      a !== undefined &&
      !this.#rollNext &&
      (a.size === 0 || a.size + bytes <= this.#opts.segmentBytes) &&
      (a.size > 0 || a.firstSeq === firstSeq)
    ) {
      return a;
    }
    const seg: Segment = {
      firstSeq,
      path: join(this.#dir, segmentName(firstSeq)),
      size: 0,
      durable: 0,
    };
    const fh = await open(seg.path, 'a');
    try {
      // 'a' rather than 'wx': an empty file left by a roll that failed half-way is reused.
      if ((await fh.stat()).size !== 0) throw new Error(`${seg.path} exists and is not empty`);
      // The new file's directory entry must be durable before records in it are acknowledged.
      await syncDir(this.#dir);
    } catch (err) {
      await fh.close();
      throw err;
    }
    // Everything in the previous segment was fdatasync'd group by group; it is sealed as is.
    await this.#wh?.close().catch((err: unknown) => {
      this.#log.warn({ err, file: a?.path }, 'closing a sealed spool segment failed');
    });
    this.#wh = fh;
    this.#active = seg;
    this.#segments.push(seg);
    this.#rollNext = false;
    return seg;
  }

  async #rollback(err: unknown, group: readonly Append[]): Promise<void> {
    const seg = this.#active;
    this.#log.error(
      { err, file: seg?.path, records: group.length },
      'spool write failed; these messages are not acknowledged',
    );
    if (seg !== undefined && this.#wh !== undefined && seg.size > seg.durable) {
      try {
        await this.#wh.truncate(seg.durable);
        await this.#wh.datasync();
        this.#diskBytes -= seg.size - seg.durable;
        seg.size = seg.durable;
      } catch (err2) {
        // Readers stop at `durable`; on reopen the junk after it is found and skipped.
        this.#rollNext = true;
        this.#log.error(
          { err: err2, file: seg.path, offset: seg.durable },
          'could not truncate the spool segment after a failed write; starting a new segment',
        );
      }
    }
    const e = errIo(err);
    for (const a of group) a.reject(e);
    this.#maybeRelease(); // the failed group no longer counts against the quota
  }

  // ---- checkpoint -------------------------------------------------------------------------

  /** Persists the newest confirm target, at least `upto`; later confirms ride along. */
  async #checkpoint(upto: number): Promise<void> {
    const seq = Math.max(upto, this.#confirmTarget);
    if (seq <= this.#confirmed) return;
    try {
      const tmp = join(this.#dir, CHECKPOINT_TMP);
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(`${JSON.stringify({ format: 1, confirmedSeq: seq })}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, join(this.#dir, CHECKPOINT));
      await syncDir(this.#dir);
    } catch (err) {
      // Let the caller's retry write it again instead of being handed this failure forever.
      if (this.#confirmTarget <= seq) this.#confirmTarget = this.#confirmed;
      throw err;
    }
    this.#confirmed = seq;
    // Segments go only once the checkpoint covering them is durable; a crash in between leaves
    // a segment whose records are all skipped on open, never a checkpoint pointing at nothing.
    for (;;) {
      const [s, next] = this.#segments;
      if (s === undefined || next === undefined || next.firstSeq - 1 > seq) break;
      try {
        await unlink(s.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.#log.error({ err, file: s.path }, 'could not delete a confirmed spool segment');
          break;
        }
      }
      this.#segments.shift();
      this.#diskBytes -= s.size;
    }
    while (this.#markers.length > 1 && (this.#markers[1] as Marker).seq <= seq + 1) {
      this.#markers.shift();
    }
    this.#maybeRelease();
  }

  // ---- reader -----------------------------------------------------------------------------

  async #read(maxRecords: number, maxBytes: number): Promise<SpoolBatch> {
    const records: SpoolRecord[] = [];
    let bytes = 0;
    while (records.length < maxRecords && this.#readSeq < this.#durableSeq) {
      const seg = this.#rSeg ?? this.#segments[0];
      if (seg === undefined) break;
      let fr = this.#rFrames;
      if (seg !== this.#rSeg || fr === undefined) {
        fr = await this.#enter(seg);
      }
      const step = await fr.next(seg.durable);
      if (step === 'end') {
        if (fr.offset < seg.durable) continue; // more became durable during the read
        const next = this.#segmentAfter(seg);
        if (next === undefined) {
          // At the durable end of the newest segment: everything durable has been gone past.
          this.#readSeq = this.#durableSeq;
          break;
        }
        if (next.firstSeq > this.#rExpect) this.#lost(seg.path, fr.offset, next.firstSeq);
        await this.#enter(next);
        continue;
      }
      if (step === 'frame' && fr.seq >= this.#rExpect) {
        if (records.length > 0 && bytes + fr.length > maxBytes) break;
        const seq = fr.seq;
        if (seq > this.#rExpect) this.#lost(seg.path, fr.offset, seq);
        if (seq > this.#deliveredSeq) {
          const record = this.#record(fr);
          this.#deliveredSeq = seq;
          if (record !== undefined) {
            records.push(record);
            bytes += fr.length;
          }
        }
        fr.skip();
        this.#rExpect = seq + 1;
        if (seq > this.#readSeq) this.#readSeq = seq;
        continue;
      }
      // A bad frame, or one numbered below what we expect: find the next intact record.
      const next = this.#segmentAfter(seg);
      const from = fr.offset;
      const found = await fr.resync(
        seg.durable,
        this.#rExpect,
        next === undefined ? this.#durableSeq : next.firstSeq - 1,
      );
      this.#log.error(
        {
          file: seg.path,
          offset: from,
          skippedBytes: fr.offset - from,
          expectedSeq: this.#rExpect,
          resumeSeq: found ?? next?.firstSeq,
        },
        'corrupt spool record; skipped to the next intact one',
      );
      // Reported here once; not again as missing records.
      this.#rExpect = found ?? next?.firstSeq ?? this.#rExpect;
    }
    const first = records[0];
    const last = records.at(-1);
    return {
      firstSeq: first?.seq ?? this.#readSeq + 1,
      lastSeq: last?.seq ?? this.#readSeq,
      records,
    };
  }

  async #enter(seg: Segment): Promise<FrameReader> {
    await this.#rFrames?.close();
    this.#rFrames = undefined;
    const fr = new FrameReader(seg.path, await open(seg.path, 'r'));
    this.#rSeg = seg;
    this.#rFrames = fr;
    this.#rExpect = seg.firstSeq;
    return fr;
  }

  #segmentAfter(seg: Segment): Segment | undefined {
    // By number, not index: confirmed segments may have left the list since the reader entered.
    return this.#segments.find((s) => s.firstSeq > seg.firstSeq);
  }

  #lost(file: string, offset: number, resumeSeq: number): void {
    this.#log.error(
      { file, offset, fromSeq: this.#rExpect, toSeq: resumeSeq - 1 },
      'spool records missing; reading goes on after them',
    );
    this.#rExpect = resumeSeq;
  }

  /** The frame as a record, its points left encoded when its header says how many. */
  #record(fr: FrameReader): SpoolRecord | undefined {
    // A view into the reader's chunk, which is never reused: valid as long as the record.
    const payload = fr.payload();
    try {
      const count = payloadCount(payload);
      if (count !== undefined) return new ReadRecord(fr, payload, count, undefined, this.#log);
      const points = decodePayload(payload);
      return new ReadRecord(fr, payload, points.length, points, this.#log);
    } catch (err) {
      logUndecodable(this.#log, err, fr.path, fr.offset, fr.seq);
      return undefined;
    }
  }

  // ---- recovery ---------------------------------------------------------------------------

  async #recover(): Promise<void> {
    await rm(join(this.#dir, CHECKPOINT_TMP), { force: true });
    const names = (await readdir(this.#dir)).filter((n) => SEGMENT_RE.test(n)).sort();
    const segs: Segment[] = [];
    for (const name of names) {
      const path = join(this.#dir, name);
      const { size } = await stat(path);
      segs.push({ firstSeq: Number(name.slice(0, 20)), path, size, durable: size });
    }
    let confirmed = await this.#readCheckpoint();
    confirmed ??= segs[0] === undefined ? 0 : segs[0].firstSeq - 1;

    // Left over by a crash between a checkpoint and the deletions it allowed.
    while (segs[1] !== undefined && segs[1].firstSeq - 1 <= confirmed) {
      await unlink((segs.shift() as Segment).path);
    }
    const head = segs[0];
    if (head !== undefined && head.firstSeq > confirmed + 1) {
      this.#log.error(
        { dir: this.#dir, fromSeq: confirmed + 1, toSeq: head.firstSeq - 1 },
        'spool records missing before the oldest segment',
      );
    }

    let nextSeq = confirmed + 1;
    const tail = segs.at(-1);
    if (tail !== undefined) nextSeq = await this.#recoverTail(tail);
    if (nextSeq <= confirmed) {
      // The checkpoint is ahead of the data (a disk that lied about a flush): never reuse a
      // confirmed number, or the reader would skip the new records.
      this.#log.warn(
        { dir: this.#dir, confirmedSeq: confirmed, nextSeq },
        'spool checkpoint is ahead of the newest record; continuing after the checkpoint',
      );
      nextSeq = confirmed + 1;
      this.#rollNext = true;
    }

    for (const s of segs) {
      const at = await firstRecordTime(s);
      if (at !== undefined) this.#markers.push({ seq: s.firstSeq, at });
    }
    this.#segments = segs;
    this.#diskBytes = segs.reduce((sum, s) => sum + s.size, 0);
    this.#confirmed = confirmed;
    this.#confirmTarget = confirmed;
    this.#nextSeq = nextSeq;
    this.#durableSeq = nextSeq - 1;
    this.#readSeq = confirmed;
    this.#deliveredSeq = confirmed;
    if (tail !== undefined) {
      this.#active = tail;
      this.#wh = await open(tail.path, 'a');
    }
    if (this.#diskBytes >= this.#opts.highBytes) this.#setState('backpressure');
    if (segs.length > 0) {
      this.#log.info(
        {
          dir: this.#dir,
          segments: segs.length,
          bytes: this.#diskBytes,
          pendingRecords: this.pendingRecords,
        },
        'spool opened; replaying unconfirmed records',
      );
    }
  }

  /** Validates the newest segment, truncating a torn tail; returns the next sequence number. */
  async #recoverTail(seg: Segment): Promise<number> {
    const fh = await open(seg.path, 'r+');
    const fr = new FrameReader(seg.path, fh);
    let expect = seg.firstSeq;
    try {
      for (;;) {
        const step = await fr.next(seg.size);
        if (step === 'end') break;
        if (step === 'frame' && fr.seq >= expect) {
          if (fr.seq > expect) {
            this.#log.error(
              { file: seg.path, offset: fr.offset, fromSeq: expect, toSeq: fr.seq - 1 },
              'spool records missing; reading goes on after them',
            );
          }
          expect = fr.seq + 1;
          fr.skip();
          continue;
        }
        const bad = fr.offset;
        // Every record takes at least MIN_FRAME bytes, which bounds the numbers that can follow.
        const maxSeq = expect + Math.floor((seg.size - bad) / MIN_FRAME);
        const found = await fr.resync(seg.size, expect, maxSeq);
        if (found !== undefined) {
          this.#log.error(
            {
              file: seg.path,
              offset: bad,
              skippedBytes: fr.offset - bad,
              expectedSeq: expect,
              resumeSeq: found,
            },
            'corrupt spool record; skipped to the next intact one',
          );
          expect = found;
          continue;
        }
        this.#log.warn(
          { file: seg.path, offset: bad, droppedBytes: seg.size - bad },
          'torn or corrupt tail in spool segment; truncated to the last intact record',
        );
        await fh.truncate(bad);
        await fh.datasync();
        seg.size = bad;
        seg.durable = bad;
        break;
      }
    } finally {
      await fr.close();
    }
    return expect;
  }

  async #readCheckpoint(): Promise<number | undefined> {
    const file = join(this.#dir, CHECKPOINT);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const v = JSON.parse(text) as { format?: unknown; confirmedSeq?: unknown };
      if (
        v.format === 1 &&
        Number.isSafeInteger(v.confirmedSeq) &&
        (v.confirmedSeq as number) >= 0
      ) {
        return v.confirmedSeq as number;
      }
    } catch {
      // reported below
    }
    // Replaying too much is safe (writes are idempotent); skipping is not.
    this.#log.error({ file }, 'unreadable spool checkpoint; replaying every segment');
    return undefined;
  }
}

function resolveOptions(o: SpoolOptions): Resolved {
  const d = defaultSpoolOptions;
  const maxBytes = o.maxBytes ?? d.maxBytes;
  const high = o.highWatermark ?? d.highWatermark;
  const low = o.lowWatermark ?? d.lowWatermark;
  const segmentBytes = o.segmentBytes ?? d.segmentBytes;
  const commitWindowMs = o.commitWindowMs ?? d.commitWindowMs;
  const maxWaitMs = o.maxWaitMs ?? d.maxWaitMs;
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw ERR_CONFIG(`spool maxBytes must be a positive integer, got ${maxBytes}`);
  }
  if (!(low > 0 && low < high && high <= 1)) {
    throw ERR_CONFIG(`spool watermarks need 0 < low < high <= 1, got low=${low} high=${high}`);
  }
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes <= 0) {
    throw ERR_CONFIG(`spool segmentBytes must be a positive integer, got ${segmentBytes}`);
  }
  if (!(commitWindowMs >= 0 && Number.isFinite(commitWindowMs))) {
    throw ERR_CONFIG(`spool commitWindowMs must be >= 0, got ${commitWindowMs}`);
  }
  if (!(maxWaitMs >= 0)) throw ERR_CONFIG(`spool maxWaitMs must be >= 0, got ${maxWaitMs}`);
  const lowBytes = Math.floor(low * maxBytes);
  return {
    maxBytes,
    // Once all is confirmed only the active segment is left; it must fit under the low
    // watermark or backpressure could never end.
    segmentBytes: Math.max(MIN_FRAME, Math.min(segmentBytes, Math.floor(lowBytes / 2))),
    highBytes: Math.floor(high * maxBytes),
    lowBytes,
    commitWindowMs,
    maxWaitMs,
  };
}

function logUndecodable(
  log: SpoolLogger,
  err: unknown,
  file: string,
  offset: number,
  seq: number,
): void {
  log.error({ err, file, offset, seq }, 'undecodable spool record skipped');
}

function encodeFrame(points: readonly Point[]): Buffer {
  const json = encodePoints(points);
  const n = payloadBytes(json);
  if (n > MAX_PAYLOAD) {
    throw ERR_SPOOL_RECORD_TOO_LARGE(n);
  }
  const f = newFrame(n, Date.now());
  writePayload(f, HEADER_BYTES, json, points.length);
  return f;
}

/** Append time of a segment's first record, from its header alone (a metric, not data). */
async function firstRecordTime(seg: Segment): Promise<number | undefined> {
  if (seg.size < HEADER_BYTES) return undefined;
  const fh = await open(seg.path, 'r');
  try {
    const buf = Buffer.alloc(HEADER_BYTES);
    await fh.read(buf, 0, HEADER_BYTES, 0);
    const at = frameTime(buf, 0);
    return Number.isFinite(at) && at > 0 ? at : undefined;
  } finally {
    await fh.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

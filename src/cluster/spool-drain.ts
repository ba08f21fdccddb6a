/**
 * `taihu spool drain --dir …`: writes what a spool directory still holds into the configured
 * store, with the gateway's own drainer (same order, batching, retries and idempotent
 * writes), then closes it. For a spool whose gateway will not come back — a cluster
 * instance's disk mounted on another host — or any stopped gateway's spool. Never point it
 * at the spool of a running gateway: two drainers on one spool would both write it.
 */
import { appendFileSync, existsSync, readdirSync } from 'node:fs';
import type { Logger } from 'pino';
import { ERR_CLI, TaihuError } from '../errors.js';
import { Drainer } from '../spool/drainer.js';
import { Spool } from '../spool/spool.js';
import type { Store } from '../store/types.js';
import type { Point } from '../points/point.js';

/** Longest deadline a timer takes (≈ 24.8 days): "no deadline". */
const NO_DEADLINE_MS = 2 ** 31 - 1;
/** How often progress is reported, ms. */
const PROGRESS_EVERY_MS = 1_000;

export interface DrainProgress {
  /** Records still in the spool (a record is one MQTT message's readings). */
  readonly pendingRecords: number;
  readonly recordsAtStart: number;
  readonly pointsWritten: number;
  readonly elapsedMs: number;
  /** The store's last error while it is failing (the drainer retries). */
  readonly storeError: string | undefined;
}

export interface DrainResult extends DrainProgress {
  /** Whether the spool is empty now. */
  readonly complete: boolean;
  /** Points the store refused for good (bad lines), written to `rejectedFile`. */
  readonly rejectedPoints: number;
  readonly rejectedFile: string | undefined;
}

export interface DrainOptions {
  /** The spool directory (`${TAIHU_DATA_DIR}/spool` of the gateway that wrote it). */
  readonly dir: string;
  /** Opened by the caller; the drain never closes it. */
  readonly store: Store;
  readonly log: Logger;
  /** Give up after this long, ms (what is not written stays in the spool). Default: never. */
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((p: DrainProgress) => void) | undefined;
}

/** Whether `dir` looks like a spool: segment files or a checkpoint. */
export function isSpoolDir(dir: string): boolean {
  if (!existsSync(dir)) return false;
  return readdirSync(dir).some((n) => n.endsWith('.seg') || n === 'checkpoint');
}

export async function drainSpoolDir(options: DrainOptions): Promise<DrainResult> {
  const { dir, store, log } = options;
  if (!isSpoolDir(dir)) {
    throw ERR_CLI(`--dir: no spool in ${dir} (expected *.seg files or a checkpoint)`);
  }
  const started = Date.now();
  const spool = await Spool.open(dir, { logger: log.child({ component: 'spool' }) });
  const recordsAtStart = spool.pendingRecords;
  const rejectedFile = `${dir.replace(/\/+$/, '')}.rejected.jsonl`;
  let rejectedPoints = 0;
  const drainer = new Drainer(spool, store, {
    // Nothing else arrives: write whatever is there at once.
    maxBatchAgeMs: 0,
    logger: log.child({ component: 'drainer' }),
    // The gateway records these in its rejection log; here there is none, so they go to a file.
    onRejected: (points: Point[], err: TaihuError) => {
      rejectedPoints += points.length;
      const lines = points.map((p) => JSON.stringify({ error: err.message, point: p }));
      appendFileSync(rejectedFile, `${lines.join('\n')}\n`);
      log.warn(
        { points: points.length, err: err.message, file: rejectedFile },
        'store refused points',
      );
    },
  });
  const progress = (): DrainProgress => ({
    pendingRecords: spool.pendingRecords,
    recordsAtStart,
    pointsWritten: drainer.pointsWritten,
    elapsedMs: Date.now() - started,
    storeError: drainer.lastError?.message,
  });
  const timer = setInterval(() => options.onProgress?.(progress()), PROGRESS_EVERY_MS);
  try {
    drainer.start();
    // stop() drains until the spool is empty (retrying a failing store) or the deadline passes.
    const stopped = drainer.stop(Math.min(options.timeoutMs ?? NO_DEADLINE_MS, NO_DEADLINE_MS));
    const aborted = new Promise<void>((resolve) => {
      if (options.signal?.aborted) return resolve();
      options.signal?.addEventListener('abort', () => resolve(), { once: true });
    });
    await Promise.race([stopped, aborted]);
  } finally {
    clearInterval(timer);
    // Closing also ends a drainer that is still retrying (its next spool call fails).
    await spool.close();
  }
  const last = progress();
  options.onProgress?.(last);
  return {
    ...last,
    complete: last.pendingRecords === 0,
    rejectedPoints,
    rejectedFile: rejectedPoints > 0 ? rejectedFile : undefined,
  };
}

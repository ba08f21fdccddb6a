/**
 * The drainer against a scripted in-memory Store. A fake is the right tool here: the cases are
 * a sink failing on demand (retryable errors, Retry-After, a 400 for one bad line inside a
 * batch), which a real server cannot be made to produce at a chosen write. The spool is real.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ERR_STORE, TaihuError } from '../../src/errors.js';
import { Drainer, type DrainerOptions } from '../../src/spool/drainer.js';
import { Spool } from '../../src/spool/spool.js';
import type { FieldValue, Point, Store } from '../../src/store/types.js';

interface Line {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

function recordingLogger() {
  const lines: Line[] = [];
  const at =
    (level: string) =>
    (obj: object, msg: string): void => {
      lines.push({ level, obj: obj as Record<string, unknown>, msg });
    };
  return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error') } };
}

function point(n: number): Point {
  const fields: Record<string, FieldValue> = Object.create(null);
  fields.vehicles = n % 50;
  fields.speed_kmh = 40 + (n % 7);
  fields.seq = n;
  return {
    measurement: 'traffic_flow',
    tags: { device_id: 'tf-xishan-0003', district: 'Xishan', site_id: 'xs-x12' },
    fields,
    ts: 1_795_766_400_000 + n,
  };
}

/** A Store whose write runs `script` first: throw there to fail that attempt. */
function scriptedStore(script: (points: readonly Point[], attempt: number) => void = () => {}) {
  const written: Point[] = [];
  const writes: number[] = [];
  const attempts: number[] = [];
  const store: Store = {
    kind: 'scripted',
    open: async () => {},
    write: async (points) => {
      attempts.push(Date.now());
      script(points, attempts.length);
      writes.push(points.length);
      written.push(...points);
    },
    aggregate: async () => [],
    close: async () => {},
  };
  return { store, written, writes, attempts };
}

const seqs = (points: readonly Point[]) => points.map((p) => p.fields.seq);
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

let dir: string;
let log: ReturnType<typeof recordingLogger>;
let spool: Spool;
const drainers: Drainer[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'taihu-drainer-'));
  log = recordingLogger();
  spool = await Spool.open(dir, { logger: log.logger, commitWindowMs: 0 });
});

afterEach(async () => {
  for (const d of drainers.splice(0)) await d.stop(100);
  await spool.close();
  await rm(dir, { recursive: true, force: true });
});

function drainer(store: Store, opts: Partial<DrainerOptions> = {}): Drainer {
  const d = new Drainer(spool, store, {
    logger: log.logger,
    onRejected: () => {},
    maxBatchAgeMs: 0,
    baseBackoffMs: 5,
    maxBackoffMs: 50,
    ...opts,
  });
  drainers.push(d);
  return d;
}

describe('drainer', () => {
  it('writes records in spool order in batches of at most maxBatchPoints, confirming each', async () => {
    for (let n = 1; n <= 20; n++) await spool.append([point(n)]);
    for (let n = 21; n <= 35; n += 3) await spool.append([point(n), point(n + 1), point(n + 2)]);
    const { store, written, writes } = scriptedStore();
    const d = drainer(store, { maxBatchPoints: 10 });
    d.start();
    await until(() => spool.pendingRecords === 0);
    expect(seqs(written)).toEqual(range(1, 35));
    expect(Math.max(...writes)).toBeLessThanOrEqual(10);
    expect(writes.length).toBeGreaterThanOrEqual(4);
    expect(d.pointsWritten).toBe(35);
    expect(d.batches).toBe(writes.length);
    expect(spool.confirmedSeq).toBe(25);
  });

  it('waits up to maxBatchAgeMs for a fuller batch, then writes what it has', async () => {
    const { store, writes } = scriptedStore();
    drainer(store, { maxBatchAgeMs: 150 }).start();
    await spool.append([point(1)]);
    await new Promise((r) => setTimeout(r, 50));
    expect(writes).toEqual([]);
    await spool.append([point(2)]);
    await until(() => writes.length > 0);
    expect(writes).toEqual([2]);
  });

  it('retries a retryable failure with backoff and confirms only after the write succeeded', async () => {
    for (let n = 1; n <= 5; n++) await spool.append([point(n)]);
    let confirmedWhileFailing = -1;
    const { store, written, attempts } = scriptedStore((_p, attempt) => {
      if (attempt <= 3) {
        confirmedWhileFailing = Math.max(confirmedWhileFailing, spool.confirmedSeq);
        throw ERR_STORE('connection refused');
      }
    });
    const d = drainer(store, { random: () => 1 });
    d.start();
    await until(() => spool.pendingRecords === 0);
    expect(confirmedWhileFailing).toBe(0);
    expect(seqs(written)).toEqual(range(1, 5)); // nothing lost, nothing twice
    expect(d.retries).toBe(3);
    expect(d.lastError).toBeUndefined();
    // Exponential: 5, 10, 20 ms with random() = 1.
    expect(attempts[3]! - attempts[2]!).toBeGreaterThanOrEqual(18);
    const warns = log.lines.filter((l) => l.level === 'warn' && /retrying/.test(l.msg));
    expect(warns.map((w) => w.obj.attempt)).toEqual([1, 2, 3]);
  });

  it('exposes the last error while the store keeps failing', async () => {
    await spool.append([point(1)]);
    const { store } = scriptedStore(() => {
      throw ERR_STORE('bucket unreachable');
    });
    const d = drainer(store);
    d.start();
    await until(() => d.retries >= 2);
    expect(d.lastError?.message).toMatch(/bucket unreachable/);
    expect(spool.pendingRecords).toBe(1);
  });

  it("waits the store's retryAfterMs instead of its own backoff", async () => {
    await spool.append([point(1)]);
    const { store, attempts } = scriptedStore((_p, attempt) => {
      if (attempt === 1) {
        throw Object.assign(ERR_STORE('429 Too Many Requests'), { retryAfterMs: 200 });
      }
    });
    drainer(store, { random: () => 0 }).start();
    await until(() => spool.pendingRecords === 0);
    expect(attempts).toHaveLength(2);
    expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(190);
  });

  it('treats an error that does not say retryable: false as retryable', async () => {
    await spool.append([point(1)]);
    const rejected: Point[] = [];
    const { store, written } = scriptedStore((_p, attempt) => {
      if (attempt === 1) throw new Error('socket hang up');
    });
    drainer(store, { onRejected: (p) => rejected.push(...p) }).start();
    await until(() => spool.pendingRecords === 0);
    expect(rejected).toEqual([]);
    expect(seqs(written)).toEqual([1]);
  });

  it('isolates the one bad point of a 1,000-point batch, writes the other 999 and moves on', async () => {
    for (let n = 1; n <= 1000; n += 10) {
      await spool.append(range(n, n + 9).map(point));
    }
    const BAD = 537;
    const { store, written, attempts } = scriptedStore((points) => {
      if (points.some((p) => p.fields.seq === BAD)) {
        throw new TaihuError(
          'TAIHU_ERR_STORE',
          `partial write: field type conflict at seq ${BAD}`,
          {
            statusCode: 400,
            retryable: false,
          },
        );
      }
    });
    const rejected: { points: Point[]; error: TaihuError }[] = [];
    const d = drainer(store, {
      maxBatchPoints: 1000,
      onRejected: (points, error) => rejected.push({ points, error }),
    });
    d.start();
    await until(() => spool.pendingRecords === 0);
    expect(rejected).toHaveLength(1);
    expect(seqs(rejected[0]!.points)).toEqual([BAD]);
    expect(rejected[0]!.error.message).toMatch(/field type conflict/);
    expect(seqs(written)).toEqual(range(1, 1000).filter((n) => n !== BAD));
    expect(d.rejectedPoints).toBe(1);
    expect(attempts.length).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(1000)) + 1);
    // The pipeline is not blocked: later records flow.
    await spool.append([point(1001)]);
    await until(() => written.length === 1000);
    expect(written.at(-1)?.fields.seq).toBe(1001);
  });

  it('flushes what the spool holds on stop() without waiting for the batch age', async () => {
    for (let n = 1; n <= 5; n++) await spool.append([point(n)]);
    const { store, written } = scriptedStore();
    const d = drainer(store, { maxBatchAgeMs: 60_000, maxBatchPoints: 2 });
    d.start();
    const t0 = Date.now();
    await d.stop(2000);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(seqs(written)).toEqual(range(1, 5));
    expect(spool.pendingRecords).toBe(0);
  });

  it('gives up at the stop() deadline while the store is down, leaving the records to replay', async () => {
    for (let n = 1; n <= 3; n++) await spool.append([point(n)]);
    const { store } = scriptedStore(() => {
      throw ERR_STORE('connection refused');
    });
    const d = drainer(store, { baseBackoffMs: 20, maxBackoffMs: 20 });
    d.start();
    await until(() => d.retries > 0);
    const t0 = Date.now();
    await d.stop(100);
    expect(Date.now() - t0).toBeLessThan(500);
    expect(spool.confirmedSeq).toBe(0);
    expect(log.lines.some((l) => l.level === 'warn' && /deadline/.test(l.msg))).toBe(true);
    await spool.close();
    spool = await Spool.open(dir, { logger: log.logger });
    const replay = await spool.read(10, 1 << 20);
    expect(replay.records.map((r) => r.seq)).toEqual([1, 2, 3]);
  });
});

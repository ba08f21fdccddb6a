/**
 * The drainer against a scripted in-memory Store. A fake is the right tool here: the cases are
 * a store failing on demand (retryable errors, Retry-After, a 400 for one bad line inside a
 * batch), which a real server cannot be made to produce at a chosen write. The spool is real.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ERR_STORE, TaihuError } from '../../src/errors.js';
import { Drainer, type DrainerOptions } from '../../src/spool/drainer.js';
import { decodePayload } from '../../src/points/codec.js';
import { Spool } from '../../src/spool/spool.js';
import type { Store } from '../../src/store/types.js';
import type { PreparedBatch } from '../../src/points/batch.js';
import type { FieldValue, Point } from '../../src/points/point.js';
import { rewritePayloads, undecodable } from '../helpers/spool-files.js';

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

/**
 * What the fake stores below prepare: the points, and what their write does. Only the store that
 * prepared a batch writes it, so each fake's write reads back its own.
 */
interface FakeBatch extends PreparedBatch {
  readonly points: readonly Point[];
  readonly send: () => Promise<void>;
}
const fake = (points: readonly Point[], send: () => Promise<void>): FakeBatch => ({
  count: points.length,
  points,
  send,
});
const sendFake = (batch: PreparedBatch): Promise<void> => (batch as FakeBatch).send();
const firstSeq = (batch: PreparedBatch): unknown => (batch as FakeBatch).points[0]?.fields.seq;

/** A Store whose write runs `script` first: throw there to fail that attempt. */
function scriptedStore(script: (points: readonly Point[], attempt: number) => void = () => {}) {
  const written: Point[] = [];
  const writes: number[] = [];
  const attempts: number[] = [];
  const store: Store = {
    kind: 'scripted',
    open: async () => {},
    prepare: (batch) => {
      const points = batch.points();
      return fake(points, async () => {
        attempts.push(Date.now());
        script(points, attempts.length);
        writes.push(points.length);
        written.push(...points);
      });
    },
    write: sendFake,
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

/**
 * A Store that prepares its writes (as the InfluxDB store encodes line protocol up front) and
 * whose sends take `delayMs`. With `holdForNext`, a send also waits (up to 2 s) until the next
 * batch was prepared, or there is none: how long the drainer takes to prepare it then does not
 * matter, and a drainer that prepares nothing during a write fails the ordering checks.
 * `script` runs in each send attempt; throw there to fail it.
 */
function preparingStore(
  delayMs: number,
  script: (points: readonly Point[], attempt: number) => void = () => {},
  { holdForNext = false } = {},
) {
  const events: string[] = [];
  const written: Point[] = [];
  /** First seq of each send attempt, and what the spool had confirmed when it started. */
  const sends: { first: unknown; confirmed: number }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let attempts = 0;
  const store: Store = {
    kind: 'preparing',
    open: async () => {},
    prepare: (batch) => {
      const points = batch.points();
      const first = points[0]?.fields.seq;
      events.push(`prepare ${String(first)}`);
      return fake(points, async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        events.push(`send ${String(first)}`);
        sends.push({ first, confirmed: spool.confirmedSeq });
        try {
          await new Promise((r) => setTimeout(r, delayMs));
          const last = points.at(-1)?.fields.seq as number;
          if (holdForNext && last < spool.lastSeq) {
            await until(() => events.includes(`prepare ${last + 1}`), 2000).catch(() => {});
          }
          script(points, ++attempts);
          written.push(...points);
          events.push(`done ${String(first)}`);
        } finally {
          inFlight--;
        }
      });
    },
    write: sendFake,
    aggregate: async () => [],
    close: async () => {},
  };
  return { store, events, written, sends, maxInFlight: () => maxInFlight };
}

describe('drainer pipeline (a store that prepares its writes)', () => {
  it('prepares batch n+1 while batch n is in flight, with one write in flight, in spool order', async () => {
    for (let n = 1; n <= 20; n++) await spool.append([point(n)]);
    const s = preparingStore(1, undefined, { holdForNext: true });
    const d = drainer(s.store, { maxBatchPoints: 5 });
    d.start();
    await until(() => spool.pendingRecords === 0);
    expect(seqs(s.written)).toEqual(range(1, 20));
    expect(s.maxInFlight()).toBe(1);
    expect(s.events.indexOf('prepare 6')).toBeGreaterThan(-1);
    expect(s.events.indexOf('prepare 6')).toBeLessThan(s.events.indexOf('done 1'));
    expect(s.events.indexOf('prepare 11')).toBeLessThan(s.events.indexOf('done 6'));
    expect(d.batches).toBe(4);
    expect(d.pointsWritten).toBe(20);
  });

  it('never confirms a batch before the store accepted it', async () => {
    for (let n = 1; n <= 40; n++) await spool.append([point(n)]);
    const s = preparingStore(5);
    drainer(s.store, { maxBatchPoints: 4 }).start();
    await until(() => spool.pendingRecords === 0);
    expect(s.sends).toHaveLength(10);
    // while batch n is being sent, nothing from it (or after it) is confirmed
    for (const { first, confirmed } of s.sends) expect(confirmed).toBeLessThan(first as number);
    expect(spool.confirmedSeq).toBe(40);
  });

  it('retries a failing batch n before batch n+1, which was already prepared, and prepares it once', async () => {
    for (let n = 1; n <= 10; n++) await spool.append([point(n)]);
    const s = preparingStore(
      1,
      (_p, attempt) => {
        if (attempt <= 2) throw ERR_STORE('connection refused');
      },
      { holdForNext: true },
    );
    const d = drainer(s.store, { maxBatchPoints: 5, random: () => 1 });
    d.start();
    await until(() => spool.pendingRecords === 0);
    expect(s.sends.map((x) => x.first)).toEqual([1, 1, 1, 6]);
    expect(s.sends.slice(0, 3).map((x) => x.confirmed)).toEqual([0, 0, 0]);
    expect(s.events.filter((e) => e === 'prepare 6')).toHaveLength(1);
    expect(s.events.indexOf('prepare 6')).toBeLessThan(s.events.indexOf('done 1'));
    expect(seqs(s.written)).toEqual(range(1, 10));
    expect(d.retries).toBe(2);
  });

  it('still isolates a bad point by halving, the batches around it flowing on', async () => {
    for (let n = 1; n <= 30; n++) await spool.append([point(n)]);
    const BAD = 17;
    const s = preparingStore(2, (points) => {
      if (points.some((p) => p.fields.seq === BAD)) {
        throw new TaihuError('TAIHU_ERR_STORE_REJECTED', `bad line at seq ${BAD}`, {
          statusCode: 400,
          retryable: false,
        });
      }
    });
    const rejected: Point[] = [];
    const d = drainer(s.store, { maxBatchPoints: 10, onRejected: (p) => rejected.push(...p) });
    d.start();
    await until(() => spool.pendingRecords === 0);
    expect(seqs(rejected)).toEqual([BAD]);
    expect(seqs(s.written)).toEqual(range(1, 30).filter((n) => n !== BAD));
    expect(s.maxInFlight()).toBe(1);
    expect(d.rejectedPoints).toBe(1);
  });

  it('on stop() mid-pipeline writes the batch in flight and the prepared one, and confirms them', async () => {
    for (let n = 1; n <= 10; n++) await spool.append([point(n)]);
    let release = (): void => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const s = preparingStore(1);
    const gated: Store = {
      ...s.store,
      // the first write stays in flight until stop() was called
      write: (batch) =>
        firstSeq(batch) === 1 ? gate.then(() => sendFake(batch)) : sendFake(batch),
    };
    const d = drainer(gated, { maxBatchPoints: 5, maxBatchAgeMs: 60_000 });
    d.start();
    await until(() => s.events.includes('prepare 6'));
    const stopped = d.stop(5_000);
    release();
    await stopped;
    expect(seqs(s.written)).toEqual(range(1, 10));
    expect(spool.pendingRecords).toBe(0);
    expect(log.lines.some((l) => /deadline/.test(l.msg))).toBe(false);
  });

  it('at the stop() deadline keeps the confirm at the last accepted batch and replays the rest', async () => {
    for (let n = 1; n <= 10; n++) await spool.append([point(n)]);
    const hang = new Promise<void>(() => {}); // the second write never answers
    const s = preparingStore(1);
    const hanging: Store = {
      ...s.store,
      write: (batch) => (firstSeq(batch) === 6 ? hang : sendFake(batch)),
    };
    const d = drainer(hanging, { maxBatchPoints: 5 });
    d.start();
    await until(() => spool.confirmedSeq === 5);
    await d.stop(100);
    expect(spool.confirmedSeq).toBe(5);
    expect(log.lines.some((l) => l.level === 'warn' && /deadline/.test(l.msg))).toBe(true);
    await spool.close();
    spool = await Spool.open(dir, { logger: log.logger });
    const replay = await spool.read(10, 1 << 20);
    expect(replay.records.map((r) => r.seq)).toEqual(range(6, 10));
  });

  it('retries a failed checkpoint while idle, so everything written ends up confirmed', async () => {
    // A disk cannot be made to fail one fsync on demand: the spool's confirm is scripted.
    const real = spool.confirm.bind(spool);
    let calls = 0;
    spool.confirm = (seq) =>
      ++calls === 1 ? Promise.reject(new Error('EIO: checkpoint write failed')) : real(seq);
    for (let n = 1; n <= 5; n++) await spool.append([point(n)]);
    const s = preparingStore(1);
    drainer(s.store, { maxBatchPoints: 5 }).start();
    await until(() => spool.pendingRecords === 0);
    expect(seqs(s.written)).toEqual(range(1, 5));
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(log.lines).toContainEqual(
      expect.objectContaining({
        level: 'error',
        msg: 'drainer: spool checkpoint failed; retrying',
      }),
    );
  });
});

/**
 * A Store that takes spool payloads as they are (as the embedded store does, decoding them in
 * its writer thread): decodes them with the spool's codec when a send runs, and refuses a send
 * holding a point `bad` picks. Batches of decoded points are the path the drainer's halving uses.
 */
function encodedStore(bad: (p: Point) => boolean = () => false) {
  const written: Point[] = [];
  const encodedSends: { payloads: number; count: number }[] = [];
  const refuseIfBad = (points: readonly Point[]): void => {
    const b = points.find(bad);
    if (b !== undefined) {
      throw new TaihuError('TAIHU_ERR_STORE', `refused seq ${String(b.fields.seq)}`, {
        statusCode: 400,
        retryable: false,
      });
    }
  };
  const store: Store = {
    kind: 'encoded',
    open: async () => {},
    prepare: (batch) => {
      const { payloads, count } = batch;
      if (payloads === undefined) {
        const points = batch.points();
        return fake(points, async () => {
          refuseIfBad(points);
          written.push(...points);
        });
      }
      const copies = payloads.map((p) => Buffer.from(p));
      const send = async (): Promise<void> => {
        encodedSends.push({ payloads: copies.length, count });
        const points = copies.flatMap((p) => decodePayload(p));
        expect(points).toHaveLength(count);
        refuseIfBad(points);
        written.push(...points);
      };
      return { count, points: [], send };
    },
    write: sendFake,
    aggregate: async () => [],
    close: async () => {},
  };
  return { store, written, encodedSends };
}

describe('drainer with a store that decodes spool payloads itself', () => {
  it('hands it the payloads and their point count, batched by points, in spool order', async () => {
    for (let n = 1; n <= 12; n += 3) await spool.append([point(n), point(n + 1), point(n + 2)]);
    const s = encodedStore();
    const d = drainer(s.store, { maxBatchPoints: 6 });
    d.start();
    await until(() => spool.pendingRecords === 0);
    expect(seqs(s.written)).toEqual(range(1, 12));
    expect(s.encodedSends).toEqual([
      { payloads: 2, count: 6 },
      { payloads: 2, count: 6 },
    ]);
    expect(d.pointsWritten).toBe(12);
  });

  it('writes the records of a refused batch that decode, once, and skips the one that does not', async () => {
    // two records, the second undecodable: what is left is one point, which was never refused
    for (let n = 1; n <= 2; n++) await spool.append([point(n)]);
    await spool.close();
    const [segment] = (await readdir(dir)).filter((f) => f.endsWith('.seg'));
    await rewritePayloads(join(dir, segment!), (p, i) => (i === 1 ? undecodable(p) : p));
    spool = await Spool.open(dir, { logger: log.logger, commitWindowMs: 0 });
    const s = encodedStore();
    const write = s.store.write;
    // as the embedded store's writer does with a payload it cannot decode
    s.store.write = (batch) =>
      write(batch).catch(() =>
        Promise.reject(
          new TaihuError('TAIHU_ERR_STORE_REFUSED', 'undecodable', { retryable: false }),
        ),
      );
    const rejected: Point[] = [];
    const d = drainer(s.store, { onRejected: (points) => rejected.push(...points) });
    d.start();
    await until(() => spool.pendingRecords === 0);
    expect(seqs(s.written)).toEqual([1]);
    expect(rejected).toEqual([]);
    expect(log.lines.filter((l) => l.level === 'error').map((l) => [l.msg, l.obj.seq])).toEqual([
      ['undecodable spool record skipped', 2],
    ]);
  });

  it('decodes a refused batch itself to find the refused point, and writes the rest', async () => {
    for (let n = 1; n <= 40; n += 4) await spool.append(range(n, n + 3).map(point));
    const s = encodedStore((p) => p.fields.seq === 23);
    const rejected: Point[] = [];
    const d = drainer(s.store, {
      maxBatchPoints: 40,
      onRejected: (points) => rejected.push(...points),
    });
    d.start();
    await until(() => spool.pendingRecords === 0);
    expect(seqs(rejected)).toEqual([23]);
    expect(seqs(s.written)).toEqual(range(1, 40).filter((n) => n !== 23));
    expect(d.rejectedPoints).toBe(1);
  });
});

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ERR_BAD_PARAM } from '../../src/errors.js';
import { decodePayload, encodePayload } from '../../src/points/codec.js';
import { createEmbeddedStore } from '../../src/store/embedded/index.js';
import type { AggregateFn, AggregateQuery, GroupBy, Store } from '../../src/store/types.js';
import type { FieldValue, Point } from '../../src/points/point.js';
import { rejection } from '../helpers/errors.js';
import { airQuality } from '../helpers/measurements.js';
import { type Batch, writePoints } from '../../src/points/batch.js';

const MIN = 60_000;
const T0 = 30_000_000 * MIN;
const DISTRICTS = ['binhu', 'liangxi', 'xinwu'];

const AQ = airQuality([
  ['seq', 'integer'],
  ['pm25_ugm3', 'float'],
  ['mode', 'string'],
]);

function pt(n: number, fields?: Record<string, FieldValue>): Point {
  const device = n % 30;
  return {
    measurement: 'air_quality',
    tags: {
      device_id: `d${device}`,
      district: DISTRICTS[device % DISTRICTS.length] ?? 'binhu',
      site_id: `s${device % 7}`,
    },
    fields: Object.assign(
      Object.create(null) as Record<string, FieldValue>,
      fields ?? { seq: n, pm25_ugm3: (n * 7919) % 100 },
    ),
    // one reading a minute per device
    ts: T0 + Math.floor(n / 30) * MIN + device,
  };
}

function points(from: number, to: number): Point[] {
  const out: Point[] = [];
  for (let n = from; n < to; n++) out.push(pt(n));
  return out;
}

function query(q: Partial<AggregateQuery> = {}): AggregateQuery {
  return {
    measurement: 'air_quality',
    field: 'pm25_ugm3',
    fn: 'count',
    everyMs: 60 * MIN,
    fromMs: T0,
    toMs: T0 + 24 * 60 * MIN,
    filter: {},
    fill: 'none',
    ...q,
  };
}

/** Readings of pm25 in the store, counted by SQLite. */
async function total(store: Store): Promise<number> {
  const week = 7 * 24 * 60 * MIN;
  const series = await store.aggregate(query({ everyMs: week, toMs: T0 + week }));
  return series[0]?.points[0]?.count ?? 0;
}

let dir: string;
const opened: Store[] = [];

function open(opts: { readers?: number; onWorker?: (w: Worker, role: string) => void } = {}) {
  const store = createEmbeddedStore({ path: join(dir, 'telemetry.db'), ...opts });
  opened.push(store);
  return store;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'taihu-workers-'));
});

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('embedded store workers: errors cross the thread boundary', () => {
  it('a refused write arrives as a TaihuError that is not retryable, so the drainer splits the batch', async () => {
    const store = open();
    await store.open([AQ]);
    const err = await rejection(writePoints(store, [pt(0), pt(1, { pm25_ugm3: 'high' })]));
    expect(err.code).toBe('TAIHU_ERR_STORE');
    expect(err.retryable).toBe(false);
    expect(err.statusCode).toBe(500);
    expect(err.message).toMatch(/pm25_ugm3' expects float, got string/);
    // the whole transaction was rolled back
    expect(await total(store)).toBe(0);
  });

  it('a SQLite failure arrives retryable, with the driver error and its code as cause', async () => {
    const path = join(dir, 'not-a-db');
    writeFileSync(path, 'x'.repeat(4096));
    const store = createEmbeddedStore({ path });
    opened.push(store);
    const err = await rejection(store.open([AQ]));
    expect(err.code).toBe('TAIHU_ERR_STORE');
    expect(err.retryable).toBe(true);
    expect(err.statusCode).toBe(503);
    expect(err.cause).toBeInstanceOf(Error);
    expect((err.cause as { code?: unknown }).code).toBe('SQLITE_NOTADB');
  });

  it('a malformed aggregate is a 400 naming the parameter', async () => {
    const store = open();
    await store.open([AQ]);
    const err = await rejection(store.aggregate(query({ field: 'mode', fn: 'mean' })));
    expect(err.code).toBe(ERR_BAD_PARAM.code);
    expect(err.statusCode).toBe(400);
    expect(err.message).toMatch(/^parameter 'field'/);
  });
});

describe('embedded store workers: a worker that dies', () => {
  it('rejects the write it was running with a retryable error, keeps none of it, and the next write starts a new writer', async () => {
    const workers: [Worker, string][] = [];
    const store = open({ onWorker: (w, role) => workers.push([w, role]) });
    await store.open([AQ]);
    await writePoints(store, points(0, 100));
    const writer = workers.find(([, role]) => role === 'writer')?.[0];
    expect(writer).toBeDefined();

    // large enough that the worker is still inside the transaction when it is ended
    const big = points(100, 60_100);
    const pending = writePoints(store, big);
    await writer?.terminate();
    const err = await rejection(pending);
    expect(err.code).toBe('TAIHU_ERR_STORE');
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/writer worker exited/);

    expect(await total(store)).toBe(100);
    await writePoints(store, big);
    expect(await total(store)).toBe(60_100);
    expect(workers.filter(([, role]) => role === 'writer')).toHaveLength(2);
  });

  it('rejects the aggregates a reader owed and answers the next ones from a new reader', async () => {
    const workers: [Worker, string][] = [];
    const store = open({ readers: 1, onWorker: (w, role) => workers.push([w, role]) });
    await store.open([AQ]);
    await writePoints(store, points(0, 3000));
    expect(await total(store)).toBe(3000);
    const reader = workers.find(([, role]) => role === 'reader')?.[0];
    expect(reader).toBeDefined();

    const pending = [1, 2, 3].map(() => store.aggregate(query({ fn: 'median' })));
    await reader?.terminate();
    for (const p of pending) expect((await rejection(p)).retryable).toBe(true);

    expect(await total(store)).toBe(3000);
    expect(workers.filter(([, role]) => role === 'reader')).toHaveLength(2);
  });
});

describe('embedded store workers: concurrent aggregates', () => {
  it('give the same answers as the same aggregates one at a time', async () => {
    const store = open({ readers: 2 });
    await store.open([AQ]);
    for (let n = 0; n < 30 * 24 * 60; n += 5000) {
      await writePoints(store, points(n, Math.min(n + 5000, 30 * 24 * 60)));
    }
    const fns: AggregateFn[] = ['mean', 'median', 'p95', 'stddev', 'first', 'sum', 'spread'];
    const groupBys: (GroupBy | undefined)[] = [undefined, 'district', 'device'];
    const queries: AggregateQuery[] = [];
    for (const fn of fns) {
      for (const groupBy of groupBys) {
        queries.push(query({ fn, groupBy, everyMs: 30 * MIN, fill: 'null' }));
      }
      queries.push(query({ fn, filter: { district: 'liangxi' }, everyMs: 10 * MIN }));
    }

    const sequential = [];
    for (const q of queries) sequential.push(await store.aggregate(q));
    const concurrent = await Promise.all(queries.map((q) => store.aggregate(q)));
    expect(concurrent).toEqual(sequential);
    // not vacuous: every query found data
    for (const series of sequential) expect(series.length).toBeGreaterThan(0);

    // and the writer's own connection (readers: 0) agrees with the readers
    const single = open({ readers: 0 });
    await single.open([AQ]);
    expect(await Promise.all(queries.map((q) => single.aggregate(q)))).toEqual(sequential);
  });
});

describe('embedded store workers: process lifetime', () => {
  const entry = fileURLToPath(new URL('../../dist/src/store/embedded/index.js', import.meta.url));
  const batch = fileURLToPath(new URL('../../dist/src/points/batch.js', import.meta.url));

  /** Runs `body` in a fresh Node process with `store` open on a file; resolves its exit. */
  function child(body: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const script = `
      import { createEmbeddedStore } from ${JSON.stringify(entry)};
      import { writePoints } from ${JSON.stringify(batch)};
      const fields = new Map([['seq', 'integer'], ['pm25_ugm3', 'float']]);
      const store = createEmbeddedStore({ path: ${JSON.stringify(join(dir, 'child.db'))} });
      await store.open([{ type: 'air-quality', measurement: 'air_quality', fields }]);
      const point = (n) => ({
        measurement: 'air_quality',
        tags: { device_id: 'd' + (n % 30), district: 'binhu', site_id: 's1' },
        fields: { seq: n, pm25_ugm3: n % 100 },
        ts: ${T0} + n * 1000,
      });
      ${body}
    `;
    const file = join(dir, 'child.mjs');
    writeFileSync(file, script);
    return new Promise((resolve) => {
      // the timeout only turns a process that never exits into a failure
      execFile(process.execPath, [file], { timeout: 20_000 }, (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout, stderr });
      });
    });
  }

  it('close() ends the workers and lets the process exit on its own', async () => {
    const r = await child(`
      await writePoints(store, Array.from({ length: 1000 }, (_, n) => point(n)));
      await store.aggregate({ measurement: 'air_quality', field: 'pm25_ugm3', fn: 'mean',
        everyMs: 60000, fromMs: ${T0}, toMs: ${T0 + 3_600_000}, filter: {}, fill: 'none' });
      await store.close();
      console.log('closed');
    `);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('closed\n');
    expect(r.code).toBe(0);
  });

  it('idle workers do not keep the process alive, but a write in progress does until it commits', async () => {
    // nothing awaits the write: only the ref'd writer keeps the process alive to log it
    const r = await child(`
      writePoints(store, Array.from({ length: 20000 }, (_, n) => point(n))).then(
        () => console.log('committed'),
        (err) => console.log('failed', err.message),
      );
    `);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('committed\n');
    expect(r.code).toBe(0);
  });
});

/** Spool record payloads as the drainer hands them to a store, `count` points in all. */
const encoded = (payloads: Buffer[], count: number): Batch => ({
  count,
  payloads,
  points: () => payloads.flatMap((p) => decodePayload(p)),
});

describe('embedded store workers: spool payloads decoded in the writer', () => {
  it('writes the points of encoded payloads as write() writes the points themselves', async () => {
    const store = open();
    await store.open([AQ]);
    const prepared = store.prepare(
      encoded(
        [
          encodePayload(points(0, 40)),
          encodePayload(points(40, 41)),
          encodePayload(points(41, 90)),
        ],
        90,
      ),
    );
    await store.write(prepared);
    expect(await total(store)).toBe(90);
    // a retry sends the same data again: the same series and timestamps, overwritten
    await store.write(prepared);
    expect(await total(store)).toBe(90);
    const plainDir = mkdtempSync(join(tmpdir(), 'taihu-workers-plain-'));
    const plain = createEmbeddedStore({ path: join(plainDir, 'telemetry.db') });
    opened.push(plain);
    await plain.open([AQ]);
    await writePoints(plain, points(0, 90));
    const q = query({ fn: 'mean', groupBy: 'device', everyMs: 10 * MIN });
    expect(await store.aggregate(q)).toEqual(await plain.aggregate(q));
  });

  it('refuses, not retryable, a payload that does not decode, and keeps none of the batch', async () => {
    const store = open();
    await store.open([AQ]);
    const good = encodePayload(points(0, 10));
    const bad = Buffer.concat([good.subarray(0, 5), Buffer.from('[["air_quality"')]);
    const err = await rejection(store.write(store.prepare(encoded([good, bad], 20))));
    expect(err.code).toBe('TAIHU_ERR_STORE_REFUSED');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/undecodable spool payload/);
    expect(await total(store)).toBe(0);
  });
});

/**
 * Live device state, its status events and the event bus, in memory; and GET /latest
 * answered from it through a Fastify app with the real registry (SQLite in memory).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { latestRoutes } from '../../src/http/routes/latest.js';
import { loadCatalog } from '../../src/ingest/catalog.js';
import { LiveEvents, type LiveEvent } from '../../src/state/events.js';
import { LiveState } from '../../src/state/live.js';
import type { AcceptedReading } from '../../src/ingest/pipeline.js';
import { openDatabase, Registry } from '../../src/registry/registry.js';
import { loadSeeds } from '../../src/registry/seeds.js';

const T0 = Date.parse('2026-11-26T08:00:00.000Z');
const INTERVAL_MS = 1000;

const devices = new Map([
  ['aq-1', { id: 'aq-1', type: 'air-quality', district: 'binhu' }],
  ['aq-2', { id: 'aq-2', type: 'air-quality', district: 'xinwu' }],
  ['tf-1', { id: 'tf-1', type: 'traffic-flow', district: 'binhu' }],
]);

function reading(ts: number, seq?: number): AcceptedReading {
  return { ts, seq, data: { pm25_ugm3: 10 + (seq ?? 0) } };
}

/** A LiveState on a bus with one recording listener. */
function observed() {
  const events = new LiveEvents();
  const seen: LiveEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const live = new LiveState({ events, identify: (id) => devices.get(id) });
  const statuses = () => seen.map((e) => (e.kind === 'status' ? [e.deviceId, e.status] : e.kind));
  return { events, live, seen, statuses };
}

describe('live state', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('goes never, online, offline and publishes each transition once', () => {
    const { live, seen, statuses } = observed();
    expect(live.status('aq-1', INTERVAL_MS, T0)).toBe('never');

    live.connected('aq-1', T0);
    live.connected('aq-1', T0 + 10); // an `online` status message after the connect
    expect(live.status('aq-1', INTERVAL_MS, T0 + 20)).toBe('online');
    expect(live.connectedCount).toBe(1);

    live.disconnected('aq-1', T0 + 30);
    live.disconnected('aq-1', T0 + 40); // the Will after the disconnect
    expect(live.status('aq-1', INTERVAL_MS, T0 + 50)).toBe('offline');
    expect(live.connectedCount).toBe(0);

    expect(statuses()).toEqual([
      ['aq-1', 'online'],
      ['aq-1', 'offline'],
    ]);
    expect(seen[0]).toEqual({
      kind: 'status',
      deviceId: 'aq-1',
      type: 'air-quality',
      district: 'binhu',
      status: 'online',
      at: T0,
    });
  });

  it('computes stale on read after three silent intervals, without the sweep', () => {
    const live = new LiveState();
    live.connected('aq-1', T0);
    expect(live.status('aq-1', INTERVAL_MS, T0 + 3 * INTERVAL_MS)).toBe('online');
    expect(live.status('aq-1', INTERVAL_MS, T0 + 3 * INTERVAL_MS + 1)).toBe('stale');
  });

  it('publishes stale from the sweep, dated when the limit passed, and online when it speaks again', () => {
    vi.useFakeTimers({ now: T0 });
    const { live, seen, statuses } = observed();
    live.start({ intervalMsOf: () => INTERVAL_MS, everyMs: 100 });
    live.connected('aq-1', Date.now());
    live.connected('tf-1', Date.now());

    vi.advanceTimersByTime(2 * INTERVAL_MS);
    live.accepted('tf-1', [reading(Date.now())], Date.now()); // tf-1 keeps talking
    vi.advanceTimersByTime(2 * INTERVAL_MS);
    expect(statuses()).toEqual([
      ['aq-1', 'online'],
      ['tf-1', 'online'],
      ['aq-1', 'stale'],
    ]);
    expect(seen[2]).toMatchObject({ status: 'stale', at: T0 + 3 * INTERVAL_MS });

    vi.advanceTimersByTime(10 * INTERVAL_MS); // no repeat while it stays stale
    live.accepted('aq-1', [reading(Date.now())], Date.now());
    expect(statuses().slice(3)).toEqual([
      ['tf-1', 'stale'],
      ['aq-1', 'online'],
    ]);
    live.stop();
  });

  it('stops sweeping on stop()', () => {
    vi.useFakeTimers({ now: T0 });
    const { live, statuses } = observed();
    live.start({ intervalMsOf: () => INTERVAL_MS, everyMs: 100 });
    live.connected('aq-1', Date.now());
    live.stop();
    vi.advanceTimersByTime(10 * INTERVAL_MS);
    expect(statuses()).toEqual([['aq-1', 'online']]);
    expect(live.status('aq-1', INTERVAL_MS, Date.now())).toBe('stale');
  });

  it('sweeps on real timers too', async () => {
    const { live, statuses } = observed();
    live.start({ intervalMsOf: () => 5, everyMs: 10 });
    live.connected('aq-2', Date.now());
    await vi.waitFor(() => expect(statuses()).toContainEqual(['aq-2', 'stale']), {
      timeout: 2000,
      interval: 10,
    });
    live.stop();
  });

  it('does not bring a device back online when a commit lands after its disconnect', () => {
    const { live, statuses } = observed();
    live.connected('aq-1', T0);
    live.disconnected('aq-1', T0 + 500);
    live.accepted('aq-1', [reading(T0 + 100, 1)], T0 + 100); // received before the disconnect
    expect(live.status('aq-1', INTERVAL_MS, T0 + 600)).toBe('offline');
    expect(live.view('aq-1', INTERVAL_MS, T0 + 600)).toMatchObject({
      status: 'offline',
      lastSeen: new Date(T0 + 100).toISOString(),
      last: { seq: 1 },
    });
    // The later disconnect still counts as the last activity once it reconnects.
    live.connected('aq-1', T0 + 400);
    expect(live.status('aq-1', 100, T0 + 500 + 300)).toBe('online');
    expect(statuses()).toEqual([
      ['aq-1', 'online'],
      ['aq-1', 'offline'],
      ['aq-1', 'online'],
    ]);
  });

  it('keeps the newest reading by reading time, not by arrival', () => {
    const live = new LiveState();
    live.connected('aq-1', T0);
    live.accepted('aq-1', [reading(T0 - 2000, 1), reading(T0 - 1000, 2)], T0);
    live.accepted('aq-1', [reading(T0 - 5000, 0)], T0 + 10); // a late backlog
    expect(live.view('aq-1', INTERVAL_MS, T0 + 10).last).toEqual({
      ts: new Date(T0 - 1000).toISOString(),
      seq: 2,
      data: { pm25_ugm3: 12 },
    });
  });

  it('lists devices with a last reading, sorted by id and narrowed by a filter', () => {
    const live = new LiveState();
    for (const id of ['tf-1', 'aq-2', 'aq-1']) live.connected(id, T0);
    live.accepted('tf-1', [reading(T0, 1)], T0);
    live.accepted('aq-2', [reading(T0, 2)], T0 + 1);
    // aq-1 is connected but has sent nothing: not listed.
    expect(live.latest().map((l) => l.id)).toEqual(['aq-2', 'tf-1']);
    expect(live.latest((id) => devices.get(id)?.district === 'binhu')).toEqual([
      { id: 'tf-1', lastSeen: T0, last: reading(T0, 1) },
    ]);
  });

  it('forgets a device entirely', () => {
    const live = new LiveState();
    live.connected('aq-1', T0);
    live.accepted('aq-1', [reading(T0)], T0);
    live.forget('aq-1');
    expect(live.status('aq-1', INTERVAL_MS, T0)).toBe('never');
    expect(live.latest()).toEqual([]);
    expect(live.connectedCount).toBe(0);
  });

  it('does not look devices up when nobody listens', () => {
    const events = new LiveEvents();
    const identify = vi.fn((id: string) => devices.get(id));
    const live = new LiveState({ events, identify });
    live.connected('aq-1', T0);
    live.disconnected('aq-1', T0 + 1);
    expect(identify).not.toHaveBeenCalled();

    const seen: LiveEvent[] = [];
    events.subscribe((e) => seen.push(e));
    live.connected('aq-1', T0 + 2);
    expect(identify).toHaveBeenCalledTimes(1);
    expect(seen).toHaveLength(1);
  });
});

describe('live event bus', () => {
  const device = { id: 'aq-1', type: 'air-quality', district: 'binhu', siteId: 'binhu-aq-01' };

  it('delivers readings to every listener until it unsubscribes', () => {
    const events = new LiveEvents();
    const a: LiveEvent[] = [];
    const b: LiveEvent[] = [];
    const offA = events.subscribe((e) => a.push(e));
    events.subscribe((e) => b.push(e));
    expect(events.size).toBe(2);

    events.reading(device, [reading(T0, 7)]);
    offA();
    offA(); // twice is harmless
    events.reading(device, [reading(T0 + 1, 8)]);

    expect(a).toEqual([
      {
        kind: 'reading',
        deviceId: 'aq-1',
        type: 'air-quality',
        district: 'binhu',
        siteId: 'binhu-aq-01',
        readings: [reading(T0, 7)],
      },
    ]);
    expect(b).toHaveLength(2);
    expect(events.size).toBe(1);
  });

  it('keeps calling the other listeners when one throws, and reports what it threw', () => {
    const errors: unknown[] = [];
    const events = new LiveEvents((err) => errors.push(err));
    const seen: string[] = [];
    events.subscribe(() => {
      throw new Error('listener broke');
    });
    events.subscribe((e) => seen.push(e.kind));
    expect(() => events.status(device, 'online', T0)).not.toThrow();
    expect(seen).toEqual(['status']);
    expect(errors).toEqual([new Error('listener broke')]);
  });

  it('lets a listener unsubscribe itself during a publish without skipping the next one', () => {
    const events = new LiveEvents();
    const seen: string[] = [];
    const off = events.subscribe(() => {
      seen.push('first');
      off();
    });
    events.subscribe(() => seen.push('second'));
    events.status(device, 'online', T0);
    events.status(device, 'offline', T0 + 1);
    expect(seen).toEqual(['first', 'second', 'second']);
  });

  it('treats one function subscribed twice as two subscriptions', () => {
    const events = new LiveEvents();
    let calls = 0;
    const listener = () => calls++;
    const off = events.subscribe(listener);
    events.subscribe(listener);
    off();
    events.status(device, 'online', T0);
    expect(calls).toBe(1);
  });
});

describe('GET /api/v1/latest', () => {
  const catalog = loadCatalog('schemas');
  const db = openDatabase(':memory:');
  const registry = new Registry(db);
  registry.applySeeds(loadSeeds('seeds', catalog));
  const live = new LiveState();
  let app: FastifyInstance;

  beforeAll(async () => {
    // Connected, with readings: two air-quality devices in two districts, one traffic counter.
    for (const id of ['aq-xinwu-0001', 'tf-liangxi-0001', 'aq-liangxi-0002', 'aq-liangxi-0001']) {
      live.connected(id, T0);
    }
    live.accepted('aq-xinwu-0001', [reading(T0 - 1000, 5)], T0);
    live.accepted('tf-liangxi-0001', [{ ts: T0, seq: undefined, data: { vehicle_count: 3 } }], T0);
    live.accepted('aq-liangxi-0002', [reading(T0 - 2000, 9)], T0 + 1);
    app = Fastify();
    await app.register(latestRoutes({ registry, catalog, live, now: () => T0 + 2000 }), {
      prefix: '/api/v1',
    });
  });
  afterAll(async () => {
    await app.close();
    db.close();
  });

  it('answers every last reading from memory, sorted by id', async () => {
    const r = await app.inject('/api/v1/latest');
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.total).toBe(3);
    expect(body.items.map((i: { id: string }) => i.id)).toEqual([
      'aq-liangxi-0002',
      'aq-xinwu-0001',
      'tf-liangxi-0001',
    ]);
    expect(body.items[0]).toEqual({
      id: 'aq-liangxi-0002',
      type: 'air-quality',
      district: 'liangxi',
      siteId: 'liangxi-aq-0002',
      status: 'online',
      lastSeen: new Date(T0 + 1).toISOString(),
      ts: new Date(T0 - 2000).toISOString(),
      seq: 9,
      data: { pm25_ugm3: 19 },
    });
    expect(body.items[2]).toMatchObject({ seq: null, data: { vehicle_count: 3 } });
  });

  it('filters by type and district and pages with limit and offset', async () => {
    const byType = (await app.inject('/api/v1/latest?type=air-quality')).json();
    expect(byType.items.map((i: { id: string }) => i.id)).toEqual([
      'aq-liangxi-0002',
      'aq-xinwu-0001',
    ]);
    const both = (await app.inject('/api/v1/latest?type=air-quality&district=xinwu')).json();
    expect(both).toMatchObject({ total: 1, items: [{ id: 'aq-xinwu-0001' }] });
    const page = (await app.inject('/api/v1/latest?limit=1&offset=1')).json();
    expect(page).toMatchObject({ total: 3, items: [{ id: 'aq-xinwu-0001' }] });
  });

  it('refuses an unknown type or district with a 400 naming the parameter', async () => {
    for (const [query, param] of [
      ['type=toaster', 'type'],
      ['district=atlantis', 'district'],
      ['limit=10001', 'limit'],
    ] as const) {
      const r = await app.inject(`/api/v1/latest?${query}`);
      expect(r.statusCode, query).toBe(400);
      expect(r.json().message).toContain(param);
    }
  });
});

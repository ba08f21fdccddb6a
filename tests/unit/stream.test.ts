/**
 * GET /stream over a real socket: a Fastify app on 127.0.0.1 with the stream plugin,
 * the real registry (SQLite in memory) and catalogue, read with node's http client.
 * Events are published on the bus directly, as ingest and live state do.
 */
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { get, type ClientRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { streamRoutes, type StreamCounters } from '../../src/http/routes/stream.js';
import { loadCatalog } from '../../src/ingest/catalog.js';
import { LiveEvents } from '../../src/state/events.js';
import type { AcceptedReading } from '../../src/ingest/pipeline.js';
import { openDatabase, Registry } from '../../src/registry/registry.js';
import { loadSeeds } from '../../src/registry/seeds.js';

const T0 = Date.parse('2026-11-26T08:00:00.000Z');
const log = pino({ level: 'silent' });

const aqLiangxi = {
  id: 'aq-liangxi-0001',
  type: 'air-quality',
  district: 'liangxi',
  siteId: 'liangxi-aq-0001',
};
const aqXinwu = { id: 'aq-xinwu-0001', type: 'air-quality', district: 'xinwu', siteId: 'x-1' };
const tfLiangxi = { id: 'tf-liangxi-0001', type: 'traffic-flow', district: 'liangxi', siteId: 'l' };
const weatherXinwu = { id: 'ws-xinwu-0001', type: 'weather', district: 'xinwu', siteId: 'x-2' };

function reading(ts: number, seq?: number): AcceptedReading {
  return { ts, seq, data: { pm25_ugm3: 48.2, pm10_ugm3: 77 } };
}

interface Frame {
  comment?: string;
  id?: string;
  event?: string;
  // why: event data of several shapes, asserted on as parsed JSON.
  data?: any;
}

/** One SSE block (the text between blank lines) as fields; `data` parsed as JSON. */
function parseFrame(block: string): Frame {
  const f: Frame = {};
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) f.comment = line.slice(1).trim();
    else if (line.startsWith('id: ')) f.id = line.slice(4);
    else if (line.startsWith('event: ')) f.event = line.slice(7);
    else if (line.startsWith('data: ')) f.data = JSON.parse(line.slice(6));
  }
  return f;
}

interface Client {
  readonly req: ClientRequest;
  readonly res: IncomingMessage;
  /** Parsed frames, comments included, in arrival order (only while reading). */
  readonly frames: Frame[];
  /** Events only. */
  events(): Frame[];
  /** Resolves when the connection is gone, whoever ended it. */
  readonly closed: Promise<void>;
  read(): void;
  bytes: number;
}

describe('GET /api/v1/stream', () => {
  const catalog = loadCatalog('schemas');
  const db = openDatabase(':memory:');
  const registry = new Registry(db);
  registry.applySeeds(loadSeeds('seeds', catalog));
  const events = new LiveEvents();
  const counters: StreamCounters = { open: 0, opened: 0, dropped: 0 };
  const tightCounters: StreamCounters = { open: 0, opened: 0, dropped: 0 };
  const clients: Client[] = [];
  let app: FastifyInstance;
  let port = 0;

  beforeAll(async () => {
    app = Fastify();
    // Stands in for a slow auth hook, so a client can leave before the handler runs.
    app.addHook('onRequest', async (req) => {
      if (req.headers['x-test-delay']) await new Promise((r) => setTimeout(r, 100));
    });
    await app.register(swagger, { openapi: { info: { title: 'test', version: '1' } } });
    await app.register(streamRoutes({ registry, catalog, events, log, counters }), {
      prefix: '/api/v1',
    });
    // Same bus, bounds small enough to watch: no byte bound, a short drain wait, fast heartbeat.
    await app.register(
      streamRoutes({
        registry,
        catalog,
        events,
        log,
        counters: tightCounters,
        options: { maxBufferedBytes: Infinity, drainTimeoutMs: 100, heartbeatMs: 30 },
      }),
      { prefix: '/tight' },
    );
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.req.destroy();
    await vi.waitFor(() => expect(events.size).toBe(0));
  });

  afterAll(async () => {
    await app.close();
    db.close();
  });

  /** Opens a stream; `paused` leaves the response unread until `read()`. */
  function open(path: string, { paused = false } = {}): Promise<Client> {
    return new Promise((resolve, reject) => {
      const req = get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let buf = '';
        const c: Client = {
          req,
          res,
          frames: [],
          events: () => c.frames.filter((f) => f.event !== undefined),
          closed: new Promise((done) => res.on('close', () => done())),
          bytes: 0,
          read() {
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              c.bytes += chunk.length;
              buf += chunk;
              for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
                c.frames.push(parseFrame(buf.slice(0, i)));
                buf = buf.slice(i + 2);
              }
            });
            // A paused response stays paused when a listener is added.
            res.resume();
          },
        };
        // A dropped client sees its response cut short ("aborted"); that is the expectation.
        res.on('error', () => {});
        clients.push(c);
        if (paused) res.pause();
        else c.read();
        resolve(c);
      });
      req.on('error', reject);
    });
  }

  /** A stream whose `: connected` comment has arrived, so it is subscribed. */
  async function connected(path: string): Promise<Client> {
    const c = await open(path);
    await vi.waitFor(() => expect(c.frames[0]).toEqual({ comment: 'connected' }));
    return c;
  }

  // why: an error body, asserted on as parsed JSON.
  async function getJson(path: string): Promise<{ status: number; body: any }> {
    return new Promise((resolve, reject) => {
      get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      }).on('error', reject);
    });
  }

  it('opens with SSE headers and a comment, then sends readings and status changes as events', async () => {
    const c = await connected('/api/v1/stream');
    expect(c.res.statusCode).toBe(200);
    expect(c.res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(c.res.headers['cache-control']).toBe('no-cache');
    expect(c.res.headers['x-accel-buffering']).toBe('no');

    events.reading(aqLiangxi, [reading(T0 - 1000, 41), reading(T0)]);
    events.status(aqLiangxi, 'stale', T0 + 5000);
    await vi.waitFor(() => expect(c.events()).toHaveLength(2));

    expect(c.events()).toEqual([
      {
        id: '1',
        event: 'reading',
        data: {
          id: 'aq-liangxi-0001',
          type: 'air-quality',
          district: 'liangxi',
          siteId: 'liangxi-aq-0001',
          readings: [
            {
              ts: '2026-11-26T07:59:59.000Z',
              seq: 41,
              data: { pm25_ugm3: 48.2, pm10_ugm3: 77 },
            },
            { ts: '2026-11-26T08:00:00.000Z', seq: null, data: { pm25_ugm3: 48.2, pm10_ugm3: 77 } },
          ],
        },
      },
      {
        id: '2',
        event: 'status',
        data: {
          id: 'aq-liangxi-0001',
          type: 'air-quality',
          district: 'liangxi',
          status: 'stale',
          at: '2026-11-26T08:00:05.000Z',
        },
      },
    ]);
  });

  it('sends each stream only the events its type, district and device filters match', async () => {
    const byType = await connected('/api/v1/stream?type=air-quality');
    const byDistrict = await connected('/api/v1/stream?district=xinwu');
    const byDevice = await connected('/api/v1/stream?device=tf-liangxi-0001');

    events.reading(aqLiangxi, [reading(T0, 1)]);
    events.status(aqXinwu, 'online', T0);
    events.reading(tfLiangxi, [reading(T0, 3)]);
    events.reading(weatherXinwu, [reading(T0, 4)]);
    events.status(tfLiangxi, 'offline', T0);
    events.reading(aqXinwu, [reading(T0, 6)]);

    const seen = (c: Client) =>
      c.events().map((f) => `${f.event} ${f.data.id} ${f.data.readings?.[0].seq ?? f.data.status}`);
    await vi.waitFor(() => {
      expect(seen(byType)).toHaveLength(3);
      expect(seen(byDistrict)).toHaveLength(3);
      expect(seen(byDevice)).toHaveLength(2);
    });
    expect(seen(byType)).toEqual([
      'reading aq-liangxi-0001 1',
      'status aq-xinwu-0001 online',
      'reading aq-xinwu-0001 6',
    ]);
    expect(seen(byDistrict)).toEqual([
      'status aq-xinwu-0001 online',
      'reading ws-xinwu-0001 4',
      'reading aq-xinwu-0001 6',
    ]);
    expect(seen(byDevice)).toEqual(['reading tf-liangxi-0001 3', 'status tf-liangxi-0001 offline']);
    // Ids count each connection's own events.
    expect(byDevice.events().map((f) => f.id)).toEqual(['1', '2']);
  });

  it('refuses an unknown type, district or device with a 400 naming the parameter', async () => {
    for (const [query, param] of [
      ['type=toaster', 'type'],
      ['district=atlantis', 'district'],
      ['device=nobody-0001', 'device'],
    ] as const) {
      const r = await getJson(`/api/v1/stream?${query}`);
      expect(r.status, query).toBe(400);
      expect(r.body).toMatchObject({ code: 'TAIHU_ERR_BAD_PARAM' });
      expect(r.body.message).toContain(`parameter '${param}'`);
    }
    expect(events.size).toBe(0);
  });

  it('unsubscribes when the client goes away', async () => {
    const c = await connected('/api/v1/stream');
    expect(events.size).toBe(1);
    expect(counters.open).toBe(1);
    c.req.destroy();
    await vi.waitFor(() => expect(events.size).toBe(0));
    expect(counters.open).toBe(0);
  });

  it('does not subscribe for a client that left before the stream opened', async () => {
    const req = get({
      host: '127.0.0.1',
      port,
      path: '/api/v1/stream',
      agent: false,
      headers: { 'x-test-delay': '1' },
    });
    req.on('error', () => {});
    await new Promise((r) => setTimeout(r, 20));
    req.destroy();
    await new Promise((r) => setTimeout(r, 200));
    expect(events.size).toBe(0);
    expect(counters.open).toBe(0);
  });

  it('drops a client that stops reading, while publishing carries on and others keep up', async () => {
    const healthy = await connected('/api/v1/stream');
    const slow = await open('/api/v1/stream', { paused: true });
    await vi.waitFor(() => expect(events.size).toBe(2));
    const dropped = counters.dropped;

    // ~1 KiB events in 256 KiB bursts; each burst is published synchronously (nothing
    // awaits inside publish), then the healthy reader is given time to catch up.
    const readings = Array.from({ length: 14 }, (_, i) => reading(T0 + i, i));
    let published = 0;
    let bytes = 0;
    while (counters.dropped === dropped && bytes < 64 * 1024 * 1024) {
      for (let i = 0; i < 256; i++) {
        events.reading(aqLiangxi, readings);
        published++;
      }
      bytes += 256 * 1024;
      await vi.waitFor(() => expect(healthy.events()).toHaveLength(published), { timeout: 5000 });
    }

    expect(counters.dropped).toBe(dropped + 1);
    expect(bytes).toBeGreaterThanOrEqual(1024 * 1024);
    expect(events.size).toBe(1); // the slow one unsubscribed at once
    // The dropped client reads what reached it, then finds the connection gone.
    slow.read();
    await slow.closed;
    expect(slow.events().length).toBeLessThan(published);
    expect(slow.res.complete).toBe(false);

    // The healthy client got every event and still gets more.
    events.status(aqLiangxi, 'online', T0);
    await vi.waitFor(() => expect(healthy.events()).toHaveLength(published + 1));
    expect(healthy.events().at(-1)?.id).toBe(String(published + 1));
  });

  it('drops a client whose socket stays full past the drain timeout', async () => {
    const slow = await open('/tight/stream', { paused: true });
    await vi.waitFor(() => expect(events.size).toBe(1));
    const readings = Array.from({ length: 14 }, (_, i) => reading(T0 + i, i));
    // ~5 MiB at once: more than the loopback socket buffers take from a reader that is paused.
    for (let i = 0; i < 5 * 1024; i++) events.reading(aqLiangxi, readings);
    expect(tightCounters.dropped).toBe(0); // no byte bound on this route
    await vi.waitFor(() => expect(tightCounters.dropped).toBe(1), { timeout: 5000 });
    expect(events.size).toBe(0);
    slow.read();
    await slow.closed;
  });

  it('sends a comment heartbeat while nothing happens', async () => {
    const c = await connected('/tight/stream');
    await vi.waitFor(() =>
      expect(c.frames.filter((f) => f.comment === 'heartbeat').length).toBeGreaterThanOrEqual(2),
    );
  });

  it('documents the route in OpenAPI as text/event-stream, and its errors as JSON', () => {
    // why: the generated OpenAPI document, walked by path.
    const doc = app.swagger() as any;
    const op = doc.paths['/api/v1/stream'].get;
    expect(Object.keys(op.responses['200'].content)).toEqual(['text/event-stream']);
    expect(Object.keys(op.responses['400'].content)).toEqual(['application/json']);
    expect(op.parameters.map((p: { name: string }) => p.name).sort()).toEqual([
      'device',
      'district',
      'type',
    ]);
  });
});

describe('closing the app', () => {
  it('ends the open streams instead of waiting for their clients', async () => {
    const catalog = loadCatalog('schemas');
    const db = openDatabase(':memory:');
    const registry = new Registry(db);
    const events = new LiveEvents();
    const app = Fastify();
    await app.register(streamRoutes({ registry, catalog, events, log }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const res = await new Promise<IncomingMessage>((resolve) =>
      get({ host: '127.0.0.1', port, path: '/stream', agent: false }, resolve),
    );
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (text += chunk));
    const ended = new Promise<void>((resolve) => res.on('end', resolve));
    await vi.waitFor(() => expect(events.size).toBe(1));

    await app.close();
    await ended;
    expect(text).toBe(': connected\n\n');
    expect(events.size).toBe(0);
    db.close();
  });
});

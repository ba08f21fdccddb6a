import { checkKnown, NAME_PARAM, queryString } from '../params.js';
/**
 * `GET /stream`: accepted readings and status changes as Server-Sent Events, live,
 * from the event bus. Nothing is replayed: `id:` counts the events of one
 * connection, and a reconnecting client starts from now.
 *
 * A client that does not keep up is dropped, never waited for: frames are written
 * synchronously inside the publish, and once too much is queued, or the socket has
 * stayed full too long, the connection is reset (not ended, which would wait on the
 * very reader that stopped reading).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import type { Catalog } from '../../ingest/catalog.js';
import type { LiveEvent, LiveEvents } from '../../state/events.js';
import type { Registry } from '../../registry/registry.js';
import { ERROR_SCHEMA } from '../app.js';

export interface StreamOptions {
  /**
   * Bytes queued for a client before it is dropped (bounds memory per client). Default 1 MiB.
   * Node flushes a response once per tick, so what one burst of publishes adds counts too.
   */
  readonly maxBufferedBytes: number;
  /** ms a client may stay behind (socket full, no `drain`) before it is dropped; 0 disables. Default 30 s. */
  readonly drainTimeoutMs: number;
  /** ms between comment heartbeats, which keep proxies from closing a quiet stream; 0 disables. Default 15 s. */
  readonly heartbeatMs: number;
}

const defaultOptions: StreamOptions = {
  maxBufferedBytes: 1024 * 1024,
  drainTimeoutMs: 30_000,
  heartbeatMs: 15_000,
};

/** Stream counts, for metrics. */
export interface StreamCounters {
  /** Streams open now. */
  open: number;
  /** Streams opened since start. */
  opened: number;
  /** Streams dropped for not reading fast enough. */
  dropped: number;
}

export interface StreamDeps {
  readonly registry: Pick<Registry, 'get' | 'site' | 'hasDistrict' | 'districts'>;
  readonly catalog: Catalog;
  readonly events: LiveEvents;
  readonly log: Logger;
  /** Updated as streams open, close and get dropped; pass one to read it elsewhere. */
  readonly counters?: StreamCounters;
  readonly options?: Partial<StreamOptions>;
}

interface StreamQuery {
  type?: string;
  district?: string;
  device?: string;
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  // Tells nginx-style proxies not to buffer the stream.
  'x-accel-buffering': 'no',
};

const STREAM_DESCRIPTION = [
  'Server-Sent Events, one per accepted message or status change, until the client leaves.',
  '`event: reading` data: `{ id, type, district, siteId, readings: [{ ts, seq, data }] }`',
  '(sent once the readings are durable); `event: status` data: `{ id, type, district, status, at }`',
  '(status is online, offline or stale). Each event has an `id:` counting this connection;',
  'nothing is replayed. A `: connected` comment opens the stream and a comment heartbeat',
  'follows every 15 s. A client that falls too far behind is disconnected.',
].join(' ');

export function streamRoutes(deps: StreamDeps): FastifyPluginAsync {
  const { registry, catalog, events, log } = deps;
  const opts: StreamOptions = { ...defaultOptions, ...deps.options };
  const counters = deps.counters ?? { open: 0, opened: 0, dropped: 0 };
  /** How to end each open stream, for shutdown. */
  const open = new Set<() => void>();

  // Every stream hears the same event object in one synchronous publish: serialise it once.
  let lastEvent: LiveEvent | undefined;
  let lastData = '';
  const dataOf = (e: LiveEvent): string => {
    if (e !== lastEvent) {
      lastEvent = e;
      lastData = JSON.stringify(
        e.kind === 'reading'
          ? {
              id: e.deviceId,
              type: e.type,
              district: e.district,
              siteId: e.siteId,
              readings: e.readings.map((r) => ({
                ts: new Date(r.ts).toISOString(),
                seq: r.seq ?? null,
                data: r.data,
              })),
            }
          : {
              id: e.deviceId,
              type: e.type,
              district: e.district,
              status: e.status,
              at: new Date(e.at).toISOString(),
            },
      );
    }
    return lastData;
  };

  return async (app) => {
    // Open streams would hold `close()` until their clients leave.
    app.addHook('preClose', async () => {
      for (const end of open) end();
    });

    app.get<{ Querystring: StreamQuery }>(
      '/stream',
      {
        schema: {
          summary: 'Live readings and status changes as Server-Sent Events',
          description: STREAM_DESCRIPTION,
          tags: ['devices'],
          querystring: queryString({
            type: NAME_PARAM,
            district: NAME_PARAM,
            device: NAME_PARAM,
          }),
          response: {
            // Documentation only: the reply is hijacked, so no serialiser ever runs for it.
            200: {
              description: 'An endless text/event-stream',
              content: {
                'text/event-stream': {
                  schema: { type: 'string', description: 'SSE frames, as described above' },
                },
              },
            },
            400: ERROR_SCHEMA,
          },
        },
      },
      async (req, reply) => {
        const q = req.query;
        checkKnown({ type: q.type, district: q.district, device: q.device }, catalog, registry);

        const { type, district, device } = q;
        const res = reply.raw;
        reply.hijack();
        // A client gone during the hooks has had its 'close' already: nothing would unsubscribe.
        if (res.destroyed) return;
        res.writeHead(200, SSE_HEADERS);

        let lastId = 0;
        let closed = false;
        let drainTimer: NodeJS.Timeout | undefined;

        const drop = (reason: string) => {
          if (closed) return;
          counters.dropped++;
          log.warn(
            { reqId: req.id, unreadBytes: res.writableLength, reason },
            'event stream client not reading; dropped',
          );
          // 'close' follows asynchronously: stop writing now.
          cleanup();
          // A reset, not a close: a close would leave the kernel sending what is queued
          // (megabytes) to a reader that is not reading, for as long as TCP keeps trying.
          if (res.socket) res.socket.resetAndDestroy();
          else res.destroy();
        };
        const write = (chunk: string) => {
          if (closed) return;
          if (res.writableLength > opts.maxBufferedBytes) return drop('too much unread');
          if (!res.write(chunk) && drainTimer === undefined && opts.drainTimeoutMs > 0) {
            drainTimer = setTimeout(() => drop('socket full too long'), opts.drainTimeoutMs);
            drainTimer.unref();
          }
        };
        const onDrain = () => {
          clearTimeout(drainTimer);
          drainTimer = undefined;
        };

        const unsubscribe = events.subscribe((e) => {
          if (type !== undefined && e.type !== type) return;
          if (district !== undefined && e.district !== district) return;
          if (device !== undefined && e.deviceId !== device) return;
          write(`id: ${++lastId}\nevent: ${e.kind}\ndata: ${dataOf(e)}\n\n`);
        });
        const heartbeat =
          opts.heartbeatMs > 0
            ? setInterval(() => write(': heartbeat\n\n'), opts.heartbeatMs)
            : undefined;
        heartbeat?.unref();

        function cleanup() {
          if (closed) return;
          closed = true;
          unsubscribe();
          clearInterval(heartbeat);
          clearTimeout(drainTimer);
          res.off('drain', onDrain);
          open.delete(shutdown);
          counters.open--;
          log.debug({ reqId: req.id, events: lastId }, 'event stream closed');
        }
        // A client still reading gets a clean end; one that is behind would hold the close.
        function shutdown() {
          cleanup();
          if (res.writableLength > 0) res.destroy();
          else res.end();
        }

        res.on('drain', onDrain);
        res.on('close', cleanup);
        // Writes stop at cleanup; anything the socket reports after that has no one to tell.
        res.on('error', (err) => log.debug({ reqId: req.id, err }, 'event stream error'));
        open.add(shutdown);
        counters.open++;
        counters.opened++;
        log.debug({ reqId: req.id, type, district, device }, 'event stream opened');
        write(': connected\n\n');
      },
    );
  };
}

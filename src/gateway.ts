/**
 * Builds and wires the gateway's parts; `start()` opens the sockets, `close()`
 * shuts down in order. Never exits the process (that is main.ts's job).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createBroker, disconnectDevice, notifyRejection } from './broker/broker.js';
import { listenTcp, listenWebSocket, type Listener } from './broker/listeners.js';
import type { Config } from './config.js';
import { buildApp } from './http/app.js';
import { loadCatalog, type Catalog } from './ingest/catalog.js';
import { Ingest } from './ingest/ingest.js';
import { LiveEvents } from './ingest/events.js';
import { LiveState } from './ingest/live.js';
import { RejectionLog } from './ingest/rejections.js';
import { ApiKeys } from './registry/api-keys.js';
import { readOrCreateKeyFile, writeKeyFile } from './registry/credentials.js';
import { openDatabase, Registry } from './registry/registry.js';
import { loadSeeds } from './registry/seeds.js';
import { Drainer } from './spool/drainer.js';
import { Spool, type SpoolState } from './spool/spool.js';
import { createEmbeddedStore } from './store/embedded/index.js';
import { createInfluxStore } from './store/influx/index.js';
import { Metrics } from './telemetry/metrics.js';
import type { StreamCounters } from './http/routes/stream.js';
import type { Point, Store } from './store/types.js';
import { REJECT } from './errors.js';

export interface Ports {
  readonly mqtt: number;
  readonly ws: number;
  readonly http: number;
}

export interface Gateway {
  readonly catalog: Catalog;
  readonly registry: Registry;
  readonly ingest: Ingest;
  readonly enrollmentKey: string;
  start(): Promise<Ports>;
  close(): Promise<void>;
}

/** How long the drainer lets a batch gather before writing it: bounds publish→queryable. */
const DRAIN_BATCH_AGE_MS = 250;
/** Part of the shutdown deadline (main.ts) the drainer may spend flushing the spool. */
const DRAIN_ON_CLOSE_MS = 4_000;

export async function createGateway(config: Readonly<Config>, log: Logger): Promise<Gateway> {
  // Check everything that can be wrong in files before any socket opens.
  const catalog = loadCatalog(config.schemasDir);
  mkdirSync(config.dataDir, { recursive: true });
  const seeds = loadSeeds(config.seedsDir, catalog);

  const db = openDatabase(join(config.dataDir, 'registry.db'));
  const registry = new Registry(db);
  const added = registry.applySeeds(seeds);
  if (added > 0) log.info({ added, total: registry.size }, 'devices loaded from seeds');

  const enrollmentKey = config.enrollmentKey ?? enrollmentKeyFromFile(config.dataDir, log);
  const apiKeys = new ApiKeys(db, config.adminKey);
  if (!config.adminKey && apiKeys.storedCount === 0) {
    const { key } = apiKeys.create('admin', 'bootstrap');
    const file = join(config.dataDir, 'admin.key');
    writeKeyFile(file, key);
    log.warn({ file }, 'no API key configured: created an admin key and wrote it to this file');
  }

  const store = createStore(config, log);
  await store.open(catalog.measurements());

  const rejections = new RejectionLog(db);
  const events = new LiveEvents((err) => log.warn({ err }, 'live event listener failed'));
  const live = new LiveState({ events, identify: (id) => registry.get(id) });
  const intervalMsOf = (id: string) =>
    (catalog.get(registry.get(id)?.type ?? '')?.intervalSeconds ?? 60) * 1000;
  // The spool is what a PUBACK waits for (DESIGN §6); the store is fed from it.
  let spoolState: SpoolState = 'ok';
  const spool = await Spool.open(join(config.dataDir, 'spool'), {
    maxBytes: config.spoolMaxBytes,
    commitWindowMs: config.commitWindowMs,
    logger: log.child({ component: 'spool' }),
    onStateChange: (state) => (spoolState = state),
  });
  if (spool.pendingRecords > 0) {
    log.info(
      { records: spool.pendingRecords, bytes: spool.bytes },
      'replaying spool into the store',
    );
  }
  const streamCounters: StreamCounters = { open: 0, opened: 0, dropped: 0 };
  const metrics = new Metrics({
    spool: () => ({
      bytes: spool.bytes,
      pendingRecords: spool.pendingRecords,
      oldestUnconfirmedAgeMs: spool.oldestUnconfirmedAgeMs,
      backpressure: spool.state === 'backpressure',
      fsyncs: spool.fsyncs,
    }),
    drainer: () => drainer,
    connectedDevices: () => live.connectedCount,
    streams: () => streamCounters,
  });
  const typeOf = new Map(catalog.list().map((t) => [t.measurement, t.type]));
  const drainer = new Drainer(spool, store, {
    maxBatchAgeMs: DRAIN_BATCH_AGE_MS,
    logger: log.child({ component: 'drainer' }),
    onRejected: (points, err) => storeRefused(points, err.message),
  });
  const broker = await createBroker({
    registry,
    catalog,
    ingest: () => ingest,
    live,
    enrollmentKey,
    log,
  });
  const ingest = new Ingest({
    catalog,
    commit: (points) => spool.append(points),
    events,
    metrics,
    rejections,
    live,
    log,
    options: config,
    notify: (device, topic, rejection) => notifyRejection(broker, device, topic, rejection),
  });

  /** Points the store refused for good (a bad line) join the rejection log, never vanish. */
  function storeRefused(points: readonly Point[], message: string): void {
    const now = new Date().toISOString();
    for (const p of points) {
      const type = typeOf.get(p.measurement) ?? p.measurement;
      rejections.record({
        receivedAt: now,
        deviceId: p.tags.device_id,
        type,
        topic: `sensors/${type}/${p.tags.device_id}/telemetry`,
        code: REJECT.STORE_REFUSED,
        reasons: [{ pointer: '', message: `the store refused this reading: ${message}` }],
        payload: Buffer.from(JSON.stringify({ ts: p.ts, data: p.fields })),
      });
    }
    log.warn(
      { points: points.length, err: message },
      'store refused points; recorded as rejections',
    );
  }

  let listeners: Listener[] = [];
  let app: FastifyInstance | undefined;
  const ready = () => {
    const listening = listeners.length === 2;
    const sinkError = drainer.lastError;
    const checks = {
      broker: listening ? { ok: true } : { ok: false, detail: 'MQTT listeners are not open' },
      store: sinkError
        ? { ok: false, detail: `${store.kind}: ${sinkError.message} (retrying)` }
        : { ok: true, detail: store.kind },
      spool:
        spoolState === 'ok'
          ? { ok: true, detail: `${spool.bytes} bytes pending` }
          : {
              ok: false,
              detail: `spool above its high watermark (${spool.bytes} of ${config.spoolMaxBytes} bytes): not acknowledging until the store catches up`,
            },
    };
    return { ok: Object.values(checks).every((c) => c.ok), checks };
  };

  return {
    catalog,
    registry,
    ingest,
    enrollmentKey,
    async start() {
      drainer.start();
      live.start({ intervalMsOf });
      app = await buildApp({
        registry,
        apiKeys,
        catalog,
        store,
        rejections,
        live,
        log,
        ready,
        events,
        streamCounters,
        metrics,
        disconnect: (id) => {
          disconnectDevice(broker, id);
          if (!registry.get(id)) live.forget(id);
        },
      });
      await app.listen({ host: config.httpHost, port: config.httpPort });
      const http = app.server.address();
      listeners = [
        await listenTcp(broker, config.mqttHost, config.mqttPort),
        await listenWebSocket(broker, config.mqttHost, config.mqttWsPort),
      ];
      const ports = {
        mqtt: listeners[0]?.port ?? 0,
        ws: listeners[1]?.port ?? 0,
        http: typeof http === 'object' && http ? http.port : 0,
      };
      log.info(
        { ports, store: store.kind, devices: registry.size, types: catalog.list().length },
        'taihu listening',
      );
      return ports;
    },
    async close() {
      // Stop accepting, let in-flight acks finish, then flush and close storage.
      live.stop();
      const closing = listeners.map((l) => l.close());
      listeners = [];
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await Promise.all(closing);
      await app?.close();
      await drainer.stop(DRAIN_ON_CLOSE_MS);
      await spool.close();
      rejections.flush();
      await store.close();
      db.close();
      log.info('taihu stopped');
    },
  };
}

function createStore(config: Readonly<Config>, log: Logger): Store {
  const logger = log.child({ component: 'store' });
  if (config.store === 'influxdb' && config.influxUrl) {
    return createInfluxStore({
      url: config.influxUrl,
      api: config.influxApi,
      token: config.influxToken,
      org: config.influxOrg,
      bucket: config.influxBucket,
      username: config.influxUsername,
      password: config.influxPassword,
      logger,
    });
  }
  return createEmbeddedStore({ path: join(config.dataDir, 'telemetry.db'), logger });
}

function enrollmentKeyFromFile(dataDir: string, log: Logger): string {
  const file = join(dataDir, 'enrollment.key');
  const { key, created } = readOrCreateKeyFile(file);
  if (created)
    log.warn({ file }, 'no TAIHU_ENROLLMENT_KEY set: generated an enrollment key into this file');
  return key;
}

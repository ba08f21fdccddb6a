/**
 * Builds and wires the gateway's parts; `start()` opens the sockets, `close()`
 * shuts down in order. Never exits the process (that is main.ts's job).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { onBrokerError } from './broker/aedes.js';
import { createBroker, disconnectDevice, notifyRejection } from './broker/broker.js';
import { loadTls } from './broker/tls.js';
import { listenMqtt, type Listener } from './broker/listeners.js';
import { createClusterBackend } from './cluster/backend.js';
import type { Config } from './config.js';
import { buildApp } from './http/app.js';
import { loadCatalog, type Catalog } from './ingest/catalog.js';
import { Ingest } from './ingest/ingest.js';
import { LiveEvents } from './state/events.js';
import { readOrCreateKeyFile, writeKeyFile } from './registry/credentials.js';
import { loadSeeds } from './registry/seeds.js';
import { Drainer } from './spool/drainer.js';
import { Spool, type SpoolState } from './spool/spool.js';
import { openState, type SharedState } from './state/index.js';
import type { RegistryView } from './state/types.js';
import { createEmbeddedStore } from './store/embedded/index.js';
import { createInfluxStore } from './store/influx/index.js';
import { Metrics } from './telemetry/metrics.js';
import type { StreamCounters } from './http/routes/stream.js';
import type { Store } from './store/types.js';
import type { Point } from './points/point.js';
import { REJECT, TaihuError } from './errors.js';

export interface Ports {
  readonly mqtt: number;
  readonly ws: number;
  readonly http: number;
  /** Present when TLS is configured. */
  readonly mqtts?: number;
}

export interface Gateway {
  readonly catalog: Catalog;
  readonly registry: RegistryView;
  readonly ingest: Ingest;
  readonly enrollmentKey: string;
  start(): Promise<Ports>;
  close(): Promise<void>;
}

/** How long start-up waits for the store before serving devices without it. */
const STORE_OPEN_WAIT_MS = 2_000;
/** Retry delays while the store cannot be reached at start, ms. */
const STORE_OPEN_BACKOFF_MS = [500, 1_000, 2_000, 5_000, 10_000] as const;

/** Part of the shutdown deadline (main.ts) the drainer may spend flushing the spool. */
const DRAIN_ON_CLOSE_MS = 4_000;

export async function createGateway(config: Readonly<Config>, log: Logger): Promise<Gateway> {
  // Check everything that can be wrong in files before any socket opens.
  const catalog = loadCatalog(config.schemasDir);
  mkdirSync(config.dataDir, { recursive: true });
  const seeds = loadSeeds(config.seedsDir, catalog);

  const events = new LiveEvents((err) => log.warn({ err }, 'live event listener failed'));
  // One id per process: the broker's in a cluster, and the owner of its connections there.
  const instanceId = randomUUID();
  // Registry, API keys, live state, rejections: SQLite and memory, or a cluster's Redis.
  const state = await openState(config, { events, log, instanceId });
  const { registry, apiKeys, live, rejections } = state;
  const enrollmentKey = await provision(config, state, seeds, log);

  const store = createStore(config, log);
  // A store that is down at start is waited for, not fatal: the spool takes readings
  // meanwhile (DESIGN §6). A store that refuses us (credentials, rights) stops the start.
  let storeOpenError: Error | undefined;
  let storeOpened = false;
  const openStore = openWithRetry(store, catalog.measurements(), log, (err) => {
    storeOpenError = err;
  });
  await Promise.race([openStore, new Promise((r) => setTimeout(r, STORE_OPEN_WAIT_MS))]);

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
  const storeRefused = recordStoreRefusals(catalog, rejections, log);
  const drainer = new Drainer(spool, store, {
    logger: log.child({ component: 'drainer' }),
    onRejected: (points, err) => storeRefused(points, err.message),
  });
  const backend = config.clusterRedisUrl
    ? createClusterBackend(config.clusterRedisUrl, instanceId, log)
    : undefined;
  const ingest = new Ingest({
    catalog,
    commit: (points) => spool.append(points),
    events,
    metrics,
    rejections,
    live,
    log,
    options: config,
  });
  const broker = await createBroker({
    registry,
    ingest,
    live,
    enrollmentKey,
    log,
    options: config,
    metrics,
    operators: apiKeys,
    cluster: backend?.aedes,
  });
  ingest.onRejected((device, topic, rejection) =>
    notifyRejection(broker, device, topic, rejection),
  );
  if (backend) {
    // Aedes raises session-store failures (Redis away) as 'error'; unheard, that ends the process.
    onBrokerError(broker, (err) => log.warn({ err }, 'MQTT broker error'));
    log.info({ instanceId }, 'cluster mode: MQTT sessions and fan-out through Redis');
  }
  // Another instance disabled, deleted or re-keyed a device: a connection here must end too.
  state.onRemoteDeviceChange(({ id, before, after, secretChanged }) => {
    if (!before || (after?.state === 'active' && !secretChanged)) return;
    if (!after) live.forget(id);
    if (disconnectDevice(broker, id)) log.info({ deviceId: id }, 'device disconnected by a peer');
  });

  let listeners: Listener[] = [];
  let app: FastifyInstance | undefined;
  const ready = () =>
    readiness({
      // TCP and WebSocket always; mqtts too when TLS is configured.
      listening: listeners.length >= 2,
      storeError:
        drainer.lastError ?? (storeOpened ? undefined : (storeOpenError ?? new Error('opening'))),
      storeKind: store.kind,
      spool,
      spoolState,
      spoolMaxBytes: config.spoolMaxBytes,
      cluster: state.kind === 'redis' ? state.health() : undefined,
    });

  return {
    catalog,
    registry,
    ingest,
    enrollmentKey,
    async start() {
      void openStore.then(
        () => {
          storeOpened = true;
          storeOpenError = undefined;
          drainer.start();
        },
        (err: Error) => {
          storeOpenError = err;
          log.error({ err }, 'store refused to open; readings stay in the spool');
        },
      );
      live.start({ intervalMsOf });
      app = await buildApp({
        tls: loadTls(config),
        authFailures: config.httpAuthFailures,
        registry,
        provisioning: state.provisioning,
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
      listeners = await listenMqtt(broker, config, log);
      const ports = {
        mqtt: listeners[0]?.port ?? 0,
        ws: listeners[1]?.port ?? 0,
        http: typeof http === 'object' && http ? http.port : 0,
        ...(listeners[2] ? { mqtts: listeners[2].port } : {}),
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
      // What is still unread is replayed into the store on the next start.
      log.info({ records: spool.pendingRecords, bytes: spool.bytes }, 'spool closed');
      await store.close();
      await state.close();
      await backend?.close();
      log.info('taihu stopped');
    },
  };
}

/** Seeds the registry and makes sure a fleet key and an admin key exist; returns the fleet key. */
async function provision(
  config: Readonly<Config>,
  state: SharedState,
  seeds: ReturnType<typeof loadSeeds>,
  log: Logger,
): Promise<string> {
  const added = await state.provisioning.applySeeds(seeds);
  if (added > 0) log.info({ added, total: state.registry.size }, 'devices loaded from seeds');
  const enrollmentKey = config.enrollmentKey ?? enrollmentKeyFromFile(config.dataDir, log);
  const bootstrap = config.adminKey
    ? undefined
    : await state.apiKeys.createFirst('admin', 'bootstrap');
  if (bootstrap) {
    const file = join(config.dataDir, 'admin.key');
    writeKeyFile(file, bootstrap.key);
    log.warn({ file }, 'no API key configured: created an admin key and wrote it to this file');
  }
  return enrollmentKey;
}

/** Points the store refused for good (a bad line) join the rejection log, never vanish. */
function recordStoreRefusals(
  catalog: Catalog,
  rejections: SharedState['rejections'],
  log: Logger,
): (points: readonly Point[], message: string) => void {
  const typeOf = new Map(catalog.list().map((t) => [t.measurement, t.type]));
  return (points, message) => {
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
  };
}

/** What `/ready` answers: every check, and whether all pass. */
function readiness(s: {
  listening: boolean;
  storeError: Error | undefined;
  storeKind: string;
  spool: { readonly bytes: number };
  spoolState: SpoolState;
  spoolMaxBytes: number;
  cluster: { ok: boolean; detail?: string } | undefined;
}) {
  const checks = {
    broker: s.listening ? { ok: true } : { ok: false, detail: 'MQTT listeners are not open' },
    store: s.storeError
      ? { ok: false, detail: `${s.storeKind}: ${s.storeError.message} (retrying)` }
      : { ok: true, detail: s.storeKind },
    spool:
      s.spoolState === 'ok'
        ? { ok: true, detail: `${s.spool.bytes} bytes pending` }
        : {
            ok: false,
            detail: `spool above its high watermark (${s.spool.bytes} of ${s.spoolMaxBytes} bytes): not acknowledging until the store catches up`,
          },
    ...(s.cluster ? { cluster: s.cluster } : {}),
  };
  return { ok: Object.values(checks).every((c) => c.ok), checks };
}

/** The telemetry store the configuration names (also used by `taihu spool drain`). */
export function createStore(config: Readonly<Config>, log: Logger): Store {
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

/**
 * Opens the store, retrying while it cannot be reached; rejects at once when the store
 * refuses for good (wrong credentials, missing rights), which the start must report.
 */
async function openWithRetry(
  store: Store,
  measurements: ReturnType<Catalog['measurements']>,
  log: Logger,
  onRetry: (err: Error) => void,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await store.open(measurements);
      if (attempt > 0)
        log.info({ store: store.kind, attempt }, 'store reachable; draining the spool');
      return;
    } catch (err) {
      if (!(err instanceof TaihuError) || !err.retryable) throw err;
      onRetry(err);
      const delay = STORE_OPEN_BACKOFF_MS[Math.min(attempt, STORE_OPEN_BACKOFF_MS.length - 1)];
      if (attempt === 0) {
        log.warn(
          { err: err.message, store: store.kind },
          'store unreachable at start; acknowledging into the spool and retrying',
        );
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

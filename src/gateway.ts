/**
 * Builds and wires the gateway's parts; `start()` opens the sockets, `close()`
 * shuts down in order. Never exits the process (that is main.ts's job).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createBroker, notifyRejection } from './broker/broker.js';
import { listenTcp, listenWebSocket, type Listener } from './broker/listeners.js';
import type { Config } from './config.js';
import { buildApp } from './http/app.js';
import { loadCatalog, type Catalog } from './ingest/catalog.js';
import { GroupCommitter } from './ingest/committer.js';
import { Ingest } from './ingest/ingest.js';
import { LiveState } from './ingest/live.js';
import { RejectionLog } from './ingest/rejections.js';
import { ApiKeys } from './registry/api-keys.js';
import { readOrCreateKeyFile, writeKeyFile } from './registry/credentials.js';
import { openDatabase, Registry } from './registry/registry.js';
import { loadSeeds } from './registry/seeds.js';
import { createEmbeddedStore } from './store/embedded/index.js';
import type { Store } from './store/types.js';

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

/** The most points one group commit writes; bigger bursts are split into several commits. */
const MAX_COMMIT_POINTS = 5_000;

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
  const live = new LiveState();
  const committer = new GroupCommitter(store, {
    windowMs: config.commitWindowMs,
    maxPoints: MAX_COMMIT_POINTS,
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
    committer,
    rejections,
    live,
    log,
    options: config,
    notify: (device, topic, rejection) => notifyRejection(broker, device, topic, rejection),
  });

  let listeners: Listener[] = [];
  let app: FastifyInstance | undefined;
  const ready = () => {
    const listening = listeners.length === 2;
    return {
      ok: listening,
      checks: {
        broker: listening ? { ok: true } : { ok: false, detail: 'MQTT listeners are not open' },
        store: { ok: true, detail: store.kind },
      },
    };
  };

  return {
    catalog,
    registry,
    ingest,
    enrollmentKey,
    async start() {
      app = await buildApp({ registry, apiKeys, catalog, store, rejections, live, log, ready });
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
      const closing = listeners.map((l) => l.close());
      listeners = [];
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await Promise.all(closing);
      await app?.close();
      await committer.drain();
      rejections.flush();
      await store.close();
      db.close();
      log.info('taihu stopped');
    },
  };
}

function createStore(config: Readonly<Config>, log: Logger): Store {
  return createEmbeddedStore({ path: join(config.dataDir, 'telemetry.db'), logger: log });
}

function enrollmentKeyFromFile(dataDir: string, log: Logger): string {
  const file = join(dataDir, 'enrollment.key');
  const { key, created } = readOrCreateKeyFile(file);
  if (created)
    log.warn({ file }, 'no TAIHU_ENROLLMENT_KEY set: generated an enrollment key into this file');
  return key;
}

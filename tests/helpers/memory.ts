/**
 * The gateway's parts in one process, without sockets or child processes, for unit tests of
 * the broker and the HTTP API: the real config, catalog, seeds and single-node state on a temp
 * dir; the broker reached through a duplex pair (as Aedes' own tests connect clients, with the
 * wire guard in front as the listeners put it); the HTTP app answered through `inject()`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import type { Aedes } from 'aedes';
import type { FastifyInstance } from 'fastify';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { pino, type Logger } from 'pino';
import { createBroker, notifyRejection } from '../../src/broker/broker.js';
import { maxPacketBytes } from '../../src/broker/listeners.js';
import { MqttWire } from '../../src/broker/wire.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createStore } from '../../src/gateway.js';
import { buildApp } from '../../src/http/app.js';
import { loadCatalog, type Catalog } from '../../src/ingest/catalog.js';
import { Ingest } from '../../src/ingest/ingest.js';
import { deriveDeviceSecret } from '../../src/registry/credentials.js';
import { loadSeeds } from '../../src/registry/seeds.js';
import { LiveEvents } from '../../src/state/events.js';
import { openState, type SharedState } from '../../src/state/index.js';
import type { Point } from '../../src/points/point.js';
import type { Store } from '../../src/store/types.js';
import { Metrics } from '../../src/telemetry/metrics.js';

export const ENROLLMENT_KEY = 'unit-enrollment-key-0123456789abcdef';
export const ADMIN_KEY = 'unit-admin-key-0123456789abcdef';

export interface Parts {
  readonly config: Readonly<Config>;
  readonly catalog: Catalog;
  readonly state: SharedState;
  readonly events: LiveEvents;
  readonly log: Logger;
  /** The enrollment-derived secret of a device. */
  secret(deviceId: string): string;
  close(): Promise<void>;
}

/** Config (TAIHU_* overrides on top of the defaults only), catalog, seeded state, in a temp dir. */
export async function openParts(overrides: Record<string, string> = {}): Promise<Parts> {
  const dataDir = mkdtempSync(join(tmpdir(), 'taihu-unit-'));
  const config = loadConfig({
    env: {},
    envFile: join(dataDir, '.env'),
    overrides: {
      TAIHU_DATA_DIR: dataDir,
      TAIHU_ENROLLMENT_KEY: ENROLLMENT_KEY,
      TAIHU_ADMIN_KEY: ADMIN_KEY,
      ...overrides,
    },
    isTTY: false,
  });
  const log = pino({ level: 'silent' });
  const catalog = loadCatalog(config.schemasDir);
  const events = new LiveEvents();
  const state = await openState(config, { events, log, instanceId: 'unit' });
  await state.provisioning.applySeeds(loadSeeds(config.seedsDir, catalog));
  return {
    config,
    catalog,
    state,
    events,
    log,
    secret: (id) => deriveDeviceSecret(ENROLLMENT_KEY, id),
    async close() {
      await state.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface MemoryBroker {
  readonly broker: Aedes;
  readonly ingest: Ingest;
  /** Every batch of points ingest committed, in order. */
  readonly committed: Point[][];
  /** Connects MQTT.js through a new duplex pair; rejects with the CONNACK code on refusal. */
  connect(opts: IClientOptions): Promise<MqttClient>;
  close(): Promise<void>;
}

/** One end of a socket pair without a socket: what it is written, its peer reads. */
class PairEnd extends Duplex {
  peer: PairEnd | undefined;

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void) {
    this.peer?.push(chunk);
    done();
  }

  override _final(done: (err?: Error | null) => void): void {
    this.peer?.push(null);
    done();
  }

  /** Closing one end closes the other, as a socket's peer sees the connection go. */
  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.peer?.destroy();
    done(err);
  }
}

function duplexPair(): [Duplex, Duplex] {
  const a = new PairEnd();
  const b = new PairEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/**
 * The broker as the gateway builds it, with ingest committing through `commit` (default: at
 * once, recording the batch) instead of the spool.
 */
export async function memoryBroker(
  parts: Parts,
  commit: (points: readonly Point[]) => Promise<void> = async () => {},
): Promise<MemoryBroker> {
  const committed: Point[][] = [];
  const { config, catalog, state, log } = parts;
  const ingest: Ingest = new Ingest({
    catalog,
    commit: async (points) => {
      await commit(points);
      committed.push([...points]);
    },
    events: parts.events,
    rejections: state.rejections,
    live: state.live,
    log,
    options: config,
  });
  const broker: Aedes = await createBroker({
    registry: state.registry,
    ingest,
    live: state.live,
    enrollmentKey: ENROLLMENT_KEY,
    log,
    options: config,
    operators: state.apiKeys,
  });
  ingest.onRejected((device, topic, rejection) =>
    notifyRejection(broker, device, topic, rejection),
  );
  const clients = new Set<MqttClient>();
  return {
    broker,
    ingest,
    committed,
    connect(opts) {
      const [near, far] = duplexPair();
      broker.handle(
        new MqttWire(far, { address: '127.0.0.1' }, { maxPacketBytes: maxPacketBytes(config) }),
      );
      const client = new mqtt.MqttClient(() => near, {
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5_000,
        ...opts,
      });
      clients.add(client);
      return new Promise((resolve, reject) => {
        client.once('connect', () => resolve(client));
        client.once('error', (err) => {
          client.end(true);
          reject(err);
        });
        client.once('close', () => reject(new Error('connection closed before CONNACK')));
      });
    },
    async close() {
      for (const c of clients) c.end(true);
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

export interface MemoryApp {
  readonly app: FastifyInstance;
  readonly store: Store;
  /** A key with the `read` role. */
  readonly readKey: string;
  close(): Promise<void>;
}

/** The HTTP API as the gateway builds it, on the configured (embedded) store; use `app.inject()`. */
export async function memoryApp(parts: Parts): Promise<MemoryApp> {
  const { config, catalog, state, log, events } = parts;
  const store = createStore(config, log);
  await store.open(catalog.measurements());
  const idle = { pointsWritten: 0, batches: 0, retries: 0, rejectedPoints: 0 };
  const app = await buildApp({
    authFailures: config.httpAuthFailures,
    registry: state.registry,
    provisioning: state.provisioning,
    apiKeys: state.apiKeys,
    catalog,
    store,
    rejections: state.rejections,
    live: state.live,
    log,
    events,
    streamCounters: { open: 0, opened: 0, dropped: 0 },
    metrics: new Metrics({
      spool: () => ({
        bytes: 0,
        pendingRecords: 0,
        oldestUnconfirmedAgeMs: 0,
        backpressure: false,
        fsyncs: 0,
      }),
      drainer: () => ({ ...idle, lastWriteLatencyMs: 0 }),
      connectedDevices: () => state.live.connectedCount,
      streams: () => ({ open: 0, dropped: 0 }),
    }),
    disconnect: () => {},
    ready: () => ({ ok: true, checks: {} }),
  });
  await app.ready();
  const { key: readKey } = await state.apiKeys.create('read', 'unit reader');
  return {
    app,
    store,
    readKey,
    async close() {
      await app.close();
      await store.close();
    },
  };
}

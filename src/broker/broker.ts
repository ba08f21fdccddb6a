/**
 * The embedded Aedes broker with Taihu's hooks, wired the way Aedes splits its handlers:
 * connect rules and logins (`auth.ts`), the publish path with its rate and in-flight limits
 * and ingest (`publish.ts`), and here the subscribe and delivery ACL of DESIGN §3 and the
 * broker's events. Malformed packets never get here: the wire guard (`wire.ts`) closes those
 * connections first. Reaches into Aedes's internals live in `aedes.ts`.
 */
import { Aedes, type AedesOptions, type Client } from 'aedes';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Ingest } from '../ingest/ingest.js';
import type { LiveState } from '../state/live.js';
import type { Rejection } from '../ingest/pipeline.js';
import type { Registry } from '../registry/registry.js';
import { clientById, restartKeepalive, sessionStoreOf } from './aedes.js';
import { Auth, isOpenTopic } from './auth.js';
import { DeviceLimiter } from './limits.js';
import { operatorMayReceive, operatorMaySubscribe, type OperatorKeys } from './operators.js';
import { createPublishPath } from './publish.js';
import { loadTls } from './tls.js';
import { maySubscribe, sensorTopic } from './topics.js';
import { MAX_TOPIC_LEVELS, MqttWire } from './wire.js';

/** The configuration the broker reads (the gateway passes its whole Config). */
export type BrokerOptions = Pick<
  Config,
  | 'mqttAuth'
  | 'mqttHost'
  | 'mqttConnectTimeoutMs'
  | 'mqttKeepaliveZero'
  | 'mqttIdleTimeoutMs'
  | 'deviceRate'
  | 'deviceBurst'
  | 'deviceMaxInflight'
  | 'maxPacketBytes'
  | 'maxPayloadBytes'
  | 'tlsCert'
  | 'tlsKey'
  | 'tlsCa'
  | 'tlsCrl'
>;

export interface BrokerDeps {
  readonly registry: Pick<Registry, 'get' | 'secretHashOf'>;
  readonly ingest: Ingest;
  readonly live: LiveState;
  readonly enrollmentKey: string;
  readonly log: Logger;
  readonly options: Readonly<BrokerOptions>;
  /** Counts QoS 1/2 messages slowed for their device's rate. */
  readonly metrics?: { slowed(): void } | undefined;
  /** API keys operators log in with (operators.ts); none: no operator logins. */
  readonly operators?: OperatorKeys | undefined;
  /** A cluster's broker id, Redis emitter and persistence (cluster/backend.ts); none: in memory. */
  readonly cluster?:
    { readonly id: string; readonly mq: unknown; readonly persistence: unknown } | undefined;
}

/**
 * Start-time checks of the MQTT options that read files (the TLS material); the checks between
 * options are loadConfig's. Each failure names its variable.
 */
export function checkBrokerOptions(options: Readonly<BrokerOptions>): void {
  loadTls(options);
}

export async function createBroker(deps: BrokerDeps): Promise<Aedes> {
  const { live, log, options } = deps;
  checkBrokerOptions(options);
  if (options.mqttAuth === 'off') {
    log.warn(
      { TAIHU_MQTT_AUTH: 'off', host: options.mqttHost },
      'MQTT AUTHENTICATION IS OFF (development mode): anyone on this host may connect without credentials and use every topic outside sensors/ and $SYS',
    );
  }
  const limiter = new DeviceLimiter({
    rate: options.deviceRate,
    burst: options.deviceBurst,
    maxInflight: options.deviceMaxInflight,
  });
  const auth = new Auth({
    registry: deps.registry,
    enrollmentKey: deps.enrollmentKey,
    limiter,
    log,
    options,
    operators: deps.operators,
    // A connection the gateway stops reading for the device's rate is not a silent one.
    admitted: (client) => {
      if (client.conn instanceof MqttWire) client.conn.onStalled = () => restartKeepalive(client);
    },
  });

  const aedesOptions: AedesOptions = {
    ...deps.cluster,
    connectTimeout: options.mqttConnectTimeoutMs,
    // Checked in preConnect instead: Aedes would answer with a code 3.1.1 lacks.
    keepaliveLimit: 0,
    maxTopicLevels: MAX_TOPIC_LEVELS,
    preConnect: auth.preConnect,
    authenticate: auth.authenticate,
    authorizePublish: createPublishPath({
      auth,
      limiter,
      ingest: deps.ingest,
      log,
      options,
      slowed: deps.metrics ? () => deps.metrics?.slowed() : undefined,
    }),

    authorizeSubscribe(client, sub, done) {
      const device = auth.deviceOf(client);
      const allowed =
        (device !== undefined && maySubscribe(device, sub.topic)) ||
        (auth.mayUseOpenTopics(client) && isOpenTopic(sub.topic)) ||
        (auth.operatorValid(client) && operatorMaySubscribe(sub.topic));
      // A refused subscription gets SUBACK 0x80 [MQTT-3.9.3-2]; the connection stays.
      done(null, allowed ? sub : null);
    },

    authorizeForward(client, packet) {
      // Defence in depth for retained and queued messages: a device only ever
      // receives its own errors topic, whatever its subscriptions say; in development
      // mode anyone may also receive what is outside sensors/ and $SYS.
      const device = auth.deviceOf(client);
      if (device && maySubscribe(device, packet.topic)) return packet;
      if (auth.operatorValid(client) && operatorMayReceive(packet.topic)) return packet;
      return auth.mayUseOpenTopics(client) && isOpenTopic(packet.topic) ? packet : null;
    },
  };

  const broker = await Aedes.createBroker(aedesOptions);
  const isDevice = (client: Client) => auth.identityOf(client)?.kind === 'device';
  broker.on('client', (client) => {
    if (!isDevice(client)) return;
    live.connected(client.id, Date.now());
    log.debug({ deviceId: client.id }, 'device connected');
  });
  broker.on('clientDisconnect', (client) => {
    if (!isDevice(client)) return;
    // A reconnect with the same id replaces the client before the old one is gone.
    const current = clientById(broker, client.id);
    if (!current || current === client) live.disconnected(client.id, Date.now());
    log.debug({ deviceId: client.id }, 'device disconnected');
  });
  const addressOf = (client: Client) =>
    client.conn instanceof MqttWire ? client.conn.peer.address : undefined;
  broker.on('clientError', (client, err) => {
    log.debug(
      { clientId: client.id, address: addressOf(client), err: err.message },
      'client error',
    );
  });
  broker.on('connectionError', (client, err) => {
    log.debug({ address: addressOf(client), err: err.message }, 'connection closed before CONNACK');
  });
  return broker;
}

/** Tells the device why its message was refused, on `sensors/{type}/{id}/errors`. */
export function notifyRejection(
  broker: Aedes,
  device: { id: string; type: string },
  topic: string,
  rejection: Rejection,
): void {
  const payload = Buffer.from(
    JSON.stringify({
      code: rejection.code,
      topic,
      reasons: rejection.reasons,
      at: new Date().toISOString(),
    }),
  );
  broker.publish(
    {
      cmd: 'publish',
      topic: sensorTopic(device.type, device.id, 'errors'),
      payload,
      qos: 1,
      retain: false,
      dup: false,
    },
    () => {},
  );
}

/**
 * Closes a device's connection (disabled, deleted, or its secret rotated) and forgets
 * its session — subscriptions, queued messages, Will — so that a later reconnect with
 * clean session 0 starts from nothing (sessionPresent 0).
 */
export function disconnectDevice(broker: Aedes, deviceId: string): boolean {
  const client = clientById(broker, deviceId);
  const forget = () => {
    forgetSession(broker, deviceId).catch(() => {});
  };
  if (!client) {
    forget();
    return false;
  }
  client.close(forget);
  return true;
}

async function forgetSession(broker: Aedes, id: string): Promise<void> {
  const store = sessionStoreOf(broker);
  if (!store) return;
  const who = { id };
  await store.cleanSubscriptions(who);
  await store.cleanIncoming?.(who);
  await store.delWill({ id, brokerId: broker.id });
  const queued: { messageId?: number }[] = [];
  for await (const packet of store.outgoingStream(who)) queued.push(packet);
  for (const packet of queued) await store.outgoingClearMessageId(who, packet);
}

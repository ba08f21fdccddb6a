/**
 * The embedded Aedes broker with Taihu's hooks: authenticate against the registry (or a
 * client certificate), the topic ACL of DESIGN §3, per-device rate and in-flight limits,
 * and ingest inside `authorizePublish` — Aedes writes the PUBACK only after that hook
 * calls back, so holding the callback until the store commit is what makes a PUBACK
 * mean "stored". Malformed packets never get here: the wire guard (`wire.ts`) closes
 * those connections first.
 */
import { Aedes, type AedesOptions, type Client, type ConnectPacket } from 'aedes';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { ERR_CONFIG, REJECT } from '../errors.js';
import type { Catalog } from '../ingest/catalog.js';
import type { Ingest } from '../ingest/ingest.js';
import type { LiveState } from '../state/live.js';
import type { Rejection } from '../ingest/pipeline.js';
import { deriveDeviceSecret, secretsEqual, verifySecret } from '../registry/credentials.js';
import type { DeviceRecord, Registry } from '../registry/registry.js';
import { DeviceLimiter, type DeviceSlot } from './limits.js';
import {
  isOperatorLogin,
  operatorMayReceive,
  operatorMaySubscribe,
  type OperatorKeys,
} from './operators.js';
import { loadTls } from './tls.js';
import { mayPublish, maySubscribe, sensorTopic } from './topics.js';
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
  readonly catalog: Catalog;
  readonly ingest: () => Ingest;
  readonly live: LiveState;
  readonly enrollmentKey: string;
  readonly log: Logger;
  readonly options: Readonly<BrokerOptions>;
  /** Counts refusals that are not recorded one by one (QoS 0 floods), and slowed devices. */
  readonly metrics?: { rejected(type: string, code: string): void; slowed(): void } | undefined;
  /** API keys operators log in with (operators.ts); none: no operator logins. */
  readonly operators?: OperatorKeys | undefined;
  /** A cluster's broker id, Redis emitter and persistence (cluster/backend.ts); none: in memory. */
  readonly cluster?:
    { readonly id: string; readonly mq: unknown; readonly persistence: unknown } | undefined;
}

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3. */
const CONNACK = { IDENTIFIER_REJECTED: 2, BAD_USERNAME_OR_PASSWORD: 4, NOT_AUTHORIZED: 5 } as const;

/** Keepalive above 20 minutes holds dead sockets for half an hour (the 1.5× rule). */
export const KEEPALIVE_LIMIT_S = 1200;
/** A device over its rate gets one rejection record and notice per this many ms. */
const RATE_REPORT_EVERY_MS = 1000;

/** Who a connection authenticated as; looked up by connection, never by the wire's client id. */
type Identity =
  | { readonly kind: 'device'; readonly deviceId: string; readonly slot: DeviceSlot }
  | { readonly kind: 'anonymous' }
  /** `generation`: the key store's when the key was last checked (operators.ts). */
  | { readonly kind: 'operator'; readonly key: string; generation: number };

const ANONYMOUS: Identity = { kind: 'anonymous' };

interface Refusal {
  readonly returnCode: number;
  readonly message: string;
}

function refuse(returnCode: number, message: string): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode });
}

/** The CONNECT packet's Will, which Aedes keeps on the client before authenticate runs. */
function willOf(client: Client): { topic: string; payload: Buffer } | undefined {
  // why: `_will` is Aedes's own field (set in handlers/connect.js before authenticate); not typed.
  return (client as unknown as { _will?: { topic: string; payload: Buffer } })._will;
}

/**
 * Restarts Aedes's keepalive timer of a connection (1.5 × keepalive, restarted by each packet
 * Aedes handles [MQTT-3.1.2-24]), for the time the gateway itself does not read the socket.
 */
function restartKeepalive(client: Client): void {
  // why: `_keepaliveTimer` is Aedes's own field (handlers/connect.js setKeepAlive); not typed.
  (client as unknown as { _keepaliveTimer?: NodeJS.Timeout | null })._keepaliveTimer?.refresh();
}

/** Whether a publish is the client's Will, which the broker sends for it on an unclean close. */
function isWill(client: Client, packet: object): boolean {
  // why: `will` is Aedes's own field (the stored Will while connected); not typed.
  return (client as unknown as { will?: object | null }).will === packet;
}

/** The `sensors/` namespace: device credentials required, whatever TAIHU_MQTT_AUTH says. */
function isSensorTopic(topic: string): boolean {
  return topic.startsWith('sensors/') || topic === 'sensors';
}

/** With TAIHU_MQTT_AUTH=off, anyone may publish or subscribe here ($SYS stays closed). */
function isOpenTopic(topic: string): boolean {
  return topic.charCodeAt(0) !== 0x24 && !isSensorTopic(topic);
}

const LOOPBACK_V4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h === '::1' || LOOPBACK_V4.test(h.replace(/^::ffff:/, ''));
}

/** Start-time checks of the MQTT options: each failure names its variable. */
export function checkBrokerOptions(options: Readonly<BrokerOptions>): void {
  if (options.mqttAuth === 'off' && !isLoopbackHost(options.mqttHost)) {
    throw ERR_CONFIG(
      `TAIHU_MQTT_AUTH=off opens the broker to anyone, so it needs TAIHU_MQTT_HOST on loopback (127.0.0.0/8, ::1 or localhost), not ${JSON.stringify(options.mqttHost)}`,
    );
  }
  if (options.maxPacketBytes !== undefined && options.maxPacketBytes < options.maxPayloadBytes) {
    throw ERR_CONFIG(
      `TAIHU_MAX_PACKET_BYTES=${options.maxPacketBytes} is below TAIHU_MAX_PAYLOAD_BYTES=${options.maxPayloadBytes}: payloads within the limit could never arrive`,
    );
  }
  loadTls(options);
}

/**
 * CONNECT rules whose answer is a CONNACK code (Aedes lets these through, or answers
 * with a code MQTT 3.1.1 does not have).
 */
function connectRefusal(
  packet: ConnectPacket,
  options: Pick<BrokerOptions, 'mqttKeepaliveZero'>,
): Refusal | undefined {
  // Aedes answers an over-limit keepalive with return code 6, which MQTT 3.1.1 does not
  // define [MQTT-3.2.2-6]; like Mosquitto's max_keepalive, answer "identifier rejected".
  // Keepalive 0 "turns off the keep alive mechanism" (§3.1.2.10) and is legal: refused only
  // where the fleet's operator asks every device to ping.
  const keepalive = packet.keepalive ?? 0;
  if (keepalive > KEEPALIVE_LIMIT_S) {
    return {
      returnCode: CONNACK.IDENTIFIER_REJECTED,
      message: `keepalive ${keepalive} s is over the ceiling of ${KEEPALIVE_LIMIT_S} s`,
    };
  }
  if (keepalive === 0 && options.mqttKeepaliveZero === 'refuse') {
    return {
      returnCode: CONNACK.IDENTIFIER_REJECTED,
      message: 'keepalive 0 is refused here (TAIHU_MQTT_KEEPALIVE_ZERO=refuse)',
    };
  }
  const clientId = packet.clientId ?? '';
  // [MQTT-3.1.3-8]: a zero-byte ClientId with CleanSession 0 gets CONNACK 0x02.
  if (clientId === '' && packet.clean === false) {
    return {
      returnCode: CONNACK.IDENTIFIER_REJECTED,
      message: 'an empty client id needs clean session [MQTT-3.1.3-8]',
    };
  }
  // [MQTT-3.1.3-9]: the Server may reject a ClientId; wildcards have no place in one
  // (ACL patterns built from client ids are how other brokers were bypassed).
  if (/[+#]/.test(clientId)) {
    return {
      returnCode: CONNACK.IDENTIFIER_REJECTED,
      message: 'a client id may not contain + or #',
    };
  }
  if (packet.username !== undefined && /[+#]/.test(packet.username)) {
    return {
      returnCode: CONNACK.BAD_USERNAME_OR_PASSWORD,
      message: 'a user name may not contain + or #',
    };
  }
  return undefined;
}

export async function createBroker(deps: BrokerDeps): Promise<Aedes> {
  const { registry, live, log, options } = deps;
  checkBrokerOptions(options);
  const open = options.mqttAuth === 'off';
  if (open) {
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
  const releaseBelow = Math.floor(options.deviceMaxInflight / 2);
  /** Longest read pause for a device over its rate: the time its bucket takes to refill. */
  const throttleMaxMs = (1000 * options.deviceBurst) / Math.max(options.deviceRate, 1e-9);
  const identities = new WeakMap<Client, Identity>();
  const refusals = new WeakMap<Client, Refusal>();

  const activeDevice = (id: string): DeviceRecord | undefined => {
    const d = registry.get(id);
    return d && d.state === 'active' ? d : undefined;
  };
  const deviceOf = (client: Client | null): DeviceRecord | undefined => {
    const who = client ? identities.get(client) : undefined;
    return who?.kind === 'device' ? activeDevice(who.deviceId) : undefined;
  };
  const admitDevice = (client: Client, device: DeviceRecord): void => {
    // A connection the gateway stops reading for the device's rate is not a silent one.
    if (client.conn instanceof MqttWire) client.conn.onStalled = () => restartKeepalive(client);
    identities.set(client, {
      kind: 'device',
      deviceId: device.id,
      slot: limiter.slot(device.id, performance.now()),
    });
  };
  /** A Will is a publish made later on the client's behalf: same ACL, checked now. */
  const willAllowed = (client: Client, device: DeviceRecord | undefined): boolean => {
    const will = willOf(client);
    if (!will) return true;
    if (device && mayPublish(device, will.topic)) return true;
    return open && isOpenTopic(will.topic);
  };

  const rateLimited = (unreported: number): Rejection => ({
    code: REJECT.RATE_LIMITED,
    reasons: [
      {
        pointer: '',
        message: `QoS 0 messages over ${options.deviceRate} messages/s (bursts of ${options.deviceBurst}) from this device are dropped, not stored (TAIHU_DEVICE_RATE, TAIHU_DEVICE_BURST; QoS 1 is slowed instead, never dropped)${unreported > 0 ? `; ${unreported} more dropped since the previous notice` : ''}`,
      },
    ],
  });

  /** Devices slowed for their rate since the last log line about them, by id. */
  const slowedSince = new Map<string, number>();
  /** One info line per device per RATE_REPORT_EVERY_MS while it is being slowed. */
  function slowed(deviceId: string): void {
    const now = performance.now();
    const last = slowedSince.get(deviceId);
    if (last !== undefined && now - last < RATE_REPORT_EVERY_MS) return;
    if (slowedSince.size > 10_000) slowedSince.clear();
    slowedSince.set(deviceId, now);
    log.info(
      { deviceId, rate: options.deviceRate, burst: options.deviceBurst },
      'device over its message rate: acknowledgements held back, nothing dropped',
    );
  }

  /**
   * Acknowledges at `ackAt` (performance.now() ms), not before. The gateway stopped reading
   * the device meanwhile, so the device's keepalive timer is restarted with the ack: its
   * packets are waiting in TCP, it has not gone silent.
   */
  function ackWhenDue(
    client: Client,
    ackAt: number,
    done: (err: Error | null) => void,
    err: Error | null,
  ): void {
    const left = ackAt - performance.now();
    if (left < 1) {
      restartKeepalive(client);
      done(err);
      return;
    }
    setTimeout(() => {
      restartKeepalive(client);
      done(err);
    }, left);
  }

  /**
   * A flood must not flush other devices' records out of the rejection log or echo one
   * notice per message: one record and notice per device per second, the rest counted.
   */
  function refuseOverRate(device: DeviceRecord, topic: string, payload: Buffer, slot: DeviceSlot) {
    const now = performance.now();
    if (now - slot.reportedAt >= RATE_REPORT_EVERY_MS) {
      const unreported = slot.unreported;
      slot.unreported = 0;
      slot.reportedAt = now;
      deps.ingest().reject(device, topic, payload, rateLimited(unreported));
      log.info({ deviceId: device.id, unreported }, 'device over its message rate');
    } else {
      slot.unreported++;
      deps.metrics?.rejected(device.type, REJECT.RATE_LIMITED);
    }
  }

  const aedesOptions: AedesOptions = {
    ...deps.cluster,
    connectTimeout: options.mqttConnectTimeoutMs,
    // Checked in preConnect instead: Aedes would answer with a code 3.1.1 lacks.
    keepaliveLimit: 0,
    maxTopicLevels: MAX_TOPIC_LEVELS,

    preConnect(client, packet, done) {
      const refusal = connectRefusal(packet, options);
      if (refusal) refusals.set(client, refusal);
      else if (packet.keepalive === 0 && options.mqttIdleTimeoutMs > 0) {
        // A connection without keepalive still gets a silence ceiling: Aedes's own keepalive
        // timer (1.5 × keepalive + 1 ms, restarted by every packet) set to the idle timeout.
        packet.keepalive = options.mqttIdleTimeoutMs / 1500;
      }
      done(null, true);
    },

    authenticate(client, username, password, done) {
      const refusal = refusals.get(client);
      if (refusal) {
        refusals.delete(client);
        log.info({ clientId: client.id, reason: refusal.message }, 'connect refused');
        return done(refuse(refusal.returnCode, refusal.message), false);
      }
      const cn = client.conn instanceof MqttWire ? client.conn.peer.certificateCn : undefined;
      if (cn !== undefined) return certificateLogin(client, cn, username, done);
      if (deps.operators && isOperatorLogin(client.id, username)) {
        return operatorLogin(client, deps.operators, password, done);
      }
      // Development mode: a connection that does not claim a device identity is anonymous.
      if (
        open &&
        registry.get(client.id) === undefined &&
        (username === undefined || registry.get(username) === undefined)
      ) {
        if (!willAllowed(client, undefined)) {
          return done(refuse(CONNACK.NOT_AUTHORIZED, 'Will topic not allowed'), false);
        }
        identities.set(client, ANONYMOUS);
        return done(null, true);
      }
      const device = username === undefined ? undefined : registry.get(username);
      if (!username || !password) {
        return done(
          refuse(CONNACK.NOT_AUTHORIZED, 'username (device id) and password are required'),
          false,
        );
      }
      if (client.id !== username) {
        return done(
          refuse(CONNACK.IDENTIFIER_REJECTED, 'client id must equal the username (the device id)'),
          false,
        );
      }
      if (!device || device.state !== 'active') {
        log.info(
          { deviceId: username, known: Boolean(device) },
          'connect refused: unknown or disabled device',
        );
        return done(refuse(CONNACK.NOT_AUTHORIZED, 'unknown or disabled device'), false);
      }
      if (!willAllowed(client, device)) {
        log.info(
          { deviceId: device.id, topic: willOf(client)?.topic },
          'connect refused: Will topic not allowed',
        );
        return done(refuse(CONNACK.NOT_AUTHORIZED, 'Will topic not allowed'), false);
      }
      const hash = registry.secretHashOf(device.id);
      const checked = hash
        ? verifySecret(password, hash)
        : Promise.resolve(
            secretsEqual(password, deriveDeviceSecret(deps.enrollmentKey, device.id)),
          );
      checked.then(
        (ok) => {
          // The device may have been disabled while its secret was being checked.
          const still = ok ? activeDevice(device.id) : undefined;
          if (still) {
            admitDevice(client, still);
            return done(null, true);
          }
          log.info({ deviceId: device.id }, 'connect refused: wrong password');
          done(refuse(CONNACK.NOT_AUTHORIZED, 'wrong password'), false);
        },
        (err: unknown) => {
          log.error({ err, deviceId: device.id }, 'secret check failed');
          done(refuse(CONNACK.NOT_AUTHORIZED, 'secret check failed'), false);
        },
      );
    },

    authorizePublish(client, packet, done) {
      // A Will left by a connection whose instance died: another instance of the cluster
      // publishes it without a client. Refusing would raise an unhandled broker error.
      if (!client) return done(orphanWill(packet));
      const who = identities.get(client);
      if (open && who && isOpenTopic(packet.topic)) return done(null);
      const device = who?.kind === 'device' ? activeDevice(who.deviceId) : undefined;
      const topic = device ? mayPublish(device, packet.topic) : undefined;
      if (!client || !device || !topic || who?.kind !== 'device') {
        // MQTT 3.1.1 cannot refuse a single PUBLISH; closing the connection is the signal.
        log.info({ clientId: client?.id, topic: packet.topic }, 'publish refused by topic ACL');
        return done(new Error(`publish to ${packet.topic} not allowed`));
      }
      const payload = packet.payload as Buffer;
      const slot = who.slot;
      const wire = client.conn instanceof MqttWire ? client.conn : undefined;
      // When the acknowledgement may go: 0 = as soon as the message is handled.
      let ackAt = 0;
      // The Will is sent by the broker at disconnect, not by the device now: no limits.
      if (!isWill(client, packet)) {
        const now = performance.now();
        if (packet.qos === 0) {
          if (!limiter.take(slot, now)) {
            refuseOverRate(device, packet.topic, payload, slot);
            // and read its socket no faster than its rate: each refused message adds the time
            // it would have taken at that rate (at most a full bucket's refill) before the next
            // read; what it sends meanwhile waits in TCP
            wire?.throttle(1000 / options.deviceRate, throttleMaxMs);
            return done(null);
          }
        } else {
          // A QoS 1/2 message over the rate is never refused (DESIGN §6): it is handled, and
          // its acknowledgement and the next read of the socket wait until the device is back
          // within its rate. TCP and the device's in-flight window carry the backpressure.
          const wait = limiter.borrow(slot, now);
          if (wait > 0) {
            ackAt = now + wait;
            wire?.pauseUntil(ackAt);
            deps.metrics?.slowed();
            slowed(device.id);
          }
        }
      }
      const ack = ackAt === 0 ? done : (err: Error | null) => ackWhenDue(client, ackAt, done, err);
      if (topic.kind === 'status') return ack(status(device, packet.topic, payload));
      const pending = deps.ingest().telemetry(device, packet.topic, payload);
      if (!pending) return ack(null);
      // In-flight limit: past it, stop reading this connection until acks catch up. Not
      // refusing: the ack is late because the gateway is, and DESIGN §6 wants devices to
      // slow down (backpressure), never to have acknowledged messages dropped.
      slot.inflight++;
      if (wire && !wire.held && limiter.full(slot)) {
        wire.hold();
        log.debug(
          { deviceId: device.id, inflight: slot.inflight },
          'in-flight limit: reading paused',
        );
      }
      const settle = (err: Error | null) => {
        if (--slot.inflight <= releaseBelow) wire?.release();
        done(err);
      };
      pending.then(
        () => (ackAt === 0 ? settle(null) : ackWhenDue(client, ackAt, settle, null)),
        (err: Error) => (ackAt === 0 ? settle(err) : ackWhenDue(client, ackAt, settle, err)),
      );
    },

    authorizeSubscribe(client, sub, done) {
      const device = deviceOf(client);
      const allowed =
        (device !== undefined && maySubscribe(device, sub.topic)) ||
        (open && identities.has(client) && isOpenTopic(sub.topic)) ||
        (operatorValid(client) && operatorMaySubscribe(sub.topic));
      // A refused subscription gets SUBACK 0x80 [MQTT-3.9.3-2]; the connection stays.
      done(null, allowed ? sub : null);
    },

    authorizeForward(client, packet) {
      // Defence in depth for retained and queued messages: a device only ever
      // receives its own errors topic, whatever its subscriptions say; in development
      // mode anyone may also receive what is outside sensors/ and $SYS.
      const device = deviceOf(client);
      if (device && maySubscribe(device, packet.topic)) return packet;
      if (operatorValid(client) && operatorMayReceive(packet.topic)) return packet;
      return open && identities.has(client) && isOpenTopic(packet.topic) ? packet : null;
    },
  };

  function operatorLogin(
    client: Client,
    keys: OperatorKeys,
    password: Readonly<Buffer | undefined>,
    done: (err: (Error & { returnCode: number }) | null, ok: boolean) => void,
  ): void {
    const key = password === undefined ? '' : Buffer.from(password).toString('utf8');
    if (keys.roleOf(key) === undefined) {
      log.info({ clientId: client.id }, 'connect refused: unknown API key');
      return done(refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown API key'), false);
    }
    // Operators only read: a Will is a publish.
    if (willOf(client))
      return done(refuse(CONNACK.NOT_AUTHORIZED, 'operators have no Will'), false);
    identities.set(client, { kind: 'operator', key, generation: keys.generation });
    log.info({ clientId: client.id }, 'operator connected');
    done(null, true);
  }

  /**
   * Whether a connection is an operator whose key still stands. The key is checked again
   * only when any key changed (a counter comparison per delivery otherwise), and a revoked
   * key's connection is closed.
   */
  function operatorValid(client: Client): boolean {
    const who = identities.get(client);
    const keys = deps.operators;
    if (who?.kind !== 'operator' || !keys) return false;
    if (who.generation === keys.generation) return true;
    if (keys.roleOf(who.key) === undefined) {
      log.info({ clientId: client.id }, 'API key revoked: operator disconnected');
      identities.delete(client);
      setImmediate(() => client.close());
      return false;
    }
    who.generation = keys.generation;
    return true;
  }

  /**
   * A Will published for a connection lost with its instance (Aedes passes no client). A
   * device's status Will still marks it offline; nothing else is ingested (its instance is
   * gone, and two survivors may both publish it), and the Will was checked at CONNECT.
   */
  function orphanWill(packet: { topic: string; payload: unknown }): null {
    // why: Aedes keeps the owner's client id on stored Wills (aedes-persistence); not typed.
    const clientId = (packet as { clientId?: unknown }).clientId;
    const device = typeof clientId === 'string' ? activeDevice(clientId) : undefined;
    if (device && mayPublish(device, packet.topic)?.kind === 'status') {
      return status(device, packet.topic, packet.payload as Buffer);
    }
    log.info(
      { clientId, topic: packet.topic },
      'Will of a lost connection forwarded, not ingested',
    );
    return null;
  }

  function certificateLogin(
    client: Client,
    cn: string,
    username: string | undefined,
    done: (err: (Error & { returnCode: number }) | null, ok: boolean) => void,
  ): void {
    // The certificate names the device; the client id and any user name must agree.
    if (client.id !== cn) {
      log.info({ clientId: client.id, cn }, 'connect refused: certificate CN is not the client id');
      return done(
        refuse(CONNACK.IDENTIFIER_REJECTED, 'client id must equal the certificate CN'),
        false,
      );
    }
    if (username !== undefined && username !== cn) {
      return done(
        refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'user name must equal the certificate CN'),
        false,
      );
    }
    const device = activeDevice(cn);
    if (!device) {
      log.info({ deviceId: cn }, 'connect refused: certificate for an unknown or disabled device');
      return done(refuse(CONNACK.NOT_AUTHORIZED, 'unknown or disabled device'), false);
    }
    if (!willAllowed(client, device)) {
      return done(refuse(CONNACK.NOT_AUTHORIZED, 'Will topic not allowed'), false);
    }
    admitDevice(client, device);
    done(null, true);
  }

  function status(device: DeviceRecord, topic: string, payload: Buffer): null {
    const text = payload.toString('utf8').trim();
    const now = Date.now();
    if (text === 'online') live.connected(device.id, now);
    else if (text === 'offline') live.disconnected(device.id, now);
    else {
      deps.ingest().reject(device, topic, payload, {
        code: REJECT.STATUS_INVALID,
        reasons: [{ pointer: '', message: 'a status payload is "online" or "offline"' }],
      });
    }
    return null;
  }

  const broker = await Aedes.createBroker(aedesOptions);
  const isDevice = (client: Client) => identities.get(client)?.kind === 'device';
  broker.on('client', (client) => {
    if (!isDevice(client)) return;
    live.connected(client.id, Date.now());
    log.debug({ deviceId: client.id }, 'device connected');
  });
  broker.on('clientDisconnect', (client) => {
    if (!isDevice(client)) return;
    // A reconnect with the same id replaces the client before the old one is gone.
    // why: `clients` is Aedes's own id → Client table; not typed.
    const current = (broker as unknown as { clients: Record<string, Client | undefined> }).clients[
      client.id
    ];
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

/** The parts of Aedes's persistence that hold a client's session; not typed by Aedes. */
interface SessionStore {
  cleanSubscriptions(client: { id: string }): Promise<void>;
  cleanIncoming?(client: { id: string }): Promise<void>;
  delWill(client: { id: string; brokerId: string }): Promise<unknown>;
  outgoingStream(client: { id: string }): AsyncIterable<{ messageId?: number }>;
  outgoingClearMessageId(client: { id: string }, packet: { messageId?: number }): Promise<unknown>;
}

/**
 * Closes a device's connection (disabled, deleted, or its secret rotated) and forgets
 * its session — subscriptions, queued messages, Will — so that a later reconnect with
 * clean session 0 starts from nothing (sessionPresent 0).
 */
export function disconnectDevice(broker: Aedes, deviceId: string): boolean {
  // why: `clients` is Aedes's own id → Client table (a null-prototype object); not typed.
  const client = (broker as unknown as { clients: Record<string, Client | undefined> }).clients[
    deviceId
  ];
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
  // why: `persistence` is Aedes's own field (aedes-persistence); not typed.
  const store = (broker as unknown as { persistence?: SessionStore }).persistence;
  if (!store) return;
  const who = { id };
  await store.cleanSubscriptions(who);
  await store.cleanIncoming?.(who);
  await store.delWill({ id, brokerId: broker.id });
  const queued: { messageId?: number }[] = [];
  for await (const packet of store.outgoingStream(who)) queued.push(packet);
  for (const packet of queued) await store.outgoingClearMessageId(who, packet);
}

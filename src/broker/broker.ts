/**
 * The embedded Aedes broker with Taihu's hooks: authenticate against the registry,
 * the topic ACL of DESIGN §3, and ingest inside `authorizePublish` — Aedes writes
 * the PUBACK only after that hook calls back, so holding the callback until the
 * store commit is what makes a PUBACK mean "stored".
 */
import { Aedes, type AedesOptions, type Client } from 'aedes';
import type { Logger } from 'pino';
import type { Catalog } from '../ingest/catalog.js';
import type { Ingest } from '../ingest/ingest.js';
import type { LiveState } from '../ingest/live.js';
import type { Rejection } from '../ingest/pipeline.js';
import { REJECT } from '../errors.js';
import { deriveDeviceSecret, secretsEqual, verifySecret } from '../registry/credentials.js';
import type { DeviceRecord, Registry } from '../registry/registry.js';
import { mayPublish, maySubscribe, sensorTopic } from './topics.js';

export interface BrokerDeps {
  readonly registry: Registry;
  readonly catalog: Catalog;
  readonly ingest: () => Ingest;
  readonly live: LiveState;
  readonly enrollmentKey: string;
  readonly log: Logger;
}

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3. */
const CONNACK = { IDENTIFIER_REJECTED: 2, BAD_USERNAME_OR_PASSWORD: 4, NOT_AUTHORIZED: 5 } as const;

function refuse(returnCode: number, message: string): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode });
}

/** The CONNECT packet's Will, which Aedes keeps on the client before authenticate runs. */
function willOf(client: Client): { topic: string; payload: Buffer } | undefined {
  // why: `_will` is Aedes's own field (set in handlers/connect.js before authenticate); not typed.
  return (client as unknown as { _will?: { topic: string; payload: Buffer } })._will;
}

export async function createBroker(deps: BrokerDeps): Promise<Aedes> {
  const { registry, live, log } = deps;

  const deviceOf = (client: Client | null): DeviceRecord | undefined => {
    const d = client ? registry.get(client.id) : undefined;
    return d && d.state === 'active' ? d : undefined;
  };

  const options: AedesOptions = {
    // A device that has not sent CONNECT within 10 s is not a device.
    connectTimeout: 10_000,
    // Keepalive above 20 minutes holds dead sockets for half an hour (1.5× rule).
    keepaliveLimit: 1200,
    authenticate(client, username, password, done) {
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
      // A Will is a publish made later on the device's behalf: same ACL, checked now.
      const will = willOf(client);
      if (will && !mayPublish(device, will.topic)) {
        log.info(
          { deviceId: device.id, topic: will.topic },
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
          if (ok && registry.get(device.id)?.state === 'active') return done(null, true);
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
      const device = deviceOf(client);
      const topic = client && device ? mayPublish(device, packet.topic) : undefined;
      if (!client || !device || !topic) {
        // MQTT 3.1.1 cannot refuse a single PUBLISH; closing the connection is the signal.
        log.info({ clientId: client?.id, topic: packet.topic }, 'publish refused by topic ACL');
        return done(new Error(`publish to ${packet.topic} not allowed`));
      }
      if (topic.kind === 'status')
        return done(status(device, packet.topic, packet.payload as Buffer));
      const pending = deps.ingest().telemetry(device, packet.topic, packet.payload as Buffer);
      if (!pending) return done(null);
      pending.then(() => done(null), done);
    },

    authorizeSubscribe(client, sub, done) {
      const device = deviceOf(client);
      // A refused subscription gets SUBACK 0x80 [MQTT-3.9.3-2]; the connection stays.
      done(null, device && maySubscribe(device, sub.topic) ? sub : null);
    },

    authorizeForward(client, packet) {
      // Defence in depth for retained and queued messages: a device only ever
      // receives its own errors topic, whatever its subscriptions say.
      const device = deviceOf(client);
      return device && maySubscribe(device, packet.topic) ? packet : null;
    },
  };

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

  const broker = await Aedes.createBroker(options);
  broker.on('client', (client) => {
    live.connected(client.id, Date.now());
    log.debug({ deviceId: client.id }, 'device connected');
  });
  broker.on('clientDisconnect', (client) => {
    // A reconnect with the same id replaces the client before the old one is gone.
    // why: `clients` is Aedes's own id → Client table; not typed.
    const current = (broker as unknown as { clients: Record<string, Client | undefined> }).clients[
      client.id
    ];
    if (!current || current === client) live.disconnected(client.id, Date.now());
    log.debug({ deviceId: client.id }, 'device disconnected');
  });
  broker.on('clientError', (client, err) => {
    log.debug({ deviceId: client.id, err: err.message }, 'client error');
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

/** Closes a device's connection (disabled or deleted); its clean session goes with it. */
export function disconnectDevice(broker: Aedes, deviceId: string): boolean {
  // why: `clients` is Aedes's own id → Client table (a null-prototype object); not typed.
  const client = (broker as unknown as { clients: Record<string, Client | undefined> }).clients[
    deviceId
  ];
  if (!client) return false;
  client.close();
  return true;
}

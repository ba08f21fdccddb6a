/**
 * Connect rules and logins (DESIGN §5): the CONNECT checks whose answer is a CONNACK code,
 * then who the connection is — a device by its secret (enrollment-derived or individual) or
 * its client certificate, an operator by an API key, or (development mode) anonymous. The
 * answer is kept per connection, never looked up by the client id the wire carries.
 */
import type { AedesOptions, Client, ConnectPacket } from 'aedes';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { deriveDeviceSecret, secretsEqual, verifySecret } from '../registry/credentials.js';
import type { DeviceRecord, Registry } from '../registry/registry.js';
import { willOf } from './aedes.js';
import type { DeviceLimiter, DeviceSlot } from './limits.js';
import { isOperatorLogin, type OperatorKeys } from './operators.js';
import { mayPublish } from './topics.js';
import { MqttWire } from './wire.js';

/** The configuration the connect rules read. */
export type AuthOptions = Pick<Config, 'mqttAuth' | 'mqttKeepaliveZero' | 'mqttIdleTimeoutMs'>;

export interface AuthDeps {
  readonly registry: Pick<Registry, 'get' | 'secretHashOf'>;
  readonly enrollmentKey: string;
  readonly limiter: DeviceLimiter;
  readonly log: Logger;
  readonly options: Readonly<AuthOptions>;
  /** API keys operators log in with (operators.ts); none: no operator logins. */
  readonly operators?: OperatorKeys | undefined;
  /** Called with a device connection once admitted (the publish path watches its wire). */
  readonly admitted?: (client: Client) => void;
}

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3. */
export const CONNACK = {
  IDENTIFIER_REJECTED: 2,
  BAD_USERNAME_OR_PASSWORD: 4,
  NOT_AUTHORIZED: 5,
} as const;

/** Client ids every server must allow as identifiers [MQTT-3.1.3-5]. */
const PLAIN_CLIENT_ID = /^[0-9a-zA-Z]{1,23}$/;

/**
 * The CONNACK code for a client id that is not the device's: 1-23 alphanumerics is an id every
 * server must allow [MQTT-3.1.3-5], so it is refused for the credentials it came with (0x05),
 * not as an identifier; anything else is an identifier this broker rejects (0x02).
 */
function idMismatchCode(clientId: string): number {
  return PLAIN_CLIENT_ID.test(clientId) ? CONNACK.NOT_AUTHORIZED : CONNACK.IDENTIFIER_REJECTED;
}

/** Keepalive above 20 minutes holds dead sockets for half an hour (the 1.5× rule). */
export const KEEPALIVE_LIMIT_S = 1200;

/** Who a connection authenticated as. */
export type Identity =
  | { readonly kind: 'device'; readonly deviceId: string; readonly slot: DeviceSlot }
  | { readonly kind: 'anonymous' }
  /** `generation`: the key store's when the key was last checked (operators.ts). */
  | { readonly kind: 'operator'; readonly key: string; generation: number };

const ANONYMOUS: Identity = { kind: 'anonymous' };

interface Refusal {
  readonly returnCode: number;
  readonly message: string;
}

type Done = (err: (Error & { returnCode: number }) | null, ok: boolean) => void;

function refuse(returnCode: number, message: string): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode });
}

/** The `sensors/` namespace: device credentials required, whatever TAIHU_MQTT_AUTH says. */
function isSensorTopic(topic: string): boolean {
  return topic.startsWith('sensors/') || topic === 'sensors';
}

/** With TAIHU_MQTT_AUTH=off, anyone may publish or subscribe here ($SYS stays closed). */
export function isOpenTopic(topic: string): boolean {
  return topic.charCodeAt(0) !== 0x24 && !isSensorTopic(topic);
}

/**
 * CONNECT rules whose answer is a CONNACK code (Aedes lets these through, or answers
 * with a code MQTT 3.1.1 does not have).
 */
export function connectRefusal(
  packet: ConnectPacket,
  options: Pick<AuthOptions, 'mqttKeepaliveZero'>,
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

/** The connect hooks for Aedes, and what they learnt about each connection. */
export class Auth {
  readonly #deps: AuthDeps;
  readonly #open: boolean;
  readonly #identities = new WeakMap<Client, Identity>();
  readonly #refusals = new WeakMap<Client, Refusal>();

  constructor(deps: AuthDeps) {
    this.#deps = deps;
    this.#open = deps.options.mqttAuth === 'off';
  }

  /** Development mode: anyone may use the topics outside sensors/ and $SYS. */
  get open(): boolean {
    return this.#open;
  }

  identityOf(client: Client): Identity | undefined {
    return this.#identities.get(client);
  }

  /** The device a connection logged in as, while that device is still active. */
  deviceOf(client: Client | null): DeviceRecord | undefined {
    const who = client ? this.#identities.get(client) : undefined;
    return who?.kind === 'device' ? this.activeDevice(who.deviceId) : undefined;
  }

  activeDevice(id: string): DeviceRecord | undefined {
    const d = this.#deps.registry.get(id);
    return d && d.state === 'active' ? d : undefined;
  }

  /** In development mode, whether the connection may use the open topics. */
  mayUseOpenTopics(client: Client): boolean {
    return this.#open && this.#identities.has(client);
  }

  readonly preConnect: NonNullable<AedesOptions['preConnect']> = (client, packet, done) => {
    const refusal = connectRefusal(packet, this.#deps.options);
    if (refusal) this.#refusals.set(client, refusal);
    else if (packet.keepalive === 0 && this.#deps.options.mqttIdleTimeoutMs > 0) {
      // A connection without keepalive still gets a silence ceiling: Aedes's own keepalive
      // timer (1.5 × keepalive + 1 ms, restarted by every packet) set to the idle timeout.
      packet.keepalive = this.#deps.options.mqttIdleTimeoutMs / 1500;
    }
    done(null, true);
  };

  readonly authenticate: NonNullable<AedesOptions['authenticate']> = (
    client,
    username,
    password,
    done,
  ) => {
    const { registry, log } = this.#deps;
    const refusal = this.#refusals.get(client);
    if (refusal) {
      this.#refusals.delete(client);
      log.info({ clientId: client.id, reason: refusal.message }, 'connect refused');
      return done(refuse(refusal.returnCode, refusal.message), false);
    }
    const cn = client.conn instanceof MqttWire ? client.conn.peer.certificateCn : undefined;
    if (cn !== undefined) return this.#certificateLogin(client, cn, username, done);
    const operators = this.#deps.operators;
    if (operators && isOperatorLogin(client.id, username)) {
      return this.#operatorLogin(client, operators, password, done);
    }
    // Development mode: a connection that does not claim a device identity is anonymous.
    if (
      this.#open &&
      registry.get(client.id) === undefined &&
      (username === undefined || registry.get(username) === undefined)
    ) {
      if (!this.#willAllowed(client, undefined)) {
        return done(refuse(CONNACK.NOT_AUTHORIZED, 'Will topic not allowed'), false);
      }
      this.#identities.set(client, ANONYMOUS);
      return done(null, true);
    }
    this.#passwordLogin(client, username, password, done);
  };

  /**
   * Whether a connection is an operator whose key still stands. The key is checked again
   * only when any key changed (a counter comparison per delivery otherwise), and a revoked
   * key's connection is closed.
   */
  operatorValid(client: Client): boolean {
    const who = this.#identities.get(client);
    const keys = this.#deps.operators;
    if (who?.kind !== 'operator' || !keys) return false;
    if (who.generation === keys.generation) return true;
    if (keys.roleOf(who.key) === undefined) {
      this.#deps.log.info({ clientId: client.id }, 'API key revoked: operator disconnected');
      this.#identities.delete(client);
      setImmediate(() => client.close());
      return false;
    }
    who.generation = keys.generation;
    return true;
  }

  #passwordLogin(
    client: Client,
    username: string | undefined,
    password: Readonly<Buffer | undefined>,
    done: Done,
  ): void {
    const { registry, log } = this.#deps;
    if (!username || !password) {
      return done(
        refuse(CONNACK.NOT_AUTHORIZED, 'username (device id) and password are required'),
        false,
      );
    }
    if (client.id !== username) {
      return done(
        refuse(idMismatchCode(client.id), 'client id must equal the username (the device id)'),
        false,
      );
    }
    const device = registry.get(username);
    if (!device || device.state !== 'active') {
      log.info(
        { deviceId: username, known: Boolean(device) },
        'connect refused: unknown or disabled device',
      );
      return done(refuse(CONNACK.NOT_AUTHORIZED, 'unknown or disabled device'), false);
    }
    if (!this.#willAllowed(client, device)) {
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
          secretsEqual(password, deriveDeviceSecret(this.#deps.enrollmentKey, device.id)),
        );
    checked.then(
      (ok) => {
        // The device may have been disabled while its secret was being checked.
        const still = ok ? this.activeDevice(device.id) : undefined;
        if (still) {
          this.#admitDevice(client, still);
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
  }

  #operatorLogin(
    client: Client,
    keys: OperatorKeys,
    password: Readonly<Buffer | undefined>,
    done: Done,
  ): void {
    const { log } = this.#deps;
    const key = password === undefined ? '' : Buffer.from(password).toString('utf8');
    if (keys.roleOf(key) === undefined) {
      log.info({ clientId: client.id }, 'connect refused: unknown API key');
      return done(refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown API key'), false);
    }
    // Operators only read: a Will is a publish.
    if (willOf(client)) {
      return done(refuse(CONNACK.NOT_AUTHORIZED, 'operators have no Will'), false);
    }
    this.#identities.set(client, { kind: 'operator', key, generation: keys.generation });
    log.info({ clientId: client.id }, 'operator connected');
    done(null, true);
  }

  #certificateLogin(client: Client, cn: string, username: string | undefined, done: Done): void {
    const { log } = this.#deps;
    // The certificate names the device; the client id and any user name must agree.
    if (client.id !== cn) {
      log.info({ clientId: client.id, cn }, 'connect refused: certificate CN is not the client id');
      return done(
        refuse(idMismatchCode(client.id), 'client id must equal the certificate CN'),
        false,
      );
    }
    if (username !== undefined && username !== cn) {
      return done(
        refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'user name must equal the certificate CN'),
        false,
      );
    }
    const device = this.activeDevice(cn);
    if (!device) {
      log.info({ deviceId: cn }, 'connect refused: certificate for an unknown or disabled device');
      return done(refuse(CONNACK.NOT_AUTHORIZED, 'unknown or disabled device'), false);
    }
    if (!this.#willAllowed(client, device)) {
      return done(refuse(CONNACK.NOT_AUTHORIZED, 'Will topic not allowed'), false);
    }
    this.#admitDevice(client, device);
    done(null, true);
  }

  #admitDevice(client: Client, device: DeviceRecord): void {
    this.#identities.set(client, {
      kind: 'device',
      deviceId: device.id,
      slot: this.#deps.limiter.slot(device.id, performance.now()),
    });
    this.#deps.admitted?.(client);
  }

  /** A Will is a publish made later on the client's behalf: same ACL, checked now. */
  #willAllowed(client: Client, device: DeviceRecord | undefined): boolean {
    const will = willOf(client);
    if (!will) return true;
    if (device && mayPublish(device, will.topic)) return true;
    return this.#open && isOpenTopic(will.topic);
  }
}

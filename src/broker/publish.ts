/**
 * The publish path, Aedes's `authorizePublish`: the topic ACL, the device's rate and in-flight
 * limits, then ingest. Aedes writes the PUBACK (PUBREC) only when this hook calls back, so
 * holding the callback until the spool commit is what makes a PUBACK mean "stored"
 * (DESIGN §6); a device over its rate has its callback held longer, never its message dropped.
 */
import type { AedesOptions, Client } from 'aedes';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { REJECT } from '../errors.js';
import type { Ingest } from '../ingest/ingest.js';
import type { DeviceRecord } from '../registry/registry.js';
import { inboundQos2Of, isWill, restartKeepalive, willOwnerOf } from './aedes.js';
import { isOpenTopic, type Auth } from './auth.js';
import type { DeviceLimiter, DeviceSlot } from './limits.js';
import { mayPublish } from './topics.js';
import { MqttWire } from './wire.js';

export type PublishOptions = Pick<Config, 'deviceRate' | 'deviceBurst' | 'deviceMaxInflight'>;

export interface PublishDeps {
  readonly auth: Auth;
  readonly limiter: DeviceLimiter;
  readonly ingest: Ingest;
  readonly log: Logger;
  readonly options: Readonly<PublishOptions>;
  /** Counts QoS 1/2 messages whose acknowledgement waited for the device's rate. */
  readonly slowed?: (() => void) | undefined;
}

type Ack = (err: Error | null) => void;

/** A device over its rate gets one rejection record, notice or log line per this many ms. */
const RATE_REPORT_EVERY_MS = 1000;

export function createPublishPath(
  deps: PublishDeps,
): NonNullable<AedesOptions['authorizePublish']> {
  const { auth, limiter, ingest, log, options } = deps;
  const releaseBelow = Math.floor(options.deviceMaxInflight / 2);
  /** Longest read pause for a QoS 0 flood: the time the bucket takes to refill. */
  const throttleMaxMs = (1000 * options.deviceBurst) / Math.max(options.deviceRate, 1e-9);
  /** Per connection: QoS 2 packet identifiers whose message is being handled now. */
  const qos2Handling = new WeakMap<Client, Map<number, Promise<void>>>();
  /** When each slowed device was last logged, by id. */
  const slowedLogged = new Map<string, number>();

  /**
   * A QoS 0 flood must not flush other devices' records out of the rejection log or echo one
   * notice per message: one record and notice per device per second, the rest counted.
   */
  function dropOverRate(device: DeviceRecord, topic: string, payload: Buffer, slot: DeviceSlot) {
    const now = performance.now();
    if (now - slot.reportedAt < RATE_REPORT_EVERY_MS) {
      slot.unreported++;
      ingest.counted(device, REJECT.RATE_LIMITED);
      return;
    }
    const unreported = slot.unreported;
    slot.unreported = 0;
    slot.reportedAt = now;
    ingest.rateLimited(device, topic, payload, {
      rate: options.deviceRate,
      burst: options.deviceBurst,
      unreported,
    });
    log.info({ deviceId: device.id, unreported }, 'device over its message rate: QoS 0 dropped');
  }

  function logSlowed(deviceId: string): void {
    const now = performance.now();
    const last = slowedLogged.get(deviceId);
    if (last !== undefined && now - last < RATE_REPORT_EVERY_MS) return;
    if (slowedLogged.size > 10_000) slowedLogged.clear();
    slowedLogged.set(deviceId, now);
    log.info(
      { deviceId, rate: options.deviceRate, burst: options.deviceBurst },
      'device over its message rate: acknowledgements held back, nothing dropped',
    );
  }

  /**
   * The rate: QoS 0 excess is dropped (false); a QoS 1/2 message over the rate is never
   * refused (DESIGN §6): it is handled, and its acknowledgement and the next read of the
   * socket wait until the device is back within its rate, so TCP and the device's in-flight
   * window carry the backpressure. Returns when the ack may go (0: at once), or false.
   */
  function admit(
    device: DeviceRecord,
    packet: { topic: string; qos: number; payload: Buffer },
    slot: DeviceSlot,
    wire: MqttWire | undefined,
  ): number | false {
    const now = performance.now();
    if (packet.qos === 0) {
      if (limiter.take(slot, now)) return 0;
      dropOverRate(device, packet.topic, packet.payload, slot);
      // and read its socket no faster than its rate: each dropped message adds the time it
      // would have taken at that rate (at most a full bucket's refill) before the next read;
      // what it sends meanwhile waits in TCP
      wire?.throttle(1000 / options.deviceRate, throttleMaxMs);
      return false;
    }
    const wait = limiter.borrow(slot, now);
    if (wait === 0) return 0;
    wire?.pauseUntil(now + wait);
    deps.slowed?.();
    logSlowed(device.id);
    return now + wait;
  }

  /**
   * Telemetry: ingest, then the ack once committed (and due). In-flight limit: past it, stop
   * reading this connection until acks catch up. Not refusing: the ack is late because the
   * gateway is, and DESIGN §6 wants devices to slow down, never acknowledged messages dropped.
   */
  function telemetry(
    client: Client,
    device: DeviceRecord,
    packet: { topic: string; payload: Buffer },
    slot: DeviceSlot,
    wire: MqttWire | undefined,
    ackAt: number,
    done: Ack,
  ): void {
    const pending = ingest.telemetry(device, packet.topic, packet.payload);
    if (!pending) {
      if (ackAt === 0) done(null);
      else ackWhenDue(client, ackAt, done, null);
      return;
    }
    slot.inflight++;
    if (wire && !wire.held && limiter.full(slot)) {
      wire.hold();
      log.debug(
        { deviceId: device.id, inflight: slot.inflight },
        'in-flight limit: reading paused',
      );
    }
    const settle: Ack = (err) => {
      if (--slot.inflight <= releaseBelow) wire?.release();
      done(err);
    };
    pending.then(
      () => (ackAt === 0 ? settle(null) : ackWhenDue(client, ackAt, settle, null)),
      (err: Error) => (ackAt === 0 ? settle(err) : ackWhenDue(client, ackAt, settle, err)),
    );
  }

  return (client, packet, done) => {
    // A Will left by a connection whose instance died: another instance of the cluster
    // publishes it without a client. Refusing would raise an unhandled broker error.
    if (!client) return done(orphanWill(packet));
    if (auth.mayUseOpenTopics(client) && isOpenTopic(packet.topic)) return done(null);
    const who = auth.identityOf(client);
    const device = who?.kind === 'device' ? auth.activeDevice(who.deviceId) : undefined;
    const topic = device ? mayPublish(device, packet.topic) : undefined;
    if (!device || !topic || who?.kind !== 'device') {
      // MQTT 3.1.1 cannot refuse a single PUBLISH; closing the connection is the signal.
      log.info({ clientId: client.id, topic: packet.topic }, 'publish refused by topic ACL');
      return done(new Error(`publish to ${packet.topic} not allowed`));
    }
    const handle = (ack: Ack) => {
      const payload = packet.payload as Buffer;
      const wire = client.conn instanceof MqttWire ? client.conn : undefined;
      // The Will is sent by the broker at disconnect, not by the device now: no limits.
      const ackAt = isWill(client, packet)
        ? 0
        : admit(device, { topic: packet.topic, qos: packet.qos, payload }, who.slot, wire);
      if (ackAt === false) return ack(null);
      if (topic.kind === 'status') {
        ingest.status(device, packet.topic, payload);
        if (ackAt === 0) return ack(null);
        return ackWhenDue(client, ackAt, ack, null);
      }
      telemetry(client, device, { topic: packet.topic, payload }, who.slot, wire, ackAt, ack);
    };
    if (packet.qos === 2 && !isWill(client, packet)) {
      exactlyOnce(qos2Handling, client, packet, handle, done);
    } else handle(done);
  };

  /**
   * A Will published for a connection lost with its instance (Aedes passes no client). A
   * device's status Will still marks it offline; nothing else is ingested (its instance is
   * gone, and two survivors may both publish it), and the Will was checked at CONNECT.
   */
  function orphanWill(packet: { topic: string; payload: unknown }): null {
    const clientId = willOwnerOf(packet);
    const device = clientId === undefined ? undefined : auth.activeDevice(clientId);
    if (device && mayPublish(device, packet.topic)?.kind === 'status') {
      ingest.status(device, packet.topic, packet.payload as Buffer);
      return null;
    }
    log.info(
      { clientId, topic: packet.topic },
      'Will of a lost connection forwarded, not ingested',
    );
    return null;
  }
}

/**
 * Acknowledges at `ackAt` (performance.now() ms), not before. The gateway stopped reading
 * the device meanwhile, so the device's keepalive timer is restarted with the ack: its
 * packets are waiting in TCP, it has not gone silent.
 */
function ackWhenDue(client: Client, ackAt: number, ack: Ack, err: Error | null): void {
  const left = ackAt - performance.now();
  const send = () => {
    restartKeepalive(client);
    ack(err);
  };
  if (left < 1) send();
  else setTimeout(send, left);
}

/**
 * [MQTT-4.3.3-2]: a QoS 2 PUBLISH sent again before its PUBREL (on this connection, or after a
 * reconnect with clean session 0 when the PUBREC was lost) must not be delivered twice. Aedes
 * asks this hook before it looks the packet identifier up in its inbound store, so look
 * first: a copy is called back without being handled, and Aedes answers it with PUBREC alone.
 * A copy arriving while the first is still being handled waits for it.
 */
function exactlyOnce(
  qos2Handling: WeakMap<Client, Map<number, Promise<void>>>,
  client: Client,
  packet: { messageId?: number },
  handle: (ack: Ack) => void,
  done: Ack,
): void {
  const id = packet.messageId ?? 0;
  let handling = qos2Handling.get(client);
  if (!handling) qos2Handling.set(client, (handling = new Map()));
  const earlier = handling.get(id);
  if (earlier) return void earlier.then(() => done(null), done);
  const first = inboundQos2Of(client)
    .incomingGetPacket(client, { messageId: id })
    .then(
      () => undefined, // held since before: a copy
      () => new Promise<void>((resolve, reject) => handle((e) => (e ? reject(e) : resolve()))),
    );
  handling.set(id, first);
  const forget = handling;
  first.then(
    () => {
      forget.delete(id);
      done(null);
    },
    (err: Error) => {
      forget.delete(id);
      done(err);
    },
  );
}

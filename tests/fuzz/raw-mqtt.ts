/**
 * MQTT 3.1.1 packets written byte by byte, for the packets no client library will
 * produce (password without username, Will QoS 3, packet id 0, invalid UTF-8), and a
 * raw TCP session that reads the broker's answers back with mqtt-packet's parser.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { parser as mqttParser, type Packet } from 'mqtt-packet';

type Bytes = string | Buffer;

const bytes = (b: Bytes): Buffer => (typeof b === 'string' ? Buffer.from(b, 'utf8') : b);

/** A length-prefixed string or binary field (§1.5.3). */
export function field(b: Bytes): Buffer {
  const body = bytes(b);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length);
  return Buffer.concat([len, body]);
}

/** The Remaining Length encoding (§2.2.3); `value` may exceed what MQTT allows. */
export function varint(value: number): Buffer {
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return Buffer.from(out);
}

/** A whole packet: fixed header byte, Remaining Length, body. */
export function frame(firstByte: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([firstByte]), varint(body.length), body]);
}

export interface ConnectFields {
  clientId: Bytes;
  username?: Bytes;
  password?: Bytes;
  will?: { topic: Bytes; payload: Bytes; qos: number; retain?: boolean };
  clean?: boolean;
  keepalive?: number;
  /** Sets the password flag without writing a username (or vice versa) when given. */
  flags?: number;
  protocolName?: string;
  level?: number;
}

export function connectPacket(c: ConnectFields): Buffer {
  let flags = 0;
  if (c.clean !== false) flags |= 0x02;
  if (c.will) flags |= 0x04 | ((c.will.qos & 3) << 3) | (c.will.retain ? 0x20 : 0);
  if (c.password !== undefined) flags |= 0x40;
  if (c.username !== undefined) flags |= 0x80;
  const keepalive = Buffer.alloc(2);
  keepalive.writeUInt16BE(c.keepalive ?? 60);
  const parts = [
    field(c.protocolName ?? 'MQTT'),
    Buffer.from([c.level ?? 4, c.flags ?? flags]),
    keepalive,
    field(c.clientId),
  ];
  if (c.will) parts.push(field(c.will.topic), field(c.will.payload));
  if (c.username !== undefined) parts.push(field(c.username));
  if (c.password !== undefined) parts.push(field(c.password));
  return frame(0x10, Buffer.concat(parts));
}

export function publishPacket(p: {
  topic: Bytes;
  payload: Bytes;
  qos?: number;
  messageId?: number;
  retain?: boolean;
}): Buffer {
  const qos = p.qos ?? 0;
  const id = Buffer.alloc(qos > 0 ? 2 : 0);
  if (qos > 0) id.writeUInt16BE(p.messageId ?? 1);
  return frame(
    0x30 | (qos << 1) | (p.retain ? 1 : 0),
    Buffer.concat([field(p.topic), id, bytes(p.payload)]),
  );
}

export function subscribePacket(messageId: number, filters: [Bytes, number][]): Buffer {
  const id = Buffer.alloc(2);
  id.writeUInt16BE(messageId);
  return frame(
    0x82,
    Buffer.concat([id, ...filters.flatMap(([f, qos]) => [field(f), Buffer.from([qos])])]),
  );
}

export function unsubscribePacket(messageId: number, filters: Bytes[]): Buffer {
  const id = Buffer.alloc(2);
  id.writeUInt16BE(messageId);
  return frame(0xa2, Buffer.concat([id, ...filters.map(field)]));
}

export const PINGREQ = Buffer.from([0xc0, 0x00]);
export const DISCONNECT = Buffer.from([0xe0, 0x00]);

/** A raw connection that records every packet the broker sends and when it closes. */
export interface RawSession {
  readonly socket: Socket;
  readonly packets: Packet[];
  /** Resolves when the broker (or the network) closes the connection. */
  readonly closed: Promise<void>;
  /** Parse errors of what the broker sent (should stay empty). */
  readonly garbage: Buffer[];
  isClosed(): boolean;
  send(...b: Buffer[]): Promise<void>;
  /** Resolves with the first packet (already received or to come) matching cmd, or undefined on close/timeout. */
  next(cmd: Packet['cmd'], timeoutMs?: number): Promise<Packet | undefined>;
  /** Resolves true if the connection is closed within timeoutMs. */
  closesWithin(timeoutMs: number): Promise<boolean>;
  end(): void;
}

export interface RawSessionOptions {
  /** Connect over TLS with these options (servername defaults to localhost). */
  readonly tls?: ConnectionOptions;
  /** Source address of a plain TCP session, e.g. 127.0.0.2 to look like another peer. */
  readonly localAddress?: string;
  readonly host?: string;
}

export function rawSession(port: number, opts: RawSessionOptions = {}): Promise<RawSession> {
  const { tls, localAddress, host = '127.0.0.1' } = opts;
  return new Promise((resolve, reject) => {
    const socket = tls
      ? tlsConnect({ host, port, servername: 'localhost', ...tls })
      : netConnect({ port, host, localAddress });
    const packets: Packet[] = [];
    const garbage: Buffer[] = [];
    const parser = mqttParser({ protocolVersion: 4 });
    const waiters = new Set<() => void>();
    let isClosed = false;
    parser.on('packet', (p) => {
      packets.push(p);
      for (const w of waiters) w();
    });
    socket.on('data', (b: Buffer) => parser.parse(b));
    parser.on('error', (err: Error) => garbage.push(Buffer.from(err.message)));
    const closed = new Promise<void>((r) =>
      socket.once('close', () => {
        isClosed = true;
        for (const w of waiters) w();
        r();
      }),
    );
    socket.on('error', () => {});
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      socket.off('error', reject);
      resolve(session);
    });
    socket.once('error', reject);
    const session: RawSession = {
      socket,
      packets,
      closed,
      garbage,
      isClosed: () => isClosed,
      send: (...b) =>
        new Promise((r) => {
          if (isClosed || socket.destroyed) return r();
          socket.write(Buffer.concat(b), () => r());
        }),
      next(cmd, timeoutMs = 3000) {
        return new Promise((r) => {
          const check = () => {
            const p = packets.find((x) => x.cmd === cmd);
            if (p || isClosed) {
              clearTimeout(timer);
              waiters.delete(check);
              r(p);
            }
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            r(packets.find((x) => x.cmd === cmd));
          }, timeoutMs);
          waiters.add(check);
          check();
        });
      },
      async closesWithin(timeoutMs) {
        let timer: NodeJS.Timeout | undefined;
        const t = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
        const result = await Promise.race([closed.then(() => true), t]);
        clearTimeout(timer);
        return result;
      },
      end: () => socket.destroy(),
    };
  });
}

/**
 * The MQTT wire guard: a Duplex between a network stream and Aedes that follows the
 * packet boundaries as bytes arrive and closes the connection at the first byte that
 * breaks the rules below, before Aedes (or mqtt-packet's parser) buffers anything:
 *
 * - the first packet is CONNECT [MQTT-3.1.0-1]; a second CONNECT closes [MQTT-3.1.0-2];
 * - only packet types a client may send [MQTT-2.2.1]; Remaining Length at most 4 bytes
 *   [MQTT-2.2.3] and at most `maxPacketBytes` — checked on the length bytes themselves,
 *   so a header declaring 256 MB costs 5 bytes, not 256 MB;
 * - every UTF-8 string of CONNECT, PUBLISH, SUBSCRIBE and UNSUBSCRIBE is well-formed
 *   [MQTT-1.5.3-1] (mqtt-packet would decode invalid bytes to U+FFFD and carry on), holds
 *   no U+0000 [MQTT-1.5.3-2], and no control character or noncharacter such as U+FFFF
 *   (§1.5.3: a receiver MAY close the connection on them);
 * - the CONNECT MUSTs Aedes does not enforce: Will QoS 3 [MQTT-3.1.2-14], password flag
 *   without user name flag [MQTT-3.1.2-22], a Will topic with wildcards [MQTT-3.3.2-2];
 * - packet identifier 0 on PUBLISH QoS 1/2, SUBSCRIBE, UNSUBSCRIBE, PUBACK, PUBREC, PUBREL,
 *   PUBCOMP [MQTT-2.3.1-1]; SUBSCRIBE/UNSUBSCRIBE without a topic filter [MQTT-3.8.3-3]
 *   [MQTT-3.10.3-2]; DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2];
 * - a topic filter whose `+` or `#` is not a whole level, or whose `#` is not the last one
 *   [MQTT-4.7.1-2] [MQTT-4.7.1-3] (Aedes subscribes `a+` or `a#` as if they were names);
 * - packets whose length their type fixes (§3.4-§3.7: 2; §3.12, §3.14: 0) and that say
 *   otherwise are malformed [MQTT-4.8.0-1];
 * - a CONNECT of MQTT 3.1.1 or 3.1 with a protocol level this broker does not speak gets
 *   CONNACK 0x01 and the connection closes [MQTT-3.1.2-2]; another protocol name closes
 *   at once [MQTT-3.1.2-1];
 * - topic names and filters of at most MAX_TOPIC_BYTES bytes and MAX_TOPIC_LEVELS levels.
 *
 * Payload bytes are skipped by arithmetic, never copied; a PUBLISH costs one pass over
 * its topic (measured: `bench/micro/broker.ts`). Refusals that MQTT answers with a CONNACK code
 * (client id rules, keepalive ceiling) are the broker's, not this layer's.
 */
import { Duplex } from 'node:stream';
import { CODES, ERR_MQTT_PROTOCOL as mqttProtocolError, type TaihuError } from '../errors.js';

/** Error code of a connection closed by the guard; the message cites the clause. */
export const ERR_MQTT_PROTOCOL = CODES.MQTT_PROTOCOL;
/** A topic name or filter longer than this (bytes) closes the connection; ours are < 150. */
export const MAX_TOPIC_BYTES = 1024;
/** A topic name or filter with more levels than this closes the connection; ours have 4. */
export const MAX_TOPIC_LEVELS = 32;

/** Who is at the other end, as the listener saw it. */
export interface Peer {
  /** Remote IP address (IPv4-mapped IPv6 addresses unwrapped). */
  readonly address: string;
  /** The CN of a client certificate that verified against TAIHU_TLS_CA, if any. */
  readonly certificateCn?: string | undefined;
}

export interface WireLimits {
  /** Largest packet (fixed header excluded) in bytes. */
  readonly maxPacketBytes: number;
}

// Packet types (§2.2.1).
const CONNECT = 1;
const PUBLISH = 3;
const PUBACK = 4;
const PUBREC = 5;
const PUBREL = 6;
const PUBCOMP = 7;
const SUBSCRIBE = 8;
const UNSUBSCRIBE = 10;
const PINGREQ = 12;
const DISCONNECT = 14;
const PACKET_NAMES: Readonly<Record<number, string>> = {
  [PUBACK]: 'PUBACK',
  [PUBREC]: 'PUBREC',
  [PUBREL]: 'PUBREL',
  [PUBCOMP]: 'PUBCOMP',
  [PINGREQ]: 'PINGREQ',
  [DISCONNECT]: 'DISCONNECT',
};
/** Types a client may send: CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT. */
const FROM_CLIENT = 0b0101_0101_1111_1010;
/** Required fixed-header flags by type (§2.2.2): 0010 for PUBREL, SUBSCRIBE, UNSUBSCRIBE. */
const FLAGS = Uint8Array.from([0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0]);

const enum Stage {
  Header,
  Length,
  Body,
}

/** What a string is: a topic name (no wildcards), a topic filter, or other text. */
export type TextKind = 'name' | 'filter' | 'text';

function violation(message: string): TaihuError {
  return mqttProtocolError(message);
}

/** A refusal the protocol answers before closing: the bytes to send, and why. */
export interface Answered {
  readonly reply: Buffer;
  readonly message: string;
}

/** CONNACK, return code 0x01 "unacceptable protocol level" (§3.2.2.3). */
const CONNACK_UNACCEPTABLE_LEVEL = Buffer.from([0x20, 0x02, 0x00, 0x01]);
/** How often a paused connection tells its owner that it is still paused, ms. */
const STALL_TICK_MS = 1000;
/** How long an answered refusal may take to reach the peer before the socket is dropped. */
const ANSWER_FLUSH_MS = 1000;

export class MqttWire extends Duplex {
  readonly peer: Peer;
  readonly #inner: Duplex;
  readonly #maxPacketBytes: number;
  #pendingWrite: ((err?: Error | null) => void) | undefined;
  /** Reads stopped by the owner (in-flight limit), independent of stream backpressure. */
  #held = false;
  /** Reads stopped for a while (a device over its message rate); see throttle(). */
  #throttle: NodeJS.Timeout | undefined;
  /** When the throttle ends, performance.now() ms. */
  #throttleUntil = 0;
  #wantsData = true;
  /** A refusal is being answered: nothing more is read or passed on. */
  #answering = false;

  // Packet boundary state.
  #stage = Stage.Header;
  #packets = 0;
  #first = 0;
  #length = 0;
  #multiplier = 1;
  #lengthBytes = 0;
  #pos = 0;
  /** Leading body bytes the current packet's inspection still needs; 0 = none. */
  #want = 0;
  #capture: Buffer | undefined;
  #captured = 0;

  constructor(inner: Duplex, peer: Peer, limits: WireLimits) {
    super({ allowHalfOpen: false });
    this.peer = peer;
    this.#inner = inner;
    this.#maxPacketBytes = limits.maxPacketBytes;
    inner.on('data', (chunk: Buffer) => this.#onData(chunk));
    inner.once('end', () => this.push(null));
    inner.on('error', (err) => this.destroy(err));
    inner.once('close', () => {
      if (!this.destroyed) this.destroy();
    });
    inner.on('drain', () => {
      const cb = this.#pendingWrite;
      this.#pendingWrite = undefined;
      cb?.();
    });
  }

  /** Stops reading from the network until `release()`; what is buffered still flows. */
  hold(): void {
    if (this.#held) return;
    this.#held = true;
    this.#inner.pause();
  }

  release(): void {
    if (!this.#held) return;
    this.#held = false;
    this.#resumeIfFree();
  }

  /**
   * Stops reading from the network for `ms` more (added to a pause already running), at most
   * `maxMs` from now, whatever hold()/release() do meanwhile. A device over its message rate gets
   * its QoS 0 excess refused anyway; pausing its socket for the time its excess would have taken
   * at its rate makes TCP slow it to that rate, so a flood costs the event loop a chunk per pause
   * instead of every packet it can send.
   */
  throttle(ms: number, maxMs: number): void {
    const now = performance.now();
    this.pauseUntil(Math.min(Math.max(now, this.#throttleUntil) + ms, now + maxMs));
  }

  /**
   * Stops reading from the network until `until` (performance.now() ms; a pause already
   * running longer is kept), whatever hold()/release() do meanwhile. While paused,
   * `onStalled` is called about every STALL_TICK_MS: the peer is not silent, the gateway
   * is not reading it, so its keepalive must not run out meanwhile.
   */
  pauseUntil(until: number): void {
    if (this.destroyed || until <= this.#throttleUntil) return;
    this.#throttleUntil = until;
    if (this.#throttle !== undefined) return;
    this.#inner.pause();
    const wake = (): void => {
      const left = this.#throttleUntil - performance.now();
      if (left >= 1) {
        this.onStalled?.();
        this.#throttle = setTimeout(wake, Math.min(left, STALL_TICK_MS));
        return;
      }
      this.#throttle = undefined;
      this.onStalled?.();
      this.#resumeIfFree();
    };
    this.#throttle = setTimeout(wake, Math.min(until - performance.now(), STALL_TICK_MS));
  }

  /** Called while a pause keeps the peer unread (see pauseUntil); none: nothing to tell. */
  onStalled: (() => void) | undefined;

  get throttled(): boolean {
    return this.#throttle !== undefined;
  }

  #resumeIfFree(): void {
    if (!this.#held && this.#throttle === undefined && this.#wantsData) this.#inner.resume();
  }

  get held(): boolean {
    return this.#held;
  }

  #onData(chunk: Buffer): void {
    if (this.#answering) return;
    const problem = this.#scan(chunk);
    if (typeof problem === 'string') {
      this.destroy(violation(problem));
      return;
    }
    if (problem !== undefined) {
      this.#answer(problem);
      return;
    }
    if (!this.push(chunk)) {
      this.#wantsData = false;
      this.#inner.pause();
    }
  }

  /** Sends the refusal's answer, then closes; nothing more reaches Aedes. */
  #answer(a: Answered): void {
    this.#answering = true;
    this.#inner.pause();
    const err = violation(a.message);
    const drop = setTimeout(() => this.destroy(err), ANSWER_FLUSH_MS);
    this.#inner.end(a.reply, () => {
      clearTimeout(drop);
      this.destroy(err);
    });
  }

  /**
   * `read()` without a size returns everything buffered, as it did up to Node 24: Aedes reads
   * once per 'readable' event (lib/client.js `nextBatch`) and waits for the next one, but Node 26
   * returns one buffered chunk per call and emits no new 'readable' while more is buffered, so a
   * CONNECT that arrived in pieces (MQTT.js over WebSocket writes one frame per field) was never
   * read whole and the connection stalled.
   */
  override read(size?: number): Buffer | null {
    const first = super.read(size) as Buffer | null;
    if (size != null || first === null || this.readableLength === 0) return first;
    const parts = [first];
    for (let next = super.read() as Buffer | null; next !== null; next = super.read()) {
      parts.push(next);
    }
    return parts.length === 1 ? first : Buffer.concat(parts);
  }

  override _read(): void {
    this.#wantsData = true;
    this.#resumeIfFree();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#inner.write(chunk)) cb();
    else this.#pendingWrite = cb;
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    cb: (err?: Error | null) => void,
  ): void {
    this.#inner.cork();
    let ok = true;
    for (const c of chunks) ok = this.#inner.write(c.chunk);
    this.#inner.uncork();
    if (ok) cb();
    else this.#pendingWrite = cb;
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#inner.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    clearTimeout(this.#throttle);
    this.#throttle = undefined;
    this.#inner.destroy();
    const pending = this.#pendingWrite;
    this.#pendingWrite = undefined;
    pending?.(err ?? new Error('connection closed'));
    cb(err);
  }

  /** Follows packet boundaries through one chunk; what is wrong when the connection must close. */
  #scan(chunk: Buffer): string | Answered | undefined {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.#stage === Stage.Body) {
        const take = Math.min(n - i, this.#length - this.#pos);
        if (this.#want !== 0) {
          const problem = this.#inspect(chunk, i, take);
          if (problem !== undefined) return problem;
        }
        this.#pos += take;
        i += take;
        if (this.#pos === this.#length) this.#stage = Stage.Header;
        continue;
      }
      const b = chunk[i++] as number;
      if (this.#stage === Stage.Header) {
        const type = b >> 4;
        if (this.#packets === 0 && type !== CONNECT) {
          return 'the first packet must be CONNECT [MQTT-3.1.0-1]';
        }
        if (this.#packets > 0 && type === CONNECT) {
          return 'a second CONNECT is a protocol violation [MQTT-3.1.0-2]';
        }
        if ((FROM_CLIENT & (1 << type)) === 0) {
          return `packet type ${type} is not one a client sends [MQTT-2.2.1]`;
        }
        if (type === PUBLISH ? (b & 0x06) === 0x06 : (b & 0x0f) !== FLAGS[type]) {
          return type === PUBLISH
            ? 'PUBLISH with QoS 3 [MQTT-3.3.1-4]'
            : `packet type ${type} with reserved flags ${b & 0x0f} [MQTT-2.2.2-2]`;
        }
        if (type === PUBLISH && (b & 0x0e) === 0x08) {
          return 'PUBLISH with QoS 0 and DUP set [MQTT-3.3.1-2]';
        }
        this.#first = b;
        this.#length = 0;
        this.#multiplier = 1;
        this.#lengthBytes = 0;
        this.#stage = Stage.Length;
        continue;
      }
      // Stage.Length: the value only grows with each byte, so a partial value already
      // over the limit is over it for good — close before the rest arrives.
      this.#length += (b & 0x7f) * this.#multiplier;
      this.#multiplier *= 128;
      this.#lengthBytes++;
      if (this.#length > this.#maxPacketBytes) {
        return `packet of at least ${this.#length} bytes; the limit is ${this.#maxPacketBytes} (TAIHU_MAX_PACKET_BYTES)`;
      }
      if (b & 0x80) {
        if (this.#lengthBytes === 4) return 'Remaining Length longer than 4 bytes [MQTT-2.2.3]';
        continue;
      }
      this.#packets++;
      this.#pos = 0;
      this.#captured = 0;
      this.#capture = undefined;
      const problem = this.#begin();
      if (problem !== undefined) return problem;
      this.#stage = this.#length === 0 ? Stage.Header : Stage.Body;
    }
    return undefined;
  }

  /** Sets how many leading body bytes the new packet's inspection needs. */
  #begin(): string | undefined {
    const type = this.#first >> 4;
    switch (type) {
      case CONNECT:
      case SUBSCRIBE:
      case UNSUBSCRIBE:
        // Control packets, once per connection or subscription: inspected whole.
        if (this.#length < 2) return 'packet too short for its variable header';
        this.#want = this.#length;
        return undefined;
      case PUBLISH:
        if (this.#length < 2) return 'PUBLISH without a topic name [MQTT-3.3.2-1]';
        this.#want = 2;
        return undefined;
      case PUBACK:
      case PUBREC:
      case PUBREL:
      case PUBCOMP:
        // §3.4.1, §3.5.1, §3.6.1, §3.7.1: Remaining Length 2, the packet identifier.
        if (this.#length !== 2) {
          return `${PACKET_NAMES[type]} with Remaining Length ${this.#length}, not 2 [MQTT-4.8.0-1]`;
        }
        this.#want = 2;
        return undefined;
      case PINGREQ:
      case DISCONNECT:
        // §3.12.3, §3.14.3: no variable header, no payload.
        if (this.#length !== 0) {
          return `${PACKET_NAMES[type]} with ${this.#length} bytes after its fixed header [MQTT-4.8.0-1]`;
        }
        this.#want = 0;
        return undefined;
      default:
        this.#want = 0;
        return undefined;
    }
  }

  /**
   * Feeds body bytes [i, i+take) to the inspection. The common case — the bytes it needs
   * are all in this chunk — is inspected in place; otherwise they are gathered first.
   */
  #inspect(chunk: Buffer, i: number, take: number): string | Answered | undefined {
    let off = i;
    let left = take;
    while (this.#want !== 0) {
      if (this.#captured === 0 && left >= this.#want) {
        const r = inspectPacket(this.#first, chunk, off, left, this.#length);
        if (typeof r !== 'number') return r;
        this.#want = r;
        if (r === 0) return undefined;
      }
      const copy = Math.min(left, this.#want - this.#captured);
      if (copy > 0) {
        if (!this.#capture || this.#capture.length < this.#want) {
          const grown = Buffer.allocUnsafe(this.#want);
          this.#capture?.copy(grown, 0, 0, this.#captured);
          this.#capture = grown;
        }
        chunk.copy(this.#capture, this.#captured, off, off + copy);
        this.#captured += copy;
        off += copy;
        left -= copy;
      }
      if (this.#captured < this.#want) return undefined;
      const r = inspectPacket(
        this.#first,
        this.#capture as Buffer,
        0,
        this.#captured,
        this.#length,
      );
      if (typeof r !== 'number') return r;
      this.#want = r;
    }
    this.#capture = undefined;
    this.#captured = 0;
    return undefined;
  }
}

/**
 * Checks the first `avail` body bytes of a packet (starting at `start`); returns 0 when
 * done, the number of leading body bytes it needs when more than `avail`, or what is wrong
 * (with the answer to send first, for the refusals the protocol answers).
 */
export function inspectPacket(
  first: number,
  buf: Buffer,
  start: number,
  avail: number,
  length: number,
): number | string | Answered {
  const type = first >> 4;
  switch (type) {
    case PUBACK:
    case PUBREC:
    case PUBREL:
    case PUBCOMP:
      if (avail < 2) return 2;
      return buf.readUInt16BE(start) === 0
        ? `${PACKET_NAMES[type]} with packet identifier 0 [MQTT-2.3.1-1]`
        : 0;
    case PUBLISH:
      return inspectPublish(first, buf, start, avail, length);
    case CONNECT:
      return avail < length ? length : inspectConnect(buf, start, start + length);
    case SUBSCRIBE:
      return avail < length ? length : inspectSubscribe(buf, start, start + length, true);
    case UNSUBSCRIBE:
      return avail < length ? length : inspectSubscribe(buf, start, start + length, false);
    default:
      return 0;
  }
}

function inspectPublish(
  first: number,
  buf: Buffer,
  start: number,
  avail: number,
  length: number,
): number | string {
  if (avail < 2) return 2;
  const topicLength = buf.readUInt16BE(start);
  const qos = (first >> 1) & 3;
  const need = 2 + topicLength + (qos > 0 ? 2 : 0);
  if (need > length) return 'PUBLISH shorter than its topic name and packet identifier';
  if (avail < need) return need;
  const problem = checkText(buf, start + 2, start + 2 + topicLength, 'name');
  if (problem !== undefined) return `PUBLISH topic: ${problem}`;
  if (qos > 0 && buf.readUInt16BE(start + 2 + topicLength) === 0) {
    return 'PUBLISH QoS 1/2 with packet identifier 0 [MQTT-2.3.1-1]';
  }
  return 0;
}

/** A length-prefixed field at `p`; its end offset, or -1 when it runs past `end`. */
function fieldEnd(buf: Buffer, p: number, end: number): number {
  if (p + 2 > end) return -1;
  const e = p + 2 + buf.readUInt16BE(p);
  return e > end ? -1 : e;
}

function inspectConnect(buf: Buffer, start: number, end: number): number | string | Answered {
  let p = start;
  const nameEnd = fieldEnd(buf, p, end);
  if (nameEnd < 0 || nameEnd + 4 > end) return 'CONNECT too short for its variable header';
  const name = buf.toString('latin1', p + 2, nameEnd);
  const level = buf[nameEnd] as number;
  // MQTT 3.1 ("MQIsdp", 3) and 3.1.1 ("MQTT", 4) share this layout and are what this broker
  // speaks. Another level of a name it knows (MQTT 5 is "MQTT" 5) is answered before
  // mqtt-packet, which would close without a word on levels it does not parse.
  if (name !== 'MQTT' && name !== 'MQIsdp') {
    return `protocol name ${JSON.stringify(name)} is not MQTT [MQTT-3.1.2-1]`;
  }
  if (level !== (name === 'MQTT' ? 4 : 3)) {
    return {
      reply: CONNACK_UNACCEPTABLE_LEVEL,
      message: `protocol level ${level} of ${name} is not supported (3.1.1 is "MQTT" 4, 3.1 is "MQIsdp" 3) [MQTT-3.1.2-2]`,
    };
  }
  const flags = buf[nameEnd + 1] as number;
  p = nameEnd + 4;
  if (flags & 0x01) return 'CONNECT reserved flag is not 0 [MQTT-3.1.2-3]';
  const will = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 3;
  if (!will && (willQos !== 0 || flags & 0x20)) {
    return 'Will QoS and Will Retain must be 0 without a Will [MQTT-3.1.2-13] [MQTT-3.1.2-15]';
  }
  if (willQos === 3) return 'Will QoS 3 [MQTT-3.1.2-14]';
  const hasUser = (flags & 0x80) !== 0;
  const hasPassword = (flags & 0x40) !== 0;
  if (hasPassword && !hasUser) return 'password flag without user name flag [MQTT-3.1.2-22]';

  let e = fieldEnd(buf, p, end);
  if (e < 0) return 'CONNECT client identifier runs past the packet';
  let problem = checkText(buf, p + 2, e, 'text');
  if (problem !== undefined) return `client identifier: ${problem}`;
  p = e;
  if (will) {
    e = fieldEnd(buf, p, end);
    if (e < 0) return 'CONNECT Will topic runs past the packet';
    problem = checkText(buf, p + 2, e, 'name');
    if (problem !== undefined) return `Will topic: ${problem}`;
    p = fieldEnd(buf, e, end);
    if (p < 0) return 'CONNECT Will message runs past the packet';
  }
  if (hasUser) {
    e = fieldEnd(buf, p, end);
    if (e < 0) return 'CONNECT user name runs past the packet';
    problem = checkText(buf, p + 2, e, 'text');
    if (problem !== undefined) return `user name: ${problem}`;
    p = e;
  }
  if (hasPassword) {
    p = fieldEnd(buf, p, end);
    if (p < 0) return 'CONNECT password runs past the packet';
  }
  if (p !== end) return 'CONNECT has bytes after its last field';
  return 0;
}

function inspectSubscribe(buf: Buffer, start: number, end: number, sub: boolean): number | string {
  const what = sub ? 'SUBSCRIBE' : 'UNSUBSCRIBE';
  if (buf.readUInt16BE(start) === 0) return `${what} with packet identifier 0 [MQTT-2.3.1-1]`;
  let p = start + 2;
  if (p === end) {
    return `${what} without a topic filter ${sub ? '[MQTT-3.8.3-3]' : '[MQTT-3.10.3-2]'}`;
  }
  while (p < end) {
    const e = fieldEnd(buf, p, end);
    if (e < 0) return `${what} topic filter runs past the packet`;
    const problem = checkText(buf, p + 2, e, 'filter');
    if (problem !== undefined) return `${what} topic filter: ${problem}`;
    p = sub ? e + 1 : e; // SUBSCRIBE: a requested-QoS byte follows (checked by mqtt-packet)
    if (p > end) return 'SUBSCRIBE topic filter without its requested QoS';
  }
  return 0;
}

// Byte classes for checkText: one table lookup per byte for the ASCII that topics are made of.
const PLAIN = 0;
const SLASH = 1;
const WILDCARD = 2;
const CONTROL = 3;
const MULTIBYTE = 4;
const ASCII_CLASS = new Uint8Array(256).map((_, b) =>
  b >= 0x80
    ? MULTIBYTE
    : b < 0x20 || b === 0x7f
      ? CONTROL
      : b === 0x2f
        ? SLASH
        : b === 0x2b || b === 0x23
          ? WILDCARD
          : PLAIN,
);

/**
 * One pass over a UTF-8 string's bytes: well-formed [MQTT-1.5.3-1] (no overlong forms,
 * no surrogates D800–DFFF, nothing above U+10FFFF), no U+0000 [MQTT-1.5.3-2], no C0/C1
 * control or noncharacter (§1.5.3 allows closing on these); for topics also non-empty
 * [MQTT-4.7.3-1], no wildcard in a name [MQTT-3.3.2-2], in a filter wildcards that are whole
 * levels with `#` last [MQTT-4.7.1-2] [MQTT-4.7.1-3], within the size and level limits.
 * Printable ASCII — every topic Taihu issues — takes the first branch only.
 */
export function checkText(
  buf: Buffer,
  start: number,
  end: number,
  kind: TextKind,
): string | undefined {
  const topic = kind !== 'text';
  if (topic) {
    if (end === start) return 'empty topic [MQTT-4.7.3-1]';
    if (end - start > MAX_TOPIC_BYTES) return `longer than ${MAX_TOPIC_BYTES} bytes`;
  }
  const name = kind === 'name';
  let levels = 1;
  let i = start;
  while (i < end) {
    const b = buf[i] as number;
    const cls = ASCII_CLASS[b] as number;
    if (cls === PLAIN) {
      i++;
      continue;
    }
    if (cls === SLASH) {
      levels++;
      i++;
      continue;
    }
    if (cls === WILDCARD) {
      if (name) return 'wildcard in a topic name [MQTT-3.3.2-2]';
      // A wildcard is a whole level; '#' is also the last one. Aedes lets `a+`, `+a`,
      // `a/+b`, `a#` and `+#` through as literal filters.
      if (kind === 'filter') {
        const whole =
          (i === start || buf[i - 1] === 0x2f) && (i + 1 === end || buf[i + 1] === 0x2f);
        if (b === 0x2b && !whole) return '+ that is not a whole level [MQTT-4.7.1-3]';
        if (b === 0x23 && (!whole || i + 1 !== end)) {
          return '# that is not the whole last level [MQTT-4.7.1-2]';
        }
      }
      i++;
      continue;
    }
    if (cls === CONTROL) {
      return b === 0 ? 'U+0000 [MQTT-1.5.3-2]' : 'control character [MQTT-1.5.3]';
    }
    let extra: number;
    let cp: number;
    if (b >= 0xc2 && b <= 0xdf) {
      extra = 1;
      cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
      extra = 2;
      cp = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      extra = 3;
      cp = b & 0x07;
    } else {
      return 'ill-formed UTF-8 [MQTT-1.5.3-1]';
    }
    if (i + extra >= end) return 'truncated UTF-8 sequence [MQTT-1.5.3-1]';
    for (let k = 1; k <= extra; k++) {
      const c = buf[i + k] as number;
      if ((c & 0xc0) !== 0x80) return 'ill-formed UTF-8 [MQTT-1.5.3-1]';
      cp = (cp << 6) | (c & 0x3f);
    }
    if ((extra === 2 && cp < 0x800) || (extra === 3 && (cp < 0x10000 || cp > 0x10ffff))) {
      return 'overlong or out-of-range UTF-8 [MQTT-1.5.3-1]';
    }
    if (cp >= 0xd800 && cp <= 0xdfff) return 'UTF-16 surrogate in UTF-8 [MQTT-1.5.3-1]';
    if (cp <= 0x9f) return 'control character [MQTT-1.5.3]';
    if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) {
      return 'Unicode noncharacter [MQTT-1.5.3]';
    }
    i += extra + 1;
  }
  if (topic && levels > MAX_TOPIC_LEVELS) return `more than ${MAX_TOPIC_LEVELS} levels`;
  return undefined;
}

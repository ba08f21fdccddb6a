/**
 * The simulator's load mode, for the benchmarks (`taihu bench`): many MQTT connections per
 * worker thread on raw `net` sockets, QoS 1 PUBLISH packets encoded once per device (only the
 * packet id, `ts` and `seq` digits are patched per message), a bounded number of messages in
 * flight per connection, a target rate or as fast as the broker acknowledges, and the PUBACK
 * latency of every message in an HdrHistogram (microseconds) that the workers hand to the main
 * thread once per sample and the main thread merges.
 *
 * Why not MQTT.js per device, as `simulate.ts` does: its per-publish bookkeeping (outgoing
 * store, callbacks, packet objects) costs more CPU than the gateway spends on the message, and
 * the generator shares this machine's cores with the system under test. Readings come from the
 * same per-type models as the simulator, so the gateway validates and stores realistic values.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as hdr from 'hdr-histogram-js';
import mqttPacket from 'mqtt-packet';
import { deriveDeviceSecret } from '../src/registry/credentials.js';
import { createCity } from './city.js';
import { MODELS } from './models/index.js';
import type { Reading, SimDevice } from './models/types.js';
import { createRng, deriveSeed } from './rng.js';

/** What the published readings are: valid, or deliberately out of the schema's range. */
export type PayloadKind = 'valid' | 'schema-invalid';

export interface LoadOptions {
  readonly host: string;
  readonly port: number;
  readonly devices: readonly SimDevice[];
  /** Devices connect with their enrollment-derived secret (a broker without auth ignores it). */
  readonly enrollmentKey: string;
  /** Worker threads; default 2 (a thread saturates at well over 100,000 PUBACKs/s here). */
  readonly workers?: number | undefined;
  /** QoS 1 messages in flight per connection; default 4, at most MAX_WINDOW. */
  readonly window?: number | undefined;
  /** Readings per message: 1 sends one reading object, more send an array; default 1. */
  readonly batch?: number | undefined;
  readonly payload?: PayloadKind | undefined;
  /** MQTT keepalive, seconds; default 60. The workers ping idle connections at half of it. */
  readonly keepaliveSec?: number | undefined;
  /** Subscribe each device to its own errors topic, as real devices and the simulator do. */
  readonly subscribeErrors?: boolean | undefined;
  /** CONNECTs outstanding at once per worker; default 64. */
  readonly connectConcurrency?: number | undefined;
  /** Distinct pre-encoded messages per device, rotated; default 4. */
  readonly variants?: number | undefined;
  readonly seed?: number | undefined;
}

export interface ConnectResult {
  readonly connected: number;
  readonly failed: number;
  /** From the first CONNECT to the last CONNACK (and SUBACK, when subscribing), ms. */
  readonly ms: number;
  readonly perSec: number;
  /** The first few distinct failure reasons (of failed attempts, retried ones included). */
  readonly errors: readonly string[];
  /** Attempts that failed and were tried again (a reset under a burst of connects). */
  readonly retried: number;
  /** TCP connect → CONNACK latency, microseconds. */
  readonly latency: hdr.Histogram;
}

/** Counts since the previous sample, over every worker. */
export interface LoadSample {
  /** Epoch ms when the sample was taken. */
  readonly at: number;
  readonly intervalMs: number;
  readonly sent: number;
  readonly acked: number;
  readonly readingsAcked: number;
  /** Messages the rate asked for that no connection had window room for. */
  readonly skipped: number;
  /** Rejection notices received on the devices' errors topics. */
  readonly notices: number;
  /** Connections lost since the previous sample. */
  readonly closed: number;
  /** Messages in flight now. */
  readonly inflight: number;
  /** PUBACK latency of the messages acknowledged in the interval, microseconds. */
  readonly latency: hdr.Histogram;
}

/** Highest window: packet ids cycle through ID_SPACE, which must exceed what is in flight. */
export const MAX_WINDOW = 512;
const ID_SPACE = 1024;
/** Packet id of the one SUBSCRIBE, outside the publish ids. */
const SUBSCRIBE_ID = 65_000;
/** Tries per connection before it counts as failed. */
const CONNECT_ATTEMPTS = 3;
const HIST = { lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000 } as const;
/** Rate mode ticks this often, ms; each tick sends what the rate allows since the last one. */
const TICK_MS = 5;
/** Rate-mode credit never exceeds this much time's worth: no burst after a stall. */
const MAX_CREDIT_MS = 50;
const TS_DIGITS = 13;
const SEQ_DIGITS = 10;
/** seq = SEQ_BASE + n keeps the patched number 10 digits wide (JSON forbids leading zeros). */
const SEQ_BASE = 1_000_000_000;

export function newHistogram(): hdr.Histogram {
  return hdr.build({ ...HIST, numberOfSignificantValueDigits: 3 });
}

// ---- main thread ---------------------------------------------------------------------------

type Reply =
  | { readonly type: 'ready' }
  | {
      readonly type: 'connected';
      readonly connected: number;
      readonly failed: number;
      readonly errors: string[];
      readonly retried: number;
      readonly latency: string;
      readonly firstAt: number;
      readonly lastAt: number;
    }
  | {
      readonly type: 'sample';
      readonly sent: number;
      readonly acked: number;
      readonly readings: number;
      readonly skipped: number;
      readonly notices: number;
      readonly closed: number;
      readonly inflight: number;
      readonly latency: string;
    }
  | { readonly type: 'stopped'; readonly unacked: number }
  | { readonly type: 'closed' };

type Command =
  | { readonly cmd: 'connect' }
  | { readonly cmd: 'run'; readonly rate: number }
  | { readonly cmd: 'sample' }
  | { readonly cmd: 'stop'; readonly drainMs: number }
  | { readonly cmd: 'close' };

interface WorkerInit {
  readonly taihuLoadWorker: true;
  readonly host: string;
  readonly port: number;
  readonly devices: readonly SimDevice[];
  readonly enrollmentKey: string;
  readonly window: number;
  readonly batch: number;
  readonly payload: PayloadKind;
  readonly keepaliveSec: number;
  readonly subscribeErrors: boolean;
  readonly connectConcurrency: number;
  readonly variants: number;
  readonly seed: number;
}

/** One worker thread and the replies it owes, in order (it answers commands one by one). */
class WorkerHandle {
  readonly #worker: Worker;
  readonly #waiting: ((r: Reply) => void)[] = [];
  #failure: Error | undefined;

  constructor(init: WorkerInit) {
    this.#worker = new Worker(new URL(import.meta.url), { workerData: init });
    this.#worker.on('message', (r: Reply) => this.#waiting.shift()?.(r));
    const fail = (err: Error) => {
      this.#failure = err;
      for (const w of this.#waiting.splice(0)) w({ type: 'closed' });
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => {
      if (code !== 0) fail(new Error(`load worker exited with code ${code}`));
    });
  }

  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Waits for the worker's next reply (the 'ready' it sends on its own, say). */
  next(): Promise<Reply> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  ask(c: Command): Promise<Reply> {
    const reply = this.next();
    this.#worker.postMessage(c);
    return reply;
  }

  tell(c: Command): void {
    this.#worker.postMessage(c);
  }

  terminate(): Promise<number> {
    return this.#worker.terminate();
  }
}

/** Drives the workers: connect, start at a rate, sample once a second, stop, close. */
export class LoadGenerator {
  readonly #workers: WorkerHandle[];
  readonly devices: number;
  #lastSample = Date.now();
  #closed: Promise<void> | undefined;

  private constructor(workers: WorkerHandle[], devices: number) {
    this.#workers = workers;
    this.devices = devices;
  }

  /** Starts the worker threads; each encodes its devices' messages before it reports ready. */
  static async start(opts: LoadOptions): Promise<LoadGenerator> {
    const workers = Math.max(
      1,
      Math.min(opts.workers ?? 2, availableParallelism() * 2, opts.devices.length),
    );
    const window = Math.max(1, Math.min(MAX_WINDOW, Math.floor(opts.window ?? 4)));
    const handles: WorkerHandle[] = [];
    for (let w = 0; w < workers; w++) {
      handles.push(
        new WorkerHandle({
          taihuLoadWorker: true,
          host: opts.host,
          port: opts.port,
          // Interleaved, so every worker gets a share of every device type.
          devices: opts.devices.filter((_d, i) => i % workers === w),
          enrollmentKey: opts.enrollmentKey,
          window,
          batch: Math.max(1, Math.floor(opts.batch ?? 1)),
          payload: opts.payload ?? 'valid',
          keepaliveSec: opts.keepaliveSec ?? 60,
          subscribeErrors: opts.subscribeErrors ?? true,
          connectConcurrency: Math.max(1, opts.connectConcurrency ?? 64),
          variants: Math.max(1, opts.variants ?? 4),
          seed: opts.seed ?? 1,
        }),
      );
    }
    const gen = new LoadGenerator(handles, opts.devices.length);
    try {
      await Promise.all(handles.map((h) => h.next()));
    } catch (err) {
      await gen.close();
      throw err;
    }
    return gen;
  }

  /** Connects every device, as fast as the broker answers (bounded CONNECTs per worker). */
  async connect(): Promise<ConnectResult> {
    const replies = await Promise.all(this.#workers.map((w) => w.ask({ cmd: 'connect' })));
    this.#checkWorkers();
    let connected = 0;
    let failed = 0;
    let retried = 0;
    let first = Infinity;
    let last = 0;
    const errors = new Set<string>();
    const latency = newHistogram();
    for (const r of replies) {
      if (r.type !== 'connected') continue;
      connected += r.connected;
      failed += r.failed;
      retried += r.retried;
      first = Math.min(first, r.firstAt);
      last = Math.max(last, r.lastAt);
      for (const e of r.errors) if (errors.size < 5) errors.add(e);
      latency.add(hdr.decodeFromCompressedBase64(r.latency));
    }
    const ms = Math.max(1, last - first);
    this.#lastSample = Date.now();
    return {
      connected,
      failed,
      ms,
      perSec: (connected * 1000) / ms,
      errors: [...errors],
      retried,
      latency,
    };
  }

  /** Starts (or re-rates) publishing: `rate` messages/s over all devices, 0 = as fast as acked. */
  publish(rate: number): void {
    const share = rate > 0 ? rate / this.#workers.length : 0;
    for (const w of this.#workers) w.tell({ cmd: 'run', rate: share });
  }

  /** Counts and latencies since the previous sample (or since connect). */
  async sample(): Promise<LoadSample> {
    const replies = await Promise.all(this.#workers.map((w) => w.ask({ cmd: 'sample' })));
    this.#checkWorkers();
    const now = Date.now();
    const s = {
      at: now,
      intervalMs: Math.max(1, now - this.#lastSample),
      sent: 0,
      acked: 0,
      readingsAcked: 0,
      skipped: 0,
      notices: 0,
      closed: 0,
      inflight: 0,
      latency: newHistogram(),
    };
    this.#lastSample = now;
    for (const r of replies) {
      if (r.type !== 'sample') continue;
      s.sent += r.sent;
      s.acked += r.acked;
      s.readingsAcked += r.readings;
      s.skipped += r.skipped;
      s.notices += r.notices;
      s.closed += r.closed;
      s.inflight += r.inflight;
      s.latency.add(hdr.decodeFromCompressedBase64(r.latency));
    }
    return s;
  }

  /** Stops sending and waits up to `drainMs` for the acknowledgements in flight; returns the rest. */
  async stop(drainMs = 10_000): Promise<number> {
    const replies = await Promise.all(this.#workers.map((w) => w.ask({ cmd: 'stop', drainMs })));
    return replies.reduce((n, r) => n + (r.type === 'stopped' ? r.unacked : 0), 0);
  }

  /** Disconnects every device cleanly and ends the threads; safe to call again. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    await Promise.all(
      this.#workers.map(async (w) => {
        if (!w.failure) {
          await Promise.race([w.ask({ cmd: 'close' }), new Promise((r) => setTimeout(r, 5_000))]);
        }
        await w.terminate();
      }),
    );
  }

  #checkWorkers(): void {
    const failed = this.#workers.find((w) => w.failure);
    if (failed?.failure) throw failed.failure;
  }
}

// ---- worker thread -------------------------------------------------------------------------

interface Template {
  /** A whole PUBLISH packet, QoS 1, packet id 0. */
  readonly packet: Buffer;
  readonly idOffset: number;
  readonly tsOffsets: readonly number[];
  readonly seqOffsets: readonly number[];
}

interface Conn {
  readonly device: SimDevice;
  readonly templates: readonly Template[];
  socket: Socket | undefined;
  /** CONNACK (and SUBACK) received. */
  ready: boolean;
  /** Send time of each packet id in flight, performance.now() ms. */
  readonly sentAt: Float64Array;
  inflight: number;
  nextId: number;
  cursor: number;
  lastTs: number;
  seq: number;
  lastSendAt: number;
  /** Bytes of a packet split across reads. */
  partial: Buffer | undefined;
}

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** Writes `value` as exactly `width` ASCII digits at `offset`. */
function writeDigits(b: Buffer, offset: number, value: number, width: number): void {
  for (let i = offset + width - 1; i >= offset; i--) {
    b[i] = 48 + (value % 10);
    value = Math.floor(value / 10);
  }
}

/** One PUBLISH with placeholders for `ts` and `seq`, whose byte offsets it records. */
function encodeTemplate(topic: string, readings: readonly Reading[]): Template {
  let json = readings.length > 1 ? '[' : '';
  const ts: number[] = [];
  const seq: number[] = [];
  readings.forEach((data, i) => {
    if (i > 0) json += ',';
    json += '{"ts":';
    ts.push(Buffer.byteLength(json));
    json += '0'.repeat(TS_DIGITS) + ',"seq":';
    seq.push(Buffer.byteLength(json));
    json += String(SEQ_BASE) + ',"data":' + JSON.stringify(data) + '}';
  });
  if (readings.length > 1) json += ']';
  const topicBytes = Buffer.from(topic, 'utf8');
  const payload = Buffer.from(json, 'utf8');
  const remaining = 2 + topicBytes.length + 2 + payload.length;
  const head = varint(remaining);
  const packet = Buffer.alloc(1 + head.length + remaining);
  packet[0] = 0x32; // PUBLISH, QoS 1 [MQTT-3.3.1]
  Buffer.from(head).copy(packet, 1);
  let o = 1 + head.length;
  packet.writeUInt16BE(topicBytes.length, o);
  o += 2;
  topicBytes.copy(packet, o);
  o += topicBytes.length;
  const idOffset = o;
  const payloadStart = o + 2;
  payload.copy(packet, payloadStart);
  return {
    packet,
    idOffset,
    tsOffsets: ts.map((x) => payloadStart + x),
    seqOffsets: seq.map((x) => payloadStart + x),
  };
}

/** Puts the first numeric field far out of range: the schema rejects it (SCHEMA_INVALID). */
function breakReading(r: Reading): Reading {
  const out = { ...r };
  const numeric = Object.keys(out).find((k) => typeof out[k] === 'number');
  out[numeric ?? 'value'] = 1e9;
  return out;
}

function runWorker(init: WorkerInit): void {
  const port = parentPort;
  if (!port) return;
  const city = createCity(init.seed);
  const now0 = Date.now();
  const conns: Conn[] = init.devices.map((device) => {
    const model = MODELS.get(device.type);
    if (!model) throw new Error(`no simulator model for device type "${device.type}"`);
    const next = model.create(device, createRng(deriveSeed(init.seed, device.id)), city);
    const topic = `sensors/${device.type}/${device.id}/telemetry`;
    const templates: Template[] = [];
    for (let v = 0; v < init.variants; v++) {
      const readings: Reading[] = [];
      for (let b = 0; b < init.batch; b++) {
        const r = next(now0 - (init.variants * init.batch - v * init.batch - b) * 60_000);
        readings.push(init.payload === 'schema-invalid' ? breakReading(r) : r);
      }
      templates.push(encodeTemplate(topic, readings));
    }
    return {
      device,
      templates,
      socket: undefined,
      ready: false,
      sentAt: new Float64Array(ID_SPACE + 1),
      inflight: 0,
      nextId: 1,
      cursor: v0(device.id, init.variants),
      lastTs: 0,
      seq: 0,
      lastSendAt: 0,
      partial: undefined,
    };
  });

  // interval counters, reset by each sample
  let sent = 0;
  let acked = 0;
  let readings = 0;
  let skipped = 0;
  let notices = 0;
  let closed = 0;
  let inflight = 0;
  let latency = newHistogram();
  const connectLatency = newHistogram();
  let rate = 0;
  let running = false;
  let stopWaiter: (() => void) | undefined;

  function send(c: Conn, socket: Socket): void {
    const tpl = c.templates[c.cursor++ % c.templates.length] as Template;
    // A copy per message: a buffer handed to write() may sit in the socket's queue, so the
    // template must never be patched in place.
    const b = Buffer.allocUnsafe(tpl.packet.length);
    tpl.packet.copy(b);
    const id = c.nextId;
    c.nextId = id === ID_SPACE ? 1 : id + 1;
    b[tpl.idOffset] = id >> 8;
    b[tpl.idOffset + 1] = id & 0xff;
    const nowMs = Date.now();
    for (let k = 0; k < tpl.tsOffsets.length; k++) {
      // Unique per device: the store keeps one row per series and timestamp.
      c.lastTs = Math.max(c.lastTs + 1, nowMs);
      writeDigits(b, tpl.tsOffsets[k] as number, c.lastTs, TS_DIGITS);
      writeDigits(b, tpl.seqOffsets[k] as number, SEQ_BASE + c.seq++, SEQ_DIGITS);
    }
    const t = performance.now();
    c.sentAt[id] = t;
    c.lastSendAt = t;
    c.inflight++;
    inflight++;
    sent++;
    socket.write(b);
  }

  function onPuback(c: Conn, id: number): void {
    const at = c.sentAt[id] ?? 0;
    if (at === 0) return; // not ours (a duplicate)
    c.sentAt[id] = 0;
    c.inflight--;
    inflight--;
    acked++;
    readings += init.batch;
    const us = Math.round((performance.now() - at) * 1000);
    latency.recordValue(Math.min(Math.max(us, 1), HIST.highestTrackableValue));
    if (inflight === 0) stopWaiter?.();
  }

  /** Splits a read into MQTT packets; a packet cut by the read waits for the rest. */
  function onData(c: Conn, socket: Socket, chunk: Buffer, onConnack: (rc: number) => void): void {
    const buf = c.partial ? Buffer.concat([c.partial, chunk]) : chunk;
    c.partial = undefined;
    let off = 0;
    socket.cork();
    while (buf.length - off >= 2) {
      const header = buf[off] as number;
      let len = 0;
      let mul = 1;
      let i = off + 1;
      let complete = false;
      for (; i < buf.length && i < off + 5; i++) {
        const b = buf[i] as number;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          i++;
          break;
        }
      }
      if (!complete || i + len > buf.length) break;
      const start = i;
      const end = i + len;
      switch (header >> 4) {
        case 2: // CONNACK: flags, return code [MQTT-3.2.2]
          onConnack(buf[start + 1] ?? 255);
          break;
        case 4: // PUBACK
          onPuback(c, buf.readUInt16BE(start));
          break;
        case 3: {
          // PUBLISH to us: a rejection notice on the errors topic; QoS 1 wants a PUBACK.
          notices++;
          if (((header >> 1) & 3) > 0) {
            const topicLen = buf.readUInt16BE(start);
            const pid = buf.readUInt16BE(start + 2 + topicLen);
            socket.write(Buffer.from([0x40, 0x02, pid >> 8, pid & 0xff]));
          }
          break;
        }
        case 9: // SUBACK
          if (!c.ready) {
            c.ready = true;
            onConnack(-1);
          }
          break;
        default: // PINGRESP and anything else need nothing
          break;
      }
      off = end;
    }
    if (off < buf.length) c.partial = Buffer.from(buf.subarray(off));
    if (running && rate === 0) {
      while (c.ready && c.inflight < init.window) send(c, socket);
    }
    socket.uncork();
  }

  function connectOne(c: Conn): Promise<string | undefined> {
    return new Promise((resolve) => {
      const t0 = performance.now();
      let settled = false;
      const settle = (err: string | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err === undefined) {
          const us = Math.round((performance.now() - t0) * 1000);
          connectLatency.recordValue(Math.min(Math.max(us, 1), HIST.highestTrackableValue));
        }
        resolve(err);
      };
      const timer = setTimeout(() => {
        settle('no CONNACK within 30 s');
        socket.destroy();
      }, 30_000);
      const socket = netConnect({ host: init.host, port: init.port });
      socket.setNoDelay(true);
      c.socket = socket;
      socket.on('connect', () => {
        socket.write(
          mqttPacket.generate({
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: 4,
            clean: true,
            clientId: c.device.id,
            username: c.device.id,
            password: Buffer.from(deriveDeviceSecret(init.enrollmentKey, c.device.id)),
            keepalive: init.keepaliveSec,
          }),
        );
      });
      socket.on('data', (chunk: Buffer) =>
        onData(c, socket, chunk, (rc) => {
          if (rc === -1) return settle(undefined); // SUBACK after CONNACK
          if (rc !== 0) {
            settle(`CONNACK return code ${rc}`);
            socket.destroy();
            return;
          }
          if (!init.subscribeErrors) {
            c.ready = true;
            return settle(undefined);
          }
          socket.write(
            mqttPacket.generate({
              cmd: 'subscribe',
              messageId: SUBSCRIBE_ID,
              subscriptions: [{ topic: `sensors/${c.device.type}/${c.device.id}/errors`, qos: 1 }],
            }),
          );
        }),
      );
      socket.on('error', (err) => settle(err.message));
      socket.on('close', () => {
        settle('connection closed before CONNACK');
        if (c.socket === socket) {
          if (c.ready) closed++;
          inflight -= c.inflight;
          c.inflight = 0;
          c.ready = false;
          c.socket = undefined;
          if (inflight === 0) stopWaiter?.();
        }
      });
    });
  }

  async function connectAll(): Promise<Reply> {
    let cursor = 0;
    let ok = 0;
    let failed = 0;
    let retried = 0;
    const errors = new Set<string>();
    const firstAt = Date.now();
    const lane = async () => {
      while (cursor < conns.length) {
        const c = conns[cursor++] as Conn;
        for (let attempt = 1; ; attempt++) {
          const err = await connectOne(c);
          if (err === undefined) {
            ok++;
            break;
          }
          if (errors.size < 5) errors.add(`${c.device.id}: ${err}`);
          // A refusal (CONNACK code) is an answer; a reset may be a burst, worth another try.
          if (attempt >= CONNECT_ATTEMPTS || err.startsWith('CONNACK')) {
            failed++;
            break;
          }
          retried++;
          await new Promise((r) => setTimeout(r, 100 * attempt));
        }
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(init.connectConcurrency, conns.length) }, lane),
    );
    const lastAt = Date.now();
    latency = newHistogram(); // connect time is not PUBACK latency
    return {
      type: 'connected',
      connected: ok,
      failed,
      errors: [...errors],
      retried,
      latency: hdr.encodeIntoCompressedBase64(connectLatency),
      firstAt,
      lastAt,
    };
  }

  // Rate mode: credit accrues with time and is spent round-robin on connections with room.
  let credit = 0;
  let lastTick = performance.now();
  let rr = 0;
  let ticker: NodeJS.Timeout | undefined;
  const tick = () => {
    const t = performance.now();
    credit = Math.min(credit + (rate * (t - lastTick)) / 1000, (rate * MAX_CREDIT_MS) / 1000 + 1);
    lastTick = t;
    const touched: Socket[] = [];
    let idle = 0;
    while (credit >= 1 && idle < conns.length) {
      const c = conns[rr++ % conns.length] as Conn;
      const s = c.socket;
      if (!c.ready || s === undefined || c.inflight >= init.window) {
        idle++;
        continue;
      }
      idle = 0;
      if (!s.writableCorked) {
        s.cork();
        touched.push(s);
      }
      send(c, s);
      credit -= 1;
    }
    if (credit >= 1) {
      skipped += Math.floor(credit);
      credit -= Math.floor(credit);
    }
    for (const s of touched) s.uncork();
  };

  // Keepalive [MQTT-3.1.2-23]: a PINGREQ on connections that sent nothing for half of it.
  const pinger = setInterval(
    () => {
      const limit = performance.now() - (init.keepaliveSec * 1000) / 2;
      for (const c of conns) {
        if (c.ready && c.socket && c.lastSendAt < limit) {
          c.socket.write(Buffer.from([0xc0, 0x00]));
          c.lastSendAt = performance.now();
        }
      }
    },
    Math.max(1000, (init.keepaliveSec * 1000) / 4),
  );

  port.on('message', (m: Command) => {
    switch (m.cmd) {
      case 'connect':
        void connectAll().then((r) => port.postMessage(r));
        break;
      case 'run':
        running = true;
        rate = m.rate;
        clearInterval(ticker);
        ticker = undefined;
        if (rate > 0) {
          lastTick = performance.now();
          credit = 0;
          ticker = setInterval(tick, TICK_MS);
        } else {
          for (const c of conns) {
            const s = c.socket;
            if (!c.ready || !s) continue;
            s.cork();
            while (c.inflight < init.window) send(c, s);
            s.uncork();
          }
        }
        break;
      case 'sample': {
        const reply: Reply = {
          type: 'sample',
          sent,
          acked,
          readings,
          skipped,
          notices,
          closed,
          inflight,
          latency: hdr.encodeIntoCompressedBase64(latency),
        };
        sent = acked = readings = skipped = notices = closed = 0;
        latency = newHistogram();
        port.postMessage(reply);
        break;
      }
      case 'stop': {
        running = false;
        clearInterval(ticker);
        ticker = undefined;
        const done = () => {
          clearTimeout(timer);
          stopWaiter = undefined;
          port.postMessage({ type: 'stopped', unacked: inflight } satisfies Reply);
        };
        const timer = setTimeout(done, m.drainMs);
        if (inflight <= 0) done();
        else stopWaiter = done;
        break;
      }
      case 'close': {
        running = false;
        clearInterval(ticker);
        clearInterval(pinger);
        const open = conns.filter((c) => c.socket !== undefined);
        let left = open.length;
        const finish = () => port.postMessage({ type: 'closed' } satisfies Reply);
        if (left === 0) return finish();
        for (const c of open) {
          const s = c.socket as Socket;
          s.once('close', () => --left === 0 && finish());
          // DISCONNECT [MQTT-3.14]: a clean leave, so no Will and no error logs.
          s.end(Buffer.from([0xe0, 0x00]));
        }
        break;
      }
    }
  });
  port.postMessage({ type: 'ready' } satisfies Reply);
}

/** A per-device starting variant, so devices of a type do not publish identical bytes in step. */
function v0(id: string, variants: number): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return h % variants;
}

if (!isMainThread && (workerData as Partial<WorkerInit> | null)?.taihuLoadWorker === true) {
  runWorker(workerData as WorkerInit);
}

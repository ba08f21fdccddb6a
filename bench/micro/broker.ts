/**
 * Hand-run measurement of the broker's defences (not a test; numbers depend on the machine):
 *
 *   npm run build && node dist/bench/micro/broker.js
 *
 * 1. per-message cost of the wire guard (a PUBLISH's topic check, and the whole Duplex
 *    hop against a bare PassThrough) and of the per-device token bucket;
 * 2. noisy neighbour: 20 devices at 10 msg/s each (QoS 1) measure their PUBACK latency
 *    alone, then beside one device flooding as fast as it is acked, with the default
 *    rate limit and with TAIHU_DEVICE_RATE=0, against the built gateway (dist/).
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { PassThrough, type Duplex } from 'node:stream';
import mqttPacket from 'mqtt-packet';
import { DeviceLimiter } from '../../src/broker/limits.js';
import { checkText, MqttWire } from '../../src/broker/wire.js';
import { deriveDeviceSecret } from '../../src/registry/credentials.js';
import { ADMIN_KEY, ENROLLMENT_KEY, ROOT, startGateway } from '../gateway.js';

function nsPer(n: number, fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / n;
}

function publish(topic: string, messageId: number): Buffer {
  return mqttPacket.generate({
    cmd: 'publish',
    topic,
    payload: Buffer.from(
      JSON.stringify({
        ts: Date.now(),
        seq: messageId,
        data: { pm25_ugm3: 12.5, pm10_ugm3: 30, no2_ugm3: 8 },
      }),
    ),
    qos: 1,
    messageId,
    retain: false,
    dup: false,
  });
}

async function throughDuplex(make: (inner: PassThrough) => Duplex, chunks: Buffer[]) {
  const inner = new PassThrough({ highWaterMark: 1 << 20 });
  const outer = make(inner);
  let bytes = 0;
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const done = new Promise<void>((r) =>
    outer.on('data', (b: Buffer) => {
      bytes += b.length;
      if (bytes >= total) r();
    }),
  );
  const t0 = process.hrtime.bigint();
  for (const c of chunks) inner.write(c);
  await done;
  return Number(process.hrtime.bigint() - t0);
}

async function hotPath(): Promise<void> {
  const topic = 'sensors/air-quality/aq-binhu-0007/telemetry';
  const tb = Buffer.from(topic);
  const N = 2_000_000;
  for (let i = 0; i < 100_000; i++) checkText(tb, 0, tb.length, 'name');
  const topicNs = nsPer(N, () => {
    for (let i = 0; i < N; i++) checkText(tb, 0, tb.length, 'name');
  });
  const limiter = new DeviceLimiter({ rate: 1e9, burst: 1e9, maxInflight: 100 });
  const slot = limiter.slot('d', 0);
  const bucketNs = nsPer(N, () => {
    for (let i = 0; i < N; i++) if (limiter.take(slot, i) && limiter.full(slot)) break;
  });
  // 200,000 PUBLISH packets in 64 KB chunks, as a busy socket delivers them.
  const connect = mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clientId: 'aq-binhu-0007',
    clean: true,
    keepalive: 60,
  });
  const all = Buffer.concat([
    connect,
    ...Array.from({ length: 200_000 }, (_, i) => publish(topic, (i % 65535) + 1)),
  ]);
  const chunks: Buffer[] = [];
  for (let o = 0; o < all.length; o += 65536) chunks.push(all.subarray(o, o + 65536));
  const bare: number[] = [];
  const guarded: number[] = [];
  for (let round = 0; round < 5; round++) {
    bare.push(await throughDuplex((inner) => inner, chunks));
    guarded.push(
      await throughDuplex(
        (inner) => new MqttWire(inner, { address: '127.0.0.1' }, { maxPacketBytes: 1 << 20 }),
        chunks,
      ),
    );
  }
  const best = (xs: number[]) => Math.min(...xs) / 200_000;
  console.log('hot path, per message:');
  console.log(`  topic check (44-byte topic)          ${topicNs.toFixed(1)} ns`);
  console.log(`  token bucket + in-flight check        ${bucketNs.toFixed(1)} ns`);
  console.log(
    `  stream hop: bare ${best(bare).toFixed(1)} ns, through MqttWire ${best(guarded).toFixed(1)} ns (+${(best(guarded) - best(bare)).toFixed(1)} ns)`,
  );
}

/** One raw MQTT device: connects, then publishes QoS 1 and records PUBACK latencies. */
class Device {
  readonly latencies: number[] = [];
  readonly #socket: Socket;
  readonly #parser = mqttPacket.parser({ protocolVersion: 4 });
  readonly #sent = new Map<number, bigint>();
  readonly #topic: string;
  #next = 1;
  acked = 0;
  onAck: (() => void) | undefined;

  private constructor(socket: Socket, topic: string) {
    this.#socket = socket;
    this.#topic = topic;
    socket.on('data', (b: Buffer) => this.#parser.parse(b));
    this.#parser.on('packet', (p) => {
      if (p.cmd !== 'puback') return;
      const t = this.#sent.get(p.messageId ?? -1);
      if (t === undefined) return;
      this.#sent.delete(p.messageId ?? -1);
      this.latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      this.acked++;
      this.onAck?.();
    });
  }

  static async open(port: number, id: string): Promise<Device> {
    const socket = netConnect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    const d = new Device(socket, `sensors/air-quality/${id}/telemetry`);
    const connack = new Promise<void>((r) => d.#parser.once('packet', () => r()));
    socket.write(
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: id,
        username: id,
        password: Buffer.from(deriveDeviceSecret(ENROLLMENT_KEY, id)),
        clean: true,
        keepalive: 60,
      }),
    );
    await connack;
    return d;
  }

  send(): void {
    const id = this.#next;
    this.#next = (this.#next % 65535) + 1;
    this.#sent.set(id, process.hrtime.bigint());
    this.#socket.write(publish(this.#topic, id));
  }

  get inflight(): number {
    return this.#sent.size;
  }

  close(): void {
    this.#socket.destroy();
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

async function neighbours(label: string, env: Record<string, string>, flood: boolean) {
  const gw = await startGateway({ env });
  const ids = (
    JSON.parse(readFileSync(join(ROOT, 'seeds/devices.json'), 'utf8')) as {
      id: string;
      type: string;
    }[]
  )
    .filter((d) => d.type === 'air-quality')
    .map((d) => d.id);
  const quiet = await Promise.all(ids.slice(0, 20).map((id) => Device.open(gw.ports.mqtt, id)));
  const flooder = flood ? await Device.open(gw.ports.mqtt, ids[25]!) : undefined;
  const SECONDS = 5;
  const tick = setInterval(() => quiet.forEach((d) => d.send()), 100); // 10 msg/s each
  if (flooder) {
    const pump = () => {
      while (flooder.inflight < 50) flooder.send();
    };
    flooder.onAck = pump;
    pump();
  }
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  clearInterval(tick);
  if (flooder) flooder.onAck = undefined;
  await new Promise((r) => setTimeout(r, 300));
  const lat = quiet.flatMap((d) => d.latencies);
  const metrics = await fetch(`${gw.base}/metrics`, {
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
  }).then((r) => r.text());
  const refused = /taihu_rejections_total\{code="RATE_LIMITED"\} (\d+)/.exec(metrics)?.[1] ?? '0';
  console.log(
    `  ${label.padEnd(34)} quiet devices: ${lat.length} acks, p50 ${pct(lat, 50).toFixed(2)} ms, p99 ${pct(lat, 99).toFixed(2)} ms` +
      (flooder
        ? `; flooder: ${Math.round(flooder.acked / SECONDS)} acks/s, ${Math.round(Number(refused) / SECONDS)}/s refused as RATE_LIMITED`
        : ''),
  );
  for (const d of [...quiet, ...(flooder ? [flooder] : [])]) d.close();
  await gw.stop();
}

await hotPath();
console.log('noisy neighbour (20 devices × 10 msg/s QoS 1; 1 flooder, 50 in flight):');
await neighbours('alone', {}, false);
await neighbours('flooder, default rate limit', {}, true);
await neighbours('flooder, TAIHU_DEVICE_RATE=0', { TAIHU_DEVICE_RATE: '0' }, true);

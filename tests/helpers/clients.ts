/** Real MQTT clients for tests: MQTT.js and Debian's mosquitto_pub / mosquitto_sub. */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { requireTool } from '../../support/tools.js';
import { ROOT, type RunningGateway } from './gateway.js';

export interface SeedDevice {
  id: string;
  type: string;
  district: string;
  siteId: string;
}

export const SEED_DEVICES: readonly SeedDevice[] = JSON.parse(
  readFileSync(join(ROOT, 'seeds/devices.json'), 'utf8'),
);

/** The n-th seeded device of a type. */
export function seedDevice(type: string, n = 0): SeedDevice {
  const d = SEED_DEVICES.filter((x) => x.type === type)[n];
  if (!d) throw new Error(`no seeded ${type} device #${n}`);
  return d;
}

export const telemetryTopic = (d: SeedDevice) => `sensors/${d.type}/${d.id}/telemetry`;
export const errorsTopic = (d: SeedDevice) => `sensors/${d.type}/${d.id}/errors`;

/** Connects with MQTT.js; resolves on CONNACK 0, rejects with the CONNACK error otherwise. */
export function connect(port: number, opts: IClientOptions): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...opts,
    });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

/** MQTT.js connected to the gateway as a seeded device, with its own id and secret. */
export function connectAs(
  gw: RunningGateway,
  device: SeedDevice,
  opts: IClientOptions = {},
): Promise<MqttClient> {
  return connect(gw.ports.mqtt, {
    clientId: device.id,
    username: device.id,
    password: gw.secret(device.id),
    ...opts,
  });
}

export function run(
  cmd: string,
  args: string[],
  timeoutMs = 10_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The arguments mosquitto_pub and mosquitto_sub share: the broker on loopback, the device's login, the topic. */
const mosquittoSession = (port: number, device: SeedDevice, password: string, topic: string) => [
  '-h',
  '127.0.0.1',
  '-p',
  String(port),
  '-i',
  device.id,
  '-u',
  device.id,
  '-P',
  password,
  '-t',
  topic,
];

/** mosquitto_pub as the given device. */
export function mosquittoPub(
  port: number,
  device: SeedDevice,
  password: string,
  topic: string,
  message: string,
  qos = 1,
) {
  return run(requireTool('mosquitto_pub'), [
    ...mosquittoSession(port, device, password, topic),
    '-m',
    message,
    '-q',
    String(qos),
  ]);
}

/** mosquitto_pub of `message` to the device's own telemetry topic, with its own secret. */
export function mosquittoPubTelemetry(
  gw: RunningGateway,
  device: SeedDevice,
  message: string,
  qos = 1,
) {
  return mosquittoPub(
    gw.ports.mqtt,
    device,
    gw.secret(device.id),
    telemetryTopic(device),
    message,
    qos,
  );
}

/** mosquitto_sub as the given device, collecting `count` messages (or until the timeout). */
export function mosquittoSub(
  port: number,
  device: SeedDevice,
  password: string,
  topic: string,
  count: number,
) {
  const child = spawn(requireTool('mosquitto_sub'), [
    ...mosquittoSession(port, device, password, topic),
    '-q',
    '1',
    '-C',
    String(count),
    '-W',
    '10',
    '-v',
  ]);
  let stdout = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  const done = new Promise<string[]>((resolve) =>
    child.on('exit', () => resolve(stdout.split('\n').filter(Boolean))),
  );
  return { done, child };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until fn returns a truthy value or the time is up. */
export async function eventually<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 5000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(50);
  }
}

/**
 * Publishes air-quality readings at QoS 1 with increasing seq (ts = base + seq), up to
 * `window` unacknowledged messages of `batch` readings each, until stopped. `acked`
 * holds the seq of every reading whose PUBACK arrived.
 */
export function publisher(
  client: MqttClient,
  topic: string,
  base: number,
  opts: { window?: number; batch?: number; maxSeq?: number } = {},
) {
  const { window = 20, batch = 1, maxSeq = Infinity } = opts;
  const acked = new Set<number>();
  let seq = 0;
  let inFlight = 0;
  let stopped = false;
  const reading = (s: number) => ({
    ts: base + s,
    seq: s,
    data: { pm25_ugm3: s % 500, pm10_ugm3: 1, no2_ugm3: 1 },
  });
  const pump = () => {
    while (!stopped && inFlight < window && client.connected && seq < maxSeq) {
      const first = seq;
      const n = Math.min(batch, maxSeq - first);
      seq += n;
      inFlight++;
      const items = Array.from({ length: n }, (_, k) => reading(first + k));
      const payload = JSON.stringify(batch === 1 ? items[0] : items);
      client.publish(topic, payload, { qos: 1 }, (err) => {
        inFlight--;
        if (err) return; // the connection is gone (the gateway was killed)
        for (let k = 0; k < n; k++) acked.add(first + k);
        setImmediate(pump);
      });
    }
  };
  pump();
  return {
    acked,
    /** Readings handed to the client so far (acknowledged or not). */
    get sent() {
      return seq;
    },
    get inFlight() {
      return inFlight;
    },
    stop() {
      stopped = true;
    },
  };
}

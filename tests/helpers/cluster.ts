/**
 * A cluster of gateways for tests, all on loopback: Debian's `redis-server` (no persistence,
 * own temp dir), InfluxDB 1.6 (`startInfluxDB`), N built gateways as processes sharing both,
 * and Debian's `haproxy` in front (TCP for MQTT, HTTP for the API), from a generated config.
 * A missing binary is a failure naming the package, never a skip.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type RunningGateway } from './gateway.js';
import {
  freePort,
  launch,
  manage,
  requireTool,
  startInfluxDB,
  type TestServer,
} from './servers.js';

/** Sends `send` to a TCP port and resolves whether the answer starts with `expect`. */
function tcpProbe(port: number, send: string | undefined, expect: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => {
      if (send === undefined) return done(true);
      socket.write(send);
    });
    socket.on('data', (b: Buffer) => {
      answer += b.toString();
      if (answer.length >= expect.length) done(answer.startsWith(expect));
    });
  });
}

/** redis-server on a free loopback port: no RDB, no AOF, its own temp dir. */
export async function startRedis(): Promise<TestServer> {
  const binary = requireTool('redis-server');
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'taihu-redis-'));
  return launch(
    manage({
      name: 'redis-server',
      binary,
      args: [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dataDir,
        '--daemonize',
        'no',
        '--loglevel',
        'warning',
      ],
      url: `redis://127.0.0.1:${port}`,
      port,
      dataDir,
      ready: () => tcpProbe(port, 'PING\r\n', '+PONG'),
    }),
  );
}

export interface Balancer extends TestServer {
  /** The MQTT (TCP) frontend. */
  readonly mqttPort: number;
  /** The HTTP frontend: `url` is its base URL. */
  readonly httpPort: number;
}

export interface Backend {
  readonly mqtt: number;
  readonly http: number;
}

/**
 * The HAProxy configuration the tests run: round robin over the gateways, a server that fails
 * its check twice leaves the rotation, and a connection refused by a dead server is sent to
 * another (`option redispatch`). docker/cluster/haproxy.cfg does the same for compose, with DNS.
 */
export function haproxyConfig(mqttPort: number, httpPort: number, backends: readonly Backend[]) {
  const servers = (kind: keyof Backend) =>
    backends.map((b, i) => `  server gw${i + 1} 127.0.0.1:${b[kind]}`).join('\n');
  return `global
  maxconn 4096

defaults
  timeout connect 2s
  timeout client 10m
  timeout server 10m
  retries 3
  option redispatch

frontend mqtt
  mode tcp
  bind 127.0.0.1:${mqttPort}
  default_backend gateways_mqtt

backend gateways_mqtt
  mode tcp
  balance roundrobin
  default-server check inter 300 fall 2 rise 2
${servers('mqtt')}

frontend api
  mode http
  bind 127.0.0.1:${httpPort}
  default_backend gateways_api

backend gateways_api
  mode http
  balance roundrobin
  option httpchk GET /health
  http-check expect status 200
  default-server check inter 300 fall 2 rise 2
${servers('http')}
`;
}

/** haproxy in the foreground (`-db`) with a generated config; ready once both frontends accept. */
export async function startHaproxy(backends: readonly Backend[]): Promise<Balancer> {
  const binary = requireTool('haproxy');
  const mqttPort = await freePort();
  let httpPort = await freePort();
  while (httpPort === mqttPort) httpPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'taihu-haproxy-'));
  const config = join(dataDir, 'haproxy.cfg');
  writeFileSync(config, haproxyConfig(mqttPort, httpPort, backends));
  const server = await launch(
    manage({
      name: 'haproxy',
      binary,
      args: ['-f', config, '-db'],
      url: `http://127.0.0.1:${httpPort}`,
      port: httpPort,
      dataDir,
      ready: async () =>
        (await tcpProbe(mqttPort, undefined, '')) && (await tcpProbe(httpPort, undefined, '')),
    }),
  );
  return Object.assign(server, { mqttPort, httpPort });
}

/** An InfluxQL query against InfluxDB 1.x's /query; the series of the first statement. */
export async function influxQuery(
  url: string,
  q: string,
  db = 'taihu',
): Promise<{ tags?: Record<string, string>; columns: string[]; values: unknown[][] }[]> {
  const res = await fetch(`${url}/query?db=${db}&epoch=ms&q=${encodeURIComponent(q)}`);
  const body = (await res.json()) as {
    results?: {
      series?: { tags?: Record<string, string>; columns: string[]; values: unknown[][] }[];
      error?: string;
    }[];
    error?: string;
  };
  const first = body.results?.[0];
  if (!res.ok || body.error || first?.error) {
    throw new Error(`InfluxDB: ${body.error ?? first?.error ?? res.status}`);
  }
  return first?.series ?? [];
}

/** Every (device, seq) stored for these air-quality devices, and the number of points. */
export async function storedReadings(
  influxUrl: string,
  deviceIds: readonly string[],
): Promise<{ seqs: Map<string, number[]>; points: number }> {
  const re = deviceIds.map((id) => id.replace(/[^a-z0-9-]/g, '')).join('|');
  const series = await influxQuery(
    influxUrl,
    `SELECT seq FROM air_quality WHERE device_id =~ /^(${re})$/ GROUP BY device_id`,
  ).catch((err: Error) => {
    // The database or measurement does not exist until the first write.
    if (/not found/.test(err.message)) return [];
    throw err;
  });
  const seqs = new Map<string, number[]>();
  let points = 0;
  for (const s of series) {
    const id = s.tags?.device_id ?? '';
    const list = s.values.map((v) => Number(v[1]));
    points += list.length;
    seqs.set(id, [...(seqs.get(id) ?? []), ...list]);
  }
  return { seqs, points };
}

/** One value of a gateway's /metrics, summed over label sets matching `labels` (a substring). */
export async function metric(gw: RunningGateway, name: string, labels = ''): Promise<number> {
  const res = await gw.api('/metrics');
  let sum = 0;
  for (const line of String(res.body).split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (labels && !rest.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export interface RunningCluster {
  readonly redis: TestServer;
  readonly influx: TestServer;
  readonly gateways: RunningGateway[];
  readonly lb: Balancer;
  /** The environment gateway `i` runs with (its data dir and ports kept over a restart). */
  env(i: number): Record<string, string>;
  /** Starts gateway `i` again on its data dir and ports (after a kill). */
  restart(i: number): Promise<RunningGateway>;
  stop(): Promise<void>;
}

/** Redis, InfluxDB, `size` gateways in cluster mode and HAProxy in front of them. */
export async function startCluster(size: number): Promise<RunningCluster> {
  const [redis, influx] = await Promise.all([startRedis(), startInfluxDB()]);
  const base = {
    TAIHU_CLUSTER_REDIS_URL: redis.url,
    TAIHU_INFLUX_URL: influx.url,
    TAIHU_INFLUX_API: 'v1',
    // Devices here publish as fast as acknowledgements allow; over the default rate the
    // gateway would acknowledge without storing (RATE_LIMITED), which is not under test.
    TAIHU_DEVICE_RATE: '0',
  };
  const gateways: RunningGateway[] = [];
  const envs: Record<string, string>[] = [];
  try {
    // One at a time: each start seeds Redis, and the first one's seeding is the one that adds.
    for (let i = 0; i < size; i++) {
      const gw = await startGateway({ env: base });
      gateways.push(gw);
      envs.push({
        ...base,
        TAIHU_MQTT_PORT: String(gw.ports.mqtt),
        TAIHU_MQTT_WS_PORT: String(gw.ports.ws),
        TAIHU_HTTP_PORT: String(gw.ports.http),
      });
    }
  } catch (err) {
    for (const g of gateways) await g.stop();
    await Promise.all([redis.stop(), influx.stop()]);
    throw err;
  }
  const lb = await startHaproxy(gateways.map((g) => g.ports));
  return {
    redis,
    influx,
    gateways,
    lb,
    env: (i) => envs[i]!,
    async restart(i) {
      const gw = await startGateway({ env: envs[i]!, dataDir: gateways[i]!.dataDir });
      gateways[i] = gw;
      return gw;
    },
    async stop() {
      await lb.stop();
      for (const g of gateways) {
        await g.stop();
        g.cleanup();
      }
      await Promise.all([redis.stop(), influx.stop()]);
    },
  };
}

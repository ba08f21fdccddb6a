/**
 * Real servers for the tests and the benchmarks, each started for the run on free loopback
 * ports with a generated config and its own temp dir, never the system services: Debian's
 * `influxd` (InfluxDB 1.6.7), `victoria-metrics` and `mosquitto` (the benchmarks' reference
 * broker). A missing binary is a failure naming the package that installs it, never a skip.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool } from './tools.js';

export interface Server {
  readonly name: string;
  /** Base URL, e.g. `http://127.0.0.1:41234` (`mqtt://…` for the broker). */
  readonly url: string;
  readonly port: number;
  /** The temp dir holding the server's data; removed by stop(). */
  readonly dataDir: string;
  /** The running process id (changes across pause/resume); undefined while down. */
  pid(): number | undefined;
  /** SIGTERM, wait for the exit, remove the data dir. Safe to call when already down, or twice. */
  stop(): Promise<void>;
  /** SIGKILL and wait; keeps the data dir so resume() can restart it (crash recovery). */
  kill(): Promise<void>;
  /** SIGTERM and wait; keeps the port and the data dir ("database down" fault tests). */
  pause(): Promise<void>;
  /** Starts again on the same port and data dir; resolves once it answers. */
  resume(): Promise<void>;
  /** pause() then resume(). */
  restart(): Promise<void>;
}

/** How long a server may take to answer its health check after spawn, ms. */
const READY_TIMEOUT_MS = 20_000;

/** Children still running, killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** A port that was free a moment ago: listen on 0, read it, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The child's environment: PATH only, so no INFLUXDB_* variable overrides the config file. */
const childEnv = () => ({ PATH: process.env.PATH ?? '' });

export interface Spec {
  readonly name: string;
  readonly binary: string;
  readonly args: readonly string[];
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** Whether the server answers its health check as ready. */
  ready(): Promise<boolean>;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function probe(url: string, status: number): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === status;
  } catch {
    return false;
  }
}

export function manage(spec: Spec): Server & { start(): Promise<void> } {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function start(): Promise<void> {
    if (child) return;
    const proc = spawn(spec.binary, spec.args, {
      cwd: spec.dataDir,
      env: childEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = proc;
    live.add(proc);
    let stderr = '';
    proc.stderr?.on('data', (b: Buffer) => {
      // keep only the tail: enough to explain a failed start
      stderr = (stderr + b.toString()).slice(-4000);
    });
    let gone = false;
    exited = new Promise<void>((resolve) => {
      proc.once('exit', () => {
        gone = true;
        live.delete(proc);
        if (child === proc) child = undefined;
        resolve();
      });
      proc.once('error', (err) => {
        stderr += String(err);
        gone = true;
        live.delete(proc);
        if (child === proc) child = undefined;
        resolve();
      });
    });
    const until = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (gone) throw new Error(`${spec.name} exited before answering on ${spec.url}\n${stderr}`);
      if (await spec.ready()) return;
      if (Date.now() > until) {
        proc.kill('SIGKILL');
        await exited;
        throw new Error(`${spec.name} did not answer on ${spec.url} within 20 s\n${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function signal(sig: NodeJS.Signals): Promise<void> {
    child?.kill(sig);
    await exited;
  }

  return {
    name: spec.name,
    url: spec.url,
    port: spec.port,
    dataDir: spec.dataDir,
    pid: () => child?.pid,
    start,
    async stop() {
      await signal('SIGTERM');
      rmSync(spec.dataDir, { recursive: true, force: true });
    },
    kill: () => signal('SIGKILL'),
    pause: () => signal('SIGTERM'),
    resume: start,
    async restart() {
      await signal('SIGTERM');
      await start();
    },
  };
}

/** Starts the server; when it does not come up, removes its data dir before rethrowing. */
export async function launch(server: Server & { start(): Promise<void> }): Promise<Server> {
  try {
    await server.start();
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

export interface InfluxOptions {
  /** Turns on `[http] auth-enabled`; create the first (admin) user before anything else. */
  readonly auth?: boolean;
}

/**
 * InfluxDB 1.6.7 with a generated config: HTTP and the RPC service (default 8088) on free
 * loopback ports, meta/data/wal in the temp dir, no reporting, no UDP/Graphite/collectd/OpenTSDB
 * listeners, no `_internal` monitor database. Ready when `GET /ping` answers 204.
 */
export async function startInfluxDB(opts: InfluxOptions = {}): Promise<Server> {
  const binary = requireTool('influxd');
  const port = await freePort();
  let rpcPort = await freePort();
  while (rpcPort === port) rpcPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'taihu-influxd-'));
  const config = join(dataDir, 'influxdb.conf');
  // Debian's build renames reporting-disabled to reporting-enabled (see `influxd config`).
  writeFileSync(
    config,
    `reporting-enabled = false
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = "${join(dataDir, 'meta')}"
  logging-enabled = false

[data]
  dir = "${join(dataDir, 'data')}"
  wal-dir = "${join(dataDir, 'wal')}"
  query-log-enabled = false
  index-version = "inmem"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[shard-precreation]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${port}"
  auth-enabled = ${opts.auth === true}
  log-enabled = false
  pprof-enabled = false
  unix-socket-enabled = false

[ifql]
  enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
`,
  );
  const url = `http://127.0.0.1:${port}`;
  return launch(
    manage({
      name: 'influxd',
      binary,
      args: ['run', '-config', config],
      url,
      port,
      dataDir,
      ready: () => probe(`${url}/ping`, 204),
    }),
  );
}

/**
 * VictoriaMetrics on a free loopback port with the temp dir as storage. Retention is 100 years so
 * tests may write fixed past timestamps. Ready when `GET /health` answers 200.
 */
export async function startVictoriaMetrics(): Promise<Server> {
  const binary = requireTool('victoria-metrics');
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'taihu-vm-'));
  const url = `http://127.0.0.1:${port}`;
  return launch(
    manage({
      name: 'victoria-metrics',
      binary,
      args: [
        `-httpListenAddr=127.0.0.1:${port}`,
        `-storageDataPath=${join(dataDir, 'data')}`,
        '-retentionPeriod=100y',
        '-loggerLevel=ERROR',
      ],
      url,
      port,
      dataDir,
      ready: () => probe(`${url}/health`, 200),
    }),
  );
}

/**
 * mosquitto 2.0 on a free loopback port: anonymous clients (the gateway's credentials are sent
 * and ignored), no persistence (it acknowledges QoS 1 from memory: the fastest it can be), no
 * log but errors.
 */
export async function startMosquitto(): Promise<Server> {
  const binary = requireTool('mosquitto');
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'taihu-mosquitto-'));
  const conf = join(dataDir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'log_dest stderr',
      'log_type error',
      // as many connections as the process may open (the connections scenario holds 10,000)
      'max_connections -1',
      '',
    ].join('\n'),
  );
  return launch(
    manage({
      name: 'mosquitto',
      binary,
      args: ['-c', conf],
      url: `mqtt://127.0.0.1:${port}`,
      port,
      dataDir,
      ready: () => tcpOpen(port),
    }),
  );
}

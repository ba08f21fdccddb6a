/**
 * Real database servers for integration tests: Debian's `influxd` (InfluxDB 1.6.7) and
 * `victoria-metrics`, each on free loopback ports with its own temp data dir. A missing binary
 * is a failure with the command that installs it, never a skip.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface TestServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  /** The temp dir holding the server's data; removed by stop(). */
  readonly dataDir: string;
  /** SIGTERM, wait for the exit, remove the data dir. Safe to call when already down. */
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

export function findBinary(name: string, fix: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this PATH entry
    }
  }
  throw new Error(`${name} not found: ${fix} (or run bash scripts/test.sh)`);
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

async function probe(url: string, status: number): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === status;
  } catch {
    return false;
  }
}

export function manage(spec: Spec): TestServer & { start(): Promise<void> } {
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
    url: spec.url,
    port: spec.port,
    dataDir: spec.dataDir,
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
export async function launch(server: TestServer & { start(): Promise<void> }): Promise<TestServer> {
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
export async function startInfluxDB(opts: InfluxOptions = {}): Promise<TestServer> {
  const binary = findBinary('influxd', 'apt-get install influxdb');
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
export async function startVictoriaMetrics(): Promise<TestServer> {
  const binary = findBinary('victoria-metrics', 'apt-get install victoria-metrics');
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

/** A raw InfluxQL statement against influxd's /query, times in epoch ms: to read back what a store wrote. */
export async function influxql(
  server: TestServer,
  db: string,
  q: string,
  auth?: string,
): Promise<any> {
  const res = await fetch(`${server.url}/query?db=${encodeURIComponent(db)}&epoch=ms`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(auth === undefined ? {} : { authorization: auth }),
    },
    body: new URLSearchParams({ q }).toString(),
  });
  return res.json();
}

/**
 * The reference servers a benchmark starts for itself: Debian's `mosquitto` (the reference
 * broker) and `influxd` 1.6.7, each on a free loopback port with a generated config and a temp
 * dir, never the system services (`bash bench/install-deps.sh` installs them and keeps those
 * stopped). A missing binary is an error naming the install command.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface Server {
  readonly name: string;
  readonly port: number;
  /** http://127.0.0.1:port for HTTP servers, mqtt://… for the broker. */
  readonly url: string;
  /** The running process id (changes across pause/resume). */
  pid(): number | undefined;
  /** SIGTERM and wait, keeping port and data ("database down"). */
  pause(): Promise<void>;
  /** Starts again on the same port and data; resolves once it answers. */
  resume(): Promise<void>;
  /** SIGTERM, wait, remove the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 20_000;

/** Children still running, killed if the bench exits without stopping them. */
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

export function findBinary(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not in this directory
    }
  }
  throw new Error(`${name} not found: run bash bench/install-deps.sh`);
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

async function httpStatus(url: string): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

interface Spec {
  readonly name: string;
  readonly binary: string;
  readonly args: readonly string[];
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  ready(): Promise<boolean>;
}

function manage(spec: Spec): Server & { start(): Promise<void> } {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function start(): Promise<void> {
    if (child) return;
    const proc = spawn(spec.binary, spec.args, {
      cwd: spec.dir,
      // PATH only: no INFLUXDB_* variable of the caller overrides the generated config
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = proc;
    live.add(proc);
    let stderr = '';
    proc.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
    let gone = false;
    exited = new Promise<void>((resolve) => {
      const done = () => {
        gone = true;
        live.delete(proc);
        if (child === proc) child = undefined;
        resolve();
      };
      proc.once('exit', done);
      proc.once('error', (err) => {
        stderr += String(err);
        done();
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

  const signal = async (sig: NodeJS.Signals) => {
    child?.kill(sig);
    await exited;
  };
  let stopped = false;
  return {
    name: spec.name,
    port: spec.port,
    url: spec.url,
    pid: () => child?.pid,
    start,
    pause: () => signal('SIGTERM'),
    resume: start,
    async stop() {
      if (stopped) return;
      stopped = true;
      await signal('SIGTERM');
      rmSync(spec.dir, { recursive: true, force: true });
    },
  };
}

async function launch(server: Server & { start(): Promise<void> }): Promise<Server> {
  try {
    await server.start();
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/**
 * mosquitto 2.0 on a free loopback port: anonymous clients (the gateway's credentials are sent
 * and ignored), no persistence (it acknowledges QoS 1 from memory: the fastest it can be), no
 * log but errors.
 */
export async function startMosquitto(): Promise<Server> {
  const binary = findBinary('mosquitto');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'taihu-bench-mosquitto-'));
  const conf = join(dir, 'mosquitto.conf');
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
      port,
      url: `mqtt://127.0.0.1:${port}`,
      dir,
      ready: () => tcpOpen(port),
    }),
  );
}

/**
 * InfluxDB 1.6.7 with a generated config (the same as the integration tests use): HTTP and RPC
 * on free loopback ports, data in the temp dir, no reporting, no extra listeners, no `_internal`
 * database. Ready when `GET /ping` answers 204.
 */
export async function startInfluxDB(): Promise<Server> {
  const binary = findBinary('influxd');
  const port = await freePort();
  let rpcPort = await freePort();
  while (rpcPort === port) rpcPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'taihu-bench-influxd-'));
  const config = join(dir, 'influxdb.conf');
  writeFileSync(
    config,
    `reporting-enabled = false
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = "${join(dir, 'meta')}"
  logging-enabled = false

[data]
  dir = "${join(dir, 'data')}"
  wal-dir = "${join(dir, 'wal')}"
  query-log-enabled = false
  index-version = "inmem"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
  unix-socket-enabled = false

[ifql]
  enabled = false

[logging]
  level = "warn"
  suppress-logo = true
`,
  );
  const url = `http://127.0.0.1:${port}`;
  return launch(
    manage({
      name: 'influxd',
      binary,
      args: ['run', '-config', config],
      port,
      url,
      dir,
      ready: async () => (await httpStatus(`${url}/ping`)) === 204,
    }),
  );
}

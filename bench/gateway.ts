/**
 * Starts the built gateway (`dist/src/main.js start`) as a child process, as an operator runs
 * it: free ports (0), a temp data dir, JSON logs. Its ports come from its `taihu listening` log
 * line. That line is logged at info, so the gateway runs at TAIHU_LOG_LEVEL=info: per-message
 * events log at debug, so info adds nothing to the message path (warn would hide the ports).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, spawnGateway, type GatewayPorts } from '../support/gateway.js';

export { ROOT };
export const ENROLLMENT_KEY = 'bench-enrollment-key-0123456789abcdef';
export const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';

/**
 * Limits lifted for every benchmark (unknown to a gateway without them, which ignores them):
 * every simulated device connects from 127.0.0.1, where a city's devices come from many
 * addresses, so the per-address connection cap would measure the cap, not the gateway.
 */
export const BENCH_LIMITS: Readonly<Record<string, string>> = {
  TAIHU_MAX_CONNECTIONS_PER_IP: '0',
};

/**
 * Also lifted where 1,000 devices at full speed stand in for many more devices each sending far
 * less (ingest, outage): the per-device rate limit would cap the load, not measure the gateway.
 * The noisy-neighbour scenario keeps it: it is the gateway's defence against that neighbour.
 */
export const NO_DEVICE_RATE_LIMIT: Readonly<Record<string, string>> = { TAIHU_DEVICE_RATE: '0' };

export interface GatewayOptions {
  /** Extra TAIHU_* variables (seeds dir, store, InfluxDB URL…). */
  readonly env?: Readonly<Record<string, string>>;
  /** Use this data dir (e.g. one holding a preloaded store) instead of a fresh temp dir. */
  readonly dataDir?: string;
  /** Write a V8 CPU profile of the gateway into this dir (`node --cpu-prof`). */
  readonly cpuProfDir?: string | undefined;
}

export interface RunningGateway {
  readonly pid: number;
  readonly ports: GatewayPorts;
  readonly dataDir: string;
  readonly base: string;
  /** GET an API path with the admin key; throws on a non-2xx answer. */
  get<T>(path: string): Promise<T>;
  /**
   * The event loop's delay since the previous call (prom-client's nodejs_eventloop_lag_* from
   * /metrics, which it resets at each scrape), ms; undefined where the gateway has no metrics.
   */
  eventLoopLag(): Promise<{ p99Ms: number; maxMs: number } | undefined>;
  /** Spool bytes on disk and the last confirmed record, read from the spool dir. */
  spool(): { bytes: number; confirmedSeq: number };
  /** SIGTERM, wait (the CPU profile is written at exit), remove the data dir unless kept. */
  stop(opts?: { keepData?: boolean }): Promise<void>;
  /** Log lines at warn and above, to show after a run. */
  readonly warnings: string[];
}

export async function startGateway(opts: GatewayOptions = {}): Promise<RunningGateway> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'taihu-bench-gw-'));
  const nodeArgs: string[] = [];
  if (opts.cpuProfDir) {
    mkdirSync(opts.cpuProfDir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`);
  }
  const warnings: string[] = [];
  const { child, ports, exited, stderr } = await spawnGateway({
    dataDir,
    enrollmentKey: ENROLLMENT_KEY,
    adminKey: ADMIN_KEY,
    env: { ...BENCH_LIMITS, ...opts.env },
    nodeArgs,
    readyTimeoutMs: 60_000,
    stderrKeep: 8000,
    onLog: (entry, line) => {
      if (Number(entry.level ?? 0) >= 40 && warnings.length < 50) warnings.push(line.slice(0, 500));
    },
  });
  let stopping = false;
  void exited.then((code) => {
    // A gateway that dies mid-run would read as a throughput collapse: say so at once.
    if (!stopping) {
      process.stderr.write(
        `\n[gateway ${child.pid}] exited unexpectedly (code ${code}, signal ${child.signalCode})\n${stderr().slice(-2000)}\n`,
      );
    }
  });
  const base = `http://127.0.0.1:${ports.http}`;
  const spoolDir = join(dataDir, 'spool');
  return {
    pid: child.pid as number,
    ports,
    dataDir,
    base,
    warnings,
    async get<T>(path: string): Promise<T> {
      const res = await fetch(base + path, {
        headers: { authorization: `Bearer ${ADMIN_KEY}` },
        // a gateway that died or hangs must not hang the benchmark
        signal: AbortSignal.timeout(60_000),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${text.slice(0, 300)}`);
      return JSON.parse(text) as T;
    },
    async eventLoopLag() {
      try {
        const res = await fetch(`${base}/metrics`, {
          headers: { authorization: `Bearer ${ADMIN_KEY}` },
          signal: AbortSignal.timeout(5_000),
        });
        const text = await res.text();
        if (!res.ok) return undefined;
        const read = (name: string) => {
          const m = new RegExp(`^${name} ([0-9.eE+-]+)`, 'm').exec(text);
          return m ? Number(m[1]) * 1000 : Number.NaN;
        };
        return {
          p99Ms: read('nodejs_eventloop_lag_p99_seconds'),
          maxMs: read('nodejs_eventloop_lag_max_seconds'),
        };
      } catch {
        return undefined;
      }
    },
    spool() {
      let bytes = 0;
      let confirmedSeq = 0;
      try {
        for (const f of readdirSync(spoolDir)) {
          if (f.endsWith('.seg')) bytes += statSync(join(spoolDir, f)).size;
        }
        const cp = JSON.parse(readFileSync(join(spoolDir, 'checkpoint'), 'utf8')) as {
          confirmedSeq?: number;
        };
        confirmedSeq = cp.confirmedSeq ?? 0;
      } catch {
        // no checkpoint yet (nothing confirmed), or a file replaced while read
      }
      return { bytes, confirmedSeq };
    },
    async stop(stopOpts = {}) {
      stopping = true;
      if (child.exitCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(killer);
      if (!stopOpts.keepData && opts.dataDir === undefined) {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

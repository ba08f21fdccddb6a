/**
 * Starts the built gateway (`dist/src/main.js start`) as a child process, as an operator runs
 * it: free ports (0), a temp data dir, JSON logs at info, the V8 flags every way of starting it
 * gives it. Its ports come from its `taihu listening` log line. The tests' and the benchmarks'
 * launchers (tests/helpers/gateway.ts, bench/gateway.ts) build on this one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { NODE_FLAGS } from '../src/node-flags.js';

/** The package root, from dist/support/ and from support/ alike. */
export const ROOT = resolve(
  import.meta.dirname,
  import.meta.dirname.includes('/dist/') ? '../..' : '..',
);

export interface GatewayPorts {
  readonly mqtt: number;
  readonly ws: number;
  readonly http: number;
}

export interface SpawnOptions {
  readonly dataDir: string;
  readonly enrollmentKey: string;
  readonly adminKey: string;
  /** Extra TAIHU_* variables; they win over the defaults. */
  readonly env?: Readonly<Record<string, string>> | undefined;
  /** Node flags after NODE_FLAGS (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[] | undefined;
  /** How long the gateway may take to log `taihu listening`, ms. */
  readonly readyTimeoutMs: number;
  /** Every JSON log line, parsed, as it arrives (from the first line on). */
  readonly onLog?: ((entry: Record<string, unknown>, line: string) => void) | undefined;
  /** How much of stderr to keep for messages, characters. */
  readonly stderrKeep?: number | undefined;
}

export interface SpawnedGateway {
  readonly child: ChildProcess;
  readonly ports: GatewayPorts;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
  /** The end of what the gateway wrote to stderr. */
  stderr(): string;
}

/** Spawns the gateway and resolves once it listens; rejects if it exits or times out first. */
export async function spawnGateway(opts: SpawnOptions): Promise<SpawnedGateway> {
  const child = spawn(
    process.execPath,
    [...NODE_FLAGS, ...(opts.nodeArgs ?? []), resolve(ROOT, 'dist/src/main.js'), 'start'],
    {
      cwd: opts.dataDir,
      env: {
        PATH: process.env.PATH ?? '',
        TAIHU_MQTT_PORT: '0',
        TAIHU_MQTT_WS_PORT: '0',
        TAIHU_HTTP_PORT: '0',
        TAIHU_DATA_DIR: opts.dataDir,
        TAIHU_ENROLLMENT_KEY: opts.enrollmentKey,
        TAIHU_ADMIN_KEY: opts.adminKey,
        TAIHU_LOG_FORMAT: 'json',
        TAIHU_LOG_LEVEL: 'info',
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const keep = opts.stderrKeep ?? Infinity;
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
    if (stderr.length > keep) stderr = stderr.slice(-keep);
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const seconds = Math.round(opts.readyTimeoutMs / 1000);
  const ports = await new Promise<GatewayPorts>((resolvePorts, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`gateway did not start in ${seconds} s\n${stderr}`)),
      opts.readyTimeoutMs,
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      opts.onLog?.(entry, line);
      if (entry.msg === 'taihu listening' && entry.ports) {
        clearTimeout(timer);
        resolvePorts(entry.ports as GatewayPorts);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before listening\n${stderr}`));
    });
  });
  return { child, ports, exited, stderr: () => stderr };
}

/**
 * Starts the built gateway as a child process on free loopback ports, as a user
 * runs it (support/gateway.ts), and parses its JSON log lines back into objects.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpsRequestRaw } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { deriveDeviceSecret } from '../../src/registry/credentials.js';
import { ROOT, spawnGateway } from '../../support/gateway.js';

export { ROOT };
export const ENROLLMENT_KEY = 'test-enrollment-key-0123456789abcdef';
export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface RunningGateway {
  readonly ports: { mqtt: number; ws: number; http: number };
  readonly dataDir: string;
  readonly logs: LogLine[];
  readonly process: ChildProcess;
  /** A request to the HTTP API, with the admin key unless told otherwise. */
  api(
    path: string,
    init?: { key?: string | null; method?: string; body?: unknown },
  ): Promise<{ status: number; body: any; headers: Headers }>;
  secret(deviceId: string): string;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Removes the data dir (after stop). */
  cleanup(): void;
}

export async function startGateway(
  opts: {
    env?: Record<string, string>;
    dataDir?: string;
    /** The API serves HTTPS with a certificate from this CA (TAIHU_TLS_CERT is set). */
    httpsCa?: Buffer;
  } = {},
): Promise<RunningGateway> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'taihu-test-'));
  const logs: LogLine[] = [];
  const { child, ports, exited } = await spawnGateway({
    dataDir,
    enrollmentKey: ENROLLMENT_KEY,
    adminKey: ADMIN_KEY,
    env: opts.env,
    readyTimeoutMs: 20_000,
    onLog: (entry) => logs.push(entry as LogLine),
  });
  return {
    ports,
    dataDir,
    logs,
    process: child,
    async api(path, init = {}) {
      const key = init.key === undefined ? ADMIN_KEY : init.key;
      const headers: Record<string, string> =
        key === null ? {} : { authorization: `Bearer ${key}` };
      if (init.body !== undefined) headers['content-type'] = 'application/json';
      const body = init.body === undefined ? undefined : JSON.stringify(init.body);
      const method = init.method ?? 'GET';
      if (opts.httpsCa) return httpsRequest(ports.http, path, method, headers, body, opts.httpsCa);
      const res = await fetch(`http://127.0.0.1:${ports.http}${path}`, { method, headers, body });
      const text = await res.text();
      const json = res.headers.get('content-type')?.includes('json');
      return {
        status: res.status,
        body: text && json ? JSON.parse(text) : text,
        headers: res.headers,
      };
    },
    secret: (id) => deriveDeviceSecret(ENROLLMENT_KEY, id),
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
    cleanup() {
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts one gateway for the file (beforeAll) and stops it and removes its data dir when the
 * file is done (afterAll). `set` receives it, and again after `restart()`.
 */
export function useGateway(
  set: (gw: RunningGateway) => void,
  opts: Parameters<typeof startGateway>[0] = {},
): { restart(): Promise<void> } {
  let current: RunningGateway | undefined;
  beforeAll(async () => {
    current = await startGateway(opts);
    set(current);
  });
  afterAll(async () => {
    await current?.stop();
    current?.cleanup();
  });
  return {
    /** Stops the gateway and starts a new one on the same data dir. */
    async restart() {
      if (!current) throw new Error('restart() before the gateway started');
      await current.stop();
      current = await startGateway({ ...opts, dataDir: current.dataDir });
      set(current);
    },
  };
}

/** Runs `taihu <args>` to completion (for commands expected to stop by themselves). */
export function runTaihu(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000) {
  return runNode(
    [join(ROOT, 'dist/src/main.js'), ...args],
    { PATH: process.env.PATH ?? '', TAIHU_LOG_FORMAT: 'json', ...env },
    timeoutMs,
  );
}

/** Runs this Node with `args` to its end (SIGKILL after `timeoutMs`); resolves with its exit code and output. */
export function runNode(
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
  cwd?: string,
) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolveRun) => {
    const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

/** The API over HTTPS, trusting only the given CA (global fetch takes no CA option). */
function httpsRequest(
  port: number,
  path: string,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  ca: Buffer,
): Promise<{ status: number; body: any; headers: Headers }> {
  return new Promise((resolveReq, reject) => {
    const req = httpsRequestRaw({ host: '127.0.0.1', port, path, method, headers, ca }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
        const json = h.get('content-type')?.includes('json');
        resolveReq({
          status: res.statusCode ?? 0,
          body: text && json ? JSON.parse(text) : text,
          headers: h,
        });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

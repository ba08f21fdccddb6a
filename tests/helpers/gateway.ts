/**
 * Starts the built gateway as a child process on free loopback ports, as a user
 * runs it, and parses its JSON log lines back into objects.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpsRequestRaw } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { deriveDeviceSecret } from '../../src/registry/credentials.js';
import { NODE_FLAGS } from '../../src/node-flags.js';

export const ROOT = resolve(import.meta.dirname, '../..');
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
  const child = spawn(process.execPath, [...NODE_FLAGS, join(ROOT, 'dist/src/main.js'), 'start'], {
    cwd: dataDir,
    env: {
      PATH: process.env.PATH ?? '',
      TAIHU_MQTT_PORT: '0',
      TAIHU_MQTT_WS_PORT: '0',
      TAIHU_HTTP_PORT: '0',
      TAIHU_DATA_DIR: dataDir,
      TAIHU_ENROLLMENT_KEY: ENROLLMENT_KEY,
      TAIHU_ADMIN_KEY: ADMIN_KEY,
      TAIHU_LOG_FORMAT: 'json',
      TAIHU_LOG_LEVEL: 'info',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const ports = await new Promise<RunningGateway['ports']>((resolvePorts, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`gateway did not start in 20 s\n${stderr}`)),
      20_000,
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: LogLine;
      try {
        entry = JSON.parse(line) as LogLine;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'taihu listening') {
        clearTimeout(timer);
        resolvePorts(entry.ports as RunningGateway['ports']);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before listening\n${stderr}`));
    });
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

/** Runs `taihu <args>` to completion (for commands expected to stop by themselves). */
export function runTaihu(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolveRun) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist/src/main.js'), ...args], {
      env: { PATH: process.env.PATH ?? '', TAIHU_LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
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

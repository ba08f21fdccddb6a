/**
 * HTTP to InfluxDB through the transport of `@influxdata/influxdb-client` (gzip of large bodies,
 * gunzip of answers, its HttpError), one request per call. The client's WriteApi is not used: it
 * batches on a timer and keeps failed lines in its own retry buffer, which drops the oldest lines
 * when full, while durability and retries are the spool's job here.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import {
  HttpError,
  InfluxDB,
  RequestTimedOutError,
  type Transport,
} from '@influxdata/influxdb-client';
import { ERR_CONFIG } from '../../errors.js';
import { classifyStatus, INFLUX_CODES, InfluxStoreError } from './errors.js';

export interface HttpOptions {
  readonly url: string;
  /** Value of the Authorization header sent with every request, if any. */
  readonly authorization: string | undefined;
  readonly timeoutMs: number;
  readonly gzipThresholdBytes: number;
}

export interface RequestOptions {
  readonly method: 'GET' | 'POST';
  readonly headers?: Readonly<Record<string, string>>;
  /** Gzip the body when it is larger than the threshold. */
  readonly gzip?: boolean;
  /** Replaces the default Authorization header for this request. */
  readonly authorization?: string;
  /** How a 401/403/404 is classified (see classifyStatus); `control` when omitted. */
  readonly op?: 'write' | 'control';
}

export class InfluxHttp {
  /** The base URL without credentials, for messages. */
  readonly url: string;
  readonly #transport: Transport;
  readonly #agent: HttpAgent;
  readonly #authorization: string | undefined;
  readonly #timeoutMs: number;
  readonly #gzipThresholdBytes: number;
  readonly #inflight = new Set<Promise<unknown>>();

  constructor(opts: HttpOptions) {
    const base = URL.canParse(opts.url) ? new URL(opts.url) : undefined;
    if (base === undefined || (base.protocol !== 'http:' && base.protocol !== 'https:')) {
      throw ERR_CONFIG(`InfluxDB URL ${JSON.stringify(opts.url)} is not an http(s) URL`);
    }
    base.username = '';
    base.password = '';
    this.url = base.href.replace(/\/$/, '');
    // own keep-alive agent: close() can then destroy exactly this store's sockets
    this.#agent =
      base.protocol === 'https:'
        ? new HttpsAgent({ keepAlive: true })
        : new HttpAgent({ keepAlive: true });
    this.#transport = new InfluxDB({
      url: this.url,
      timeout: opts.timeoutMs,
      transportOptions: { agent: this.#agent },
    }).transport;
    this.#authorization = opts.authorization;
    this.#timeoutMs = opts.timeoutMs;
    this.#gzipThresholdBytes = opts.gzipThresholdBytes;
  }

  /**
   * Sends one request; resolves with the decoded answer (JSON, text, or undefined for 204) of a
   * 2xx, rejects with an InfluxStoreError naming `op` otherwise.
   */
  request(op: string, path: string, body: string, opts: RequestOptions): Promise<unknown> {
    const headers: Record<string, string> = { ...opts.headers };
    const authorization = opts.authorization ?? this.#authorization;
    if (authorization !== undefined) headers.authorization = authorization;
    const p = (
      this.#transport.request(path, body, {
        method: opts.method,
        headers,
        ...(opts.gzip === true && Number.isFinite(this.#gzipThresholdBytes)
          ? { gzipThreshold: this.#gzipThresholdBytes }
          : {}),
        // the socket timeout alone leaves the request open; aborting frees the socket
        signal: AbortSignal.timeout(this.#timeoutMs),
      }) as Promise<unknown>
    ).catch((err: unknown) => {
      throw this.#toStoreError(op, err, opts.op ?? 'control');
    });
    this.#inflight.add(p);
    const forget = () => this.#inflight.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** Waits for the requests in flight to settle. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#inflight]);
  }

  /** Closes the kept-alive sockets. */
  destroy(): void {
    this.#agent.destroy();
  }

  #toStoreError(op: string, err: unknown, kind: 'write' | 'control'): InfluxStoreError {
    if (err instanceof HttpError) {
      const status = err.statusCode;
      const serverMessage = serverMessageOf(err);
      const { code, retryable } = classifyStatus(status, kind);
      return new InfluxStoreError(code, `store: ${op} failed: HTTP ${status}: ${serverMessage}`, {
        retryable,
        status,
        serverMessage,
        retryAfterMs: retryAfterMs(err.headers?.['retry-after']),
        cause: err,
      });
    }
    if (
      err instanceof RequestTimedOutError ||
      (err instanceof Error && err.name === 'AbortError')
    ) {
      return new InfluxStoreError(
        INFLUX_CODES.UNAVAILABLE,
        `store: ${op} failed: no answer from ${this.url} within ${this.#timeoutMs} ms`,
        { retryable: true, cause: err },
      );
    }
    const code = (err as { code?: unknown } | null)?.code;
    const why = err instanceof Error ? err.message : String(err);
    return new InfluxStoreError(
      INFLUX_CODES.UNAVAILABLE,
      `store: ${op} failed: cannot reach ${this.url}: ${typeof code === 'string' ? `${code} ` : ''}${why}`,
      { retryable: true, cause: err },
    );
  }
}

/** `error` (1.x) or `message` (2.x, 3.x) of a JSON answer, else the body text, else the reason. */
function serverMessageOf(err: HttpError): string {
  const body = err.body ?? '';
  if (body !== '') {
    try {
      const json: unknown = JSON.parse(body);
      if (typeof json === 'object' && json !== null) {
        const { error, message } = json as { error?: unknown; message?: unknown };
        if (typeof error === 'string') return error;
        if (typeof message === 'string') return message;
      }
    } catch {
      // not JSON: the text itself is the message
    }
    return body.trim();
  }
  return err.statusMessage ?? '';
}

/** Retry-After as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), in ms. */
function retryAfterMs(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value === '') return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Whether an error answer comes from the v2 management API (JSON with a `code`), not a router. */
export function isV2ApiAnswer(err: unknown): boolean {
  const cause = err instanceof InfluxStoreError ? err.cause : err;
  if (!(cause instanceof HttpError)) return false;
  try {
    const json: unknown = JSON.parse(cause.body ?? '');
    return typeof json === 'object' && json !== null && 'code' in json;
  } catch {
    return false;
  }
}

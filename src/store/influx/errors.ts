/**
 * Errors of the InfluxDB store. Every one says whether retrying the same operation may succeed
 * (`retryable`) and keeps what the database answered (`status`, `serverMessage`), so the spool
 * drainer can tell "wait and retry" from "split the batch" from "fix the configuration".
 */
import { CODES, ERR_STORE, TaihuError } from '../../errors.js';

/** Codes this store raises; all but UNAVAILABLE are additions to src/errors.ts. */
export const INFLUX_CODES = {
  /** No answer (network, timeout) or 408/429/5xx: the same request may succeed later. */
  UNAVAILABLE: ERR_STORE.code,
  /** The data or query was refused (400, 413, 422, or a line the protocol cannot carry). */
  REJECTED: CODES.STORE_REJECTED,
  /** Authentication failed or the credentials lack a right (401, 403); retryable for writes. */
  DENIED: CODES.STORE_DENIED,
  /** The database, bucket or organisation does not exist (404); retryable for writes. */
  NOT_FOUND: CODES.STORE_NOT_FOUND,
} as const;

export interface InfluxStoreErrorOptions {
  readonly retryable: boolean;
  /** HTTP status of the database's answer; undefined when none came. */
  readonly status?: number | undefined;
  readonly serverMessage?: string | undefined;
  readonly retryAfterMs?: number | undefined;
  readonly cause?: unknown;
}

export class InfluxStoreError extends TaihuError {
  /**
   * HTTP status the database answered with, undefined when it did not answer. A point refused
   * before sending (it cannot be written as line protocol) carries 400, the status InfluxDB gives
   * a bad line, so the drainer splits such a batch like a partial write.
   */
  readonly status: number | undefined;
  /** The database's own message (`error` of 1.x, `message` of 2.x), verbatim. */
  readonly serverMessage: string | undefined;
  /** Delay the database asked for with Retry-After (429, 503), ms. */
  readonly retryAfterMs: number | undefined;

  constructor(code: string, message: string, opts: InfluxStoreErrorOptions) {
    super(code, message, {
      // the gateway's own answer when this reaches an HTTP route: upstream down or upstream refused
      statusCode: opts.retryable ? 503 : 502,
      retryable: opts.retryable,
      cause: opts.cause,
    });
    this.name = 'InfluxStoreError';
    this.status = opts.status;
    this.serverMessage = opts.serverMessage;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/**
 * Code and retryability of an HTTP status from InfluxDB (1.x, 2.x, 3.x agree on these).
 * For a write, only an answer about the data itself is final: 400 and 422 (a bad line, a field
 * type conflict) and 413 (too large: half the batch may pass). Any other status says the
 * configuration or the server is wrong (401/403 credentials, 404 bucket, a 3xx URL), not the
 * points, and the spool drainer halves a batch that fails with `retryable: false` and sends its
 * points to the rejection log (src/spool/drainer.ts): so those stay retryable for a write, and
 * the spool holds the data until the configuration is fixed. For open() and queries every 4xx
 * but 408/429 is final: retrying cannot fix it.
 */
export function classifyStatus(
  status: number,
  op: 'write' | 'control',
): { code: string; retryable: boolean } {
  if (status === 408 || status === 429 || status >= 500) {
    return { code: INFLUX_CODES.UNAVAILABLE, retryable: true };
  }
  const code =
    status === 401 || status === 403
      ? INFLUX_CODES.DENIED
      : status === 404
        ? INFLUX_CODES.NOT_FOUND
        : INFLUX_CODES.REJECTED;
  const aboutTheData = status === 400 || status === 413 || status === 422;
  return { code, retryable: op === 'write' && !aboutTheData };
}

/** A point or query this store refuses before sending anything: retrying cannot help. */
export function refused(detail: string): InfluxStoreError {
  return new InfluxStoreError(INFLUX_CODES.REJECTED, `store: ${detail}`, {
    retryable: false,
    status: 400,
  });
}

/**
 * Every error Taihu raises, in one place. Codes are stable: they appear in logs,
 * HTTP answers, rejection records and on devices' `errors` topics.
 */

export class TaihuError extends Error {
  readonly code: string;
  readonly statusCode: number;
  /** For store errors: whether retrying the same operation may succeed. */
  readonly retryable: boolean;

  constructor(
    code: string,
    message: string,
    opts: { statusCode?: number; retryable?: boolean; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TaihuError';
    this.code = code;
    this.statusCode = opts.statusCode ?? 500;
    this.retryable = opts.retryable ?? false;
  }
}

type Factory<A extends unknown[]> = ((...args: A) => TaihuError) & { readonly code: string };

function createError<A extends unknown[]>(
  code: string,
  message: (...args: A) => string,
  statusCode = 500,
  retryable = false,
): Factory<A> {
  const f = (...args: A) => new TaihuError(code, message(...args), { statusCode, retryable });
  return Object.assign(f, { code });
}

/** A factory whose first argument is the error that caused this one (kept as `cause`). */
function createCausedError<A extends unknown[]>(
  code: string,
  message: (...args: A) => string,
  statusCode = 500,
  retryable = false,
): ((cause: unknown, ...args: A) => TaihuError) & { readonly code: string } {
  const f = (cause: unknown, ...args: A) =>
    new TaihuError(code, message(...args), { statusCode, retryable, cause });
  return Object.assign(f, { code });
}

/**
 * A TaihuError again from its parts, as a worker thread sent them (src/store/embedded/protocol.ts):
 * code, status and retryable survive the thread boundary.
 */
export function reviveTaihuError(parts: {
  code: string;
  message: string;
  statusCode?: number | undefined;
  retryable?: boolean | undefined;
  cause?: unknown;
}): TaihuError {
  return new TaihuError(parts.code, parts.message, {
    statusCode: parts.statusCode,
    retryable: parts.retryable,
    cause: parts.cause,
  });
}

// start-up
export const ERR_CONFIG = createError(
  'TAIHU_ERR_CONFIG',
  (detail: string) => `invalid configuration: ${detail}`,
);
export const ERR_SCHEMA_FILE = createError(
  'TAIHU_ERR_SCHEMA_FILE',
  (file: string, detail: string) => `device schema ${file}: ${detail}`,
);
export const ERR_SEED_FILE = createError(
  'TAIHU_ERR_SEED_FILE',
  (file: string, detail: string) => `seed file ${file}: ${detail}`,
);

// points
export const ERR_SPOOL_ENCODE = createError(
  'TAIHU_ERR_SPOOL_ENCODE',
  (what: string) => `spool: cannot encode ${what}`,
);

// command line: a flag whose value the command cannot use (the message names the flag)
export const ERR_CLI = createError('TAIHU_ERR_CLI', (detail: string) => detail);

// the spool (src/spool/): every refusal to acknowledge is retryable, the device sends again
export const ERR_SPOOL_FULL = createError(
  'TAIHU_ERR_SPOOL_FULL',
  (bytes: number, waitedMs: number) =>
    `spool: ${bytes} bytes on disk, above the high watermark for ${waitedMs} ms; ` +
    'not acknowledged, send again later',
  503,
  true,
);
export const ERR_SPOOL_CLOSED = createError(
  'TAIHU_ERR_SPOOL_CLOSED',
  () => 'spool: closed',
  503,
  true,
);
export const ERR_SPOOL_IO = createCausedError(
  'TAIHU_ERR_SPOOL_IO',
  () => 'spool: write to disk failed; not acknowledged',
  503,
  true,
);
/** A commit that failed for a reason the spool did not classify; the message is not acked. */
export const ERR_SPOOL_WRITE = createCausedError(
  'TAIHU_ERR_SPOOL_IO',
  () => 'spool write failed',
  500,
  true,
);
export const ERR_SPOOL_READ = createError(
  'TAIHU_ERR_SPOOL_READ',
  () => 'spool: one reader at a time',
);
export const ERR_SPOOL_CONFIRM = createError(
  'TAIHU_ERR_SPOOL_CONFIRM',
  (upto: number, delivered: number) =>
    `spool: cannot confirm record ${upto}, only ${delivered} was read`,
);
export const ERR_SPOOL_RECORD_TOO_LARGE = createError(
  'TAIHU_ERR_SPOOL_ENCODE',
  (bytes: number) => `spool: record of ${bytes} bytes is too large`,
);

// MQTT: a connection closed by the wire guard (src/broker/wire.ts); the message cites the clause
export const ERR_MQTT_PROTOCOL = createError(
  'TAIHU_ERR_MQTT_PROTOCOL',
  (violation: string) => violation,
  400,
);

// storage
/** Points a store refused for good: not retried, recorded as STORE_REFUSED rejections. */
export const ERR_STORE_REFUSED = createCausedError(
  'TAIHU_ERR_STORE_REFUSED',
  (detail: string) => `store refused the points: ${detail}`,
  400,
);
export const ERR_STORE_UNDECODABLE = createCausedError(
  'TAIHU_ERR_STORE_REFUSED',
  (detail: string) => `undecodable spool payload: ${detail}`,
  400,
);
/** A store error the caller must not retry (bad input, unknown name). */
export const ERR_STORE_INVALID = createError(
  'TAIHU_ERR_STORE',
  (detail: string) => `store: ${detail}`,
);
/** A failure of the store itself (busy, disk full, I/O): the same operation may succeed later. */
export const ERR_STORE_FAILED = createCausedError(
  'TAIHU_ERR_STORE',
  (detail: string) => `store: ${detail}`,
  503,
  true,
);
export const ERR_STORE = createError(
  'TAIHU_ERR_STORE',
  (detail: string) => `store: ${detail}`,
  503,
  true,
);

// cluster
export const ERR_CLUSTER = createError(
  'TAIHU_ERR_CLUSTER',
  (detail: string) => `cluster state (Redis): ${detail}`,
  503,
  true,
);

// HTTP
export const ERR_BAD_PARAM = createError(
  'TAIHU_ERR_BAD_PARAM',
  (param: string, detail: string) => `parameter '${param}': ${detail}`,
  400,
);
export const ERR_UNAUTHORIZED = createError(
  'TAIHU_ERR_UNAUTHORIZED',
  () => 'missing or unknown API key: send "Authorization: Bearer <key>"',
  401,
);
export const ERR_TOO_MANY_AUTH_FAILURES = createError(
  'TAIHU_ERR_TOO_MANY_AUTH_FAILURES',
  (seconds: number) =>
    `too many requests with a missing or unknown API key from this address; try again in ${seconds} s`,
  429,
);
export const ERR_FORBIDDEN = createError(
  'TAIHU_ERR_FORBIDDEN',
  (role: string) => `this route needs an API key with the '${role}' role`,
  403,
);
export const ERR_CONFLICT = createError(
  'TAIHU_ERR_CONFLICT',
  (what: string, id: string) => `${what} '${id}' already exists`,
  409,
);
export const ERR_NOT_FOUND = createError(
  'TAIHU_ERR_NOT_FOUND',
  (what: string, id: string) => `${what} '${id}' not found`,
  404,
);

/**
 * Codes raised with `new TaihuError(...)` where a factory would not fit (errors that carry
 * more than a message: the spool's, the InfluxDB store's). Listed here so every code the
 * gateway can raise is in this one file.
 */
export const CODES = {
  SPOOL_FULL: 'TAIHU_ERR_SPOOL_FULL',
  SPOOL_CLOSED: 'TAIHU_ERR_SPOOL_CLOSED',
  SPOOL_IO: 'TAIHU_ERR_SPOOL_IO',
  SPOOL_ENCODE: 'TAIHU_ERR_SPOOL_ENCODE',
  SPOOL_READ: 'TAIHU_ERR_SPOOL_READ',
  SPOOL_CONFIRM: 'TAIHU_ERR_SPOOL_CONFIRM',
  STORE_REFUSED: 'TAIHU_ERR_STORE_REFUSED',
  STORE_REJECTED: 'TAIHU_ERR_STORE_REJECTED',
  STORE_DENIED: 'TAIHU_ERR_STORE_DENIED',
  STORE_NOT_FOUND: 'TAIHU_ERR_STORE_NOT_FOUND',
  CLI: 'TAIHU_ERR_CLI',
  MQTT_PROTOCOL: 'TAIHU_ERR_MQTT_PROTOCOL',
  INTERNAL: 'TAIHU_ERR_INTERNAL',
} as const;

/**
 * Rejection codes for device messages. A rejected message is still acknowledged
 * (MQTT 3.1.1 has no negative ack); the code goes to the rejection log and the
 * device's `errors` topic.
 */
export const REJECT = {
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  PAYLOAD_NOT_UTF8: 'PAYLOAD_NOT_UTF8',
  PAYLOAD_NOT_JSON: 'PAYLOAD_NOT_JSON',
  BATCH_TOO_LARGE: 'BATCH_TOO_LARGE',
  ENVELOPE_INVALID: 'ENVELOPE_INVALID',
  SCHEMA_INVALID: 'SCHEMA_INVALID',
  TIMESTAMP_IN_FUTURE: 'TIMESTAMP_IN_FUTURE',
  TIMESTAMP_TOO_OLD: 'TIMESTAMP_TOO_OLD',
  STATUS_INVALID: 'STATUS_INVALID',
  TOPIC_FORBIDDEN: 'TOPIC_FORBIDDEN',
  STORE_REFUSED: 'STORE_REFUSED',
  /** Over TAIHU_DEVICE_RATE / TAIHU_DEVICE_BURST: acknowledged, not stored. */
  RATE_LIMITED: 'RATE_LIMITED',
} as const;
export type RejectCode = (typeof REJECT)[keyof typeof REJECT];

// rules and alerts (DESIGN §13)
export const ERR_RULE_FILE = createError(
  'TAIHU_ERR_RULE_FILE',
  (file: string, detail: string) => `rule file ${file}: ${detail}`,
);
export const ERR_RULE_INVALID = createError(
  'TAIHU_ERR_RULE_INVALID',
  (detail: string) => `invalid rule: ${detail}`,
  400,
);
export const ERR_RULE_STATE = createError(
  'TAIHU_ERR_RULE_STATE',
  (detail: string) => `rule evaluator state: ${detail}`,
);
export const ERR_ALERT_NOT_FIRING = createError(
  'TAIHU_ERR_ALERT_NOT_FIRING',
  (id: string, state: string) =>
    `alert '${id}' is ${state}; only a firing alert can be acknowledged`,
  409,
);

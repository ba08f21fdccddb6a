/**
 * Configuration: the only module that reads `process.env`. Every option is declared once, in
 * OPTIONS: its variable, default, one-line doc and the JSON Schema fragment of its value. The
 * schema the values are validated against (once, at start, with AJV) and the `Config` type are
 * both derived from that list; the result is frozen. Precedence: CLI flags > environment >
 * `.env` file > defaults.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import { Ajv } from 'ajv';
import { ERR_CONFIG } from './errors.js';

/** The package root (the folder holding `schemas/` and `seeds/`), both from src/ and dist/src/. */
export const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

const DURATION_RE = /^(\d+)(ms|s|m|h|d)?$/;
const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses `500ms`, `30s`, `5m`, `2h`, `7d` or plain milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = UNIT_MS[m[2] ?? 'ms'] ?? 1;
  return Number.isSafeInteger(n * unit) ? n * unit : undefined;
}

/** What a resolved value may be: the JSON Schema fragment `loadConfig` validates it with. */
type OptionSchema =
  | { readonly type: 'integer'; readonly minimum?: number; readonly maximum?: number }
  | { readonly type: 'string'; readonly minLength?: number; readonly pattern?: string }
  | { readonly enum: readonly string[] };

export interface OptionSpec {
  /** Environment variable. */
  readonly env: string;
  /** Property name in Config. */
  readonly key: string;
  /** One line for --help and the README. */
  readonly doc: string;
  /** How the variable's text is read: a number, a duration, one of `schema.enum`, or text. */
  readonly kind: 'port' | 'string' | 'int' | 'bytes' | 'duration' | 'enum' | 'secret';
  readonly schema: OptionSchema;
  /** The default, as the variable's text; without one (and not `derived`) the value is optional. */
  readonly default?: string;
  /** No fixed default: `loadConfig` picks the value from other options when it is unset. */
  readonly derived?: true;
}

const PORT_SCHEMA = { type: 'integer', minimum: 0, maximum: 65535 } as const;

/** OPTIONS as written, literal types kept: `Config` is derived from them. */
const OPTION_LIST = [
  {
    env: 'TAIHU_MQTT_HOST',
    key: 'mqttHost',
    kind: 'string',
    schema: { type: 'string', minLength: 1 },
    default: '127.0.0.1',
    doc: 'address the MQTT listeners bind to (0.0.0.0 in Docker)',
  },
  {
    env: 'TAIHU_MQTT_PORT',
    key: 'mqttPort',
    kind: 'port',
    schema: PORT_SCHEMA,
    default: '1883',
    doc: 'MQTT over TCP port; 0 picks a free port',
  },
  {
    env: 'TAIHU_MQTT_WS_PORT',
    key: 'mqttWsPort',
    kind: 'port',
    schema: PORT_SCHEMA,
    default: '8083',
    doc: 'MQTT over WebSocket port (path /mqtt); 0 picks a free port',
  },
  {
    env: 'TAIHU_HTTP_HOST',
    key: 'httpHost',
    kind: 'string',
    schema: { type: 'string', minLength: 1 },
    default: '127.0.0.1',
    doc: 'address the HTTP API binds to (0.0.0.0 in Docker)',
  },
  {
    env: 'TAIHU_HTTP_PORT',
    key: 'httpPort',
    kind: 'port',
    schema: PORT_SCHEMA,
    default: '8080',
    doc: 'HTTP API port; 0 picks a free port',
  },
  {
    env: 'TAIHU_DATA_DIR',
    key: 'dataDir',
    kind: 'string',
    schema: { type: 'string', minLength: 1 },
    default: './data',
    doc: 'where the registry, embedded store and keys live',
  },
  {
    env: 'TAIHU_SCHEMAS_DIR',
    key: 'schemasDir',
    kind: 'string',
    schema: { type: 'string', minLength: 1 },
    default: resolve(PACKAGE_ROOT, 'schemas'),
    doc: 'device JSON Schemas ({type}.v{N}.json)',
  },
  {
    env: 'TAIHU_SEEDS_DIR',
    key: 'seedsDir',
    kind: 'string',
    schema: { type: 'string', minLength: 1 },
    default: resolve(PACKAGE_ROOT, 'seeds'),
    doc: 'districts, sites and devices loaded on start',
  },
  {
    env: 'TAIHU_STORE',
    key: 'store',
    kind: 'enum',
    schema: { enum: ['embedded', 'influxdb'] },
    derived: true,
    doc: 'telemetry store; influxdb when TAIHU_INFLUX_URL is set, else embedded',
  },
  {
    env: 'TAIHU_INFLUX_URL',
    key: 'influxUrl',
    kind: 'string',
    schema: { type: 'string', pattern: '^https?://' },
    doc: 'InfluxDB base URL, e.g. http://127.0.0.1:8086',
  },
  {
    env: 'TAIHU_INFLUX_TOKEN',
    key: 'influxToken',
    kind: 'secret',
    schema: { type: 'string' },
    doc: 'InfluxDB API token (v2)',
  },
  {
    env: 'TAIHU_INFLUX_ORG',
    key: 'influxOrg',
    kind: 'string',
    schema: { type: 'string' },
    doc: 'InfluxDB organisation (v2)',
  },
  {
    env: 'TAIHU_INFLUX_BUCKET',
    key: 'influxBucket',
    kind: 'string',
    schema: { type: 'string', minLength: 1 },
    default: 'taihu',
    doc: 'InfluxDB bucket (v2) or database (v1)',
  },
  {
    env: 'TAIHU_INFLUX_API',
    key: 'influxApi',
    kind: 'enum',
    schema: { enum: ['v2', 'v1'] },
    default: 'v2',
    doc: 'write API: v2 (/api/v2/write, InfluxDB 1.8+) or v1 (/write, InfluxDB <= 1.7)',
  },
  {
    env: 'TAIHU_INFLUX_USERNAME',
    key: 'influxUsername',
    kind: 'string',
    schema: { type: 'string' },
    doc: 'InfluxDB v1 user',
  },
  {
    env: 'TAIHU_INFLUX_PASSWORD',
    key: 'influxPassword',
    kind: 'secret',
    schema: { type: 'string' },
    doc: 'InfluxDB v1 password',
  },
  {
    env: 'TAIHU_CLUSTER_REDIS_URL',
    key: 'clusterRedisUrl',
    kind: 'secret',
    schema: { type: 'string', pattern: '^rediss?://' },
    doc: 'redis://[:password@]host:port[/db]: run as one gateway of a cluster sharing this Redis (needs InfluxDB); unset: a single gateway',
  },
  {
    env: 'TAIHU_ENROLLMENT_KEY',
    key: 'enrollmentKey',
    kind: 'secret',
    schema: { type: 'string', minLength: 16 },
    doc: 'fleet enrollment key; generated into DATA_DIR/enrollment.key when unset',
  },
  {
    env: 'TAIHU_ADMIN_KEY',
    key: 'adminKey',
    kind: 'secret',
    schema: { type: 'string', minLength: 16 },
    doc: 'an HTTP API key with the admin role; generated into DATA_DIR/admin.key when unset and no key exists',
  },
  {
    env: 'TAIHU_SPOOL_MAX_BYTES',
    key: 'spoolMaxBytes',
    kind: 'bytes',
    schema: { type: 'integer', minimum: 1_048_576 },
    default: '1073741824',
    doc: 'disk quota of the spool in bytes',
  },
  {
    env: 'TAIHU_HTTP_AUTH_FAILURES',
    key: 'httpAuthFailures',
    kind: 'int',
    schema: { type: 'integer', minimum: 0 },
    default: '10',
    doc: 'failed API-key attempts per client address before it must wait (forgiven at that many a minute); 0 = no limit',
  },
  {
    env: 'TAIHU_MAX_BATCH',
    key: 'maxBatch',
    kind: 'int',
    schema: { type: 'integer', minimum: 1, maximum: 100_000 },
    default: '500',
    doc: 'most readings in one telemetry message (array payload)',
  },
  {
    env: 'TAIHU_MAX_PAYLOAD_BYTES',
    key: 'maxPayloadBytes',
    kind: 'bytes',
    schema: { type: 'integer', minimum: 64, maximum: 268_435_455 },
    default: '262144',
    doc: 'largest telemetry payload accepted, in bytes',
  },
  {
    env: 'TAIHU_MAX_CLOCK_SKEW',
    key: 'maxClockSkewMs',
    kind: 'duration',
    schema: { type: 'integer', minimum: 0 },
    default: '5m',
    doc: 'how far in the future a reading timestamp may be',
  },
  {
    env: 'TAIHU_MAX_AGE',
    key: 'maxAgeMs',
    kind: 'duration',
    schema: { type: 'integer', minimum: 1 },
    default: '7d',
    doc: 'how old a reading timestamp may be',
  },
  {
    env: 'TAIHU_COMMIT_WINDOW',
    key: 'commitWindowMs',
    kind: 'duration',
    schema: { type: 'integer', minimum: 0, maximum: 1000 },
    // Measured with fdatasync ≈ 0.3 ms: 0 gives ack p50 0.2–0.5 ms at 1–100 concurrent
    // publishers (readings arriving during an fsync still share the next one); 2ms gives
    // 2.4–2.8 ms but caps fsyncs near 400/s, which matters on IOPS-billed volumes.
    default: '0ms',
    doc: 'extra wait before a spool fsync so more readings share it; 0 = none',
  },
  {
    env: 'TAIHU_LOG_LEVEL',
    key: 'logLevel',
    kind: 'enum',
    schema: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    default: 'info',
    doc: 'log level',
  },
  {
    env: 'TAIHU_LOG_FORMAT',
    key: 'logFormat',
    kind: 'enum',
    schema: { enum: ['json', 'pretty'] },
    derived: true,
    doc: 'json, or pretty (default on a terminal)',
  },
  {
    env: 'TAIHU_MQTTS_PORT',
    key: 'mqttsPort',
    kind: 'port',
    schema: PORT_SCHEMA,
    default: '8883',
    doc: 'MQTT over TLS port, open when TAIHU_TLS_CERT and TAIHU_TLS_KEY are set; 0 picks a free port',
  },
  {
    env: 'TAIHU_TLS_CERT',
    key: 'tlsCert',
    kind: 'string',
    schema: { type: 'string', minLength: 1 },
    doc: 'PEM certificate (chain) file for mqtts (and https); unset: no TLS listener',
  },
  {
    env: 'TAIHU_TLS_KEY',
    key: 'tlsKey',
    kind: 'string',
    schema: { type: 'string', minLength: 1 },
    doc: 'PEM private key file of TAIHU_TLS_CERT',
  },
  {
    env: 'TAIHU_TLS_CA',
    key: 'tlsCa',
    kind: 'string',
    schema: { type: 'string', minLength: 1 },
    doc: 'PEM CA file: mqtts asks for client certificates signed by it (CN = device id, no password); unset: no client certificates',
  },
  {
    env: 'TAIHU_TLS_CRL',
    key: 'tlsCrl',
    kind: 'string',
    schema: { type: 'string', minLength: 1 },
    doc: 'PEM certificate revocation list of TAIHU_TLS_CA, read at start; revoked client certificates are refused',
  },
  {
    env: 'TAIHU_MQTT_AUTH',
    key: 'mqttAuth',
    kind: 'enum',
    schema: { enum: ['on', 'off'] },
    default: 'on',
    doc: 'off: development only, anyone may use topics outside sensors/ and $SYS without credentials; refused unless TAIHU_MQTT_HOST is loopback',
  },
  {
    env: 'TAIHU_MAX_PACKET_BYTES',
    key: 'maxPacketBytes',
    kind: 'bytes',
    schema: { type: 'integer', minimum: 128, maximum: 268_435_455 },
    doc: 'largest MQTT packet of any kind; a larger one closes the connection before it is read (default TAIHU_MAX_PAYLOAD_BYTES + 4096)',
  },
  {
    env: 'TAIHU_MQTT_CONNECT_TIMEOUT',
    key: 'mqttConnectTimeoutMs',
    kind: 'duration',
    schema: { type: 'integer', minimum: 100, maximum: 600_000 },
    default: '10s',
    doc: 'how long a new MQTT connection may take to send CONNECT (and a TLS handshake or WebSocket upgrade to finish)',
  },
  {
    env: 'TAIHU_MQTT_KEEPALIVE_ZERO',
    key: 'mqttKeepaliveZero',
    kind: 'enum',
    schema: { enum: ['allow', 'refuse'] },
    default: 'allow',
    doc: 'keepalive 0 (no pings, MQTT 3.1.1 §3.1.2.10): allow, watched by TCP keepalive and TAIHU_MQTT_IDLE_TIMEOUT, or refuse with CONNACK 0x02',
  },
  {
    env: 'TAIHU_MQTT_IDLE_TIMEOUT',
    key: 'mqttIdleTimeoutMs',
    kind: 'duration',
    schema: { type: 'integer', minimum: 0, maximum: 86_400_000 },
    default: '1h',
    doc: 'a connection with keepalive 0 that sends nothing for this long is closed; 0 = never',
  },
  {
    env: 'TAIHU_MAX_CONNECTIONS',
    key: 'maxConnections',
    kind: 'int',
    schema: { type: 'integer', minimum: 0 },
    default: '20000',
    doc: 'most open MQTT connections over all listeners; more are closed at accept; 0 = no limit',
  },
  {
    env: 'TAIHU_MAX_CONNECTIONS_PER_IP',
    key: 'maxConnectionsPerIp',
    kind: 'int',
    schema: { type: 'integer', minimum: 0 },
    default: '1000',
    doc: 'most open MQTT connections from one IP address (NAT gateways carry many devices); 0 = no limit',
  },
  {
    env: 'TAIHU_DEVICE_RATE',
    key: 'deviceRate',
    kind: 'int',
    schema: { type: 'integer', minimum: 0 },
    default: '50',
    doc: 'messages per second a device may publish on average; past it, QoS 1/2 acknowledgements and reads wait for the bucket (nothing is lost) and QoS 0 excess is dropped (RATE_LIMITED); 0 = no limit',
  },
  {
    env: 'TAIHU_DEVICE_BURST',
    key: 'deviceBurst',
    kind: 'int',
    schema: { type: 'integer', minimum: 1 },
    default: '200',
    doc: 'messages a device may publish at once above TAIHU_DEVICE_RATE (token bucket size)',
  },
  {
    env: 'TAIHU_DEVICE_MAX_INFLIGHT',
    key: 'deviceMaxInflight',
    kind: 'int',
    schema: { type: 'integer', minimum: 0, maximum: 65_535 },
    default: '100',
    doc: "messages of one device awaiting their acknowledgement; past it the gateway stops reading that device's connection until acks catch up; 0 = no limit",
  },
] as const satisfies readonly OptionSpec[];

/** Every option, its default and what it does. Ports of 0 pick a free port. */
export const OPTIONS: readonly OptionSpec[] = OPTION_LIST;

type Option = (typeof OPTION_LIST)[number];
/** The type of a value its schema fragment allows. */
type ValueOf<S> = S extends { readonly enum: readonly (infer V)[] }
  ? V
  : S extends { readonly type: 'integer' }
    ? number
    : string;
/** Whether `loadConfig` always sets the option: it has a default, or one derived from others. */
type AlwaysSet<O> = O extends { readonly default: string } | { readonly derived: true }
  ? true
  : false;

/** The resolved configuration: one property per option, typed by its schema. */
export type Config = {
  [O in Option as O['key']]: AlwaysSet<O> extends true
    ? ValueOf<O['schema']>
    : ValueOf<O['schema']> | undefined;
};

/** The JSON Schema every resolved configuration must satisfy. */
export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(OPTIONS.map((o) => [o.key, o.schema])),
} as const;

const BY_KEY = new Map(OPTIONS.map((o) => [o.key, o]));
const validateConfig = new Ajv({ allErrors: true }).compile(CONFIG_SCHEMA);

export interface LoadConfigInput {
  /** Usually process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Values from CLI flags, by environment-variable name. */
  overrides?: Readonly<Record<string, string | undefined>>;
  /** A .env file to read; missing file is fine. */
  envFile?: string | undefined;
  /** Whether stdout is a terminal (picks the default log format). */
  isTTY?: boolean;
}

/** Resolves and validates the configuration; throws ERR_CONFIG naming the variable. */
export function loadConfig(input: LoadConfigInput = {}): Readonly<Config> {
  const env = input.env ?? process.env;
  const fileVars = readEnvFile(input.envFile ?? '.env');
  const raw: Record<string, unknown> = {};
  for (const opt of OPTIONS) {
    const text = input.overrides?.[opt.env] ?? env[opt.env] ?? fileVars[opt.env] ?? opt.default;
    if (text === undefined || text === '') continue;
    raw[opt.key] = convert(opt, text);
  }
  raw.store ??= raw.influxUrl ? 'influxdb' : 'embedded';
  raw.logFormat ??= input.isTTY ? 'pretty' : 'json';
  if (!validateConfig(raw)) {
    const e = validateConfig.errors?.[0];
    const key = (e?.instancePath.slice(1) ||
      String(e?.params?.missingProperty ?? '')) as keyof Config;
    const opt = BY_KEY.get(key);
    throw ERR_CONFIG(
      `${opt?.env ?? key}=${JSON.stringify(maskIfSecret(opt, raw[key]))} ${e?.message ?? 'is invalid'}${opt ? ` (${opt.doc})` : ''}`,
    );
  }
  const config = raw as unknown as Config;
  if (config.store === 'influxdb' && !config.influxUrl) {
    throw ERR_CONFIG('TAIHU_STORE=influxdb needs TAIHU_INFLUX_URL');
  }
  if (config.clusterRedisUrl && config.store !== 'influxdb') {
    throw ERR_CONFIG(
      'TAIHU_CLUSTER_REDIS_URL is set (cluster mode) but the telemetry store is the embedded one, which every instance would keep apart: set TAIHU_INFLUX_URL (and leave TAIHU_STORE unset or set it to influxdb), or unset TAIHU_CLUSTER_REDIS_URL',
    );
  }
  if (config.clusterRedisUrl && !config.enrollmentKey) {
    throw ERR_CONFIG(
      'TAIHU_CLUSTER_REDIS_URL is set (cluster mode) but TAIHU_ENROLLMENT_KEY is not: each instance would generate its own key and derive other device secrets; give every instance the same TAIHU_ENROLLMENT_KEY',
    );
  }
  if (config.mqttAuth === 'off' && !isLoopbackHost(config.mqttHost)) {
    throw ERR_CONFIG(
      `TAIHU_MQTT_AUTH=off opens the broker to anyone, so it needs TAIHU_MQTT_HOST on loopback (127.0.0.0/8, ::1 or localhost), not ${JSON.stringify(config.mqttHost)}`,
    );
  }
  if (config.maxPacketBytes !== undefined && config.maxPacketBytes < config.maxPayloadBytes) {
    throw ERR_CONFIG(
      `TAIHU_MAX_PACKET_BYTES=${config.maxPacketBytes} is below TAIHU_MAX_PAYLOAD_BYTES=${config.maxPayloadBytes}: payloads within the limit could never arrive`,
    );
  }
  config.dataDir = resolve(config.dataDir);
  return Object.freeze(config);
}

const LOOPBACK_V4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/** Whether a listen address is on loopback: 127.0.0.0/8, ::1, localhost (brackets allowed). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h === '::1' || LOOPBACK_V4.test(h.replace(/^::ffff:/, ''));
}

function convert(opt: OptionSpec, text: string): unknown {
  const bad = (allowed: string) =>
    ERR_CONFIG(
      `${opt.env}=${JSON.stringify(maskIfSecret(opt, text))} is not ${allowed} (${opt.doc})`,
    );
  switch (opt.kind) {
    case 'port':
    case 'int':
    case 'bytes': {
      if (!/^\d+$/.test(text.trim())) {
        throw bad(opt.kind === 'port' ? 'a port number (0-65535)' : 'a whole number');
      }
      return Number(text);
    }
    case 'duration': {
      const ms = parseDuration(text);
      if (ms === undefined) throw bad('a duration such as 500ms, 30s, 5m, 2h or 7d');
      return ms;
    }
    case 'enum': {
      const values = 'enum' in opt.schema ? opt.schema.enum : [];
      if (!values.includes(text)) throw bad(`one of ${values.join(', ')}`);
      return text;
    }
    default:
      return text;
  }
}

function maskIfSecret(opt: OptionSpec | undefined, value: unknown): unknown {
  return opt?.kind === 'secret' ? '***' : value;
}

function readEnvFile(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  try {
    return parseEnv(readFileSync(path, 'utf8')) as Record<string, string>;
  } catch (err) {
    throw ERR_CONFIG(`cannot read ${path}: ${(err as Error).message}`);
  }
}

function findPackageRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(resolve(dir, 'package.json')) && existsSync(resolve(dir, 'schemas'))) return dir;
    const up = dirname(dir);
    if (up === dir) return start;
    dir = up;
  }
}

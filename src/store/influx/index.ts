/**
 * InfluxDB store: writes line protocol to `/api/v2/write` (InfluxDB 1.8+, 2.x, 3.x) or `/write`
 * (1.x), and answers aggregates with InfluxQL over `/query`. It keeps nothing in memory: a write
 * resolves once InfluxDB acknowledged it (204) and rejects with a classified error otherwise;
 * retrying and splitting batches is the spool drainer's job.
 */
import { checkAggregate } from '../check-query.js';
import type {
  AggregateQuery,
  AggregateSeries,
  FieldKind,
  MeasurementInfo,
  Store,
} from '../types.js';
import type { Batch, PreparedBatch } from '../../points/batch.js';
import { INFLUX_CODES, InfluxStoreError, refused } from './errors.js';
import { InfluxHttp, isV2ApiAnswer } from './http.js';
import {
  buildAggregate,
  expressible,
  quoteIdent,
  statementSeries,
  toAggregateSeries,
} from './influxql.js';
import { payloadJson } from '../../points/codec.js';
import {
  compileMeasurement,
  encodePoints,
  encodeSpoolJson,
  type MeasurementEncoder,
} from './line-protocol.js';

export { INFLUX_CODES, InfluxStoreError } from './errors.js';

/** The logger calls this store makes (pino's signature: object first). */
export interface StoreLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface InfluxStoreOptions {
  /** Base URL, e.g. `http://127.0.0.1:8086`. */
  readonly url: string;
  /** `v2`: `/api/v2/write` (InfluxDB 1.8+, 2.x, 3.x); `v1`: `/write` (InfluxDB ≤ 1.7). */
  readonly api: 'v2' | 'v1';
  /** v2 API token; InfluxDB 1.8 takes `username:password` here. */
  readonly token?: string | undefined;
  /** v2 organisation (name); needed to create a missing bucket on 2.x. */
  readonly org?: string | undefined;
  /** Bucket (v2) or database (v1); also the InfluxQL database queries run against. */
  readonly bucket: string;
  /** v1 user (sent as HTTP Basic auth, never in the URL). */
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** Deadline of one HTTP request, ms (default 10 000). */
  readonly timeoutMs?: number | undefined;
  /**
   * Write bodies larger than this are gzipped, bytes; Infinity = never. Default: 1000, but never
   * when the URL's host is a loopback address.
   */
  readonly gzipThresholdBytes?: number | undefined;
  readonly logger?: StoreLogger | undefined;
}

const defaults = {
  /** Deadline of one HTTP request (write, query, ping), ms; the drainer retries after it. */
  timeoutMs: 10_000,
  /** Write bodies larger than this are gzipped, bytes; line protocol shrinks about 10×. */
  gzipThresholdBytes: 1000,
  /**
   * The same on a loopback URL: never. There the bytes cost nothing and the CPU is shared: 500,000
   * points into a local InfluxDB 1.6.7 took 134,000 points/s plain, 104,000 gzipped (influxd
   * 98 % vs 87 % of a core, so its gunzip is what slows it), `taihu bench drain`.
   */
  loopbackGzipThresholdBytes: Infinity,
} as const;

/** A batch's line protocol, or what made encoding it fail. */
type Body =
  { readonly ok: true; readonly text: string } | { readonly ok: false; readonly error: unknown };

class InfluxBatch implements PreparedBatch {
  readonly count: number;
  constructor(
    readonly batch: Batch,
    /** Undefined until encoded: a batch prepared before open() is encoded at its first write. */
    public body: Body | undefined,
  ) {
    this.count = batch.count;
  }
}

/** Line protocol of a batch: straight from the spool records' JSON when it has them. */
function encodeBatch(batch: Batch, encoders: ReadonlyMap<string, MeasurementEncoder>): Body {
  try {
    const text =
      batch.payloads === undefined
        ? encodePoints(batch.points(), encoders)
        : encodeSpoolJson(batch.payloads.map(payloadJson), encoders);
    return { ok: true, text };
  } catch (err) {
    if (batch.payloads === undefined || err instanceof InfluxStoreError) {
      return { ok: false, error: err };
    }
    // refused for good either way: the drainer then decodes the records itself, skipping
    // one that does not decode and finding the point the store cannot take
    return { ok: false, error: refused(`undecodable spool payload: ${String(err)}`) };
  }
}

export function createInfluxStore(opts: InfluxStoreOptions): Store {
  return new InfluxStore(opts);
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

class InfluxStore implements Store {
  readonly kind = 'influxdb';
  readonly #opts: InfluxStoreOptions;
  readonly #http: InfluxHttp;
  readonly #writePath: string;
  readonly #queryPath: string;
  /** Filled by open(); undefined before it and after close(). */
  #encoders: Map<string, MeasurementEncoder> | undefined;
  #kinds = new Map<string, ReadonlyMap<string, FieldKind>>();
  #closed = false;

  constructor(opts: InfluxStoreOptions) {
    this.#opts = opts;
    const { api, token, username, password, bucket, org } = opts;
    let authorization: string | undefined;
    if (api === 'v2') {
      // InfluxDB 1.8's v2 endpoints take "Token username:password"
      if (token !== undefined && token !== '') authorization = `Token ${token}`;
      else if (username !== undefined) authorization = `Token ${username}:${password ?? ''}`;
    } else if (username !== undefined) {
      authorization = basic(username, password ?? '');
    }
    this.#http = new InfluxHttp({
      url: opts.url,
      authorization,
      timeoutMs: opts.timeoutMs ?? defaults.timeoutMs,
      gzipThresholdBytes:
        opts.gzipThresholdBytes ??
        (isLoopback(opts.url) ? defaults.loopbackGzipThresholdBytes : defaults.gzipThresholdBytes),
    });
    const db = encodeURIComponent(bucket);
    this.#writePath =
      api === 'v2'
        ? `/api/v2/write?${org === undefined ? '' : `org=${encodeURIComponent(org)}&`}bucket=${db}&precision=ms`
        : `/write?db=${db}&precision=ms`;
    this.#queryPath = `/query?db=${db}&epoch=ms`;
  }

  async open(measurements: readonly MeasurementInfo[]): Promise<void> {
    if (this.#closed) throw closedError('open');
    const kinds = mergeMeasurements(measurements);
    const encoders = new Map<string, MeasurementEncoder>();
    for (const [measurement, fields] of kinds) {
      encoders.set(measurement, compileMeasurement({ type: measurement, measurement, fields }));
    }
    await this.#http.request(`ping of ${this.#http.url}`, '/ping', '', { method: 'GET' });
    if (this.#opts.api === 'v1') await this.#ensureDatabase(undefined);
    else await this.#ensureBucket();
    this.#kinds = kinds;
    this.#encoders = encoders;
  }

  prepare(batch: Batch): PreparedBatch {
    const encoders = this.#encoders;
    // not open yet: encoded by the first write once open() is done
    if (encoders === undefined || batch.count === 0) return new InfluxBatch(batch, undefined);
    return new InfluxBatch(batch, encodeBatch(batch, encoders));
  }

  async write(batch: PreparedBatch): Promise<void> {
    if (!(batch instanceof InfluxBatch)) throw refused('write() of a foreign batch');
    const encoders = this.#encoders;
    // closed, or not open yet: retryable, the points stay in the spool
    if (encoders === undefined) throw closedError('write');
    if (batch.count === 0) return;
    batch.body ??= encodeBatch(batch.batch, encoders);
    const body = batch.body;
    if (!body.ok) throw body.error;
    await this.#http.request(`write of ${batch.count} points`, this.#writePath, body.text, {
      method: 'POST',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      gzip: true,
      op: 'write',
    });
  }

  async aggregate(q: AggregateQuery): Promise<AggregateSeries[]> {
    if (this.#encoders === undefined) throw closedError('aggregate');
    if (checkAggregate(q, this.#kinds, refused) === undefined) return [];
    for (const value of Object.values(q.filter)) {
      // a tag value InfluxQL cannot spell was never written by this store
      if (value !== undefined && !expressible(value)) return [];
    }
    if (!expressible(q.measurement) || !expressible(q.field)) return [];

    const { main, counts } = buildAggregate(q);
    const [mainBody, countsBody] = await Promise.all([
      this.#query('aggregate query', main),
      counts === undefined ? undefined : this.#query('aggregate count query', counts),
    ]);
    return toAggregateSeries(
      q,
      statementSeries(mainBody),
      countsBody === undefined ? undefined : statementSeries(countsBody),
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#encoders = undefined;
    await this.#http.drain();
    this.#http.destroy();
  }

  /** One InfluxQL statement over POST /query (form body: no URL length limit, required for DDL). */
  #query(op: string, statement: string, authorization?: string): Promise<unknown> {
    return this.#http.request(
      op,
      this.#queryPath,
      new URLSearchParams({ q: statement }).toString(),
      {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          'accept-encoding': 'gzip',
        },
        ...(authorization === undefined ? {} : { authorization }),
      },
    );
  }

  /** InfluxQL database = bucket: SHOW DATABASES, then CREATE DATABASE when it is missing. */
  async #ensureDatabase(authorization: string | undefined): Promise<void> {
    const bucket = this.#opts.bucket;
    const listed = statementSeries(
      await this.#query('listing databases (SHOW DATABASES)', 'SHOW DATABASES', authorization),
    );
    for (const s of listed) {
      if (s.values.some((row) => row[0] === bucket)) return;
    }
    try {
      statementSeries(
        await this.#query(
          `creating database ${quoteIdent(bucket)}`,
          `CREATE DATABASE ${quoteIdent(bucket)}`,
          authorization,
        ),
      );
    } catch (err) {
      if (err instanceof InfluxStoreError && err.code === INFLUX_CODES.DENIED) {
        const who =
          this.#opts.username === undefined ? 'these credentials' : `user '${this.#opts.username}'`;
        throw new InfluxStoreError(
          INFLUX_CODES.DENIED,
          `store: database ${quoteIdent(bucket)} does not exist and ${who} may not create it: ` +
            'CREATE DATABASE needs the admin privilege; create the database as an admin or ' +
            `grant ALL PRIVILEGES (${err.message})`,
          { retryable: false, status: err.status, serverMessage: err.serverMessage, cause: err },
        );
      }
      throw err;
    }
    this.#opts.logger?.info({ database: bucket, url: this.#http.url }, 'InfluxDB database created');
  }

  /**
   * Finds the bucket through the v2 management API and creates it when missing. Servers that
   * speak the v2 write API without the management API (InfluxDB 1.8, 3.x, VictoriaMetrics) answer
   * without a v2 error body: then the database is created with InfluxQL when a username and
   * password were given (InfluxDB 1.8), else it is left to exist already or to be created by the
   * first write (3.x).
   */
  async #ensureBucket(): Promise<void> {
    const { bucket, org, username, password } = this.#opts;
    const orgParam = org === undefined ? '' : `&org=${encodeURIComponent(org)}`;
    let found: unknown;
    try {
      found = await this.#http.request(
        `looking up bucket '${bucket}' (needs read:buckets)`,
        `/api/v2/buckets?name=${encodeURIComponent(bucket)}${orgParam}`,
        '',
        { method: 'GET', headers: { accept: 'application/json' } },
      );
    } catch (err) {
      const noApi =
        err instanceof InfluxStoreError &&
        [400, 404, 405, 501].includes(err.status ?? 0) &&
        !isV2ApiAnswer(err);
      if (!noApi) throw err;
      if (username !== undefined) {
        await this.#ensureDatabase(basic(username, password ?? ''));
        return;
      }
      this.#opts.logger?.warn(
        { bucket, url: this.#http.url, status: err.status },
        'no bucket API on this server: the bucket must exist or be created by the first write',
      );
      return;
    }
    const buckets = (found as { buckets?: { name?: unknown }[] } | undefined)?.buckets;
    if (buckets?.some((b) => b.name === bucket)) return;
    if (org === undefined) {
      throw new InfluxStoreError(
        INFLUX_CODES.NOT_FOUND,
        `store: bucket '${bucket}' not found, and no organisation given to create it in`,
        { retryable: false },
      );
    }
    const orgs = (await this.#http.request(
      `looking up organisation '${org}' (needs read:orgs)`,
      `/api/v2/orgs?org=${encodeURIComponent(org)}`,
      '',
      { method: 'GET', headers: { accept: 'application/json' } },
    )) as { orgs?: { id?: unknown; name?: unknown }[] } | undefined;
    const orgID = orgs?.orgs?.find((o) => o.name === org)?.id;
    if (typeof orgID !== 'string') {
      throw new InfluxStoreError(INFLUX_CODES.NOT_FOUND, `store: organisation '${org}' not found`, {
        retryable: false,
      });
    }
    await this.#http.request(
      `creating bucket '${bucket}' (needs write:buckets in organisation '${org}')`,
      '/api/v2/buckets',
      JSON.stringify({ orgID, name: bucket, retentionRules: [] }),
      { method: 'POST', headers: { 'content-type': 'application/json' } },
    );
    this.#opts.logger?.info({ bucket, org, url: this.#http.url }, 'InfluxDB bucket created');
  }
}

/** Whether `url` names this machine: localhost, 127.0.0.0/8 or ::1. */
function isLoopback(url: string): boolean {
  if (!URL.canParse(url)) return false;
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(host);
}

function closedError(op: 'open' | 'write' | 'aggregate'): InfluxStoreError {
  const when = op === 'open' ? 'after close()' : 'before open() or after close()';
  // retryable: nothing was lost, the points stay in the spool until a store is open
  return new InfluxStoreError(INFLUX_CODES.UNAVAILABLE, `store: ${op}() called ${when}`, {
    retryable: true,
  });
}

function mergeMeasurements(
  measurements: readonly MeasurementInfo[],
): Map<string, ReadonlyMap<string, FieldKind>> {
  const out = new Map<string, Map<string, FieldKind>>();
  for (const m of measurements) {
    let fields = out.get(m.measurement);
    if (fields === undefined) out.set(m.measurement, (fields = new Map()));
    for (const [name, kind] of m.fields) {
      const known = fields.get(name);
      // one field, one type forever: InfluxDB refuses a second type with a field type conflict
      if (known !== undefined && known !== kind) {
        throw refused(`field '${m.measurement}.${name}' declared as both ${known} and ${kind}`);
      }
      fields.set(name, kind);
    }
  }
  return out;
}

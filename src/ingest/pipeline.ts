/**
 * The per-message path: decode → validate → normalise. Pure and synchronous: it
 * turns one telemetry payload into points, or into a rejection with reasons a
 * device maker can act on. Nothing here touches the network or the disk.
 */
import type { ErrorObject } from 'ajv';
import { REJECT, type RejectCode } from '../errors.js';
import type { FieldValue, Point } from '../points/point.js';
import type { Catalog, DeviceType } from './catalog.js';
import { findDuplicateKey } from './duplicate-keys.js';
import { escapePointer } from './pointer.js';

export interface Reason {
  /** JSON pointer into the payload, e.g. `/data/pm25_ugm3` or `/3/ts`. */
  readonly pointer: string;
  readonly message: string;
}

export interface Rejection {
  readonly code: RejectCode;
  readonly reasons: readonly Reason[];
}

export interface AcceptedReading {
  readonly ts: number;
  readonly seq: number | undefined;
  readonly data: Readonly<Record<string, FieldValue>>;
}

export type IngestResult =
  | { readonly ok: true; readonly points: Point[]; readonly readings: AcceptedReading[] }
  | { readonly ok: false; readonly rejection: Rejection };

/** The identity a message is stored under; from the registry, never from the payload. */
export interface DeviceIdentity {
  readonly id: string;
  readonly type: string;
  readonly district: string;
  readonly siteId: string;
}

export interface PipelineOptions {
  /** Largest payload in bytes. */
  readonly maxPayloadBytes: number;
  /** Most readings in one array payload. */
  readonly maxBatch: number;
  /** How far in the future a timestamp may be, ms. */
  readonly maxClockSkewMs: number;
  /** How old a timestamp may be, ms. */
  readonly maxAgeMs: number;
}

const ENVELOPE_KEYS = new Set(['ts', 'seq', 'data']);
// RFC 3339 date-time with a mandatory offset; Date.parse alone accepts far looser text.
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

function reject(code: RejectCode, pointer: string, message: string): IngestResult {
  return { ok: false, rejection: { code, reasons: [{ pointer, message }] } };
}

export function createPipeline(catalog: Catalog, opts: PipelineOptions) {
  return function ingest(device: DeviceIdentity, payload: Buffer, now: number): IngestResult {
    const type = catalog.get(device.type);
    if (!type)
      return reject(REJECT.SCHEMA_INVALID, '', `no schema for device type "${device.type}"`);

    // decode
    if (payload.length > opts.maxPayloadBytes) {
      return reject(
        REJECT.PAYLOAD_TOO_LARGE,
        '',
        `payload is ${payload.length} bytes; the limit is ${opts.maxPayloadBytes} (TAIHU_MAX_PAYLOAD_BYTES)`,
      );
    }
    let text: string;
    try {
      text = utf8.decode(payload);
    } catch {
      return reject(REJECT.PAYLOAD_NOT_UTF8, '', 'payload is not valid UTF-8 text');
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      return reject(REJECT.PAYLOAD_NOT_JSON, '', `payload is not JSON: ${(err as Error).message}`);
    }
    const duplicate = findDuplicateKey(text, doc);
    if (duplicate !== undefined) {
      return reject(
        REJECT.PAYLOAD_NOT_JSON,
        duplicate.pointer,
        `${duplicate.key === undefined ? 'a key' : `key "${duplicate.key}"`} appears twice in one object; each key may appear once (RFC 8259 §4)`,
      );
    }

    const isBatch = Array.isArray(doc);
    const items: unknown[] = isBatch ? (doc as unknown[]) : [doc];
    if (isBatch && items.length === 0) {
      return reject(REJECT.ENVELOPE_INVALID, '', 'an array payload must hold at least one reading');
    }
    if (items.length > opts.maxBatch) {
      return reject(
        REJECT.BATCH_TOO_LARGE,
        '',
        `${items.length} readings in one message; the limit is ${opts.maxBatch} (TAIHU_MAX_BATCH)`,
      );
    }

    const points: Point[] = [];
    const readings: AcceptedReading[] = [];
    const tags = { device_id: device.id, district: device.district, site_id: device.siteId };
    for (let i = 0; i < items.length; i++) {
      const base = isBatch ? `/${i}` : '';
      const r = readReading(items[i], base, type, now, opts);
      if ('code' in r) return { ok: false, rejection: r };
      const fields: Record<string, FieldValue> = Object.create(null);
      // Iterate the schema's fields, not the payload's keys: only declared fields get through.
      for (const name of type.info.fields.keys()) {
        const v = r.data[name];
        if (v !== undefined) fields[name] = v;
      }
      if (r.seq !== undefined) fields.seq = r.seq;
      points.push({ measurement: type.measurement, tags, fields, ts: r.ts });
      readings.push(r);
    }
    return { ok: true, points, readings };
  };
}

function readReading(
  item: unknown,
  base: string,
  type: DeviceType,
  now: number,
  opts: PipelineOptions,
): AcceptedReading | Rejection {
  const invalid = (pointer: string, message: string): Rejection => ({
    code: REJECT.ENVELOPE_INVALID,
    reasons: [{ pointer, message }],
  });
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    return invalid(base, 'a reading must be an object like {"ts": ..., "seq": ..., "data": {...}}');
  }
  const env = item as Record<string, unknown>;
  for (const key of Object.keys(env)) {
    if (!ENVELOPE_KEYS.has(key)) {
      return invalid(
        `${base}/${escapePointer(key)}`,
        'unknown key; a reading has only ts, seq and data',
      );
    }
  }
  const data = env.data;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return invalid(`${base}/data`, 'data must be an object of readings');
  }
  let seq: number | undefined;
  if (env.seq !== undefined) {
    if (typeof env.seq !== 'number' || !Number.isSafeInteger(env.seq) || env.seq < 0) {
      return invalid(`${base}/seq`, 'seq must be a non-negative integer');
    }
    seq = env.seq;
  }
  const ts = readTimestamp(env.ts, `${base}/ts`, now, opts);
  if (typeof ts !== 'number') return ts;

  if (!type.validate(data)) {
    return {
      code: REJECT.SCHEMA_INVALID,
      reasons: (type.validate.errors ?? []).map((e) => schemaReason(e, `${base}/data`, type)),
    };
  }
  return { ts, seq, data: data as Record<string, FieldValue> };
}

function readTimestamp(
  value: unknown,
  pointer: string,
  now: number,
  opts: PipelineOptions,
): number | Rejection {
  if (value === undefined) return now;
  let ts: number;
  let hint = '';
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) {
      return envelope(pointer, 'ts must be an RFC 3339 string or integer epoch milliseconds');
    }
    ts = value;
    if (value < 1e11) hint = ' (it looks like seconds: send epoch milliseconds)';
    else if (value > 1e17) hint = ' (it looks like nanoseconds: send epoch milliseconds)';
    else if (value > 1e14) hint = ' (it looks like microseconds: send epoch milliseconds)';
  } else if (typeof value === 'string') {
    ts = RFC3339_RE.test(value) ? Date.parse(value) : NaN;
    if (Number.isNaN(ts)) {
      return envelope(
        pointer,
        `"${value.slice(0, 40)}" is not an RFC 3339 date-time such as 2026-11-26T08:00:00.000Z`,
      );
    }
  } else {
    return envelope(pointer, 'ts must be an RFC 3339 string or integer epoch milliseconds');
  }
  if (ts > now + opts.maxClockSkewMs) {
    return {
      code: REJECT.TIMESTAMP_IN_FUTURE,
      reasons: [
        {
          pointer,
          message: `ts ${safeIso(ts)} is more than ${opts.maxClockSkewMs} ms ahead of the gateway clock${hint}`,
        },
      ],
    };
  }
  if (ts < now - opts.maxAgeMs) {
    return {
      code: REJECT.TIMESTAMP_TOO_OLD,
      reasons: [
        {
          pointer,
          message: `ts ${safeIso(ts)} is older than the ${opts.maxAgeMs} ms the gateway accepts (TAIHU_MAX_AGE)${hint}`,
        },
      ],
    };
  }
  return ts;
}

function envelope(pointer: string, message: string): Rejection {
  return { code: REJECT.ENVELOPE_INVALID, reasons: [{ pointer, message }] };
}

function safeIso(ts: number): string {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toISOString();
}

function schemaReason(e: ErrorObject, base: string, type: DeviceType): Reason {
  const at = `${base}${e.instancePath}`;
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = String((e.params as { additionalProperty: string }).additionalProperty);
      return {
        pointer: `${at}/${escapePointer(extra)}`,
        message: `"${extra}" is not a field of ${type.type} v${type.version}; fields are ${[...type.info.fields.keys()].filter((f) => f !== 'seq').join(', ')}`,
      };
    }
    case 'required': {
      const missing = String((e.params as { missingProperty: string }).missingProperty);
      return {
        pointer: `${at}/${escapePointer(missing)}`,
        message: `required field "${missing}" is missing`,
      };
    }
    default: {
      const unit = type.units.get(e.instancePath.slice(1));
      return {
        pointer: at,
        message: `${e.message ?? 'is invalid'}${unit && e.keyword.match(/imum$/) ? ` ${unit}` : ''}`,
      };
    }
  }
}

/**
 * The device catalogue: one JSON Schema per device type and version in `schemas/`,
 * compiled once at start. Adding a device type is adding a schema file (and a
 * simulator model); no gateway code changes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { ERR_SCHEMA_FILE } from '../errors.js';
import type { FieldKind, MeasurementInfo } from '../store/types.js';
import { isStorableText } from '../store/text.js';

export const CATEGORIES = ['traffic', 'environment', 'facility'] as const;
export type Category = (typeof CATEGORIES)[number];

/** The `x-` keywords a device schema may carry; anything else is a typo and stops the start. */
export const SCHEMA_KEYWORDS = [
  'x-type',
  'x-version',
  'x-category',
  'x-measurement',
  'x-interval-seconds',
  'x-unit',
  'x-thresholds',
  'x-hj212',
] as const;

export interface DeviceType {
  /** `air-quality` */
  readonly type: string;
  readonly version: number;
  readonly category: Category;
  /** `air_quality` */
  readonly measurement: string;
  /** How often a device of this type is expected to report. */
  readonly intervalSeconds: number;
  readonly title: string;
  readonly file: string;
  /** The schema exactly as served to device makers. */
  readonly schema: Readonly<Record<string, unknown>>;
  /** Validates the `data` object of one reading. */
  readonly validate: ValidateFunction;
  /** Field kinds for storage, `seq` included. */
  readonly info: MeasurementInfo;
  /** Unit of each field, from `x-unit`. */
  readonly units: ReadonlyMap<string, string>;
}

const FILE_RE = /^([a-z][a-z0-9-]*)\.v([1-9][0-9]*)\.json$/;
const SNAKE_RE = /^[a-z][a-z0-9_]*$/;
const RESERVED_FIELDS = new Set(['seq', 'time', 'ts', 'device_id', 'district', 'site_id']);

/** An AJV instance that knows Taihu's `x-` keywords (strict mode stays on for everything else). */
export function createAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: false });
  for (const keyword of SCHEMA_KEYWORDS) ajv.addKeyword({ keyword });
  return ajv;
}

export class Catalog {
  readonly #types: Map<string, DeviceType>;

  constructor(types: Iterable<DeviceType>) {
    this.#types = new Map();
    for (const t of types) this.#types.set(t.type, t);
  }

  get(type: string): DeviceType | undefined {
    return this.#types.get(type);
  }

  has(type: string): boolean {
    return this.#types.has(type);
  }

  /** Types sorted by name. */
  list(): DeviceType[] {
    return [...this.#types.values()].sort((a, b) => a.type.localeCompare(b.type));
  }

  measurements(): MeasurementInfo[] {
    return this.list().map((t) => t.info);
  }
}

/** Reads and compiles every `{type}.v{N}.json` in `dir`; the highest version of a type wins. */
export function loadCatalog(dir: string, ajv: Ajv = createAjv()): Catalog {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch (err) {
    throw ERR_SCHEMA_FILE(dir, `cannot read the schema directory (${(err as Error).message})`);
  }
  const latest = new Map<string, DeviceType>();
  for (const name of names.sort()) {
    const t = compileSchemaFile(join(dir, name), name, ajv);
    const prev = latest.get(t.type);
    if (!prev || prev.version < t.version) latest.set(t.type, t);
  }
  if (latest.size === 0) throw ERR_SCHEMA_FILE(dir, 'no device schema (*.vN.json) found');
  return new Catalog(latest.values());
}

function compileSchemaFile(path: string, name: string, ajv: Ajv): DeviceType {
  const fail = (detail: string) => ERR_SCHEMA_FILE(path, detail);
  const m = FILE_RE.exec(name);
  if (!m) throw fail('file name must be {type}.v{N}.json with a lower-case kebab-case type');
  const [, fileType = '', fileVersion = ''] = m;
  let schema: Record<string, unknown>;
  try {
    schema = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw fail(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw fail('must be a JSON object');
  }
  if (schema['x-type'] !== fileType) throw fail(`x-type must be "${fileType}" (the file name)`);
  if (schema['x-version'] !== Number(fileVersion)) {
    throw fail(`x-version must be ${fileVersion} (the file name)`);
  }
  const category = schema['x-category'];
  if (!CATEGORIES.includes(category as Category)) {
    throw fail(`x-category must be one of ${CATEGORIES.join(', ')}`);
  }
  const measurement = schema['x-measurement'];
  if (typeof measurement !== 'string' || !SNAKE_RE.test(measurement)) {
    throw fail('x-measurement must be a snake_case name');
  }
  const interval = schema['x-interval-seconds'];
  if (typeof interval !== 'number' || !Number.isInteger(interval) || interval <= 0) {
    throw fail('x-interval-seconds must be a positive integer');
  }
  if (schema.type !== 'object' || schema.additionalProperties !== false) {
    throw fail('must describe an object with "additionalProperties": false');
  }
  const props = schema.properties;
  if (typeof props !== 'object' || props === null || Object.keys(props).length === 0) {
    throw fail('must declare at least one property');
  }
  const fields = new Map<string, FieldKind>();
  const units = new Map<string, string>();
  for (const [field, raw] of Object.entries(props as Record<string, unknown>)) {
    const p = raw as Record<string, unknown>;
    if (!SNAKE_RE.test(field)) throw fail(`property "${field}" must be snake_case`);
    if (RESERVED_FIELDS.has(field)) throw fail(`property "${field}" is a reserved name`);
    const kind = fieldKind(p);
    if (!kind) {
      throw fail(
        `property "${field}" must have type integer, number, boolean, or string with an enum of one-line texts`,
      );
    }
    fields.set(field, kind);
    if (typeof p['x-unit'] === 'string') units.set(field, p['x-unit']);
  }
  fields.set('seq', 'integer');
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (err) {
    throw fail(`does not compile (${(err as Error).message})`);
  }
  return {
    type: fileType,
    version: Number(fileVersion),
    category: category as Category,
    measurement,
    intervalSeconds: interval,
    title: typeof schema.title === 'string' ? schema.title : fileType,
    file: path,
    schema,
    validate,
    info: { type: fileType, measurement, fields },
    units,
  };
}

function fieldKind(p: Record<string, unknown>): FieldKind | undefined {
  switch (p.type) {
    case 'integer':
      return 'integer';
    case 'number':
      return 'float';
    case 'boolean':
      return 'boolean';
    case 'string':
      return Array.isArray(p.enum) && p.enum.length > 0 && p.enum.every(isStorableText)
        ? 'string'
        : undefined;
    default:
      return undefined;
  }
}

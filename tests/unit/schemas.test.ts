import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CATEGORIES, loadCatalog, type DeviceType } from '../../src/ingest/catalog.js';

const catalog = loadCatalog('schemas');

/** One realistic reading per device type; a new schema needs a line here. */
const VALID = new Map<string, Record<string, unknown>>([
  [
    'traffic-flow',
    {
      vehicle_count: 23,
      heavy_vehicle_count: 2,
      speed_kmh: 38.4,
      occupancy_pct: 14.2,
      queue_length_m: 63,
    },
  ],
  [
    'traffic-signal',
    {
      mode: 'adaptive',
      current_phase: 2,
      phase_count: 4,
      cycle_length_s: 140,
      phase_remaining_s: 17,
      green_split_pct: 52.5,
      pedestrian_calls: 3,
      controller_fault: false,
    },
  ],
  [
    'parking',
    {
      occupied_spaces: 412,
      capacity_spaces: 650,
      occupancy_pct: 63.4,
      entries_count: 18,
      exits_count: 9,
    },
  ],
  [
    'air-quality',
    {
      pm25_ugm3: 48.2,
      pm10_ugm3: 77,
      no2_ugm3: 31.5,
      so2_ugm3: 8.1,
      o3_ugm3: 62.3,
      co_mgm3: 0.82,
    },
  ],
  [
    'weather',
    {
      temperature_c: 6.4,
      humidity_pct: 71.2,
      pressure_hpa: 1024.6,
      wind_speed_ms: 2.8,
      wind_gust_ms: 5.1,
      wind_direction_deg: 35,
      rain_rate_mmh: 0,
      solar_radiation_wm2: 412,
    },
  ],
  ['noise', { laeq_dba: 64.3, lamax_dba: 81.2, lamin_dba: 48.9, la10_dba: 67.5, la90_dba: 53.1 }],
  [
    'water-quality',
    {
      water_temperature_c: 27.85,
      ph: 8.62,
      dissolved_oxygen_mgl: 9.41,
      turbidity_ntu: 42.5,
      chlorophyll_a_ugl: 86.3,
      ammonia_nitrogen_mgl: 0.214,
      conductivity_uscm: 488,
    },
  ],
  [
    'streetlight',
    {
      lamp_on: true,
      dimming_level_pct: 60,
      power_w: 92.4,
      voltage_v: 226.8,
      current_a: 0.424,
      ambient_light_lux: 3,
      lamp_fault: false,
    },
  ],
  ['manhole', { tilt_deg: 1.2, water_level_cm: 34.5, cover_open: false, battery_pct: 71 }],
  [
    'bridge-structure',
    {
      strain_ue: 86.2,
      strain_peak_ue: 141.7,
      vibration_rms_ms2: 0.0312,
      vibration_peak_ms2: 0.1544,
      dominant_frequency_hz: 2.412,
      displacement_mm: -6.25,
      deck_temperature_c: 8.9,
    },
  ],
  [
    'water-pipe',
    {
      pressure_kpa: 352.4,
      flow_m3h: 486.1,
      leak_probability_pct: 4.2,
      leak_detected: false,
      water_temperature_c: 11.3,
      chlorine_residual_mgl: 0.52,
    },
  ],
]);

type Props = Record<string, Record<string, unknown>>;
const propsOf = (t: DeviceType): Props => t.schema.properties as Props;
const requiredOf = (t: DeviceType): string[] => t.schema.required as string[];
const fieldsOfType = (t: DeviceType, ...kinds: string[]): string[] =>
  Object.entries(propsOf(t))
    .filter(([, p]) => kinds.includes(p.type as string))
    .map(([name]) => name);

function validReading(t: DeviceType): Record<string, unknown> {
  const reading = VALID.get(t.type);
  if (!reading) throw new Error(`no valid example for ${t.type}`);
  return reading;
}

/** Bad variants of a type's valid reading, all built as JSON text as a device would send them. */
function badReadings(t: DeviceType): [string, string][] {
  const valid = validReading(t);
  const props = propsOf(t);
  const numeric = fieldsOfType(t, 'number', 'integer');
  const first = requiredOf(t)[0] ?? '';
  const numericField = numeric[0] ?? '';
  const bounds = props[numericField] ?? {};
  const cases: [string, Record<string, unknown> | string][] = [
    ['a string where a number belongs', { ...valid, [numericField]: String(valid[numericField]) }],
    ['a value above the maximum', { ...valid, [numericField]: (bounds.maximum as number) + 1 }],
    ['a value below the minimum', { ...valid, [numericField]: (bounds.minimum as number) - 1 }],
    [
      'a missing required field',
      Object.fromEntries(Object.entries(valid).filter(([k]) => k !== first)),
    ],
    ['an unknown field', { ...valid, pm1_ugm3: 3 }],
    ['a reserved field name', { ...valid, device_id: 'someone-else' }],
    ['null for a field', { ...valid, [first]: null }],
    ['an empty object', {}],
    ['an array instead of an object', '[1, 2, 3]'],
    ['an own "__proto__" key', `{${JSON.stringify(valid).slice(1, -1)}, "__proto__": 1}`],
    ['an own "constructor" key', `{${JSON.stringify(valid).slice(1, -1)}, "constructor": {}}`],
    ['required fields hidden behind "__proto__"', `{"__proto__": ${JSON.stringify(valid)}}`],
  ];
  const integerField = fieldsOfType(t, 'integer')[0];
  if (integerField) cases.push(['1.5 for an integer field', { ...valid, [integerField]: 1.5 }]);
  const booleanField = fieldsOfType(t, 'boolean')[0];
  if (booleanField)
    cases.push(['"true" for a boolean field', { ...valid, [booleanField]: 'true' }]);
  const enumField = fieldsOfType(t, 'string')[0];
  if (enumField) cases.push(['a value outside the enum', { ...valid, [enumField]: 'manual' }]);
  return cases.map(([name, body]) => [
    name,
    typeof body === 'string' ? body : JSON.stringify(body),
  ]);
}

const types = catalog.list();

describe('device catalogue', () => {
  it('has at least nine types and three in each category', () => {
    expect(types.length).toBeGreaterThanOrEqual(9);
    for (const category of CATEGORIES) {
      expect(types.filter((t) => t.category === category).length).toBeGreaterThanOrEqual(3);
    }
  });

  it('has a valid example reading for every type and no example without a type', () => {
    expect([...VALID.keys()].sort()).toEqual(types.map((t) => t.type).sort());
  });

  it.each(types.map((t) => [t.type, t] as const))(
    '%s follows the schema conventions (units, ranges, descriptions, snake_case measurement)',
    (_name, t) => {
      expect(t.measurement).toBe(t.type.replaceAll('-', '_'));
      expect(t.schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
      expect(typeof t.schema.description).toBe('string');
      expect(t.schema['x-thresholds']).toBeUndefined();
      const required = requiredOf(t);
      expect(required.length).toBeGreaterThan(0);
      for (const field of required) expect(propsOf(t)).toHaveProperty(field);
      for (const [field, p] of Object.entries(propsOf(t))) {
        expect(typeof p.description, field).toBe('string');
        if (p.type === 'number' || p.type === 'integer') {
          expect(typeof p['x-unit'], field).toBe('string');
          expect(p.minimum as number, field).toBeLessThan(p.maximum as number);
        }
        if (p.type === 'string') expect(Array.isArray(p.enum), field).toBe(true);
      }
    },
  );
});

describe.each(types.map((t) => [t.type, t] as const))('%s schema', (_name, t) => {
  it('accepts a realistic reading', () => {
    const ok = t.validate(validReading(t));
    expect(t.validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('accepts a reading with only the required fields', () => {
    const valid = validReading(t);
    expect(t.validate(Object.fromEntries(requiredOf(t).map((k) => [k, valid[k]])))).toBe(true);
  });

  it.each(badReadings(t))('rejects %s', (_case, json) => {
    expect(t.validate(JSON.parse(json))).toBe(false);
  });
});

describe('loadCatalog with a broken schema file', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /** A schema directory holding one good schema plus `name` with `content`. */
  function withFile(name: string, content: string): string {
    dir = mkdtempSync(join(tmpdir(), 'taihu-schemas-'));
    copyFileSync('schemas/air-quality.v1.json', join(dir, 'air-quality.v1.json'));
    writeFileSync(join(dir, name), content);
    return dir;
  }

  const noise = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    'x-type': 'noise',
    'x-version': 1,
    'x-category': 'environment',
    'x-measurement': 'noise',
    'x-interval-seconds': 60,
    type: 'object',
    additionalProperties: false,
    properties: { laeq_dba: { type: 'number', 'x-unit': 'dB(A)' } },
  };

  it.each([
    ['is not valid JSON', 'noise.v1.json', '{ "x-type": "noise", '],
    [
      'has an unknown x-category',
      'noise.v1.json',
      JSON.stringify({ ...noise, 'x-category': 'sound' }),
    ],
    [
      'has a property without a type',
      'noise.v1.json',
      JSON.stringify({ ...noise, properties: { laeq_dba: { 'x-unit': 'dB(A)' } } }),
    ],
    [
      'has a string property without an enum',
      'noise.v1.json',
      JSON.stringify({ ...noise, properties: { band: { type: 'string' } } }),
    ],
    [
      'has an enum value with a line break (no store keeps it exactly)',
      'noise.v1.json',
      JSON.stringify({ ...noise, properties: { band: { type: 'string', enum: ['a', 'b\nc'] } } }),
    ],
    [
      'has an enum value with an unpaired surrogate',
      'noise.v1.json',
      JSON.stringify({ ...noise, properties: { band: { type: 'string', enum: ['\ud800'] } } }),
    ],
    [
      'has a string property whose enum holds a number',
      'noise.v1.json',
      JSON.stringify({ ...noise, properties: { band: { type: 'string', enum: ['a', 1] } } }),
    ],
    ['names another type than its file', 'noise-meter.v1.json', JSON.stringify(noise)],
    ['has a version other than its file', 'noise.v2.json', JSON.stringify(noise)],
    ['has a name that is not {type}.v{N}.json', 'Noise.json', JSON.stringify(noise)],
    [
      'uses a reserved field name',
      'noise.v1.json',
      JSON.stringify({ ...noise, properties: { seq: { type: 'integer' } } }),
    ],
    [
      'uses an x- keyword that does not exist',
      'noise.v1.json',
      JSON.stringify({ ...noise, 'x-units': 'dB' }),
    ],
    [
      'allows additional properties',
      'noise.v1.json',
      JSON.stringify({ ...noise, additionalProperties: true }),
    ],
  ])('stops the start when the file %s, naming the file', (_case, name, content) => {
    const schemaDir = withFile(name, content);
    expect(() => loadCatalog(schemaDir)).toThrow(name);
  });

  it('ignores files that are not .json', () => {
    const schemaDir = withFile('README.txt', 'not a schema');
    expect(
      loadCatalog(schemaDir)
        .list()
        .map((t) => t.type),
    ).toEqual(['air-quality']);
  });
});

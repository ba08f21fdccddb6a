import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FACTORS, factorFields, mapFactors, valueSuffixFor } from '../../src/hj212/factors.js';
import { parseSegment, type CpArea } from '../../src/hj212/packet.js';

const schema = (type: string) =>
  JSON.parse(readFileSync(`schemas/${type}.v1.json`, 'utf8')) as Record<string, unknown>;

/** Every mapped code, with the field it must fill: the contract the schemas carry. */
const AIR: [string, string][] = [
  ['a34004', 'pm25_ugm3'],
  ['a34002', 'pm10_ugm3'],
  ['a21026', 'so2_ugm3'],
  ['a21004', 'no2_ugm3'],
  ['a05024', 'o3_ugm3'],
  ['a21005', 'co_mgm3'],
];
const WATER: [string, string][] = [
  ['w01010', 'water_temperature_c'],
  ['w01001', 'ph'],
  ['w01009', 'dissolved_oxygen_mgl'],
  ['w01003', 'turbidity_ntu'],
  ['w01016', 'chlorophyll_a_ugl'],
  ['w21003', 'ammonia_nitrogen_mgl'],
  ['w01014', 'conductivity_uscm'],
];

function cp(segment: string): CpArea {
  const r = parseSegment(segment);
  if (!r.ok) throw new Error(r.message);
  return r.value.cp;
}

describe('HJ 212 factor codes in the schemas', () => {
  it.each([
    ['air-quality', AIR],
    ['water-quality', WATER],
  ] as const)('maps every field of %s to its factor code through x-hj212', (type, pairs) => {
    const fields = factorFields(schema(type));
    expect([...fields].sort()).toEqual([...pairs].sort());
    const props = Object.keys(schema(type).properties as object);
    expect([...fields.values()].sort()).toEqual([...props].sort());
  });

  it.each([...AIR, ...WATER])('knows %s (→ %s) and where the standard defines it', (code) => {
    const info = FACTORS.get(code);
    expect(info?.code).toBe(code);
    expect(info?.source).toMatch(/^HJ (212-2017 Table B\.[12]|52[45]-2009)/);
  });

  it('maps no code twice', () => {
    const codes = [...AIR, ...WATER].map(([c]) => c);
    expect(new Set(codes).size).toBe(codes.length);
  });
});

describe('HJ 212 CP → schema fields', () => {
  const air = factorFields(schema('air-quality'));

  it('takes -Rtd for real-time data (CN 2011)', () => {
    const r = mapFactors(
      cp(
        'ST=22;CN=2011;PW=1;MN=m;CP=&&DataTime=20261126080000;a34004-Rtd=48.2,a34004-Flag=N;a21005-Rtd=0.82&&',
      ),
      '2011',
      air,
    );
    expect(Object.fromEntries(r.data)).toEqual({ pm25_ugm3: 48.2, co_mgm3: 0.82 });
    expect(Object.fromEntries(r.flags)).toEqual({ pm25_ugm3: 'N' });
    expect(r.unknown).toEqual([]);
  });

  it.each(['2051', '2061', '2031'])('takes -Avg, with -Min/-Max and -Flag, for CN %s', (cn) => {
    const r = mapFactors(
      cp(
        `ST=22;CN=${cn};PW=1;MN=m;CP=&&DataTime=20261126080000;a34002-Min=60,a34002-Avg=77,a34002-Max=95,a34002-Flag=M&&`,
      ),
      cn,
      air,
    );
    expect(Object.fromEntries(r.data)).toEqual({ pm10_ugm3: 77 });
    expect(Object.fromEntries(r.min)).toEqual({ pm10_ugm3: 60 });
    expect(Object.fromEntries(r.max)).toEqual({ pm10_ugm3: 95 });
    expect(Object.fromEntries(r.flags)).toEqual({ pm10_ugm3: 'M' });
  });

  it('lists codes the schema does not map, and values missing for the CN', () => {
    const r = mapFactors(
      cp('ST=22;CN=2011;PW=1;MN=m;CP=&&a99999-Rtd=1;a34004-Avg=3;a21004-Rtd=31.5&&'),
      '2011',
      air,
    );
    expect(r.unknown).toEqual(['a99999', 'a34004']);
    expect(Object.fromEntries(r.data)).toEqual({ no2_ugm3: 31.5 });
  });

  it('reads values only for the data uploads it knows', () => {
    expect(valueSuffixFor('2011')).toBe('Rtd');
    expect(valueSuffixFor('2061')).toBe('Avg');
    expect(valueSuffixFor('1062')).toBeUndefined();
  });
});

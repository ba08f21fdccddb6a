/**
 * Factor codes (监测因子编码) and their mapping to schema fields.
 *
 * HJ 212-2017 Annex B lists the codes stations send: Table B.1 "水监测因子编码表" (water, citing
 * HJ 525-2009 "水污染物名称代码") and Table B.2 "气监测因子编码表" (air, citing HJ 524-2009
 * "大气污染物名称代码"). The tables are excerpts of those two code lists; codes not printed in
 * B.1/B.2 are taken from the cited list itself and marked so below.
 *
 * Which schema field a code fills is data, not code: each field of a device schema names its
 * factor with `"x-hj212": "a34004"` (DESIGN §14), and `factorFields` reads that.
 */
import type { CpArea } from './packet.js';

export interface FactorInfo {
  readonly code: string;
  readonly name: string;
  readonly english: string;
  /** Where the code is defined. */
  readonly source: string;
}

const B1 = 'HJ 212-2017 Table B.1';
const B2 = 'HJ 212-2017 Table B.2';
const HJ525 = 'HJ 525-2009 (cited by HJ 212-2017 Table B.1)';
const HJ524 = 'HJ 524-2009 (cited by HJ 212-2017 Table B.2)';

const LIST: readonly FactorInfo[] = [
  // ambient air, ST 22
  { code: 'a34004', name: '细微颗粒物 PM2.5', english: 'PM2.5', source: B2 },
  { code: 'a34002', name: '可吸入颗粒物 PM10', english: 'PM10', source: B2 },
  { code: 'a21026', name: '二氧化硫', english: 'sulphur dioxide', source: B2 },
  { code: 'a21004', name: '二氧化氮', english: 'nitrogen dioxide', source: B2 },
  { code: 'a21005', name: '一氧化碳', english: 'carbon monoxide', source: B2 },
  { code: 'a05024', name: '臭氧', english: 'ozone', source: HJ524 },
  // surface water, ST 21
  { code: 'w01001', name: 'pH 值', english: 'pH', source: B1 },
  { code: 'w01009', name: '溶解氧', english: 'dissolved oxygen', source: B1 },
  { code: 'w01010', name: '水温', english: 'water temperature', source: B1 },
  { code: 'w01014', name: '电导率', english: 'conductivity', source: B1 },
  { code: 'w21003', name: '氨氮', english: 'ammonia nitrogen', source: B1 },
  { code: 'w01003', name: '浑浊度', english: 'turbidity', source: HJ525 },
  // HJ 525-2009 names it "叶绿素" (chlorophyll); buoys report chlorophyll-a under it.
  { code: 'w01016', name: '叶绿素', english: 'chlorophyll', source: HJ525 },
];

export const FACTORS: ReadonlyMap<string, FactorInfo> = new Map(LIST.map((f) => [f.code, f]));

/** System codes (ST) of the environmental-quality stations this gateway takes (§6.6). */
export const ST = { SURFACE_WATER: '21', AMBIENT_AIR: '22', INTERACTION: '91' } as const;

/** The suffix whose value becomes the reading: real-time for 2011, the period mean otherwise. */
export function valueSuffixFor(cn: string): 'Rtd' | 'Avg' | undefined {
  if (cn === '2011') return 'Rtd';
  if (cn === '2051' || cn === '2061' || cn === '2031') return 'Avg';
  return undefined;
}

/** factor code → field, from the `x-hj212` keyword of each property of a device schema. */
export function factorFields(schema: Readonly<Record<string, unknown>>): Map<string, string> {
  const out = new Map<string, string>();
  const props = schema.properties;
  if (typeof props !== 'object' || props === null) return out;
  for (const [field, raw] of Object.entries(props as Record<string, unknown>)) {
    const code = (raw as Record<string, unknown> | null)?.['x-hj212'];
    if (typeof code === 'string') out.set(code, field);
  }
  return out;
}

export interface MappedReading {
  /** field → value of the CN's suffix (Rtd or Avg). */
  readonly data: Map<string, number>;
  /** field → `-Min` / `-Max` when sent (minute, hourly and daily data). */
  readonly min: Map<string, number>;
  readonly max: Map<string, number>;
  /** field → the `-Flag` data flag, kept as data-quality information. */
  readonly flags: Map<string, string>;
  /** Factor codes the schema does not map (or that lack the CN's value): refused by the caller. */
  readonly unknown: string[];
}

/** The schema fields a CP area fills, for command `cn`. */
export function mapFactors(
  cp: CpArea,
  cn: string,
  fields: ReadonlyMap<string, string>,
): MappedReading {
  const out: MappedReading = {
    data: new Map(),
    min: new Map(),
    max: new Map(),
    flags: new Map(),
    unknown: [],
  };
  const suffix = valueSuffixFor(cn);
  for (const [code, values] of cp.factors) {
    const field = fields.get(code);
    const value = suffix === undefined ? undefined : values.numbers.get(suffix);
    if (field === undefined || value === undefined) {
      out.unknown.push(code);
      continue;
    }
    out.data.set(field, value);
    const min = values.numbers.get('Min');
    const max = values.numbers.get('Max');
    if (min !== undefined) out.min.set(field, min);
    if (max !== undefined) out.max.set(field, max);
    if (values.flag !== undefined) out.flags.set(field, values.flag);
  }
  return out;
}

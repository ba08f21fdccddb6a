/**
 * IAQI and AQI per HJ 633 (tables and their sources in ./tables.ts).
 *
 * IAQI_P = (IAQI_Hi − IAQI_Lo) / (BP_Hi − BP_Lo) × (C_P − BP_Lo) + IAQI_Lo  (HJ 633-2012 §4.2),
 * with BP_Lo ≤ C_P ≤ BP_Hi the breakpoints around the concentration; every IAQI is rounded up
 * to an integer (进位取整); AQI = max IAQI (§4.3); the primary pollutant(s) are those whose
 * IAQI equals the AQI, named only when AQI > 50; pollutants over the grade-2 limit are those
 * with IAQI > 100 (§3, terms).
 *
 * Results are keyed by the air-quality schema's field names, which are what the API returns.
 */
import { IAQI_STEPS, LEVELS, type Item, type Level, type Standard } from './tables.js';

export type Pollutant = 'pm25_ugm3' | 'pm10_ugm3' | 'so2_ugm3' | 'no2_ugm3' | 'o3_ugm3' | 'co_mgm3';

export const POLLUTANTS: readonly Pollutant[] = [
  'pm25_ugm3',
  'pm10_ugm3',
  'so2_ugm3',
  'no2_ugm3',
  'o3_ugm3',
  'co_mgm3',
];

/** The IAQI of concentration `c` on a breakpoint row; undefined above the row's top. */
export function subIndex(row: readonly number[], c: number): number | undefined {
  if (!Number.isFinite(c) || c < 0) return undefined;
  for (let k = 1; k < row.length; k++) {
    const hi = row[k] as number;
    if (c > hi) continue;
    const lo = row[k - 1] as number;
    const iLo = IAQI_STEPS[k - 1] as number;
    const iHi = IAQI_STEPS[k] as number;
    return roundUp(((iHi - iLo) / (hi - lo)) * (c - lo) + iLo);
  }
  return undefined;
}

/**
 * Rounding up, but not past a value that is an integer up to floating-point noise: CO at
 * 2.2 mg/m³ is exactly IAQI 55, and 50/2 × (2.2 − 2) evaluates to 55.000000000000007.
 */
function roundUp(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - r) < 1e-9 ? r : Math.ceil(x);
}

export interface AqiResult {
  /** undefined when no pollutant had a usable concentration. */
  readonly aqi: number | undefined;
  readonly level: Level | undefined;
  readonly iaqi: Partial<Record<Pollutant, number>>;
  /** Pollutants whose IAQI is the AQI, when AQI > 50 (首要污染物). */
  readonly primary: Pollutant[];
  /** Pollutants with IAQI > 100 (超标污染物). */
  readonly exceeding: Pollutant[];
  /** Pollutants above their row's top (PM2.5 over 500 µg/m³, …): counted as IAQI 500. */
  readonly beyondTable: Pollutant[];
  readonly standard: Standard['id'];
}

/** Concentrations as the hourly (real-time) report uses them: 1-h means. */
export interface HourlyInput extends Partial<Record<Pollutant, number>> {
  /** SO2's 24-h mean, read instead when its 1-h mean is above 800 µg/m³ (note 2). */
  so2_ugm3_24h?: number;
}

/** Concentrations as the daily report uses them. */
export interface DailyInput {
  /** 24-h means. */
  pm25_ugm3?: number;
  pm10_ugm3?: number;
  so2_ugm3?: number;
  no2_ugm3?: number;
  co_mgm3?: number;
  /** The day's maximum 8-h moving mean of O3. */
  o3_ugm3_8h?: number;
  /** The day's maximum 1-h mean of O3, read instead when the 8-h one is above 800 (note 3). */
  o3_ugm3_1h?: number;
}

/** The real-time AQI of one hour (PM2.5 and PM10 through their 24-h rows, as the standard does). */
export function hourlyAqi(input: HourlyInput, standard: Standard): AqiResult {
  const so2 = input.so2_ugm3;
  const so2High = so2 !== undefined && so2 > topOf(standard, 'so2_1h');
  return compute(standard, [
    ['pm25_ugm3', 'pm25_24h', input.pm25_ugm3],
    ['pm10_ugm3', 'pm10_24h', input.pm10_ugm3],
    ['so2_ugm3', so2High ? 'so2_24h' : 'so2_1h', so2High ? input.so2_ugm3_24h : so2],
    ['no2_ugm3', 'no2_1h', input.no2_ugm3],
    ['co_mgm3', 'co_1h', input.co_mgm3],
    ['o3_ugm3', 'o3_1h', input.o3_ugm3],
  ]);
}

/** The AQI of one day: 24-h means and the O3 daily maximum 8-h mean. */
export function dailyAqi(input: DailyInput, standard: Standard): AqiResult {
  const o3 = input.o3_ugm3_8h;
  const o3High = o3 !== undefined && o3 > topOf(standard, 'o3_8h');
  return compute(standard, [
    ['pm25_ugm3', 'pm25_24h', input.pm25_ugm3],
    ['pm10_ugm3', 'pm10_24h', input.pm10_ugm3],
    ['so2_ugm3', 'so2_24h', input.so2_ugm3],
    ['no2_ugm3', 'no2_24h', input.no2_ugm3],
    ['co_mgm3', 'co_24h', input.co_mgm3],
    ['o3_ugm3', o3High ? 'o3_1h' : 'o3_8h', o3High ? input.o3_ugm3_1h : o3],
  ]);
}

/** The level (1–6, category, colour) of an AQI value (HJ 633 Table 2). */
export function levelOf(aqi: number): Level {
  return LEVELS.find((l) => aqi <= l.upTo) ?? (LEVELS[5] as Level);
}

function topOf(standard: Standard, item: Item): number {
  const row = standard.table[item];
  return row[row.length - 1] as number;
}

/** Each pollutant's IAQI from the row its concentration is read with, and the AQI of them all. */
function compute(
  standard: Standard,
  items: readonly (readonly [Pollutant, Item, number | undefined])[],
): AqiResult {
  const iaqi: Partial<Record<Pollutant, number>> = {};
  const beyondTable: Pollutant[] = [];
  for (const [p, item, c] of items) {
    if (c === undefined || !Number.isFinite(c) || c < 0) continue;
    const row = standard.table[item];
    const v = subIndex(row, c);
    if (v === undefined) beyondTable.push(p); // above a full row's top: nothing higher is defined
    iaqi[p] = v ?? (IAQI_STEPS[row.length - 1] as number);
  }
  const entries = POLLUTANTS.flatMap((p) => (iaqi[p] === undefined ? [] : [[p, iaqi[p]] as const]));
  const aqi = entries.length === 0 ? undefined : Math.max(...entries.map(([, v]) => v));
  return {
    aqi,
    level: aqi === undefined ? undefined : levelOf(aqi),
    iaqi,
    primary:
      aqi !== undefined && aqi > 50 ? entries.filter(([, v]) => v === aqi).map(([p]) => p) : [],
    exceeding: entries.filter(([, v]) => v > 100).map(([p]) => p),
    beyondTable,
    standard: standard.id,
  };
}

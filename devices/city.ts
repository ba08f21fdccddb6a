/**
 * City-wide conditions that every simulated device correlates with: weather (rain
 * episodes, temperature, humidity, wind, air stagnation), traffic demand and daylight,
 * for Wuxi (31.5°N, 120.3°E, China Standard Time, humid subtropical with a June–July
 * plum-rain season and calm, inversion-prone winters).
 *
 * Every answer is a pure function of (seed, t): backfill and live simulation may ask for
 * any time in any order and agree.
 */
import type { CityConditions } from './models/types.js';
import {
  deriveSeed,
  episodeAt,
  episodesBetween,
  hashUnit,
  valueNoise,
  type EpisodeOptions,
} from './rng.js';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export const WUXI_LAT = 31.5;
export const WUXI_LON = 120.3;
/** China Standard Time; no daylight saving since 1991. */
const UTC_OFFSET_MS = 8 * HOUR;
const YEAR_DAYS = 365.25;

export interface LocalTime {
  /** Hour of the local day, fractional, in [0, 24). */
  readonly hour: number;
  /** 0 = Sunday … 6 = Saturday. */
  readonly weekday: number;
  /** Days since 1 January, fractional, in [0, 366). */
  readonly dayOfYear: number;
  /** Whole local days since the Unix epoch; a stable key for per-day variation. */
  readonly dayIndex: number;
}

export function localTime(t: number): LocalTime {
  const local = t + UTC_OFFSET_MS;
  const dayIndex = Math.floor(local / DAY);
  const hour = (local - dayIndex * DAY) / HOUR;
  // 1970-01-01 was a Thursday.
  const weekday = (((dayIndex + 4) % 7) + 7) % 7;
  const year = new Date(local).getUTCFullYear();
  const dayOfYear = (local - Date.UTC(year, 0, 1)) / DAY;
  return { hour, weekday, dayIndex, dayOfYear };
}

export function isWeekend(t: number): boolean {
  const { weekday } = localTime(t);
  return weekday === 0 || weekday === 6;
}

/** 1 in the coldest part of the year (late January), 0 in the hottest (late July). */
export function winterness(t: number): number {
  const { dayOfYear } = localTime(t);
  return 0.5 + 0.5 * Math.cos((2 * Math.PI * (dayOfYear - 22)) / YEAR_DAYS);
}

/** Sun elevation in degrees (NOAA's low-precision formulae, good to a fraction of a degree). */
export function solarElevationDeg(t: number, lat = WUXI_LAT, lon = WUXI_LON): number {
  const d = new Date(t);
  const year = d.getUTCFullYear();
  const dayOfYear = (t - Date.UTC(year, 0, 1)) / DAY;
  const utcHours = (t - Date.UTC(year, d.getUTCMonth(), d.getUTCDate())) / HOUR;
  const g = ((2 * Math.PI) / YEAR_DAYS) * dayOfYear;
  const eqTimeMin =
    229.18 *
    (0.000075 +
      0.001868 * Math.cos(g) -
      0.032077 * Math.sin(g) -
      0.014615 * Math.cos(2 * g) -
      0.040849 * Math.sin(2 * g));
  const decl =
    0.006918 -
    0.399912 * Math.cos(g) +
    0.070257 * Math.sin(g) -
    0.006758 * Math.cos(2 * g) +
    0.000907 * Math.sin(2 * g) -
    0.002697 * Math.cos(3 * g) +
    0.00148 * Math.sin(3 * g);
  const solarMin = utcHours * 60 + eqTimeMin + 4 * lon;
  const hourAngle = ((solarMin / 4 - 180) * Math.PI) / 180;
  const phi = (lat * Math.PI) / 180;
  const sinEl =
    Math.sin(phi) * Math.sin(decl) + Math.cos(phi) * Math.cos(decl) * Math.cos(hourAngle);
  return (Math.asin(Math.max(-1, Math.min(1, sinEl))) * 180) / Math.PI;
}

/**
 * -1 at the daily minimum (05:30), +1 at the maximum (14:30): warming is quicker than
 * cooling, as on a real day.
 */
function diurnalShape(hour: number): number {
  if (hour >= 5.5 && hour < 14.5) return -Math.cos((Math.PI * (hour - 5.5)) / 9);
  const sinceMax = (hour - 14.5 + 24) % 24;
  return Math.cos((Math.PI * sinceMax) / 15);
}

/** Climatological mean air temperature for the time of year (Wuxi: ~3.7 °C Jan, ~28.9 °C Jul). */
export function normalTemperatureC(t: number): number {
  const { dayOfYear } = localTime(t);
  return 16.3 - 12.6 * Math.cos((2 * Math.PI * (dayOfYear - 22)) / YEAR_DAYS);
}

/** Chance that a rain episode starts in a 6-hour slot; ~1,100 mm a year in all. */
function rainChance(t: number): number {
  const { dayOfYear } = localTime(t);
  const plumRain = Math.exp(-(((dayOfYear - 178) / 14) ** 2));
  const summer = Math.exp(-(((dayOfYear - 215) / 30) ** 2));
  const spring = Math.exp(-(((dayOfYear - 110) / 35) ** 2));
  return 0.1 + 0.3 * plumRain + 0.08 * summer + 0.06 * spring;
}

/** Share of episodes that are short, heavy convective showers rather than steady rain. */
function convectiveShare(t: number): number {
  const { dayOfYear } = localTime(t);
  return 0.65 * Math.exp(-(((dayOfYear - 210) / 40) ** 2));
}

const RAIN_EPISODES: EpisodeOptions = {
  slotMs: 6 * HOUR,
  chance: rainChance,
  minMs: 45 * MINUTE,
  maxMs: 12 * HOUR,
};

/** Relative traffic volume of each district and how early (−) or late (+) its peaks come, in h. */
const DISTRICT_TRAFFIC = new Map<string, { readonly scale: number; readonly shiftH: number }>([
  ['liangxi', { scale: 1.0, shiftH: 0 }],
  ['xinwu', { scale: 0.98, shiftH: -0.2 }],
  ['binhu', { scale: 0.94, shiftH: 0.1 }],
  ['xishan', { scale: 0.9, shiftH: -0.1 }],
  ['huishan', { scale: 0.9, shiftH: -0.15 }],
  ['jiangyin', { scale: 0.86, shiftH: 0 }],
  ['yixing', { scale: 0.8, shiftH: 0.15 }],
]);
const DEFAULT_TRAFFIC = { scale: 0.9, shiftH: 0 };

function gauss(x: number, mu: number, sigma: number): number {
  return Math.exp(-0.5 * ((x - mu) / sigma) ** 2);
}

function smoothstep(edge0: number, edge1: number, x: number): number {
  const u = Math.min(1, Math.max(0, (x - edge0) / (edge1 - edge0)));
  return u * u * (3 - 2 * u);
}

/** Weekday: morning peak ~07:30–09:00, evening ~17:00–19:00, trough at 03:00–04:00. */
function weekdayDemand(h: number): number {
  const day = smoothstep(5.3, 7.3, h) * (1 - smoothstep(20, 23.8, h));
  return 0.05 + 0.6 * day + 0.42 * gauss(h, 8.1, 0.6) + 0.38 * gauss(h, 17.9, 0.85);
}

/** Weekend: later start, no commuter peaks, a broad late-morning and afternoon hump. */
function weekendDemand(h: number): number {
  const day = smoothstep(6.5, 9, h) * (1 - smoothstep(21, 24, h));
  return 0.06 + 0.5 * day + 0.14 * gauss(h, 10.8, 1.5) + 0.16 * gauss(h, 16.5, 2);
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

export function createCity(seed: number | string): CityConditions {
  const rainSeed = deriveSeed(seed, 'rain');
  const tempSeed = deriveSeed(seed, 'temperature');
  const humiditySeed = deriveSeed(seed, 'humidity');
  const windSeed = deriveSeed(seed, 'wind');
  const gustSeed = deriveSeed(seed, 'gust');
  const inversionSeed = deriveSeed(seed, 'inversion');
  const trafficSeed = deriveSeed(seed, 'traffic');

  const rainMmH = (t: number): number => {
    let total = 0;
    for (const e of episodesBetween(rainSeed, t, t + 1, RAIN_EPISODES)) {
      const kindDraw = hashUnit(rainSeed, e.start, 11);
      const convective = kindDraw < convectiveShare(e.start);
      const length = convective
        ? Math.min(e.end - e.start, 30 * MINUTE + hashUnit(rainSeed, e.start, 12) * 2.5 * HOUR)
        : e.end - e.start;
      const x = (t - e.start) / length;
      if (x < 0 || x >= 1) continue;
      // Exponential peak intensities: mostly light, occasionally torrential.
      const meanPeak = convective
        ? 14
        : 2.2 + 2.5 * Math.exp(-(((localTime(e.start).dayOfYear - 178) / 14) ** 2));
      const peak = -Math.log(1 - e.strength * 0.995) * meanPeak;
      const flicker = 0.6 + 0.4 * valueNoise(deriveSeed(rainSeed, e.start), t / (12 * MINUTE));
      total += peak * Math.sin(Math.PI * x) ** 1.5 * flicker;
    }
    return total < 0.05 ? 0 : Math.min(total, 150);
  };

  /** Rain over the last few hours, weighted towards now: wet ground, washed air. */
  const recentRain = (t: number): number => {
    let sum = 0;
    let weight = 0;
    for (let k = 0; k <= 6; k++) {
      const w = Math.exp(-k / 2.5);
      sum += w * rainMmH(t - k * 30 * MINUTE);
      weight += w;
    }
    return sum / weight;
  };

  const cloudiness = (t: number): number =>
    clamp(Math.max(rainMmH(t), rainMmH(t - HOUR), rainMmH(t + HOUR)) / 1.5, 0, 1);

  const inversion = (t: number): number => {
    const e = episodeAt(inversionSeed, t, {
      slotMs: 4 * DAY,
      chance: (s) => 0.7 * winterness(s) ** 2,
      minMs: 1.5 * DAY,
      maxMs: 4 * DAY,
    });
    if (!e) return 0;
    // Builds up and clears over half a day rather than switching.
    const ramp = Math.min(1, (t - e.start) / (12 * HOUR), (e.end - t) / (12 * HOUR));
    return ramp * (0.6 + 0.4 * e.strength);
  };

  const temperatureC = (t: number): number => {
    const { hour } = localTime(t);
    const anomaly =
      3 * valueNoise(tempSeed, t / (3 * DAY)) + 1.2 * valueNoise(tempSeed ^ 1, t / (0.8 * DAY));
    const amplitude = 3.9 * (1 - 0.7 * cloudiness(t));
    const rainCooling = Math.min(4, 1.3 * Math.sqrt(rainMmH(t)));
    return clamp(
      normalTemperatureC(t) + anomaly + amplitude * diurnalShape(hour) - rainCooling,
      -15,
      42,
    );
  };

  const darkness = (t: number): number => 1 - smoothstep(-6, 3, solarElevationDeg(t));

  const windMs = (t: number): number => {
    const regime = valueNoise(windSeed, t / (3 * DAY));
    const gusts = valueNoise(gustSeed, t / (4 * HOUR));
    const { dayOfYear } = localTime(t);
    const spring = 0.25 * gauss(dayOfYear, 95, 30);
    const mixing = 1 + 0.3 * (1 - darkness(t));
    const calm = 1 - 0.45 * inversion(t);
    const showers = 1.5 * clamp(rainMmH(t) / 4, 0, 1);
    return clamp(
      2.3 * Math.exp(0.45 * regime + 0.25 * gusts + spring) * mixing * calm + showers,
      0.1,
      30,
    );
  };

  const humidityPct = (t: number): number => {
    const { hour } = localTime(t);
    const base = 72 + 8 * (1 - winterness(t)) + 8 * valueNoise(humiditySeed, t / (2 * DAY));
    const diurnal = -12 * diurnalShape(hour) * (1 - 0.7 * cloudiness(t));
    const dry = base + diurnal;
    const wet = clamp(recentRain(t) / 2, 0, 1);
    return clamp(dry + (99 - dry) * wet, 20, 100);
  };

  const stagnation = (t: number): number => {
    const w = winterness(t);
    let s = 0.2 + 0.25 * w + 0.35 * inversion(t) + 0.15 * darkness(t);
    s -= 0.07 * (windMs(t) - 2.3);
    s *= 1 - 0.85 * clamp(recentRain(t) / 3, 0, 1);
    return clamp(s, 0, 1);
  };

  const trafficDemand = (t: number, district: string): number => {
    const profile = DISTRICT_TRAFFIC.get(district) ?? DEFAULT_TRAFFIC;
    const local = localTime(t);
    const h = (local.hour - profile.shiftH + 24) % 24;
    const weekend = local.weekday === 0 || local.weekday === 6;
    const shape = weekend ? weekendDemand(h) : weekdayDemand(h);
    // Some days are busier than others, city-wide; rain brings a few more cars out.
    const day = 1 + 0.08 * (hashUnit(trafficSeed, local.dayIndex) * 2 - 1);
    const rain = 1 + 0.05 * clamp(rainMmH(t) / 5, 0, 1);
    return clamp(shape * profile.scale * day * rain, 0, 1.2);
  };

  return { rainMmH, temperatureC, trafficDemand, darkness, humidityPct, windMs, stagnation };
}

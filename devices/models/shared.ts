/** Small helpers the device models share. */
import { MINUTE } from '../city.js';
import type { CityConditions, Rng } from './types.js';

export function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

/** Rounds to `digits` decimals, as a sensor's firmware would before sending. */
export function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** A value kept inside [lo, hi] and rounded, so it always satisfies the schema's range. */
export function fit(v: number, lo: number, hi: number, digits = 1): number {
  return clamp(round(v, digits), lo, hi);
}

/** A Poisson-distributed count (Knuth for small means, a normal approximation beyond). */
export function poisson(rng: Rng, mean: number): number {
  if (!(mean > 0)) return 0;
  if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * rng.normal()));
  const limit = Math.exp(-mean);
  let k = 0;
  let p = rng.next();
  while (p > limit) {
    k++;
    p *= rng.next();
  }
  return k;
}

/** A count of `n` trials that each succeed with probability `p`. */
export function binomial(rng: Rng, n: number, p: number): number {
  if (n > 60) return clamp(Math.round(n * p + Math.sqrt(n * p * (1 - p)) * rng.normal()), 0, n);
  let k = 0;
  for (let i = 0; i < n; i++) if (rng.next() < p) k++;
  return k;
}

/** A 32-bit seed drawn from the device's stream, for stateless noise of its own. */
export function subSeed(rng: Rng): number {
  return rng.int(0, 0xffffffff);
}

/**
 * Rain over the last `hours`, as a mean intensity in mm/h in which each sample counts less
 * the longer ago it fell (e-folding time `decayH`): what soaks the ground, fills drains
 * and washes the air. Sampled every `stepMin` minutes.
 */
export function rainHistory(
  city: CityConditions,
  t: number,
  hours: number,
  decayH: number,
  stepMin = 15,
): number {
  let sum = 0;
  let weight = 0;
  const steps = Math.round((hours * 60) / stepMin);
  for (let k = 0; k <= steps; k++) {
    const w = Math.exp(-(k * stepMin) / (60 * decayH));
    sum += w * city.rainMmH(t - k * stepMin * MINUTE);
    weight += w;
  }
  return sum / weight;
}

/** Smooth -1 … +1 daily wave with its minimum at `minHour` and maximum at `maxHour` (local). */
export function dailyWave(hour: number, minHour: number, maxHour: number): number {
  const rise = (maxHour - minHour + 24) % 24;
  const sinceMin = (hour - minHour + 24) % 24;
  if (sinceMin < rise) return -Math.cos((Math.PI * sinceMin) / rise);
  return Math.cos((Math.PI * (sinceMin - rise)) / (24 - rise));
}

/** Gaussian bump of height 1 at `mu`. */
export function bump(x: number, mu: number, sigma: number): number {
  return Math.exp(-0.5 * ((x - mu) / sigma) ** 2);
}

/** 0 below `edge0`, 1 above `edge1`, smooth between. */
export function smoothstep(edge0: number, edge1: number, x: number): number {
  const u = clamp((x - edge0) / (edge1 - edge0), 0, 1);
  return u * u * (3 - 2 * u);
}

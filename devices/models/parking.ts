/**
 * Public car park. Occupancy follows what the car park serves: shopping (afternoons,
 * evenings, weekends), offices (working hours), a station (all day) or homes (nights).
 * Entries and exits are the change in occupancy plus a turnover of short stays.
 */
import { HOUR, MINUTE, localTime } from '../city.js';
import { valueNoise } from '../rng.js';
import { bump, clamp, fit, poisson, smoothstep, subSeed } from './shared.js';
import type { DeviceModel } from './types.js';

/** Matches `x-interval-seconds` of parking.v1. */
const INTERVAL_MS = 5 * MINUTE;

type Use = 'shopping' | 'office' | 'station' | 'residential';

const between = (h: number, from: number, to: number, ramp: number): number =>
  smoothstep(from - ramp, from + ramp, h) * (1 - smoothstep(to - ramp, to + ramp, h));

function share(use: Use, h: number, weekend: boolean): number {
  switch (use) {
    case 'shopping':
      return weekend
        ? 0.08 + 0.8 * bump(h, 15, 3.2)
        : 0.06 + 0.4 * bump(h, 13, 2.5) + 0.55 * bump(h, 19.3, 1.8);
    case 'office':
      return weekend ? 0.1 + 0.1 * between(h, 9, 17, 1) : 0.05 + 0.85 * between(h, 8.7, 18, 0.7);
    case 'station':
      return 0.3 + 0.5 * between(h, 7, 21, 1.2) + (weekend ? 0.1 : 0);
    case 'residential':
      return weekend
        ? 0.88 - 0.25 * between(h, 10, 18, 1.5)
        : 0.92 - 0.5 * between(h, 8.2, 18, 0.8);
  }
}

export const parking: DeviceModel = {
  type: 'parking',
  create(_device, rng) {
    const uses: readonly Use[] = ['shopping', 'shopping', 'office', 'station', 'residential'];
    const use = uses[rng.int(0, uses.length - 1)] ?? 'shopping';
    const capacity = rng.int(15, 150) * 10;
    const popularity = rng.range(0.75, 1.08);
    // Short stays per space per hour: busy for shops and stations, little for homes.
    const turnoverPerH = use === 'residential' ? 0.01 : use === 'office' ? 0.03 : 0.08;
    const seed = subSeed(rng);

    const occupied = (t: number): number => {
      const { hour, weekday } = localTime(t);
      const weekend = weekday === 0 || weekday === 6;
      const wobble = 1 + 0.07 * valueNoise(seed, t / (4 * HOUR));
      return Math.round(capacity * clamp(share(use, hour, weekend) * popularity * wobble, 0, 1));
    };

    return (t) => {
      const now = occupied(t);
      const change = now - occupied(t - INTERVAL_MS);
      const turnover = (capacity * turnoverPerH * INTERVAL_MS) / HOUR;
      return {
        occupied_spaces: now,
        capacity_spaces: capacity,
        occupancy_pct: fit((now / capacity) * 100, 0, 100),
        entries_count: clamp(poisson(rng, turnover + Math.max(0, change)), 0, 5000),
        exits_count: clamp(poisson(rng, turnover + Math.max(0, -change)), 0, 5000),
      };
    };
  },
};

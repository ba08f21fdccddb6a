/**
 * Monitoring point on a drinking-water main. Flow follows the city's water use (a night
 * minimum around 03:00, a morning peak, an evening peak, more in summer); pressure falls
 * as flow rises (friction loss grows with flow^1.85, Hazen–Williams). A leak adds flow that
 * never stops, most visible at night, lowers the pressure, and the acoustic sensor's leak
 * probability climbs until it raises the alarm; repairs come within days.
 */
import { DAY, HOUR, localTime, winterness } from '../city.js';
import { episodeAt, valueNoise, type EpisodeOptions } from '../rng.js';
import { bump, fit, subSeed } from './shared.js';
import type { DeviceModel } from './types.js';

const LEAKS: EpisodeOptions = { slotMs: 30 * DAY, chance: 0.12, minMs: 2 * DAY, maxMs: 12 * DAY };
/** The acoustic sensor declares a leak at this probability, %. */
const ALARM_PCT = 70;

/** Water use relative to the daily mean. */
function waterUse(hour: number, weekend: boolean): number {
  const morning = weekend ? bump(hour, 8.8, 1.6) : bump(hour, 7.2, 1.1);
  return 0.35 + 0.55 * bump(hour, 13, 5) + 0.75 * morning + 0.7 * bump(hour, 19.8, 1.7);
}

export const waterPipe: DeviceModel = {
  type: 'water-pipe',
  create(_device, rng) {
    const meanFlow = rng.range(80, 900);
    const staticKpa = rng.range(330, 450);
    const frictionKpa = rng.range(25, 60);
    const chlorineBase = rng.range(0.45, 0.8);
    const seed = subSeed(rng);

    return (t) => {
      const { hour, weekday } = localTime(t);
      const summer = 1 - winterness(t);
      const use = waterUse(hour, weekday === 0 || weekday === 6) * (0.92 + 0.16 * summer);
      const leak = episodeAt(seed, t, LEAKS);
      const growth = leak ? Math.min(1, (t - leak.start) / (12 * HOUR)) : 0;
      const leakFlow = leak ? (0.05 + 0.2 * leak.strength) * meanFlow * growth : 0;

      const flow = meanFlow * use * (1 + 0.05 * valueNoise(seed, t / HOUR)) + leakFlow;
      const friction = frictionKpa * (flow / meanFlow) ** 1.85;
      const pressure =
        staticKpa - friction - (leak ? (10 + 40 * leak.strength) * growth : 0) + 2 * rng.normal();

      const probability = leak
        ? 50 + 45 * growth * (0.6 + 0.4 * leak.strength) + 4 * rng.normal()
        : 3 + 8 * rng.next() * rng.next();
      const leakPct = fit(probability, 0, 100);

      const { dayOfYear } = localTime(t);
      const waterC =
        17 - 9 * Math.cos((2 * Math.PI * (dayOfYear - 50)) / 365.25) + 0.1 * rng.normal();
      // Older water (slow night flow) and warm water hold less chlorine.
      const chlorine = chlorineBase - 0.012 * (waterC - 15) - 0.08 / use + 0.02 * rng.normal();

      return {
        pressure_kpa: fit(pressure, 0, 2500),
        flow_m3h: fit(flow * (1 + 0.01 * rng.normal()), -10000, 10000),
        leak_probability_pct: leakPct,
        leak_detected: leakPct >= ALARM_PCT,
        water_temperature_c: fit(waterC, 0, 40),
        chlorine_residual_mgl: fit(chlorine, 0.05, 5, 2),
      };
    };
  },
};

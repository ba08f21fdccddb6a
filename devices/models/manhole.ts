/**
 * Manhole monitor. The water in the well sits at the sewer's dry-weather flow (a little
 * higher at the morning and evening water-use peaks) and rises with the last hours' rain,
 * up to surcharging the well in a cloudburst, when the cover may lift. Covers are also
 * opened for maintenance now and then. The battery runs down over its three-to-five-year
 * life and is replaced.
 */
import { DAY, HOUR, MINUTE, localTime, winterness } from '../city.js';
import { episodeAt, type EpisodeOptions } from '../rng.js';
import { bump, clamp, fit, rainHistory, subSeed } from './shared.js';
import type { DeviceModel } from './types.js';

const OPENINGS: EpisodeOptions = {
  slotMs: 30 * DAY,
  chance: 0.1,
  minMs: 20 * MINUTE,
  maxMs: 4 * HOUR,
};
const YEAR_MS = 365.25 * DAY;

export const manhole: DeviceModel = {
  type: 'manhole',
  create(_device, rng, city) {
    const sewer = rng.chance(0.5);
    const depthCm = rng.range(150, 400);
    const dryFlowCm = sewer ? rng.range(10, 40) : rng.range(0, 8);
    // How much the level rises per mm/h of recent rain: storm drains react more.
    const responseCm = sewer ? rng.range(6, 14) : rng.range(10, 25);
    const seatedTilt = rng.range(0.3, 2.5);
    const batteryLifeMs = rng.range(3, 5) * YEAR_MS;
    const batteryPhase = rng.next();
    const seed = subSeed(rng);

    return (t) => {
      const { hour } = localTime(t);
      const usage = sewer
        ? 1 + 0.3 * bump(hour, 7.5, 1.5) + 0.25 * bump(hour, 20, 2) - 0.3 * bump(hour, 3.5, 2)
        : 1;
      const rain = rainHistory(city, t, 3, 0.75);
      const level = dryFlowCm * usage + responseCm * rain + 0.5 * rng.normal();
      const surcharged = level >= depthCm * 0.97;

      const opening = episodeAt(seed, t, OPENINGS);
      const open = opening !== undefined || (surcharged && city.rainMmH(t) > 20);
      const tilt = open
        ? 25 + 60 * (opening?.strength ?? 0.3) + 3 * rng.normal()
        : seatedTilt + 0.1 * rng.normal();

      // Crews swap the battery when the platform flags it at 10 %.
      const used = (t / batteryLifeMs + batteryPhase) % 1;
      // Cold lowers the voltage the gauge reads as charge.
      const battery = 100 - 90 * used - 3 * winterness(t);

      return {
        tilt_deg: fit(Math.abs(tilt), 0, 180),
        water_level_cm: fit(level, 0, Math.min(depthCm, 1000)),
        cover_open: open,
        battery_pct: clamp(Math.round(battery), 0, 100),
      };
    };
  },
};

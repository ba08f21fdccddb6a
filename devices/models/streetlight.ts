/**
 * Single-lamp streetlight controller. The photocell switches the lamp at dusk and dawn;
 * LED lamps dim after 23:00 until 05:00, as Wuxi's smart-lighting circuits do, while old
 * high-pressure sodium lamps cannot dim. A rare lamp failure lasts until the repair crew
 * comes: the controller still switches on but the lamp draws nothing.
 */
import { DAY, localTime, solarElevationDeg } from '../city.js';
import { episodeAt, type EpisodeOptions } from '../rng.js';
import { bump, clamp, fit, subSeed } from './shared.js';
import type { DeviceModel } from './types.js';

/** One failure in ~25 lamp-months, mended within 1–6 days. */
const FAILURES: EpisodeOptions = { slotMs: 20 * DAY, chance: 0.03, minMs: DAY, maxMs: 6 * DAY };

/** Illuminance at the photocell, lx: daylight, twilight, then the city's own glow. */
function ambientLux(elevationDeg: number, overcast: number): number {
  if (elevationDeg > 0) {
    const day = 400 + 110_000 * Math.sin((elevationDeg * Math.PI) / 180) ** 1.2;
    return day * (1 - 0.75 * overcast);
  }
  return Math.max(2, 400 * Math.exp(0.8 * elevationDeg)) * (1 - 0.5 * overcast);
}

export const streetlight: DeviceModel = {
  type: 'streetlight',
  create(_device, rng, city) {
    const led = rng.chance(0.85);
    const ratedW = led ? rng.int(6, 20) * 10 : rng.int(15, 40) * 10;
    const powerFactor = led ? 0.96 : 0.9;
    const nightDim = rng.int(5, 7) * 10;
    const switchAt = rng.range(0.4, 0.6);
    const seed = subSeed(rng);

    return (t) => {
      const { hour } = localTime(t);
      const on = city.darkness(t) >= switchAt;
      const fault = episodeAt(seed, t, FAILURES) !== undefined;
      const dimming = !on ? 0 : led && (hour >= 23 || hour < 5) ? nightDim : 100;
      let power: number;
      if (!on)
        power = 0.8 + 0.2 * rng.next(); // controller standby
      else if (fault)
        power = 1.5 + rng.next(); // driver idle, no lamp current
      else power = ratedW * (led ? dimming / 100 : 1.12) * (1 + 0.01 * rng.normal()) + 2;
      // The grid sags a little under the evening load.
      const voltage = 229 - 5 * bump(hour, 20, 2) + 1.2 * rng.normal();
      const overcast = clamp(city.rainMmH(t) / 2, 0, 1);
      return {
        lamp_on: on,
        dimming_level_pct: dimming,
        power_w: fit(power, 0, 2000),
        voltage_v: fit(voltage, 180, 260),
        current_a: fit(power / (voltage * powerFactor), 0, 20, 3),
        ambient_light_lux: fit(
          ambientLux(solarElevationDeg(t), overcast) * (1 + 0.03 * rng.normal()),
          0,
          150_000,
          0,
        ),
        lamp_fault: fault,
      };
    };
  },
};

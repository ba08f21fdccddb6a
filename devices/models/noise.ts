/**
 * Environmental noise monitor. Road traffic dominates: level rises ~10 dB per tenfold
 * traffic (energy adds), on top of a site's background; rain adds tyre spray.
 * Statistical levels are built around LAeq so that LAmin ≤ LA90 ≤ LAeq ≤ LA10 ≤ LAmax.
 */
import { clamp, fit } from './shared.js';
import type { DeviceModel } from './types.js';

const dbSum = (a: number, b: number): number => 10 * Math.log10(10 ** (a / 10) + 10 ** (b / 10));

export const noise: DeviceModel = {
  type: 'noise',
  create(device, rng, city) {
    // Level at full demand at the monitor: from a side street (~60) to an artery (~72).
    const roadDb = rng.range(60, 72);
    const backgroundDb = rng.range(36, 45);

    return (t) => {
      const demand = Math.max(city.trafficDemand(t, device.district), 0.005);
      const traffic = roadDb + 10 * Math.log10(demand) + 3 * clamp(city.rainMmH(t) / 4, 0, 1);
      const laeq = dbSum(traffic, backgroundDb) + 0.8 * rng.normal();
      const la90 = Math.min(laeq - 0.5, dbSum(traffic - 9, backgroundDb) + 0.5 * rng.normal());
      const la10 = laeq + 1.5 + 2 * rng.next();
      // Horns, motorbikes and buses: the loudest second stands well above the rest.
      const lamax = la10 + 4 + 12 * rng.next();
      const lamin = la90 - 0.5 - 3 * rng.next();
      return {
        laeq_dba: fit(laeq, 20, 140),
        lamax_dba: fit(lamax, 20, 150),
        lamin_dba: fit(lamin, 20, 140),
        la10_dba: fit(la10, 20, 140),
        la90_dba: fit(la90, 20, 140),
      };
    };
  },
};

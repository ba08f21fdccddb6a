/**
 * Air-quality station. PM2.5 is mostly regional: it builds up in calm winter inversions
 * (the city's `stagnation`) and is washed out by rain. Stations near roads add a traffic
 * share that follows demand, which is also where most NO2 and CO come from. Ozone is
 * photochemical: summer afternoons, eaten back by NO where traffic is heavy.
 */
import { HOUR, solarElevationDeg, winterness } from '../city.js';
import { valueNoise } from '../rng.js';
import { clamp, fit, rainHistory, subSeed } from './shared.js';
import type { DeviceModel } from './types.js';

export const airQuality: DeviceModel = {
  type: 'air-quality',
  create(device, rng, city) {
    const roadside = rng.chance(0.4);
    const exposure = roadside ? rng.range(0.5, 1) : rng.range(0.1, 0.35);
    const siteBias = rng.range(0.88, 1.12);
    const coarseRatio = rng.range(1.45, 1.8);
    const industrialSo2 = rng.range(0, 6);
    const seed = subSeed(rng);

    return (t) => {
      const w = winterness(t);
      const stag = city.stagnation(t);
      const demand = city.trafficDemand(t, device.district);
      // Below-cloud scavenging: a few mm/h over the last hours halves the particles.
      const washout = Math.exp(-0.22 * rainHistory(city, t, 6, 1.5, 30));
      const local = 1 + 0.1 * valueNoise(seed, t / (6 * HOUR));

      const regionalPm25 = (20 + 18 * w) * (0.5 + 1.4 * stag);
      const trafficPm25 = 16 * exposure * demand * (0.5 + stag);
      const pm25 =
        (regionalPm25 + trafficPm25) * washout * siteBias * local * (1 + 0.04 * rng.normal());

      const dry = clamp(1 - city.humidityPct(t) / 100, 0, 1);
      const dust = 25 * dry * clamp(city.windMs(t) / 6, 0, 1.5) + 10 * exposure * demand;
      const pm10 = pm25 * coarseRatio + dust * washout * (1 + 0.06 * rng.normal());

      const sun = Math.max(0, Math.sin((solarElevationDeg(t - 2 * HOUR) * Math.PI) / 180));
      const summer = 1 - w;
      const no2 =
        (8 + 14 * w + 55 * exposure * demand) *
        (0.6 + 0.9 * stag) *
        (1 - 0.3 * sun) *
        (1 - 0.15 * clamp(city.rainMmH(t) / 4, 0, 1)) *
        (1 + 0.06 * rng.normal());

      const warm = clamp((city.temperatureC(t) - 10) / 20, 0, 1.3);
      const o3 =
        (18 + 30 * summer) * (1 - 0.4 * city.darkness(t) * exposure) +
        150 * summer * sun * warm * (1 - 0.6 * clamp(city.rainMmH(t), 0, 1)) -
        0.35 * no2 * exposure;

      const so2 = (4 + 6 * w + industrialSo2) * (0.6 + 0.8 * stag) * (1 + 0.08 * rng.normal());
      const co = 0.35 + 0.6 * w * stag + 0.4 * exposure * demand + 0.03 * rng.normal();

      return {
        pm25_ugm3: fit(pm25, 1, 1000),
        pm10_ugm3: fit(Math.max(pm10, pm25), 1, 2000),
        no2_ugm3: fit(no2, 1, 2000),
        so2_ugm3: fit(so2, 1, 2000),
        o3_ugm3: fit(o3 * (1 + 0.05 * rng.normal()), 1, 1000),
        co_mgm3: fit(co, 0.1, 150, 2),
      };
    };
  },
};

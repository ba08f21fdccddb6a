/**
 * Taihu lake buoy. Water temperature lags the air by about a month. Photosynthesis drives
 * daily swings of dissolved oxygen and pH (highest mid-afternoon, lowest at dawn) whose
 * size grows with algal biomass; in warm months cyanobacteria blooms push chlorophyll-a
 * up several-fold, supersaturate the afternoons and starve the nights. Wind stirs the
 * shallow lake's sediment (turbidity); rain washes in ammonia and dilutes the water.
 */
import { DAY, localTime, normalTemperatureC } from '../city.js';
import { episodeAt, valueNoise, type EpisodeOptions } from '../rng.js';
import { clamp, dailyWave, fit, rainHistory, subSeed } from './shared.js';
import type { DeviceModel } from './types.js';

/** Seasonal lake surface temperature, °C: ~5 in early February, ~30 in early August. */
function seasonalWaterC(t: number): number {
  const { dayOfYear } = localTime(t);
  return 17.5 - 12.5 * Math.cos((2 * Math.PI * (dayOfYear - 36)) / 365.25);
}

/** Oxygen solubility in fresh water at sea level, mg/L (APHA polynomial fit). */
function oxygenSaturationMgL(tempC: number): number {
  return 14.652 - 0.41022 * tempC + 0.007991 * tempC ** 2 - 0.000077774 * tempC ** 3;
}

export const waterQuality: DeviceModel = {
  type: 'water-quality',
  create(_device, rng, city) {
    // Bays with river inflow (Meiliang, Zhushan) are more eutrophic than open water.
    const trophic = rng.range(0.6, 1.4);
    const ammoniaBase = rng.range(0.12, 0.5) * trophic;
    const turbidityBase = rng.range(18, 40);
    const conductivityBase = rng.range(430, 560);
    const seed = subSeed(rng);
    const blooms: EpisodeOptions = {
      slotMs: 5 * DAY,
      // Blooms need water above ~20 °C: May to October.
      chance: (s) => 0.3 * trophic * clamp((seasonalWaterC(s) - 20) / 8, 0, 1),
      minMs: 2 * DAY,
      maxMs: 12 * DAY,
    };

    return (t) => {
      const { hour } = localTime(t);
      const wind = city.windMs(t);
      const waterC =
        seasonalWaterC(t) +
        0.7 * dailyWave(hour, 7, 16) +
        0.15 * (city.temperatureC(t) - normalTemperatureC(t)) +
        0.05 * rng.normal();

      const summer = clamp((seasonalWaterC(t) - 8) / 22, 0, 1);
      let chl = (3 + 25 * summer * trophic) * (1 + 0.25 * valueNoise(seed, t / (2 * DAY)));
      const bloom = episodeAt(seed, t, blooms);
      if (bloom) {
        const ramp = Math.min(1, (t - bloom.start) / (1.5 * DAY), (bloom.end - t) / DAY);
        // Strong wind mixes the surface scum down out of the sensor's layer.
        const mixing = 1 - 0.5 * clamp((wind - 3) / 5, 0, 1);
        chl += (50 + 250 * bloom.strength) * ramp * mixing;
      }
      chl *= 1 + 0.05 * rng.normal();

      const cloud = clamp(city.rainMmH(t) / 1.5, 0, 1);
      const swing = Math.min(0.6, 0.05 + 0.0028 * chl) * (1 - 0.5 * cloud);
      const wave = dailyWave(hour, 6, 15.5);
      const saturation = oxygenSaturationMgL(waterC);
      const dissolvedOxygen =
        saturation * (0.97 - 0.0004 * Math.min(chl, 350) + swing * wave) + 0.05 * rng.normal();
      const ph = 7.75 + 0.0025 * Math.min(chl, 300) + 1.1 * swing * wave + 0.02 * rng.normal();

      const recentRain = rainHistory(city, t, 24, 8, 60);
      const turbidity =
        turbidityBase +
        12 * Math.max(0, wind - 3) ** 1.5 +
        4 * recentRain +
        0.08 * chl +
        1.5 * rng.normal();
      const ammonia =
        ammoniaBase * (0.6 + 0.8 * (1 - summer)) + 0.06 * recentRain + 0.01 * rng.normal();
      const conductivity = conductivityBase - 10 * recentRain + 15 * summer + 2 * rng.normal();

      return {
        water_temperature_c: fit(waterC, 0, 40, 2),
        ph: fit(ph, 6, 10.5, 2),
        dissolved_oxygen_mgl: fit(dissolvedOxygen, 0.2, 30, 2),
        turbidity_ntu: fit(turbidity, 0.5, 4000),
        chlorophyll_a_ugl: fit(chl, 0.1, 1000),
        ammonia_nitrogen_mgl: fit(ammonia, 0.01, 50, 3),
        conductivity_uscm: fit(conductivity, 50, 5000, 0),
      };
    };
  },
};

/**
 * Automatic weather station: the city's weather as seen from one site, with the site's
 * own exposure (urban heat island, sheltered or open anemometer) and patchy showers.
 */
import { HOUR, MINUTE, localTime, solarElevationDeg, winterness } from '../city.js';
import { valueNoise } from '../rng.js';
import { clamp, fit, rainHistory, subSeed } from './shared.js';
import type { DeviceModel } from './types.js';

export const weather: DeviceModel = {
  type: 'weather',
  create(device, rng, city) {
    const heatIsland = device.district === 'liangxi' ? rng.range(0.4, 1) : rng.range(-0.5, 0.5);
    const windExposure = rng.range(0.75, 1.25);
    const gustFactor = rng.range(1.4, 1.9);
    const rainCatch = rng.range(0.85, 1.15);
    const seed = subSeed(rng);

    return (t) => {
      const w = winterness(t);
      const { hour } = localTime(t);
      const temperature = city.temperatureC(t) + heatIsland + 0.1 * rng.normal();
      const humidity = city.humidityPct(t) - 2.5 * heatIsland + 0.8 * rng.normal();

      const wind = city.windMs(t) * windExposure * (1 + 0.12 * rng.normal());
      const gust = wind * gustFactor + 0.4 * Math.abs(rng.normal());
      // Winter monsoon from the north-north-east, summer monsoon from the south-east.
      const prevailing = 20 + 115 * (1 - w);
      const direction = prevailing + 60 * valueNoise(seed, t / (36 * HOUR)) + 12 * rng.normal();

      const cityRain = city.rainMmH(t);
      // Showers are patchy: each gauge catches its own share.
      const rain =
        cityRain > 0
          ? cityRain * rainCatch * (1 + 0.3 * valueNoise(seed ^ 1, t / (20 * MINUTE)))
          : 0;

      // Lows bring the rain and the wind; semidiurnal tide of ~1 hPa peaking near 10:00.
      const pressure =
        1013 +
        10 * w -
        2 * (city.windMs(t) - 2.5) -
        1.2 * rainHistory(city, t, 12, 4, 60) +
        Math.cos((4 * Math.PI * (hour - 10)) / 24) +
        0.15 * rng.normal();

      const elevation = solarElevationDeg(t);
      const clear = elevation > 0 ? 1050 * Math.sin((elevation * Math.PI) / 180) ** 1.15 : 0;
      const cloud = clamp(rainHistory(city, t, 2, 1, 30) / 1.5, 0, 1);
      const solar = clear * (1 - 0.75 * cloud) * (1 + 0.04 * rng.normal());

      return {
        temperature_c: fit(temperature, -40, 60),
        humidity_pct: fit(humidity, 1, 100),
        pressure_hpa: fit(pressure, 850, 1090),
        wind_speed_ms: fit(wind, 0, 75),
        wind_gust_ms: fit(Math.max(gust, wind), 0, 100),
        wind_direction_deg: Math.round(((direction % 360) + 360) % 360) % 360,
        rain_rate_mmh: rain < 0.1 ? 0 : fit(rain, 0, 300),
        solar_radiation_wm2: fit(solar, 0, 1500, 0),
      };
    };
  },
};

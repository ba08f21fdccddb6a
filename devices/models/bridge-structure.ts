/**
 * Structural-health node on a bridge span. Strain and vibration follow the traffic load
 * (heavier per vehicle at night, when lorries may enter the city); temperature moves the
 * expansion joint by about a millimetre per degree, adds thermal strain and softens the
 * deck (a slightly lower natural frequency when warm).
 */
import { solarElevationDeg } from '../city.js';
import { clamp, fit } from './shared.js';
import type { DeviceModel } from './types.js';

export const bridgeStructure: DeviceModel = {
  type: 'bridge-structure',
  create(device, rng, city) {
    const liveStrainUe = rng.range(40, 120);
    const thermalStrainUe = rng.range(-3, 3);
    const jointMmPerC = rng.range(0.3, 1.5);
    const naturalHz = rng.range(1.2, 4.5);
    const installC = rng.range(12, 20);

    return (t) => {
      const air = city.temperatureC(t);
      const sun = Math.max(0, Math.sin((solarElevationDeg(t) * Math.PI) / 180));
      const overcast = clamp(city.rainMmH(t) / 1.5, 0, 1);
      const deck = air + 14 * sun * (1 - 0.8 * overcast) + 0.2 * rng.normal();

      const load = city.trafficDemand(t, device.district) * (1 + 0.6 * city.darkness(t));
      const strain =
        thermalStrainUe * (deck - 20) +
        liveStrainUe * load * (0.9 + 0.2 * rng.next()) +
        2 * rng.normal();
      // The heaviest single vehicle of the interval.
      const peak = strain + liveStrainUe * Math.sqrt(load) * (0.3 + 0.9 * rng.next());
      const rms =
        (0.003 + 0.04 * load * (0.8 + 0.4 * rng.next()) + 0.002 * city.windMs(t)) *
        (1 + 0.05 * rng.normal());
      const peakAccel = rms * (3 + 3 * rng.next());

      return {
        strain_ue: fit(strain, -5000, 5000),
        strain_peak_ue: fit(Math.max(peak, strain), -5000, 5000),
        vibration_rms_ms2: fit(rms, 0, 50, 4),
        vibration_peak_ms2: fit(peakAccel, 0, 100, 4),
        dominant_frequency_hz: fit(
          naturalHz * (1 - 0.002 * (deck - 20)) + 0.01 * rng.normal(),
          0,
          50,
          3,
        ),
        displacement_mm: fit(jointMmPerC * (deck - installC) + 0.2 * rng.normal(), -500, 500, 2),
        deck_temperature_c: fit(deck, -40, 80),
      };
    };
  },
};

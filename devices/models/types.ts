/**
 * The simulator's model contract: one model per device type, deterministic for a
 * given seed. A model turns simulated time into a reading that stays inside the
 * type's JSON Schema (`schemas/{type}.v{N}.json`).
 */
import type { DevicePlacement } from '../../src/registry/registry.js';

/** A seeded pseudo-random source; the same seed gives the same sequence. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [min, max). */
  range(min: number, max: number): number;
  /** Standard normal (mean 0, sd 1). */
  normal(): number;
  /** An integer in [min, max]. */
  int(min: number, max: number): number;
  /** true with probability p. */
  chance(p: number): boolean;
}

/** A registered device as the simulator sees it (from `seeds/devices.json`). */
export type SimDevice = DevicePlacement;

/** The readings of one message: field name → value, matching the schema's `data`. */
export type Reading = Record<string, number | boolean | string>;

/** Shared, deterministic city conditions (weather, traffic demand) that models correlate with. */
export interface CityConditions {
  /** Rain intensity in mm/h at epoch ms `t` (0 when dry). */
  rainMmH(t: number): number;
  /** Air temperature in °C. */
  temperatureC(t: number): number;
  /** Relative traffic demand in [0, 1.2] for a district at `t` (weekday/weekend, peaks). */
  trafficDemand(t: number, district: string): number;
  /** 0 by day, 1 at night; between at dusk and dawn. */
  darkness(t: number): number;
  /** Relative humidity in %, city-wide. */
  humidityPct(t: number): number;
  /** Mean wind speed in m/s at 10 m, city-wide. */
  windMs(t: number): number;
  /**
   * How poorly the air mixes, in [0, 1]: high in calm winter inversions (pollutants
   * accumulate), low in wind and rain. Shared so that every station sees the same episodes.
   */
  stagnation(t: number): number;
}

/** One device's generator: called with increasing epoch-ms times. */
export type DeviceGenerator = (t: number) => Reading;

export interface DeviceModel {
  /** The device type this model plays, e.g. `air-quality`. */
  readonly type: string;
  /** Builds the generator for one device; all randomness must come from `rng`. */
  create(device: SimDevice, rng: Rng, city: CityConditions): DeviceGenerator;
}

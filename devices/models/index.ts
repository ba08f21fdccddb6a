/** Every simulator model, keyed by device type; one per schema in `schemas/`. */
import { airQuality } from './air-quality.js';
import { bridgeStructure } from './bridge-structure.js';
import { manhole } from './manhole.js';
import { noise } from './noise.js';
import { parking } from './parking.js';
import { streetlight } from './streetlight.js';
import { trafficFlow } from './traffic-flow.js';
import { trafficSignal } from './traffic-signal.js';
import type { DeviceModel } from './types.js';
import { waterPipe } from './water-pipe.js';
import { waterQuality } from './water-quality.js';
import { weather } from './weather.js';

export type {
  CityConditions,
  DeviceGenerator,
  DeviceModel,
  Reading,
  Rng,
  SimDevice,
} from './types.js';

export const MODELS: ReadonlyMap<string, DeviceModel> = new Map(
  [
    trafficFlow,
    trafficSignal,
    parking,
    airQuality,
    weather,
    noise,
    waterQuality,
    streetlight,
    manhole,
    bridgeStructure,
    waterPipe,
  ].map((m) => [m.type, m]),
);

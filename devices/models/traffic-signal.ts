/**
 * Signal controller of an intersection. Most of Wuxi's controllers run centrally adaptive
 * plans whose cycle stretches with demand; some are vehicle-actuated or fixed-time with
 * time-of-day plans; quiet intersections fall back to amber flashing at night; a rare
 * fault puts a controller into flashing (or dark) until it is repaired.
 */
import { DAY, HOUR, localTime } from '../city.js';
import { episodeAt, type EpisodeOptions } from '../rng.js';
import { clamp, fit, poisson, subSeed } from './shared.js';
import type { DeviceModel, Reading } from './types.js';

type Mode = 'fixed' | 'actuated' | 'adaptive';

const FAULTS: EpisodeOptions = { slotMs: 7 * DAY, chance: 0.06, minMs: HOUR, maxMs: 8 * HOUR };

export const trafficSignal: DeviceModel = {
  type: 'traffic-signal',
  create(device, rng, city) {
    const draw = rng.next();
    const mode: Mode = draw < 0.6 ? 'adaptive' : draw < 0.85 ? 'actuated' : 'fixed';
    const phaseCount = rng.chance(0.7) ? 4 : rng.chance(0.65) ? 3 : 2;
    const mainShare = rng.range(0.42, 0.6);
    const flashesAtNight = rng.chance(0.3);
    const offsetS = rng.int(0, 179);
    const pedestrianRate = rng.range(0.5, 4);
    const seed = subSeed(rng);

    const cycleFor = (demand: number): number => {
      switch (mode) {
        case 'fixed':
          return demand > 0.75 ? 140 : demand > 0.35 ? 110 : 80;
        case 'actuated':
          return clamp(50 + 90 * demand + 6 * rng.normal(), 40, 160);
        case 'adaptive':
          return clamp(60 + 100 * demand ** 1.2, 50, 180);
      }
    };

    return (t) => {
      const demand = city.trafficDemand(t, device.district);
      const { hour } = localTime(t);
      const fault = episodeAt(seed, t, FAULTS);
      const pedestrians = poisson(rng, pedestrianRate * demand);
      if (fault || (flashesAtNight && (hour >= 23.5 || hour < 5.5))) {
        const dark = fault !== undefined && fault.strength < 0.15;
        const reading: Reading = {
          mode: dark ? 'off' : 'flashing',
          current_phase: 0,
          phase_count: phaseCount,
          cycle_length_s: 0,
          phase_remaining_s: 0,
          pedestrian_calls: pedestrians,
          controller_fault: fault !== undefined,
        };
        return reading;
      }

      const cycle = Math.round(cycleFor(demand));
      // The main road's share grows a little with demand (the plan favours the artery).
      const split = clamp(mainShare + 0.08 * (demand - 0.5), 0.3, 0.75);
      const otherS = (cycle * (1 - split)) / (phaseCount - 1);
      const phaseEnds: number[] = [];
      let end = cycle * split;
      for (let p = 0; p < phaseCount; p++) {
        phaseEnds.push(end);
        end += otherS;
      }
      const inCycle = (Math.floor(t / 1000) + offsetS) % cycle;
      let phase = phaseEnds.findIndex((e) => inCycle < e);
      if (phase < 0) phase = phaseCount - 1;
      const remaining = Math.ceil((phaseEnds[phase] ?? cycle) - inCycle);

      return {
        mode,
        current_phase: phase + 1,
        phase_count: phaseCount,
        cycle_length_s: clamp(cycle, 0, 300),
        phase_remaining_s: clamp(remaining, 0, 300),
        green_split_pct: fit(split * 100, 0, 100),
        pedestrian_calls: clamp(pedestrians, 0, 200),
        controller_fault: false,
      };
    };
  },
};

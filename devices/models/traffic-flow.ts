/**
 * Traffic-flow detector on one approach of a signalised intersection. Volume follows the
 * city's demand curve; speed falls as the approach nears capacity (a fundamental-diagram
 * shape), and an occasional incident blocks a lane: capacity drops, speed collapses and
 * the queue grows for as long as arrivals exceed what still gets through.
 */
import { HOUR, MINUTE } from '../city.js';
import { episodeAt, type EpisodeOptions } from '../rng.js';
import { binomial, clamp, fit, poisson, subSeed } from './shared.js';
import type { DeviceModel } from './types.js';

/** Counts are per report; matches `x-interval-seconds` of traffic-flow.v1. */
const INTERVAL_S = 60;
/** Through a signalised stop line: ~1,800 veh/h of green per lane, about half the cycle green. */
const LANE_CAPACITY_VPH = 900;
/** Arrivals per lane at demand 1.0; peaks (demand ~1.1) push busy approaches past capacity. */
const LANE_DEMAND_VPH = 800;
/** How far back the approach's camera or radar can see a queue, in m. */
const DETECTION_RANGE_M = 1000;
/** Space a queued vehicle takes, in m. */
const QUEUE_SPACING_M = 7;
/** One in ~20 half-days sees an incident at a given approach, lasting 15–90 minutes. */
const INCIDENTS: EpisodeOptions = {
  slotMs: 12 * HOUR,
  chance: 0.05,
  minMs: 15 * MINUTE,
  maxMs: 90 * MINUTE,
};

export const trafficFlow: DeviceModel = {
  type: 'traffic-flow',
  create(device, rng, city) {
    const lanes = rng.chance(0.15) ? 1 : rng.chance(0.6) ? rng.int(2, 3) : 4;
    const freeFlowKmh = rng.range(42, 62);
    const busyness = rng.range(0.7, 1.15);
    const heavyShare = rng.range(0.04, 0.1);
    const seed = subSeed(rng);

    return (t) => {
      const demand = city.trafficDemand(t, device.district) * busyness;
      const rain = clamp(city.rainMmH(t) / 8, 0, 1);
      const incident = episodeAt(seed, t, INCIDENTS);
      // Navigation apps steer up to a third of the traffic around an incident within ~15 min.
      const diverted = incident ? 0.35 * Math.min(1, (t - incident.start) / (15 * MINUTE)) : 0;
      const arrivalsVph = demand * lanes * LANE_DEMAND_VPH * (1 - diverted);
      const open = incident ? (lanes > 1 ? (lanes - 1) / lanes : 0.4) : 1;
      // Wet roads lengthen headways: ~10 % less capacity in heavy rain.
      const capacityVph = lanes * LANE_CAPACITY_VPH * open * (1 - 0.1 * rain);
      const x = arrivalsVph / capacityVph;
      const servedVph = Math.min(arrivalsVph, capacityVph);

      let speed =
        x < 1 ? freeFlowKmh * (1 - 0.5 * x * x) : (freeFlowKmh * 0.5) / (1 + 2.5 * (x - 1));
      if (incident) speed *= 0.6;
      speed *= (1 - 0.12 * rain) * (1 + 0.05 * rng.normal());
      speed = clamp(speed, 3, 110);

      const count = clamp(poisson(rng, (servedVph * INTERVAL_S) / 3600), 0, 300);
      // Lorries are kept out of the centre by day and come through at night.
      const heavy = binomial(rng, count, heavyShare * (1 + 1.5 * city.darkness(t)));

      const laneVph = servedVph / lanes;
      const vehicleLengthM = 5 + 8 * heavyShare + 2; // plus the detector's own length
      let occupancy = ((laneVph * vehicleLengthM) / (speed * 1000)) * 100;
      // Oversaturated: the queue reaches back over the detector.
      if (x > 1) occupancy += 45 * clamp((x - 1) / 0.4, 0, 1);
      occupancy *= 1 + 0.05 * rng.normal();

      // Vehicles waiting at red, sampled at a random point of the cycle…
      const redQueueVeh =
        ((laneVph / 3600) * 55 * rng.next()) / Math.max(0.2, 1 - Math.min(x, 0.95));
      // …plus what has piled up while arrivals exceeded capacity during an incident.
      const overflowVeh = incident
        ? (Math.max(0, arrivalsVph - capacityVph) * (t - incident.start)) /
          HOUR /
          Math.max(1, lanes - 1)
        : 0;
      const queueM = (redQueueVeh + overflowVeh) * QUEUE_SPACING_M;

      const reading: Record<string, number> = {
        vehicle_count: count,
        heavy_vehicle_count: Math.min(heavy, count),
        occupancy_pct: fit(occupancy, 0, 100),
        queue_length_m: fit(queueM, 0, DETECTION_RANGE_M, 0),
      };
      // Mean speed is undefined when nothing passed; real detectors leave it out.
      if (count > 0) reading.speed_kmh = fit(speed, 0, 160);
      return reading;
    };
  },
};

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/ingest/catalog.js';
import { createCity, DAY, HOUR, localTime } from '../../devices/city.js';
import { MODELS } from '../../devices/models/index.js';
import type {
  CityConditions,
  DeviceGenerator,
  Reading,
  SimDevice,
} from '../../devices/models/types.js';
import { createRng, deriveSeed, episodeAt, hashUnit, valueNoise } from '../../devices/rng.js';

const catalog = loadCatalog('schemas');
const devices = JSON.parse(readFileSync('seeds/devices.json', 'utf8')) as SimDevice[];
const SEED = 20261126;
const city = createCity(SEED);

/** Wuxi wall-clock time (China Standard Time) to epoch ms. */
const cst = (local: string): number => Date.parse(`${local}+08:00`);
const WEEK = 7 * DAY;
/** Keeps the whole-week runs to a few seconds: 60-s types are sampled every 10 minutes. */
const MAX_STEPS_PER_WEEK = 1008;

function generatorFor(device: SimDevice, seed = SEED, c: CityConditions = city): DeviceGenerator {
  const model = MODELS.get(device.type);
  if (!model) throw new Error(`no model for ${device.type}`);
  return model.create(device, createRng(deriveSeed(seed, 'device', device.id)), c);
}

/** Up to `n` devices of a type, spread over the seed file (and so over districts). */
function devicesOf(type: string, n: number): SimDevice[] {
  const all = devices.filter((d) => d.type === type);
  const stride = Math.max(1, Math.floor(all.length / n));
  return all.filter((_, i) => i % stride === 0).slice(0, n);
}

/**
 * Readings of each device at each time (times are visited in increasing order, as the
 * simulator does), grouped by the label each time carries.
 */
function sample(
  group: readonly SimDevice[],
  times: readonly (readonly [number, string])[],
): Map<string, Reading[]> {
  const ordered = [...times].sort((a, b) => a[0] - b[0]);
  const out = new Map<string, Reading[]>();
  for (const device of group) {
    const gen = generatorFor(device);
    for (const [t, label] of ordered) {
      const list = out.get(label) ?? [];
      list.push(gen(t));
      out.set(label, list);
    }
  }
  return out;
}

function mean(readings: readonly Reading[] | undefined, field: string): number {
  const values = (readings ?? [])
    .map((r) => r[field])
    .filter((v): v is number => typeof v === 'number');
  if (values.length === 0) throw new Error(`no values of ${field}`);
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Weekday (Tuesday–Thursday) dates of a few weeks spread over the year. */
const WEEKDAYS = [
  '2026-01-13',
  '2026-03-18',
  '2026-05-21',
  '2026-07-14',
  '2026-10-15',
  '2026-12-09',
];

/** Relations between fields that a schema cannot express. */
const INVARIANTS = new Map<string, (r: Reading) => boolean>([
  ['parking', (r) => (r.occupied_spaces as number) <= (r.capacity_spaces as number)],
  [
    'noise',
    (r) =>
      (r.lamin_dba as number) <= (r.la90_dba as number) &&
      (r.la90_dba as number) <= (r.laeq_dba as number) &&
      (r.laeq_dba as number) <= (r.la10_dba as number) &&
      (r.la10_dba as number) <= (r.lamax_dba as number),
  ],
  ['traffic-flow', (r) => (r.heavy_vehicle_count as number) <= (r.vehicle_count as number)],
  ['traffic-signal', (r) => (r.current_phase as number) <= (r.phase_count as number)],
  ['weather', (r) => (r.wind_gust_ms as number) >= (r.wind_speed_ms as number)],
  ['air-quality', (r) => (r.pm10_ugm3 as number) >= (r.pm25_ugm3 as number)],
  ['streetlight', (r) => r.lamp_on === true || (r.power_w as number) < 5],
  ['water-pipe', (r) => r.leak_detected === (r.leak_probability_pct as number) >= 70],
]);

describe('simulator models', () => {
  it('has a model for every schema and a schema for every model', () => {
    expect([...MODELS.keys()].sort()).toEqual(catalog.list().map((t) => t.type));
    for (const [type, model] of MODELS) expect(model.type).toBe(type);
  });

  describe.each(catalog.list().map((t) => [t.type, t] as const))('%s', (type, t) => {
    it('stays inside its schema every interval over a winter week and a summer week', () => {
      const stepMs =
        Math.ceil(WEEK / MAX_STEPS_PER_WEEK / (t.intervalSeconds * 1000)) *
        t.intervalSeconds *
        1000;
      const failures: string[] = [];
      const invariant = INVARIANTS.get(type);
      let checked = 0;
      for (const device of devicesOf(type, 3)) {
        const gen = generatorFor(device);
        for (const start of [cst('2026-01-12T00:00:00'), cst('2026-07-13T00:00:00')]) {
          for (let at = start; at < start + WEEK; at += stepMs) {
            const reading = gen(at);
            checked++;
            const finite = Object.values(reading).every(
              (v) => typeof v !== 'number' || Number.isFinite(v),
            );
            if (!t.validate(reading) || !finite || (invariant && !invariant(reading))) {
              failures.push(
                `${device.id} @ ${new Date(at).toISOString()}: ${JSON.stringify(reading)} ${JSON.stringify(t.validate.errors)}`,
              );
            }
          }
        }
      }
      expect(checked).toBeGreaterThan(2000);
      expect(failures.slice(0, 3)).toEqual([]);
    });

    it('gives identical readings for the same seed and different ones for another seed', () => {
      const [device] = devicesOf(type, 1);
      if (!device) throw new Error(`no ${type} device in the seed`);
      const times = Array.from(
        { length: 200 },
        (_, i) => cst('2026-06-01T00:00:00') + i * 3 * HOUR,
      );
      const run = (seed: number) => {
        const gen = generatorFor(device, seed, createCity(seed));
        return times.map((at) => gen(at));
      };
      expect(run(1)).toEqual(run(1));
      expect(run(1)).not.toEqual(run(2));
    });
  });

  it('gives a device the same readings whatever other devices are simulated', () => {
    const [a, b] = devicesOf('air-quality', 2);
    if (!a || !b) throw new Error('need two air-quality devices');
    const times = Array.from({ length: 50 }, (_, i) => cst('2026-02-01T00:00:00') + i * HOUR);
    const alone = generatorFor(b);
    const first = generatorFor(a);
    const after = generatorFor(b);
    for (const at of times) {
      first(at);
      expect(after(at)).toEqual(alone(at));
    }
  });
});

describe('model behaviour', () => {
  it('traffic-flow speed is lower at 08:00 on a weekday than at 03:00, and volume higher', () => {
    const times = WEEKDAYS.flatMap((d) => [
      [cst(`${d}T03:00:00`), 'night'] as const,
      [cst(`${d}T08:00:00`), 'peak'] as const,
    ]);
    const readings = sample(devicesOf('traffic-flow', 60), times);
    expect(mean(readings.get('peak'), 'speed_kmh')).toBeLessThan(
      mean(readings.get('night'), 'speed_kmh') - 5,
    );
    expect(mean(readings.get('peak'), 'vehicle_count')).toBeGreaterThan(
      3 * mean(readings.get('night'), 'vehicle_count'),
    );
    expect(mean(readings.get('peak'), 'occupancy_pct')).toBeGreaterThan(
      mean(readings.get('night'), 'occupancy_pct'),
    );
  });

  it('traffic is lighter at the weekend peak hour than at the weekday one', () => {
    const readings = sample(devicesOf('traffic-flow', 60), [
      [cst('2026-03-17T08:00:00'), 'tuesday'],
      [cst('2026-03-21T08:00:00'), 'saturday'],
    ]);
    expect(mean(readings.get('saturday'), 'vehicle_count')).toBeLessThan(
      mean(readings.get('tuesday'), 'vehicle_count'),
    );
  });

  it('streetlights are on at 23:00 and off at 12:00, winter and summer', () => {
    const days = ['2026-01-05', '2026-04-05', '2026-06-21', '2026-09-30', '2026-12-21'];
    const times = days.flatMap((d) => [
      [cst(`${d}T12:00:00`), 'noon'] as const,
      [cst(`${d}T23:00:00`), 'night'] as const,
    ]);
    const readings = sample(
      devices.filter((d) => d.type === 'streetlight'),
      times,
    );
    expect(readings.get('noon')?.every((r) => r.lamp_on === false)).toBe(true);
    expect(readings.get('night')?.every((r) => r.lamp_on === true)).toBe(true);
    expect(mean(readings.get('night'), 'power_w')).toBeGreaterThan(
      10 * mean(readings.get('noon'), 'power_w'),
    );
  });

  describe('in heavy rain compared with dry weather at the same hour of nearby days', () => {
    // Heavy-rain hours of a simulated year, each paired with dry hours a few days away.
    const times: [number, string][] = [];
    const dryBefore = (at: number) =>
      Array.from({ length: 13 }, (_, k) => city.rainMmH(at - k * HOUR)).every((r) => r === 0);
    for (let at = cst('2026-01-01T00:00:00'); at < cst('2027-01-01T00:00:00'); at += HOUR) {
      if (times.length >= 60) break;
      if (city.rainMmH(at) < 4 || city.rainMmH(at - HOUR) < 1) continue;
      const dry = [-3, 3, -4, 4, -5, 5].map((k) => at + k * DAY).find(dryBefore);
      if (dry === undefined) continue;
      times.push([at, 'rain'], [dry, 'dry']);
      at += 12 * HOUR;
    }

    it('finds enough heavy-rain hours to compare', () => {
      expect(times.length).toBeGreaterThanOrEqual(20);
    });

    it('PM2.5 is lower on average (washout)', () => {
      const readings = sample(devicesOf('air-quality', 12), times);
      expect(mean(readings.get('rain'), 'pm25_ugm3')).toBeLessThan(
        0.7 * mean(readings.get('dry'), 'pm25_ugm3'),
      );
    });

    it('manhole water levels are higher on average', () => {
      const readings = sample(devicesOf('manhole', 12), times);
      expect(mean(readings.get('rain'), 'water_level_cm')).toBeGreaterThan(
        2 * mean(readings.get('dry'), 'water_level_cm'),
      );
    });
  });

  it('lake dissolved oxygen and pH peak in the afternoon and sag before dawn in summer', () => {
    const times = Array.from(
      { length: 10 },
      (_, k) => cst('2026-07-20T00:00:00') + k * DAY,
    ).flatMap((day) => [
      [day + 5 * HOUR, 'dawn'] as const,
      [day + 15 * HOUR, 'afternoon'] as const,
    ]);
    const readings = sample(devicesOf('water-quality', 12), times);
    expect(mean(readings.get('afternoon'), 'dissolved_oxygen_mgl')).toBeGreaterThan(
      mean(readings.get('dawn'), 'dissolved_oxygen_mgl') + 0.5,
    );
    expect(mean(readings.get('afternoon'), 'ph')).toBeGreaterThan(mean(readings.get('dawn'), 'ph'));
  });

  it('water-main pressure is higher at the 03:00 night minimum than at the morning peak', () => {
    const times = WEEKDAYS.flatMap((d) => [
      [cst(`${d}T03:00:00`), 'night'] as const,
      [cst(`${d}T07:15:00`), 'peak'] as const,
    ]);
    const readings = sample(devicesOf('water-pipe', 20), times);
    expect(mean(readings.get('night'), 'pressure_kpa')).toBeGreaterThan(
      mean(readings.get('peak'), 'pressure_kpa') + 20,
    );
    expect(mean(readings.get('night'), 'flow_m3h')).toBeLessThan(
      mean(readings.get('peak'), 'flow_m3h'),
    );
  });

  it('noise is louder at the evening peak than in the small hours', () => {
    const times = WEEKDAYS.flatMap((d) => [
      [cst(`${d}T03:30:00`), 'night'] as const,
      [cst(`${d}T18:00:00`), 'peak'] as const,
    ]);
    const readings = sample(devicesOf('noise', 12), times);
    expect(mean(readings.get('peak'), 'laeq_dba')).toBeGreaterThan(
      mean(readings.get('night'), 'laeq_dba') + 5,
    );
  });
});

describe('rare events', () => {
  /** Share of readings (every `stepMs` over `days`) that match, and how many devices had one. */
  function scan(
    type: string,
    n: number,
    from: string,
    days: number,
    stepMs: number,
    match: (r: Reading) => boolean,
  ): { share: number; devices: number } {
    let hits = 0;
    let total = 0;
    let affected = 0;
    for (const device of devicesOf(type, n)) {
      const gen = generatorFor(device);
      let seen = false;
      for (let at = cst(from); at < cst(from) + days * DAY; at += stepMs) {
        total++;
        if (match(gen(at))) {
          hits++;
          seen = true;
        }
      }
      if (seen) affected++;
    }
    return { share: hits / total, devices: affected };
  }

  it('incidents occasionally back traffic up beyond 300 m', () => {
    const { share, devices: affected } = scan(
      'traffic-flow',
      20,
      '2026-03-02T00:00:00',
      14,
      10 * 60_000,
      (r) => (r.queue_length_m as number) > 300,
    );
    expect(affected).toBeGreaterThan(0);
    expect(share).toBeLessThan(0.05);
  });

  it('water mains spring the odd leak, which the acoustic sensor reports', () => {
    const { share, devices: affected } = scan(
      'water-pipe',
      35,
      '2026-01-01T00:00:00',
      90,
      HOUR,
      (r) => r.leak_detected === true,
    );
    expect(affected).toBeGreaterThan(0);
    expect(share).toBeLessThan(0.1);
  });

  it('a few streetlight lamps fail and are mended', () => {
    const { share, devices: affected } = scan(
      'streetlight',
      100,
      '2026-01-01T00:00:00',
      90,
      6 * HOUR,
      (r) => r.lamp_fault === true,
    );
    expect(affected).toBeGreaterThan(0);
    expect(share).toBeLessThan(0.02);
  });

  it('algal blooms raise chlorophyll-a in August and never in January', () => {
    const bloom = (r: Reading) => (r.chlorophyll_a_ugl as number) > 60;
    expect(
      scan('water-quality', 18, '2026-08-01T00:00:00', 30, 3 * HOUR, bloom).share,
    ).toBeGreaterThan(0.1);
    expect(scan('water-quality', 18, '2026-01-01T00:00:00', 30, 3 * HOUR, bloom).share).toBe(0);
  });
});

describe('city conditions', () => {
  const yearHours = Array.from(
    { length: 365 * 24 },
    (_, h) => cst('2026-01-01T00:00:00') + h * HOUR,
  );

  it('answer the same for a time whatever order times are asked in (backfill)', () => {
    const times = yearHours.filter((_, i) => i % 97 === 0);
    const snapshot = (c: CityConditions, at: number) => [
      c.rainMmH(at),
      c.temperatureC(at),
      c.trafficDemand(at, 'binhu'),
      c.darkness(at),
      c.humidityPct(at),
      c.windMs(at),
      c.stagnation(at),
    ];
    const forward = times.map((at) => snapshot(createCity(7), at));
    const fresh = createCity(7);
    const backward = [...times]
      .reverse()
      .map((at) => snapshot(fresh, at))
      .reverse();
    expect(backward).toEqual(forward);
    expect(times.map((at) => snapshot(createCity(8), at))).not.toEqual(forward);
  });

  it('keep every quantity in its documented range', () => {
    const range = (f: (at: number) => number) => {
      const values = yearHours.map(f);
      return [Math.min(...values), Math.max(...values)];
    };
    const [rainMin = 0] = range((at) => city.rainMmH(at));
    expect(rainMin).toBeGreaterThanOrEqual(0);
    const [demandMin = 0, demandMax = 0] = range((at) => city.trafficDemand(at, 'liangxi'));
    expect(demandMin).toBeGreaterThanOrEqual(0);
    expect(demandMax).toBeLessThanOrEqual(1.2);
    for (const f of [(at: number) => city.darkness(at), (at: number) => city.stagnation(at)]) {
      const [lo = 0, hi = 0] = range(f);
      expect(lo).toBeGreaterThanOrEqual(0);
      expect(hi).toBeLessThanOrEqual(1);
    }
    const [humidityMin = 0, humidityMax = 0] = range((at) => city.humidityPct(at));
    expect(humidityMin).toBeGreaterThan(0);
    expect(humidityMax).toBeLessThanOrEqual(100);
    const [windMin = 0] = range((at) => city.windMs(at));
    expect(windMin).toBeGreaterThan(0);
  });

  it("have Wuxi's climate: cold January, hot July, about a metre of rain, wettest in June–July", () => {
    const monthly = Array.from({ length: 12 }, () => ({ temp: 0, rain: 0, n: 0 }));
    for (const at of yearHours) {
      const m = monthly[new Date(at + 8 * HOUR).getUTCMonth()];
      if (!m) continue;
      m.temp += city.temperatureC(at);
      m.rain += city.rainMmH(at);
      m.n++;
    }
    const avg = (m: number) => (monthly[m]?.temp ?? 0) / (monthly[m]?.n ?? 1);
    expect(avg(0)).toBeGreaterThan(0);
    expect(avg(0)).toBeLessThan(7);
    expect(avg(6)).toBeGreaterThan(25);
    expect(avg(6)).toBeLessThan(32);
    const total = monthly.reduce((s, m) => s + m.rain, 0);
    expect(total).toBeGreaterThan(600);
    expect(total).toBeLessThan(1800);
    const summer = (monthly[5]?.rain ?? 0) + (monthly[6]?.rain ?? 0);
    const winter = (monthly[0]?.rain ?? 0) + (monthly[11]?.rain ?? 0);
    expect(summer).toBeGreaterThan(winter);
  });

  it('is dark at midnight and light at noon, with dusk after 17:00 in winter and 19:00 in summer', () => {
    expect(city.darkness(cst('2026-06-21T00:00:00'))).toBe(1);
    expect(city.darkness(cst('2026-12-21T12:00:00'))).toBe(0);
    expect(city.darkness(cst('2026-12-21T16:30:00'))).toBeLessThan(0.5);
    expect(city.darkness(cst('2026-12-21T18:00:00'))).toBe(1);
    expect(city.darkness(cst('2026-06-21T18:45:00'))).toBeLessThan(0.5);
    expect(city.darkness(cst('2026-06-21T20:00:00'))).toBeGreaterThan(0.5);
  });

  it('has traffic peaks on weekday mornings and evenings, a night trough, and quieter weekends', () => {
    const demand = (local: string) => city.trafficDemand(cst(local), 'liangxi');
    expect(demand('2026-03-17T08:00:00')).toBeGreaterThan(0.9);
    expect(demand('2026-03-17T18:00:00')).toBeGreaterThan(0.8);
    expect(demand('2026-03-17T03:00:00')).toBeLessThan(0.1);
    expect(demand('2026-03-17T12:00:00')).toBeLessThan(demand('2026-03-17T08:00:00'));
    expect(demand('2026-03-21T08:00:00')).toBeLessThan(demand('2026-03-17T08:00:00'));
    expect(city.trafficDemand(cst('2026-03-17T08:00:00'), 'yixing')).toBeLessThan(
      demand('2026-03-17T08:00:00'),
    );
  });

  it('has worse air-mixing conditions in winter than in summer', () => {
    const avg = (from: string) => {
      const start = cst(from);
      let s = 0;
      for (let h = 0; h < 30 * 24; h++) s += city.stagnation(start + h * HOUR);
      return s / (30 * 24);
    };
    expect(avg('2026-01-01T00:00:00')).toBeGreaterThan(avg('2026-07-01T00:00:00') + 0.2);
  });

  it('counts local days and weekdays in China Standard Time', () => {
    const t = cst('2026-11-26T00:30:00');
    expect(localTime(t).weekday).toBe(4);
    expect(localTime(t).hour).toBeCloseTo(0.5);
  });
});

describe('seeded randomness', () => {
  it('repeats a stream for the same seed and changes it for another', () => {
    const take = (seed: number | string) => {
      const rng = createRng(seed);
      return Array.from({ length: 20 }, () => rng.next());
    };
    expect(take('aq-binhu-0007')).toEqual(take('aq-binhu-0007'));
    expect(take('aq-binhu-0007')).not.toEqual(take('aq-binhu-0008'));
    expect(take(1)).not.toEqual(take(2));
  });

  it('derives distinct seeds for distinct parts', () => {
    expect(deriveSeed(1, 'device', 'a')).toBe(deriveSeed(1, 'device', 'a'));
    expect(deriveSeed(1, 'device', 'a')).not.toBe(deriveSeed(1, 'device', 'b'));
    expect(deriveSeed(1, 'ab', 'c')).not.toBe(deriveSeed(1, 'a', 'bc'));
    expect(deriveSeed(1, 'x')).not.toBe(deriveSeed(2, 'x'));
  });

  it('draws within the documented ranges with the expected moments', () => {
    const rng = createRng(42);
    const n = 20_000;
    const uniforms = Array.from({ length: n }, () => rng.next());
    expect(Math.min(...uniforms)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...uniforms)).toBeLessThan(1);
    expect(new Set(Array.from({ length: 1000 }, () => rng.int(3, 5)))).toEqual(new Set([3, 4, 5]));
    const ranged = Array.from({ length: 1000 }, () => rng.range(-2, 2));
    expect(Math.min(...ranged)).toBeGreaterThanOrEqual(-2);
    expect(Math.max(...ranged)).toBeLessThan(2);
    const normals = Array.from({ length: n }, () => rng.normal());
    const sum = normals.reduce((a, b) => a + b, 0);
    const sumSq = normals.reduce((a, b) => a + b * b, 0);
    expect(Math.abs(sum / n)).toBeLessThan(0.05);
    expect(Math.abs(sumSq / n - 1)).toBeLessThan(0.05);
    const hits = Array.from({ length: n }, () => rng.chance(0.25)).filter(Boolean).length;
    expect(hits / n).toBeGreaterThan(0.23);
    expect(hits / n).toBeLessThan(0.27);
  });

  it('has stateless noise and episodes that depend only on (seed, time)', () => {
    expect(hashUnit(5, 1, 2)).toBe(hashUnit(5, 1, 2));
    expect(hashUnit(5, 1, 2)).not.toBe(hashUnit(5, 2, 1));
    for (let x = 0; x < 10; x += 0.01) {
      const v = valueNoise(3, x);
      expect(Math.abs(v)).toBeLessThanOrEqual(1);
      expect(Math.abs(valueNoise(3, x + 0.01) - v)).toBeLessThan(0.1);
    }
    const opts = { slotMs: HOUR, chance: 0.3, minMs: 10 * 60_000, maxMs: 3 * HOUR };
    const times = Array.from({ length: 500 }, (_, i) => i * 7 * 60_000);
    const forward = times.map((t) => episodeAt(9, t, opts));
    const backward = [...times]
      .reverse()
      .map((t) => episodeAt(9, t, opts))
      .reverse();
    expect(backward).toEqual(forward);
    const active = forward.filter((e) => e !== undefined);
    expect(active.length).toBeGreaterThan(0);
    for (const [i, e] of forward.entries()) {
      const t = times[i] ?? 0;
      if (e) expect(e.start <= t && t < e.end).toBe(true);
    }
  });
});

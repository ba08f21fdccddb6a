import { describe, expect, it } from 'vitest';
import { dailyAqi, hourlyAqi, levelOf, subIndex } from '../../src/aqi/aqi.js';
import { IAQI_STEPS, LEVELS, STANDARDS, standardFor, type Item } from '../../src/aqi/tables.js';

const S2012 = STANDARDS['HJ633-2012'];
const S2026 = STANDARDS['HJ633-2026'];

/**
 * Rows as printed (HJ 633-2012 Table 1; HJ 633-2026 Table 3 for the PM rows), restated here so
 * a typo in src/aqi/tables.ts cannot confirm itself.
 */
const ROWS_2012: Record<Item, number[]> = {
  so2_24h: [0, 50, 150, 475, 800, 1600, 2100, 2620],
  so2_1h: [0, 150, 500, 650, 800],
  no2_24h: [0, 40, 80, 180, 280, 565, 750, 940],
  no2_1h: [0, 100, 200, 700, 1200, 2340, 3090, 3840],
  pm10_24h: [0, 50, 150, 250, 350, 420, 500, 600],
  co_24h: [0, 2, 4, 14, 24, 36, 48, 60],
  co_1h: [0, 5, 10, 35, 60, 90, 120, 150],
  o3_1h: [0, 160, 200, 300, 400, 800, 1000, 1200],
  o3_8h: [0, 100, 160, 215, 265, 800],
  pm25_24h: [0, 35, 75, 115, 150, 250, 350, 500],
};
const ROWS_2026: Record<Item, number[]> = {
  ...ROWS_2012,
  pm10_24h: [0, 50, 120, 250, 350, 420, 500, 600],
  pm25_24h: [0, 35, 60, 115, 150, 250, 350, 500],
};

describe('HJ 633 breakpoint tables', () => {
  it.each([
    ['HJ633-2012', ROWS_2012],
    ['HJ633-2026', ROWS_2026],
  ] as const)('%s has the printed rows', (id, rows) => {
    expect(STANDARDS[id].table).toEqual(rows);
  });
});

/**
 * Around every breakpoint of every row of both standards: at a breakpoint the IAQI is the
 * column's value exactly; 0.01 below it rounds up to that value; 0.01 above it (the steepest
 * slope is CO 24-h, 50 / 2 mg/m³, so 0.01 adds at most 0.25) rounds up to one more.
 */
const edges = (['HJ633-2012', 'HJ633-2026'] as const).flatMap((id) =>
  (Object.entries(STANDARDS[id].table) as [Item, readonly number[]][]).flatMap(([item, row]) =>
    row.map((bp, k) => [id, item, bp, IAQI_STEPS[k] as number, k === row.length - 1] as const),
  ),
);

describe('IAQI at and around every breakpoint', () => {
  it.each(edges)('%s %s at %d is %d', (id, item, bp, step, top) => {
    const row = STANDARDS[id].table[item];
    expect(subIndex(row, bp)).toBe(step);
    if (bp > 0) expect(subIndex(row, bp - 0.01)).toBe(step);
    if (!top) expect(subIndex(row, bp + 0.01)).toBe(step + 1);
    else expect(subIndex(row, bp + 0.01)).toBeUndefined();
  });
});

describe('IAQI by linear interpolation, rounded up', () => {
  it.each([
    // 2012 PM2.5 48: 50 + (100 − 50)/(75 − 35) × (48 − 35) = 50 + 16.25 = 66.25 → 67.
    [S2012, 'pm25_24h', 48, 67],
    // 2012 PM2.5 70, "good" on today's legend: 50 + 50/40 × 35 = 93.75 → 94 (良).
    [S2012, 'pm25_24h', 70, 94],
    // 2026 PM2.5 70: 100 + (150 − 100)/(115 − 60) × (70 − 60) = 100 + 9.09 → 110 (轻度污染).
    [S2026, 'pm25_24h', 70, 110],
    // 2026 PM2.5 75: 100 + 50/55 × 15 = 113.64 → 114.
    [S2026, 'pm25_24h', 75, 114],
    // 2026 PM10 150: 100 + 50/130 × 30 = 111.54 → 112; 2012 PM10 150 is a breakpoint: 100.
    [S2026, 'pm10_24h', 150, 112],
    [S2012, 'pm10_24h', 150, 100],
    // NO2 1-h 250: 100 + 50/500 × 50 = 105 exactly.
    [S2012, 'no2_1h', 250, 105],
    // CO 24-h 2.2: 50 + 50/2 × 0.2 = 55 exactly, although floating point makes it 55.000…01.
    [S2012, 'co_24h', 2.2, 55],
    // CO 1-h 7.3: 50 + 50/5 × 2.3 = 73 exactly.
    [S2026, 'co_1h', 7.3, 73],
    // O3 8-h 120: 50 + 50/60 × 20 = 66.67 → 67.
    [S2012, 'o3_8h', 120, 67],
    // SO2 24-h 1000: 200 + 100/800 × 200 = 225.
    [S2012, 'so2_24h', 1000, 225],
  ] as const)('%# %s at %d is %d', (standard, item, c, expected) => {
    expect(subIndex(standard.table[item], c)).toBe(expected);
  });

  it('has no IAQI for a negative or non-finite concentration', () => {
    expect(subIndex(S2012.table.pm25_24h, -1)).toBeUndefined();
    expect(subIndex(S2012.table.pm25_24h, Number.NaN)).toBeUndefined();
  });
});

describe('hourly (real-time) AQI', () => {
  it('reads PM through the 24-h rows and gases through their 1-h rows', () => {
    const r = hourlyAqi(
      { pm25_ugm3: 75, pm10_ugm3: 150, no2_ugm3: 250, so2_ugm3: 150, co_mgm3: 5, o3_ugm3: 160 },
      S2012,
    );
    expect(r.iaqi).toEqual({
      pm25_ugm3: 100,
      pm10_ugm3: 100,
      no2_ugm3: 105,
      so2_ugm3: 50,
      co_mgm3: 50,
      o3_ugm3: 50,
    });
    expect(r.aqi).toBe(105);
    expect(r.primary).toEqual(['no2_ugm3']);
    expect(r.exceeding).toEqual(['no2_ugm3']);
    expect(r.level?.category).toBe('轻度污染');
  });

  it('reads SO2 from its 24-h mean when the 1-h mean is above 800 (Table 1 note 2)', () => {
    // 24-h 160: 100 + 50/325 × 10 = 101.54 → 102.
    expect(hourlyAqi({ so2_ugm3: 900, so2_ugm3_24h: 160 }, S2026).iaqi).toEqual({ so2_ugm3: 102 });
    // At 800 the 1-h row still applies: 200.
    expect(hourlyAqi({ so2_ugm3: 800, so2_ugm3_24h: 160 }, S2026).iaqi).toEqual({ so2_ugm3: 200 });
    // Above 800 with no 24-h mean, SO2 has no IAQI at all.
    const r = hourlyAqi({ so2_ugm3: 900, pm25_ugm3: 20 }, S2012);
    expect(r.iaqi).toEqual({ pm25_ugm3: 29 }); // 50/35 × 20 = 28.57 → 29
    expect(r.aqi).toBe(29);
  });

  it('counts a concentration above the table as 500 and says so', () => {
    const r = hourlyAqi({ pm25_ugm3: 650 }, S2026);
    expect(r.aqi).toBe(500);
    expect(r.beyondTable).toEqual(['pm25_ugm3']);
    expect(r.level?.level).toBe(6);
  });

  it('has no AQI without a concentration', () => {
    const r = hourlyAqi({}, S2026);
    expect(r).toMatchObject({ aqi: undefined, level: undefined, primary: [] });
  });
});

describe('daily AQI', () => {
  it('reads 24-h means and the O3 daily maximum 8-h mean', () => {
    // 2026: PM2.5 75 → 114, PM10 150 → 112, O3-8h 160 → 100, NO2 40 → 50.
    const r = dailyAqi({ pm25_ugm3: 75, pm10_ugm3: 150, o3_ugm3_8h: 160, no2_ugm3: 40 }, S2026);
    expect(r.iaqi).toEqual({ pm25_ugm3: 114, pm10_ugm3: 112, no2_ugm3: 50, o3_ugm3: 100 });
    expect(r.aqi).toBe(114);
    expect(r.primary).toEqual(['pm25_ugm3']);
    expect(r.exceeding).toEqual(['pm25_ugm3', 'pm10_ugm3']);
    expect(r.standard).toBe('HJ633-2026');
  });

  it('names every pollutant that ties for the AQI', () => {
    // 2012: PM2.5 75 and PM10 150 are both IAQI 100.
    const r = dailyAqi({ pm25_ugm3: 75, pm10_ugm3: 150, so2_ugm3: 10 }, S2012);
    expect(r.aqi).toBe(100);
    expect(r.primary).toEqual(['pm25_ugm3', 'pm10_ugm3']);
    expect(r.exceeding).toEqual([]);
  });

  it('names no primary pollutant at AQI 50 or less', () => {
    expect(dailyAqi({ pm25_ugm3: 35, pm10_ugm3: 20 }, S2012)).toMatchObject({
      aqi: 50,
      primary: [],
    });
  });

  it('reads O3 from its 1-h maximum when the 8-h maximum is above 800 (Table 1 note 3)', () => {
    // 1-h 420: 200 + 100/400 × 20 = 205.
    expect(dailyAqi({ o3_ugm3_8h: 850, o3_ugm3_1h: 420 }, S2012).iaqi).toEqual({ o3_ugm3: 205 });
    expect(dailyAqi({ o3_ugm3_8h: 800, o3_ugm3_1h: 420 }, S2012).iaqi).toEqual({ o3_ugm3: 300 });
    expect(dailyAqi({ o3_ugm3_8h: 850 }, S2012).iaqi).toEqual({});
  });

  it('differs between the standards only through PM2.5 and PM10', () => {
    const gases = { so2_ugm3: 300, no2_ugm3: 100, co_mgm3: 3, o3_ugm3_8h: 200 };
    expect(dailyAqi(gases, S2012).iaqi).toEqual(dailyAqi(gases, S2026).iaqi);
    expect(dailyAqi({ pm25_ugm3: 70 }, S2012).level?.category).toBe('良');
    expect(dailyAqi({ pm25_ugm3: 70 }, S2026).level?.category).toBe('轻度污染');
  });
});

describe('AQI levels', () => {
  it.each([
    [0, 1],
    [50, 1],
    [51, 2],
    [100, 2],
    [101, 3],
    [150, 3],
    [151, 4],
    [200, 4],
    [201, 5],
    [300, 5],
    [301, 6],
    [500, 6],
  ])('AQI %i is level %i', (aqi, level) => {
    expect(levelOf(aqi).level).toBe(level);
  });

  it('carries the standard names and Annex A colours', () => {
    expect(LEVELS.map((l) => [l.category, l.colour, l.rgb])).toEqual([
      ['优', '绿色', [0, 228, 0]],
      ['良', '黄色', [255, 255, 0]],
      ['轻度污染', '橙色', [255, 126, 0]],
      ['中度污染', '红色', [255, 0, 0]],
      ['重度污染', '紫色', [153, 0, 76]],
      ['严重污染', '褐红色', [126, 0, 35]],
    ]);
    expect(LEVELS.map((l) => l.categoryEn)).toEqual([
      'Excellent',
      'Good',
      'Lightly polluted',
      'Moderately polluted',
      'Heavily polluted',
      'Severely polluted',
    ]);
  });
});

describe('the standard in force', () => {
  it('is HJ 633-2026 from 2026-03-01 00:00 Beijing time', () => {
    expect(standardFor(Date.parse('2026-02-28T15:59:59.999Z')).id).toBe('HJ633-2012');
    expect(standardFor(Date.parse('2026-02-28T16:00:00.000Z')).id).toBe('HJ633-2026');
    expect(standardFor(new Date('2025-11-26T08:00:00Z')).id).toBe('HJ633-2012');
    expect(standardFor(new Date('2026-11-26T08:00:00Z')).id).toBe('HJ633-2026');
  });
});

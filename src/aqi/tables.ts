/**
 * The breakpoint tables of China's air quality index, HJ 633 ("环境空气质量指数（AQI）技术规定").
 * Each row lists the concentrations at IAQI 0, 50, 100, 150, 200, 300, 400, 500; a shorter row
 * stops where the standard stops. Units: µg/m³, CO mg/m³.
 */

/** The IAQI at each breakpoint column. */
export const IAQI_STEPS = [0, 50, 100, 150, 200, 300, 400, 500] as const;

/** An averaging period's row: which concentration the IAQI is read from. */
export type Item =
  | 'so2_24h'
  | 'so2_1h'
  | 'no2_24h'
  | 'no2_1h'
  | 'pm10_24h'
  | 'co_24h'
  | 'co_1h'
  | 'o3_1h'
  | 'o3_8h'
  | 'pm25_24h';

export type StandardId = 'HJ633-2012' | 'HJ633-2026';

export interface Standard {
  readonly id: StandardId;
  /** First instant the standard applies (local midnight in Beijing). */
  readonly effectiveFrom: number;
  readonly table: Readonly<Record<Item, readonly number[]>>;
}

/**
 * HJ 633-2012, Table 1 "空气质量分指数及对应的污染物项目浓度限值", in force 2016-01-01 (issued
 * 2012-02-29 with GB 3095-2012) until 2026-02-28. Its notes:
 *  (1) the 1-h SO2, NO2 and CO limits are for the real-time (hourly) report only; the daily
 *      report uses the 24-h ones;
 *  (2) an SO2 1-h mean above 800 µg/m³ gets no IAQI of its own: SO2's IAQI is the one of its
 *      24-h mean (the 1-h row stops at 800, IAQI 200);
 *  (3) an O3 8-h mean above 800 µg/m³ gets no IAQI of its own: O3's IAQI is the one of its
 *      1-h mean (the 8-h row stops at 800, IAQI 300).
 * PM10 and PM2.5 have 24-h rows only; the real-time report reads their 1-h means with them.
 */
const HJ633_2012: Standard = {
  id: 'HJ633-2012',
  effectiveFrom: Date.UTC(2016, 0, 1) - 8 * 3_600_000,
  table: {
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
  },
};

/**
 * HJ 633-2026, Table 3, in force from 2026-03-01 with GB 3095-2026 (issued 2026-02-24). It
 * changes the PM2.5 and PM10 rows only: the IAQI-100 breakpoints become 60 µg/m³ (PM2.5,
 * GB 3095-2026's transitional grade-2 24-h limit) and 120 µg/m³ (PM10); every other value,
 * the gas rows and the notes are those of 2012.
 *
 * Provenance: these values are not read from the standard's own text here. They are the
 * transcription of Table 3 published with OpenMapX (citing the MEE PDF
 * W020260225366493492011.pdf, Table 3 p. 3), and two independent implementations give the
 * same PM rows; MEE's announcement confirms that only the PM2.5 and PM10 breakpoints changed.
 * Check them against the PDF before relying on them.
 */
const HJ633_2026: Standard = {
  id: 'HJ633-2026',
  effectiveFrom: Date.UTC(2026, 2, 1) - 8 * 3_600_000,
  table: {
    ...HJ633_2012.table,
    pm10_24h: [0, 50, 120, 250, 350, 420, 500, 600],
    pm25_24h: [0, 35, 60, 115, 150, 250, 350, 500],
  },
};

export const STANDARDS: Readonly<Record<StandardId, Standard>> = {
  'HJ633-2012': HJ633_2012,
  'HJ633-2026': HJ633_2026,
};

/** The standard in force at `t` (a Date or epoch ms): HJ 633-2026 from 2026-03-01 Beijing time. */
export function standardFor(t: Date | number): Standard {
  const ms = typeof t === 'number' ? t : t.getTime();
  return ms >= HJ633_2026.effectiveFrom ? HJ633_2026 : HJ633_2012;
}

export interface Level {
  /** 1–6 (一级 … 六级). */
  readonly level: 1 | 2 | 3 | 4 | 5 | 6;
  /** The standard's category name. */
  readonly category: string;
  readonly categoryEn: string;
  /** The colour's name in the standard and its RGB value. */
  readonly colour: string;
  readonly rgb: readonly [number, number, number];
  /** Highest AQI of the level (Infinity for level 6). */
  readonly upTo: number;
}

/**
 * HJ 633-2012 Table 2 (AQI levels and categories) and Annex A (normative: the categories'
 * colours and their RGB values). The English names are the customary ones of MEE's English
 * releases, not part of the standard. HJ 633-2026 keeps the six levels and colours (its
 * announcement changes only the PM breakpoints and the health advice).
 */
export const LEVELS: readonly Level[] = [
  mk(1, 50, '优', 'Excellent', '绿色', [0, 228, 0]),
  mk(2, 100, '良', 'Good', '黄色', [255, 255, 0]),
  mk(3, 150, '轻度污染', 'Lightly polluted', '橙色', [255, 126, 0]),
  mk(4, 200, '中度污染', 'Moderately polluted', '红色', [255, 0, 0]),
  mk(5, 300, '重度污染', 'Heavily polluted', '紫色', [153, 0, 76]),
  mk(6, Infinity, '严重污染', 'Severely polluted', '褐红色', [126, 0, 35]),
];

function mk(
  level: Level['level'],
  upTo: number,
  category: string,
  categoryEn: string,
  colour: string,
  rgb: readonly [number, number, number],
): Level {
  return { level, upTo, category, categoryEn, colour, rgb };
}

/**
 * Colour scales for the map: device status, fixed scales where the field has an agreed
 * one (China's AQI bands for particulates, traffic speed bands), and a banded scale over
 * the values on the map for any other numeric field.
 */
import type { DeviceStatus, FieldInfo } from './types';

export interface Band {
  label: string;
  color: string;
}

export interface Scale {
  title: string;
  bands: Band[];
  /** The band colour of a value, or null when there is no value to colour. */
  colorOf(v: unknown): string | null;
}

export const STATUS_COLORS: Record<DeviceStatus, string> = {
  online: '#3fb950',
  stale: '#e3b341',
  offline: '#f85149',
  never: '#8b949e',
};

export const STATUS_LABELS: Record<DeviceStatus, string> = {
  online: 'Online',
  stale: 'Stale (silent too long)',
  offline: 'Offline',
  never: 'Never seen',
};

/** Upper bounds and colours; the last band is open-ended. */
function stepped(
  title: string,
  unit: string,
  steps: [number, string, string][],
  top: [string, string],
): Scale {
  const bands: Band[] = [];
  let lo = 0;
  for (const [hi, label, color] of steps) {
    bands.push({ label: `${label} (${lo}–${hi} ${unit})`, color });
    lo = hi;
  }
  bands.push({ label: `${top[0]} (> ${lo} ${unit})`, color: top[1] });
  return {
    title,
    bands,
    colorOf(v) {
      if (typeof v !== 'number') return null;
      for (const [hi, , color] of steps) if (v <= hi) return color;
      return top[1];
    },
  };
}

/** HJ 633-2012 individual AQI breakpoints (24-hour means) and the national colours. */
const AQI_COLORS = ['#00e400', '#ffff00', '#ff7e00', '#ff0000', '#99004c', '#7e0023'] as const;
const AQI_LABELS = [
  'Excellent',
  'Good',
  'Lightly polluted',
  'Moderately polluted',
  'Heavily polluted',
];

function aqi(title: string, breaks: number[]): Scale {
  return stepped(
    title,
    'µg/m³',
    breaks.map((b, i) => [b, AQI_LABELS[i] ?? '', AQI_COLORS[i] ?? '#7e0023']),
    ['Severely polluted', AQI_COLORS[5]],
  );
}

const FIXED: Record<string, () => Scale> = {
  'air-quality/pm25_ugm3': () => aqi('PM2.5, China AQI bands', [35, 75, 115, 150, 250]),
  'air-quality/pm10_ugm3': () => aqi('PM10, China AQI bands', [50, 150, 250, 350, 420]),
  'traffic-flow/speed_kmh': () =>
    stepped(
      'Traffic speed',
      'km/h',
      [
        [10, 'Stop and go', '#f85149'],
        [25, 'Congested', '#ff9b3d'],
        [40, 'Slow', '#e3d341'],
      ],
      ['Free flow', '#3fb950'],
    ),
};

/** Blue (low) to red (high), readable on the dark map. */
const RAMP = ['#4575b4', '#91bfdb', '#e0f3f8', '#fee090', '#fc8d59', '#d73027'];

/** Equal bands between the lowest and highest value now on the map. */
function banded(title: string, unit: string, values: number[], integer: boolean): Scale {
  if (values.length === 0) {
    return { title, bands: [{ label: 'no readings yet', color: '#8b949e' }], colorOf: () => null };
  }
  const min = Math.min(...values);
  const max = Math.max(...values);
  if (min === max) {
    return {
      title,
      bands: [{ label: `${min} ${unit}`, color: RAMP[2] as string }],
      colorOf: (v) => (typeof v === 'number' ? (RAMP[2] as string) : null),
    };
  }
  const n = RAMP.length;
  const step = (max - min) / n;
  const fmt = (v: number) =>
    integer ? String(Math.round(v)) : v.toLocaleString('en-GB', { maximumSignificantDigits: 3 });
  return {
    title,
    bands: RAMP.map((color, i) => ({
      label: `${fmt(min + i * step)}–${fmt(min + (i + 1) * step)} ${unit}`,
      color,
    })),
    colorOf(v) {
      if (typeof v !== 'number') return null;
      const i = Math.min(n - 1, Math.max(0, Math.floor((v - min) / step)));
      return RAMP[i] ?? null;
    },
  };
}

function yesNo(title: string): Scale {
  return {
    title,
    bands: [
      { label: 'yes', color: '#f85149' },
      { label: 'no', color: '#3fb950' },
    ],
    colorOf: (v) => (typeof v === 'boolean' ? (v ? '#f85149' : '#3fb950') : null),
  };
}

/** The scale for one field of one type, given the values now on the map. */
export function scaleFor(
  type: string,
  typeTitle: string,
  field: FieldInfo,
  values: unknown[],
): Scale {
  const fixed = FIXED[`${type}/${field.name}`];
  if (fixed) return fixed();
  const title = `${typeTitle}: ${field.name}`;
  if (field.kind === 'boolean') return yesNo(title);
  const nums = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return banded(title, field.unit ?? '', nums, field.kind === 'integer');
}

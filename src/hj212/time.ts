/**
 * HJ 212 timestamps (`DataTime=YYYYMMDDhhmmss`, QN's first 14 digits) are the station's local
 * wall-clock time with no zone or offset on the wire (§6.6 data dictionary). The gateway reads
 * them in one configured IANA zone (`TAIHU_TZ`, Asia/Shanghai by default; China has had no
 * daylight saving since 1991) with the platform's Intl data, so zones with daylight saving work
 * too: a time in the spring-forward gap is read as if the clock had not jumped yet (it lands one
 * gap later), and a time in the repeated autumn hour is read as its first occurrence — the
 * "compatible" choice of Temporal and of most calendars.
 */

export const DEFAULT_TIME_ZONE = 'Asia/Shanghai';

/** One formatter per zone: building one costs far more than formatting with it. */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Whether `timeZone` is an IANA zone this runtime knows (for config validation). */
export function isTimeZone(timeZone: string): boolean {
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The zone's offset from UTC at instant `t`, in ms (east positive). */
export function zoneOffsetMs(t: number, timeZone: string): number {
  const parts = formatter(timeZone).formatToParts(new Date(t));
  const get = (type: Intl.DateTimeFormatPartTypes) =>
    Number(parts.find((p) => p.type === type)?.value);
  const local = Date.UTC(
    get('year'),
    get('month') - 1,
    get('day'),
    get('hour'),
    get('minute'),
    get('second'),
  );
  return local - (t - (((t % 1000) + 1000) % 1000));
}

/** Epoch ms of a local wall-clock time in `timeZone` (see the module comment for DST). */
export function localToEpochMs(
  fields: {
    year: number;
    month: number;
    day: number;
    hour: number;
    minute: number;
    second: number;
  },
  timeZone: string,
): number {
  const wall = Date.UTC(
    fields.year,
    fields.month - 1,
    fields.day,
    fields.hour,
    fields.minute,
    fields.second,
  );
  // The offsets a zone can have around `wall` are those 12 h either side of it.
  const before = zoneOffsetMs(wall - 12 * 3_600_000, timeZone);
  const after = zoneOffsetMs(wall + 12 * 3_600_000, timeZone);
  const early = wall - before;
  const late = wall - after;
  const earlyFits = zoneOffsetMs(early, timeZone) === before;
  const lateFits = zoneOffsetMs(late, timeZone) === after;
  if (earlyFits && lateFits) return Math.min(early, late); // repeated hour: first occurrence
  if (earlyFits) return early;
  if (lateFits) return late;
  return early; // in the gap: read with the offset in force before the jump
}

/**
 * `YYYYMMDDhhmmss` (or QN's `YYYYMMDDhhmmsszzz`) in `timeZone` → epoch ms, or undefined when it
 * is not a real calendar time (month 13, 31 April, 25 o'clock).
 */
export function hj212TimeToEpochMs(
  text: string,
  timeZone: string = DEFAULT_TIME_ZONE,
): number | undefined {
  if (!/^\d{14}(\d{3})?$/.test(text)) return undefined;
  const n = (from: number, to: number) => Number(text.slice(from, to));
  const fields = {
    year: n(0, 4),
    month: n(4, 6),
    day: n(6, 8),
    hour: n(8, 10),
    minute: n(10, 12),
    second: n(12, 14),
  };
  const check = new Date(
    Date.UTC(fields.year, fields.month - 1, fields.day, fields.hour, fields.minute, fields.second),
  );
  if (
    check.getUTCFullYear() !== fields.year ||
    check.getUTCMonth() !== fields.month - 1 ||
    check.getUTCDate() !== fields.day ||
    check.getUTCHours() !== fields.hour ||
    check.getUTCMinutes() !== fields.minute ||
    check.getUTCSeconds() !== fields.second
  ) {
    return undefined;
  }
  const ms = text.length === 17 ? n(14, 17) : 0;
  return localToEpochMs(fields, timeZone) + ms;
}

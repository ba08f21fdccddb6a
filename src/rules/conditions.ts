/**
 * The conditions of DESIGN §13, judged on one reading. Each returns whether the key's condition
 * is raised and fills in the value and severity that go with it; timing (`for`, `clearFor`) is
 * the alert's business (`alert.ts`).
 *
 * Threshold and rate are judged per device: in a group scope (site, district) each device of
 * the group has its own hysteresis and the group's alert is raised while any device is — one
 * station in alarm raises the district, and two stations on either side of the bound do not
 * make it flap. Aggregates are judged over the whole key's window (the district's 1-h mean).
 */
import type { KeyState, Source } from './alert.js';
import type {
  AggregateRule,
  Bound,
  FieldValue,
  RateRule,
  Reading,
  Severity,
  ThresholdRule,
} from './types.js';
import { Samples } from './window.js';

/** What a judged reading asks of the alert. */
export interface Verdict {
  cond: boolean;
  severity: Severity;
  value: number | null;
}

export function fieldOf(r: Reading, field: string): FieldValue | undefined {
  const f = r.fields;
  return f instanceof Map ? f.get(field) : (f as Readonly<Record<string, FieldValue>>)[field];
}

/** Numbers as they are, booleans as 0/1 (a cover open, a leak detected); strings are not compared. */
export function numeric(v: FieldValue | undefined): number | undefined {
  return typeof v === 'number' ? v : typeof v === 'boolean' ? (v ? 1 : 0) : undefined;
}

function past(side: Bound['side'], at: number, x: number): boolean {
  return side === 'above' ? x > at : x < at;
}

/** Hysteresis: raised past `raise`, cleared only past `clear`, unchanged in between. */
export function judge(b: Bound, active: boolean, x: number): boolean {
  return active
    ? !past(b.side === 'above' ? 'below' : 'above', b.clear, x)
    : past(b.side, b.raise, x);
}

/**
 * Escalation level with the rule's own hysteresis gap: level k is entered past its bound and
 * left only `|raise − clear|` back inside it, so a value hovering at an escalation bound does
 * not send a severity change per reading.
 */
export function levelOf(b: Bound, level: number, x: number): number {
  const gap = Math.abs(b.raise - b.clear);
  const back = b.side === 'above' ? -gap : gap;
  while (level < b.escalate.length && past(b.side, (b.escalate[level] as { at: number }).at, x)) {
    level++;
  }
  while (level > 0) {
    const at = (b.escalate[level - 1] as { at: number }).at + back;
    if (past(b.side, at, x) || at === x) break;
    level--;
  }
  return level;
}

export function severityAt(base: Severity, b: Bound | undefined, level: number): Severity {
  return level === 0 || !b ? base : (b.escalate[level - 1] as { severity: Severity }).severity;
}

export function newSource(withSamples: boolean): Source {
  return {
    lastTs: -Infinity,
    active: false,
    level: 0,
    samples: withSamples ? new Samples() : undefined,
  };
}

/** The source of this reading within the key: the key itself, or the device within the group. */
function sourceOf(ks: KeyState, r: Reading, withSamples: boolean): Source {
  if (ks.sources === undefined) return (ks.source ??= newSource(withSamples));
  let s = ks.sources.get(r.deviceId);
  if (s === undefined) {
    s = newSource(withSamples);
    ks.sources.set(r.deviceId, s);
  }
  return s;
}

/** The key's verdict from its sources after one of them changed. */
function fromSources(
  ks: KeyState,
  s: Source,
  was: boolean,
  base: Severity,
  b: Bound | undefined,
  v: Verdict,
): void {
  if (ks.sources === undefined) {
    v.cond = s.active;
    v.severity = severityAt(base, b, s.level);
    return;
  }
  if (s.active !== was) ks.activeSources += s.active ? 1 : -1;
  v.cond = ks.activeSources > 0;
  let level = 0;
  if (b && b.escalate.length > 0) {
    for (const src of ks.sources.values()) if (src.active) level = Math.max(level, src.level);
  }
  v.severity = severityAt(base, b, level);
}

/** Threshold: the reading's value against the bound, per device. False when the reading is late. */
export function judgeThreshold(
  rule: ThresholdRule,
  ks: KeyState,
  r: Reading,
  x: number,
  v: Verdict,
): boolean {
  const s = sourceOf(ks, r, false);
  if (r.ts < s.lastTs) return false; // older than what this device already told: not news
  s.lastTs = r.ts;
  const was = s.active;
  s.active = judge(rule.bound, was, x);
  s.level = s.active ? levelOf(rule.bound, s.level, x) : 0;
  v.value = x;
  fromSources(ks, s, was, rule.severity, rule.bound, v);
  return true;
}

/**
 * Rate: the reading against the device's values within `window` before it — a rise of more than
 * `change` above their minimum, or a fall of more than `change` below their maximum. The value
 * is the signed change.
 */
export function judgeRate(
  rule: RateRule,
  ks: KeyState,
  r: Reading,
  x: number,
  v: Verdict,
): boolean {
  const s = sourceOf(ks, r, true);
  if (r.ts < s.lastTs) return false;
  s.lastTs = r.ts;
  const w = s.samples as Samples;
  w.evictBefore(r.ts - rule.windowMs + 1);
  const rise = w.count > 0 ? x - w.min() : 0;
  const fall = w.count > 0 ? w.max() - x : 0;
  w.push(r.ts, x);
  const was = s.active;
  const d = rule.direction;
  s.active = (d !== 'down' && rise > rule.change) || (d !== 'up' && fall > rule.change);
  v.value = rise >= fall ? rise : -fall;
  fromSources(ks, s, was, rule.severity, undefined, v);
  return true;
}

/**
 * Aggregate: `fn` over the key's readings in (t − window, t], t the latest device time the key
 * has seen, compared like a threshold. A reading already outside the window is dropped.
 */
export function judgeAggregate(
  rule: AggregateRule,
  ks: KeyState,
  r: Reading,
  x: number,
  v: Verdict,
): boolean {
  const s = (ks.source ??= newSource(false));
  const w = (ks.samples ??= new Samples());
  const t = Math.max(s.lastTs, r.ts);
  if (r.ts <= t - rule.windowMs) return false;
  s.lastTs = t;
  w.push(r.ts, x);
  w.evictBefore(t - rule.windowMs + 1);
  const value = w.reduce(rule.fn) as number;
  s.active = judge(rule.bound, s.active, value);
  s.level = s.active ? levelOf(rule.bound, s.level, value) : 0;
  v.value = value;
  v.cond = s.active;
  v.severity = severityAt(rule.severity, rule.bound, s.level);
  return true;
}

/**
 * One alert per (rule, key) and its state machine (DESIGN §13):
 *
 *   inactive ─cond─▶ pending ─`for` held─▶ firing ─clear held `clearFor`─▶ resolved
 *                       │ cond gone                                         │ cond
 *                       ▼                                                   ▼
 *                 back to inactive/resolved ("cancelled")                pending …
 *
 * With `for: 0s` a true condition fires at once; with `clearFor: 0s` a false one resolves at
 * once. Acknowledgement (who, when) is beside the state and ends with the episode. Severity may
 * rise and fall while firing (escalation bounds). Flapping: `flips` firing/resolved steps within
 * `window` mark the alert flapping; the step that does so is notified (carrying
 * `flapping: true`), later flips are kept in the history but not notified, and once the alert
 * has held one state for `settle` a `settled` step tells operators where it ended — two messages
 * per episode instead of one per flip (the ThingsBoard complaint of a mail every 4 s).
 *
 * Every step gets the alert's next `seq`; pending and cancelled are history, never notified.
 */
import type { Timed } from './timers.js';
import type {
  Acknowledgement,
  AlertState,
  Rule,
  Severity,
  Transition,
  TransitionEvent,
} from './types.js';
import type { Samples } from './window.js';

/** Condition state of one device within a key (threshold and rate rules judge each device). */
export interface Source {
  /** Device time of its latest reading: an older one is late and does not judge. */
  lastTs: number;
  active: boolean;
  /** Escalation level: 0 is the rule's severity, k its k-th `escalate` entry. */
  level: number;
  /** Rate rules: the device's recent values. */
  samples: Samples | undefined;
}

/** Everything the evaluator keeps for one (rule, key): condition, alert, timers. */
export interface KeyState extends Timed {
  readonly alertId: string;
  readonly key: string;
  readonly rank: number;
  // condition
  cond: boolean;
  /** Device-scope threshold/rate rules judge the key's own source… */
  source: Source | undefined;
  /** …group-scope ones judge each device of the site or district; the key is raised while any is. */
  sources: Map<string, Source> | undefined;
  activeSources: number;
  /** Aggregate rules: the key's window; its own hysteresis is `source`. */
  samples: Samples | undefined;
  /** Absence rules: evaluator clock when last heard from. */
  lastHeard: number | undefined;
  // alert
  state: AlertState;
  /** What a cancelled pending goes back to. */
  beforePending: 'inactive' | 'resolved';
  severity: Severity;
  since: number;
  seq: number;
  value: number | null;
  ack: Acknowledgement | null;
  flapping: boolean;
  /** Times of recent firing/resolved steps, for flapping. */
  flips: number[];
  /** The settle deadline passed while pending: settle when the pending is decided. */
  settleHeld: boolean;
  /** Latest evaluator time this key has seen; its steps never go back in time. */
  lastTs: number;
  // timers (evaluator time, ms)
  forDue: number | undefined;
  clearDue: number | undefined;
  settleDue: number | undefined;
  absenceDue: number | undefined;
}

export function newKeyState(
  ruleId: string,
  rank: number,
  key: string,
  severity: Severity,
): KeyState {
  return {
    alertId: `${ruleId}:${key}`,
    key,
    rank,
    due: undefined,
    queued: undefined,
    heapIndex: -1,
    cond: false,
    source: undefined,
    sources: undefined,
    activeSources: 0,
    samples: undefined,
    lastHeard: undefined,
    state: 'inactive',
    beforePending: 'inactive',
    severity,
    since: 0,
    seq: 0,
    value: null,
    ack: null,
    flapping: false,
    flips: [],
    settleHeld: false,
    lastTs: -Infinity,
    forDue: undefined,
    clearDue: undefined,
    settleDue: undefined,
    absenceDue: undefined,
  };
}

/** The earliest armed timer of a key, for the heap. */
export function earliest(ks: KeyState): number | undefined {
  return min(min(ks.forDue, ks.clearDue), min(ks.settleDue, ks.absenceDue));
}

function min(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined || a < b ? a : b;
}

const NOTIFIED: ReadonlySet<TransitionEvent> = new Set([
  'firing',
  'resolved',
  'severity',
  'acknowledged',
  'settled',
]);

/** Appends one step of the key's history to `out`. */
function emit(
  out: Transition[],
  rule: Rule,
  ks: KeyState,
  t: number,
  event: TransitionEvent,
  notify: boolean,
): void {
  ks.seq += 1;
  ks.lastTs = Math.max(ks.lastTs, t);
  out.push({
    alertId: ks.alertId,
    ruleId: rule.id,
    key: ks.key,
    seq: ks.seq,
    ts: t,
    event,
    state: ks.state,
    severity: ks.severity,
    value: ks.value,
    flapping: ks.flapping,
    acknowledged: ks.ack,
    notify: notify && NOTIFIED.has(event),
  });
}

/** A firing/resolved step: counts towards flapping, and says whether it is notified. */
function flip(rule: Rule, ks: KeyState, t: number): boolean {
  const p = rule.flapping;
  const flips = ks.flips;
  flips.push(t);
  let old = 0;
  while (old < flips.length && (flips[old] as number) <= t - p.windowMs) old++;
  if (old > 0) flips.splice(0, old);
  ks.settleHeld = false;
  if (ks.flapping) {
    ks.settleDue = t + p.settleMs;
    return false;
  }
  if (flips.length >= p.flips) {
    ks.flapping = true;
    ks.settleDue = t + p.settleMs;
  }
  return true; // the step that starts flapping is told, with flapping: true
}

function fire(out: Transition[], rule: Rule, ks: KeyState, t: number, severity: Severity): void {
  ks.state = 'firing';
  ks.since = t;
  ks.forDue = undefined;
  ks.severity = severity;
  emit(out, rule, ks, t, 'firing', flip(rule, ks, t));
}

function resolve(out: Transition[], rule: Rule, ks: KeyState, t: number): void {
  ks.state = 'resolved';
  ks.since = t;
  ks.clearDue = undefined;
  emit(out, rule, ks, t, 'resolved', flip(rule, ks, t));
  ks.ack = null; // an acknowledgement belongs to one episode
}

function settle(out: Transition[], rule: Rule, ks: KeyState, t: number): void {
  ks.flapping = false;
  ks.flips.length = 0;
  ks.settleDue = undefined;
  ks.settleHeld = false;
  emit(out, rule, ks, t, 'settled', true);
}

/**
 * Applies the key's condition at evaluator time `t` with the severity it calls for. The
 * condition is already hysteresis-applied (raised past the raise bound, cleared past the clear
 * bound), so this only times it: `for`, `clearFor`, severity changes while firing.
 */
export function applyCondition(
  out: Transition[],
  rule: Rule,
  ks: KeyState,
  cond: boolean,
  severity: Severity,
  t: number,
  value: number | null,
): void {
  t = Math.max(t, ks.lastTs);
  ks.lastTs = t;
  ks.value = value;
  if (cond === ks.cond) {
    if (ks.state === 'firing' && cond && severity !== ks.severity) {
      ks.severity = severity;
      emit(out, rule, ks, t, 'severity', !ks.flapping);
    } else if (ks.state === 'pending') ks.severity = severity; // a resolved alert keeps its last
    return;
  }
  ks.cond = cond;
  if (cond) {
    if (ks.state === 'firing') {
      ks.clearDue = undefined; // the clear condition did not hold for clearFor
      if (severity !== ks.severity) {
        ks.severity = severity;
        emit(out, rule, ks, t, 'severity', !ks.flapping);
      }
    } else if (ks.state !== 'pending') {
      if (rule.forMs === 0) return fire(out, rule, ks, t, severity);
      ks.beforePending = ks.state;
      ks.state = 'pending';
      ks.since = t;
      ks.severity = severity;
      ks.forDue = t + rule.forMs;
      emit(out, rule, ks, t, 'pending', false);
    }
    return;
  }
  if (ks.state === 'pending') {
    ks.state = ks.beforePending;
    ks.forDue = undefined;
    emit(out, rule, ks, t, 'cancelled', false);
    if (ks.settleHeld) settle(out, rule, ks, t);
  } else if (ks.state === 'firing') {
    if (rule.clearForMs === 0) resolve(out, rule, ks, t);
    else ks.clearDue = t + rule.clearForMs;
  }
}

/**
 * Fires the key's alert timers due at `t`, its earliest deadline (`for`, `clearFor`, flapping
 * settle, in that order on a tie). The absence timer is a condition: the evaluator applies it
 * before this.
 */
export function fireAlertTimers(out: Transition[], rule: Rule, ks: KeyState, t: number): void {
  if (ks.forDue !== undefined && ks.forDue <= t) fire(out, rule, ks, ks.forDue, ks.severity);
  if (ks.clearDue !== undefined && ks.clearDue <= t) resolve(out, rule, ks, ks.clearDue);
  if (ks.settleDue !== undefined && ks.settleDue <= t) {
    if (ks.state === 'pending') {
      // Settling now would tell operators "pending", which they are never told; the pending
      // decides within `for`, and its outcome settles (a firing is a flip, a cancel settles).
      ks.settleDue = undefined;
      ks.settleHeld = true;
    } else settle(out, rule, ks, ks.settleDue);
  }
}

/** An operator's acknowledgement of a firing alert; notified even while flapping. */
export function acknowledge(
  out: Transition[],
  rule: Rule,
  ks: KeyState,
  by: string,
  at: number,
): void {
  ks.ack = { by, at };
  emit(out, rule, ks, Math.max(at, ks.lastTs), 'acknowledged', true);
}

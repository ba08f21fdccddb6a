/**
 * The rule evaluator (DESIGN §13): pure and deterministic. Readings go in, in spool order after
 * their fsync; transitions come out. No host timer and no `Date.now` in here: the clock is a
 * dependency (the wall clock live, device time on replay), and timers are data — the caller
 * asks `nextDeadline()`, sets one host timer, and calls `advance(now)` when it rings, so absence
 * alerts fire with no reading at all and a restart restores every timer from the snapshot.
 *
 * Two times meet here. Conditions, windows, `for` and `clearFor` run on device time (`ts`), so a
 * backfilled hour evaluates as it did live. Absence runs on the evaluator's clock (DESIGN §13
 * "wall clock"): it is about the gateway not hearing a device, whatever the device's clock says.
 * A timer that has passed on the clock fires when the caller advances; a reading first fires its
 * own key's timers that its time has passed, so results do not depend on how often the caller
 * advances.
 *
 * Hot path: rules are indexed by device type; a reading of a type without rules costs one Map
 * lookup, and a reading that changes nothing allocates nothing but window growth.
 */
import { createHash } from 'node:crypto';
import { ERR_ALERT_NOT_FIRING, ERR_NOT_FOUND } from '../errors.js';
import {
  acknowledge,
  applyCondition,
  earliest,
  fireAlertTimers,
  newKeyState,
  type KeyState,
} from './alert.js';
import {
  fieldOf,
  judgeAggregate,
  judgeRate,
  judgeThreshold,
  numeric,
  type Verdict,
} from './conditions.js';
import { keyFromRecord, recordOf, type KeyRecord, type StateChunk } from './state.js';
import { TimerQueue } from './timers.js';
import type {
  AbsenceRule,
  Acknowledgement,
  AlertState,
  Reading,
  Rule,
  Severity,
  Transition,
} from './types.js';

export interface EvaluatorOptions {
  /** The evaluator's clock, epoch ms: the wall clock live, device time on replay or bench. */
  readonly clock: () => number;
}

/** An alert as listed: its current state, not its history. */
export interface AlertView {
  readonly id: string;
  readonly rule: string;
  readonly key: string;
  readonly state: AlertState;
  readonly severity: Severity;
  readonly since: number;
  readonly value: number | null;
  readonly flapping: boolean;
  readonly acknowledged: Acknowledgement | null;
  readonly seq: number;
}

/** One rule at run time: its keys, and the composites built on it. */
interface RuleRt {
  readonly rule: Rule;
  readonly rank: number;
  /** Changes when the rule does; restored state of another version is reset (seq kept). */
  readonly fingerprint: string;
  /** The field its readings must carry; none for an absence rule that counts any reading. */
  readonly field: string | undefined;
  readonly keys: Map<string, KeyState>;
  readonly composites: RuleRt[];
  readonly parts: RuleRt[];
}

const NONE: readonly Transition[] = Object.freeze([]);

export function fingerprintOf(rule: Rule): string {
  return createHash('sha256').update(JSON.stringify(rule)).digest('hex').slice(0, 16);
}

function keyOf(rule: Rule, r: Reading): string {
  const by = rule.scope.by;
  return by === 'device' ? r.deviceId : by === 'site' ? r.siteId : r.district;
}

export class Evaluator {
  readonly #rules: RuleRt[];
  readonly #byId = new Map<string, RuleRt>();
  /** Device type → the rules its readings feed (composites and aqi are not fed directly). */
  readonly #byType = new Map<string, RuleRt[]>();
  readonly #timers = new TimerQueue<KeyState>();
  readonly #dirty = new Set<KeyState>();
  readonly #clock: () => number;
  /** The latest evaluator time seen (clock at readings, `advance` arguments). */
  #now = 0;
  /** The clock of the restored state: when the gateway last committed before it stopped. */
  #restoredAt: number | undefined;
  #out: Transition[] = [];
  readonly #verdict: Verdict = { cond: false, severity: 'info', value: null };

  /** `rules` must have passed `parseRule` and `checkRuleSet`. */
  constructor(rules: readonly Rule[], opts: EvaluatorOptions) {
    this.#clock = opts.clock;
    this.#rules = rules.map((rule, rank) => ({
      rule,
      rank,
      fingerprint: fingerprintOf(rule),
      field: 'field' in rule ? rule.field : undefined,
      keys: new Map(),
      composites: [],
      parts: [],
    }));
    for (const rt of this.#rules) this.#byId.set(rt.rule.id, rt);
    for (const rt of this.#rules) {
      const rule = rt.rule;
      if (rule.kind === 'all' || rule.kind === 'any') {
        for (const id of rule.rules) {
          const part = this.#byId.get(id) as RuleRt;
          rt.parts.push(part);
          part.composites.push(rt);
        }
      } else if (rule.kind !== 'aqi') {
        // aqi rules are validated but not evaluated until the AQI of DESIGN §14 feeds them.
        const list = this.#byType.get(rule.type) ?? [];
        list.push(rt);
        this.#byType.set(rule.type, list);
      }
    }
  }

  /** Evaluates one reading; returns the transitions it caused (often none). */
  onReading(r: Reading): readonly Transition[] {
    const list = this.#byType.get(r.type);
    if (list === undefined) return NONE;
    const now = this.#clock();
    if (now > this.#now) this.#now = now;
    for (const rt of list) {
      const rule = rt.rule;
      const key = keyOf(rule, r);
      if (rule.scope.value !== undefined && rule.scope.value !== key) continue;
      const raw = rt.field === undefined ? true : fieldOf(r, rt.field);
      if (raw === undefined) continue;
      const ks = this.#key(rt, key);
      const wasCond = ks.cond;
      if (rule.kind === 'absence') {
        this.#catchUp(rt, ks, now);
        ks.lastHeard = now;
        ks.absenceDue = now + rule.afterMs;
        if (ks.cond) applyCondition(this.#out, rule, ks, false, rule.severity, now, null);
      } else {
        const x = numeric(raw);
        if (x === undefined) continue;
        this.#catchUp(rt, ks, r.ts);
        const v = this.#verdict;
        const judged =
          rule.kind === 'threshold'
            ? judgeThreshold(rule, ks, r, x, v)
            : rule.kind === 'rate'
              ? judgeRate(rule, ks, r, x, v)
              : rule.kind === 'aggregate' && judgeAggregate(rule, ks, r, x, v);
        if (judged) applyCondition(this.#out, rule, ks, v.cond, v.severity, r.ts, v.value);
      }
      this.#touched(ks);
      if (rt.composites.length > 0) this.#recompose(rt, key, ks.lastTs, ks.cond !== wasCond);
    }
    return this.#flush();
  }

  /**
   * Arms absence timers for a device that has not spoken since the start (from the registry),
   * so a device that never reports is found absent too. A known key is left as it is.
   */
  expect(d: Pick<Reading, 'deviceId' | 'type' | 'district' | 'siteId'>): void {
    const now = this.#clock();
    for (const rt of this.#byType.get(d.type) ?? []) {
      const rule = rt.rule;
      if (rule.kind !== 'absence') continue;
      const key = keyOf(rule, d as Reading);
      if (rule.scope.value !== undefined && rule.scope.value !== key) continue;
      if (rt.keys.has(key)) continue;
      const ks = this.#key(rt, key);
      ks.absenceDue = now + rule.afterMs;
      this.#touched(ks);
    }
  }

  /** The earliest timer deadline (evaluator time), or undefined when none is armed. */
  nextDeadline(): number | undefined {
    return this.#timers.peek();
  }

  /** Fires every timer due at or before `now`, in deadline order; returns the transitions. */
  advance(now: number): readonly Transition[] {
    if (now > this.#now) this.#now = now;
    for (let ks = this.#timers.popDue(now); ks !== undefined; ks = this.#timers.popDue(now)) {
      const rt = this.#rules[ks.rank] as RuleRt;
      this.#fireKey(rt, ks, ks.due as number);
      this.#touched(ks);
    }
    return this.#flush();
  }

  /** An operator acknowledges a firing alert (DESIGN §13); a repeat is a no-op. */
  acknowledge(alertId: string, by: string, at: number): readonly Transition[] {
    const { rt, ks } = this.#find(alertId);
    if (ks.state !== 'firing') throw ERR_ALERT_NOT_FIRING(alertId, ks.state);
    if (ks.ack !== null) return NONE;
    acknowledge(this.#out, rt.rule, ks, by, at);
    this.#touched(ks);
    return this.#flush();
  }

  alert(alertId: string): AlertView | undefined {
    try {
      const { rt, ks } = this.#find(alertId);
      return viewOf(ks, rt.rule.id);
    } catch {
      return undefined;
    }
  }

  /** Every alert that has left `inactive`, in rule order then key order of first sight. */
  *alerts(): IterableIterator<AlertView> {
    for (const rt of this.#rules) {
      for (const ks of rt.keys.values()) if (ks.state !== 'inactive') yield viewOf(ks, rt.rule.id);
    }
  }

  /**
   * The state changed since the last call (delta), to commit with the alerts and the spool
   * position in one transaction; `full` gives every key, for a first commit or compaction.
   */
  snapshot(full = false): StateChunk {
    const entries: KeyRecord[] = [];
    if (full) {
      for (const rt of this.#rules) {
        for (const ks of rt.keys.values()) entries.push(recordOf(rt.rule.id, rt.fingerprint, ks));
      }
    } else {
      for (const ks of this.#dirty) {
        const rt = this.#rules[ks.rank] as RuleRt;
        entries.push(recordOf(rt.rule.id, rt.fingerprint, ks));
      }
    }
    this.#dirty.clear();
    return { version: 1, clock: this.#now, entries };
  }

  /**
   * Loads committed state: a full snapshot then the deltas after it, or the rows a store kept
   * by (rule, key) — the latest record of a key wins. State of a rule that no longer exists is
   * dropped; of a rule that changed, reset but for its `seq`, so delivery ids never repeat.
   */
  restore(chunks: Iterable<StateChunk>): void {
    for (const chunk of chunks) {
      if (chunk.clock > this.#now) this.#now = chunk.clock;
      if (chunk.clock > (this.#restoredAt ?? -Infinity)) this.#restoredAt = chunk.clock;
      for (const rec of chunk.entries) {
        const rt = this.#byId.get(rec.rule);
        if (rt === undefined) continue;
        const fresh = this.#key(rt, rec.key);
        const ks = rec.fingerprint === rt.fingerprint ? keyFromRecord(fresh, rec) : fresh;
        ks.seq = Math.max(ks.seq, rec.alert.seq);
        rt.keys.set(rec.key, ks);
        this.#rearm(ks);
      }
    }
    this.#dirty.clear();
  }

  /**
   * The restart gap policy, called once after `restore` on a gateway start: the gateway's
   * downtime is not a device's absence. An absence deadline still ahead at the last commit
   * keeps the time it had left then, counted from `now`, and at least the type's reporting
   * interval — so 500 devices reconnecting after a restart raise nothing, and one that does
   * not come back is found absent as late as it would have been. A deadline already passed at
   * the last commit stays: that device was absent while the gateway was still listening.
   */
  resumeAfterGap(now: number): void {
    const savedAt = this.#restoredAt;
    if (savedAt === undefined) return;
    this.#restoredAt = undefined;
    for (const rt of this.#rules) {
      if (rt.rule.kind !== 'absence') continue;
      const grace = (rt.rule as AbsenceRule).intervalMs;
      for (const ks of rt.keys.values()) {
        if (ks.absenceDue === undefined || ks.absenceDue <= savedAt) continue;
        ks.absenceDue = now + Math.max(ks.absenceDue - savedAt, grace);
        this.#touched(ks);
      }
    }
    if (now > this.#now) this.#now = now;
  }

  /** The evaluator time of the last reading or advance: what a snapshot records as `clock`. */
  get now(): number {
    return this.#now;
  }

  #find(alertId: string): { rt: RuleRt; ks: KeyState } {
    const i = alertId.indexOf(':');
    const rt = i > 0 ? this.#byId.get(alertId.slice(0, i)) : undefined;
    const ks = rt?.keys.get(alertId.slice(i + 1));
    if (rt === undefined || ks === undefined) throw ERR_NOT_FOUND('alert', alertId);
    return { rt, ks };
  }

  #key(rt: RuleRt, key: string): KeyState {
    let ks = rt.keys.get(key);
    if (ks === undefined) {
      const rule = rt.rule;
      ks = newKeyState(rule.id, rt.rank, key, rule.severity);
      const perDevice = rule.kind === 'threshold' || rule.kind === 'rate';
      if (perDevice && rule.scope.by !== 'device') ks.sources = new Map();
      rt.keys.set(key, ks);
    }
    return ks;
  }

  /** Fires the key's own timers that `limit` has passed, earliest first. */
  #catchUp(rt: RuleRt, ks: KeyState, limit: number): void {
    for (let d = earliest(ks); d !== undefined && d <= limit; d = earliest(ks)) {
      this.#fireKey(rt, ks, d);
    }
  }

  /** Fires the key's timers due at `d`, its earliest deadline. */
  #fireKey(rt: RuleRt, ks: KeyState, d: number): void {
    const rule = rt.rule;
    if (ks.absenceDue !== undefined && ks.absenceDue <= d) {
      ks.absenceDue = undefined;
      const was = ks.cond;
      applyCondition(this.#out, rule, ks, true, rule.severity, d, null);
      if (rt.composites.length > 0) this.#recompose(rt, ks.key, d, ks.cond !== was);
    }
    fireAlertTimers(this.#out, rule, ks, d);
    this.#rearm(ks);
  }

  /**
   * A part's condition for `key` changed (or its time moved): the composites over it judge the
   * key again — `all` raised while every part is, `any` while one is.
   */
  #recompose(part: RuleRt, key: string, t: number, changed: boolean): void {
    for (const rt of part.composites) {
      if (!changed && !rt.keys.has(key)) continue;
      const ks = this.#key(rt, key);
      this.#catchUp(rt, ks, t);
      const all = rt.rule.kind === 'all';
      let cond = all;
      for (const p of rt.parts) {
        const c = p.keys.get(key)?.cond ?? false;
        if (all ? !c : c) {
          cond = !all;
          break;
        }
      }
      applyCondition(this.#out, rt.rule, ks, cond, rt.rule.severity, t, null);
      this.#touched(ks);
    }
  }

  #rearm(ks: KeyState): void {
    ks.due = earliest(ks);
    this.#timers.arm(ks);
  }

  #touched(ks: KeyState): void {
    this.#rearm(ks);
    this.#dirty.add(ks);
  }

  #flush(): readonly Transition[] {
    if (this.#out.length === 0) return NONE;
    const out = this.#out;
    this.#out = [];
    return out;
  }
}

function viewOf(ks: KeyState, rule: string): AlertView {
  return {
    id: ks.alertId,
    rule,
    key: ks.key,
    state: ks.state,
    severity: ks.severity,
    since: ks.since,
    value: ks.value,
    flapping: ks.flapping,
    acknowledged: ks.ack,
    seq: ks.seq,
  };
}

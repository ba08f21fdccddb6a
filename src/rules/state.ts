/**
 * The evaluator's state as JSON (DESIGN §13: rule state, alerts and the evaluator's spool
 * position commit together, so kill -9 neither loses, repeats nor re-notifies a transition).
 *
 * Shape: one self-contained record per (rule, key) — its condition (windows, per-device
 * hysteresis), its alert (state, severity, seq, acknowledgement, flapping) and its timers — plus
 * the evaluator clock. `snapshot()` returns the records changed since the previous call (a
 * delta), `snapshot(true)` every record. A delta, not the whole state, because the commit
 * happens after every spool batch: ten thousand devices under fifty rules are hundreds of
 * thousands of records, of which a batch touches a few hundred. Records are upserts keyed by
 * (rule, key), so a store keeps one row per key and restore reads the rows back as one chunk —
 * no chain of deltas to replay, no compaction beyond the upsert itself.
 *
 * Numbers round-trip exactly through JSON (finite doubles print shortest-exact), which is what
 * lets a restored evaluator decide exactly like one that never stopped. "Never" (−∞) is null.
 */
import type { KeyState, Source } from './alert.js';
import { ERR_RULE_STATE } from '../errors.js';
import type { Acknowledgement, AlertState, Severity } from './types.js';
import { Samples, type SamplesRecord } from './window.js';

export interface SourceRecord {
  readonly lastTs: number | null;
  readonly active: boolean;
  readonly level: number;
  readonly samples: SamplesRecord | null;
}

export interface KeyRecord {
  readonly rule: string;
  /** The rule version this state belongs to (`fingerprintOf`). */
  readonly fingerprint: string;
  readonly key: string;
  readonly cond: boolean;
  readonly source: SourceRecord | null;
  /** Group scope: each device's own condition, by device id. */
  readonly sources: readonly (readonly [string, SourceRecord])[] | null;
  readonly activeSources: number;
  readonly samples: SamplesRecord | null;
  readonly lastHeard: number | null;
  readonly alert: {
    readonly state: AlertState;
    readonly beforePending: 'inactive' | 'resolved';
    readonly severity: Severity;
    readonly since: number;
    readonly seq: number;
    readonly value: number | null;
    readonly ack: Acknowledgement | null;
    readonly flapping: boolean;
    readonly flips: readonly number[];
    readonly settleHeld: boolean;
    readonly lastTs: number | null;
  };
  readonly timers: {
    readonly for: number | null;
    readonly clear: number | null;
    readonly settle: number | null;
    readonly absence: number | null;
  };
}

export interface StateChunk {
  readonly version: 1;
  /** The evaluator clock when taken: the restart gap policy measures downtime from it. */
  readonly clock: number;
  readonly entries: readonly KeyRecord[];
}

const fin = (x: number): number | null => (Number.isFinite(x) ? x : null);
const opt = (x: number | undefined): number | null => x ?? null;

function sourceRecord(s: Source): SourceRecord {
  return {
    lastTs: fin(s.lastTs),
    active: s.active,
    level: s.level,
    samples: s.samples?.toRecord() ?? null,
  };
}

function sourceOf(r: SourceRecord): Source {
  return {
    lastTs: r.lastTs ?? -Infinity,
    active: r.active,
    level: r.level,
    samples: r.samples ? Samples.from(r.samples) : undefined,
  };
}

export function recordOf(rule: string, fingerprint: string, ks: KeyState): KeyRecord {
  return {
    rule,
    fingerprint,
    key: ks.key,
    cond: ks.cond,
    source: ks.source ? sourceRecord(ks.source) : null,
    sources: ks.sources ? [...ks.sources].map(([id, s]) => [id, sourceRecord(s)] as const) : null,
    activeSources: ks.activeSources,
    samples: ks.samples?.toRecord() ?? null,
    lastHeard: opt(ks.lastHeard),
    alert: {
      state: ks.state,
      beforePending: ks.beforePending,
      severity: ks.severity,
      since: ks.since,
      seq: ks.seq,
      value: ks.value,
      ack: ks.ack,
      flapping: ks.flapping,
      flips: [...ks.flips],
      settleHeld: ks.settleHeld,
      lastTs: fin(ks.lastTs),
    },
    timers: {
      for: opt(ks.forDue),
      clear: opt(ks.clearDue),
      settle: opt(ks.settleDue),
      absence: opt(ks.absenceDue),
    },
  };
}

/** Overwrites every field of `ks` from the record (a later record of a key replaces all of it). */
export function keyFromRecord(ks: KeyState, rec: KeyRecord): KeyState {
  const a = rec.alert;
  ks.cond = rec.cond;
  ks.source = rec.source ? sourceOf(rec.source) : undefined;
  ks.sources = rec.sources ? new Map(rec.sources.map(([id, s]) => [id, sourceOf(s)])) : undefined;
  ks.activeSources = rec.activeSources;
  ks.samples = rec.samples ? Samples.from(rec.samples) : undefined;
  ks.lastHeard = rec.lastHeard ?? undefined;
  ks.state = a.state;
  ks.beforePending = a.beforePending;
  ks.severity = a.severity;
  ks.since = a.since;
  ks.seq = a.seq;
  ks.value = a.value;
  ks.ack = a.ack;
  ks.flapping = a.flapping;
  ks.flips = [...a.flips];
  ks.settleHeld = a.settleHeld;
  ks.lastTs = a.lastTs ?? -Infinity;
  ks.forDue = rec.timers.for ?? undefined;
  ks.clearDue = rec.timers.clear ?? undefined;
  ks.settleDue = rec.timers.settle ?? undefined;
  ks.absenceDue = rec.timers.absence ?? undefined;
  return ks;
}

/** Parses a stored chunk; refuses a version this code does not know rather than guess. */
export function parseChunk(text: string): StateChunk {
  let chunk: StateChunk;
  try {
    chunk = JSON.parse(text) as StateChunk;
  } catch (err) {
    throw ERR_RULE_STATE(`not valid JSON (${(err as Error).message})`);
  }
  if (chunk?.version !== 1 || !Array.isArray(chunk.entries) || typeof chunk.clock !== 'number') {
    throw ERR_RULE_STATE('not a version-1 state chunk ({ version: 1, clock, entries })');
  }
  return chunk;
}

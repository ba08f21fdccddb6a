/**
 * The shapes the rules-and-alerts core speaks (DESIGN §13). Defined here, not imported from
 * the pipeline or the store, so the core stays a set of pure modules the gateway wires in.
 */

export type FieldValue = number | boolean | string;

/** One accepted reading, as the evaluator sees it after its spool commit. */
export interface Reading {
  readonly deviceId: string;
  readonly type: string;
  readonly district: string;
  readonly siteId: string;
  /** Device time, epoch ms (DESIGN §4 `ts`). */
  readonly ts: number;
  /** Field → value; the pipeline's null-prototype record, or a Map. Only fields present. */
  readonly fields: ReadonlyMap<string, FieldValue> | Readonly<Record<string, FieldValue>>;
}

/** A field's JSON Schema type, as the device schema fixes it (DESIGN §4). */
export type FieldType = 'integer' | 'number' | 'boolean' | 'string';

/** What rule validation and absence defaults need to know of a device type. */
export interface RuleCatalogType {
  readonly fields: ReadonlyMap<string, FieldType>;
  /** The type's expected reporting interval (`x-interval-seconds`), in ms. */
  readonly intervalMs: number;
}

/** Type name → what rules may refer to. The gateway adapts its schema catalogue to this. */
export interface RuleCatalog {
  get(type: string): RuleCatalogType | undefined;
}

export const SEVERITIES = ['info', 'minor', 'major', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export const RULE_KINDS = [
  'threshold',
  'rate',
  'absence',
  'aggregate',
  'aqi',
  'all',
  'any',
] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

export const WINDOW_FNS = ['mean', 'min', 'max', 'sum', 'count'] as const;
export type WindowFn = (typeof WINDOW_FNS)[number];

/** Which readings a rule sees and what its alerts are keyed by (DESIGN §13 "scope"). */
export type Scope =
  | { readonly by: 'device'; readonly value?: string }
  | { readonly by: 'site'; readonly value: string }
  | { readonly by: 'district'; readonly value: string };

/** A comparison with hysteresis: raised past `raise`, cleared only past `clear`. */
export interface Bound {
  /** `above`: raised when value > raise, cleared when value < clear. `below`: mirrored. */
  readonly side: 'above' | 'below';
  readonly raise: number;
  readonly clear: number;
  /** Higher severities, each raised past its own bound; ordered from the base outwards. */
  readonly escalate: readonly { readonly at: number; readonly severity: Severity }[];
}

export interface Webhook {
  readonly url: string;
  readonly secret: string;
}

export interface FlappingPolicy {
  /** Firing/resolved flips within `windowMs` that mark an alert flapping. */
  readonly flips: number;
  readonly windowMs: number;
  /** A flapping alert settles once it has held one state this long. */
  readonly settleMs: number;
}

interface RuleCommon {
  readonly id: string;
  readonly name: string | undefined;
  readonly type: string;
  readonly scope: Scope;
  readonly forMs: number;
  readonly clearForMs: number;
  readonly severity: Severity;
  readonly flapping: FlappingPolicy;
  readonly notify: readonly Webhook[];
}

export interface ThresholdRule extends RuleCommon {
  readonly kind: 'threshold';
  readonly field: string;
  readonly bound: Bound;
}

export interface RateRule extends RuleCommon {
  readonly kind: 'rate';
  readonly field: string;
  readonly change: number;
  readonly windowMs: number;
  readonly direction: 'up' | 'down' | 'either';
}

export interface AbsenceRule extends RuleCommon {
  readonly kind: 'absence';
  /** Only readings carrying this field count as signs of life, when set. */
  readonly field: string | undefined;
  readonly afterMs: number;
  /** The type's reporting interval: what a restart grants a device at least to come back. */
  readonly intervalMs: number;
}

export interface AggregateRule extends RuleCommon {
  readonly kind: 'aggregate';
  readonly field: string;
  readonly fn: WindowFn;
  readonly windowMs: number;
  readonly bound: Bound;
}

/** Validated now, evaluated once the AQI of DESIGN §14 feeds the evaluator. */
export interface AqiRule extends RuleCommon {
  readonly kind: 'aqi';
  readonly every: '1h' | '1d';
  readonly bound: Bound;
}

export interface CompositeRule extends RuleCommon {
  readonly kind: 'all' | 'any';
  readonly rules: readonly string[];
}

/** A validated rule: durations in ms, defaults filled in. */
export type Rule = ThresholdRule | RateRule | AbsenceRule | AggregateRule | AqiRule | CompositeRule;

export const ALERT_STATES = ['inactive', 'pending', 'firing', 'resolved'] as const;
export type AlertState = (typeof ALERT_STATES)[number];

export const TRANSITION_EVENTS = [
  'pending',
  'cancelled',
  'firing',
  'resolved',
  'severity',
  'acknowledged',
  'settled',
] as const;
export type TransitionEvent = (typeof TRANSITION_EVENTS)[number];

export interface Acknowledgement {
  readonly by: string;
  readonly at: number;
}

/** One step of an alert's history; `seq` rises by one per alert, never reused. */
export interface Transition {
  /** `{ruleId}:{key}`. */
  readonly alertId: string;
  readonly ruleId: string;
  readonly key: string;
  readonly seq: number;
  /** When it happened on the evaluator's time (device time, or a timer's deadline). */
  readonly ts: number;
  readonly event: TransitionEvent;
  /** The alert's state after this transition. */
  readonly state: AlertState;
  readonly severity: Severity;
  /** The value that decided it; null for absence, composites and timer-driven steps. */
  readonly value: number | null;
  readonly flapping: boolean;
  readonly acknowledged: Acknowledgement | null;
  /** Whether operators are told (DESIGN §13: firing, severity, acknowledged, resolved). */
  readonly notify: boolean;
}

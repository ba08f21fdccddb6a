/**
 * What the rules tests share: a small catalogue, rules built through the real validator, readings,
 * and a clock the test moves by hand.
 */
import { Evaluator } from '../../src/rules/evaluate.js';
import { parseRule } from '../../src/rules/schema.js';
import type { FieldType, Reading, Rule, RuleCatalog, Transition } from '../../src/rules/types.js';

const TYPES = new Map<string, { fields: ReadonlyMap<string, FieldType>; intervalMs: number }>([
  [
    'air-quality',
    {
      fields: new Map<string, FieldType>([
        ['pm25_ugm3', 'number'],
        ['pm10_ugm3', 'number'],
        ['no2_ugm3', 'number'],
      ]),
      intervalMs: 60_000,
    },
  ],
  [
    'manhole',
    {
      fields: new Map<string, FieldType>([
        ['water_level_cm', 'number'],
        ['cover_open', 'boolean'],
        ['battery_pct', 'integer'],
      ]),
      intervalMs: 300_000,
    },
  ],
  [
    'traffic-signal',
    {
      fields: new Map<string, FieldType>([
        ['mode', 'string'],
        ['cycle_length_s', 'integer'],
      ]),
      intervalMs: 60_000,
    },
  ],
]);

export const catalog: RuleCatalog = TYPES;

/** A rule from its JSON form, through the validator; throws with the problems when refused. */
export function rule(raw: Record<string, unknown>): Rule {
  const res = parseRule({ severity: 'major', type: 'air-quality', ...raw }, catalog);
  if (!res.ok) throw new Error(JSON.stringify(res.problems));
  return res.rule;
}

export interface Fixture {
  ev: Evaluator;
  /** The evaluator's clock; readings set it to their ts unless told otherwise. */
  clock: { now: number };
  /** Feeds one reading at device time `ts` (clock = ts), returns the transitions. */
  feed(ts: number, fields: Record<string, number | boolean | string>, who?: Who): Transition[];
  advance(now: number): Transition[];
}

export interface Who {
  device?: string;
  site?: string;
  district?: string;
  type?: string;
  /** Clock at evaluation when it differs from ts (a backfill, a skewed device). */
  at?: number;
}

export function reading(
  ts: number,
  fields: Record<string, number | boolean | string>,
  who: Who = {},
): Reading {
  return {
    deviceId: who.device ?? 'aq-1',
    type: who.type ?? 'air-quality',
    district: who.district ?? 'Binhu',
    siteId: who.site ?? 'site-1',
    ts,
    fields,
  };
}

export function fixture(rules: readonly Rule[]): Fixture {
  const clock = { now: 0 };
  const ev = new Evaluator(rules, { clock: () => clock.now });
  return {
    ev,
    clock,
    feed(ts, fields, who = {}) {
      clock.now = who.at ?? ts;
      return [...ev.onReading(reading(ts, fields, who))];
    },
    advance(now) {
      clock.now = now;
      return [...ev.advance(now)];
    },
  };
}

/** `event@ts→state` per transition: short enough to read a table of them. */
export function steps(ts: readonly Transition[]): string[] {
  return ts.map((t) => `${t.event}@${t.ts}→${t.state}`);
}

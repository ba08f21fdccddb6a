/**
 * The JSON Schema of a rule (DESIGN §13), one per kind so that AJV's errors point at the
 * field that is wrong rather than at a `oneOf` that failed as a whole. What JSON Schema
 * cannot say (a clear bound on the right side of its raise bound, a field of the rule's
 * device type) is checked after it, in `schema.ts`.
 */
import { RULE_KINDS, SEVERITIES, WINDOW_FNS, type RuleKind } from './types.js';

/** Rule ids go into MQTT topics (`alerts/{ruleId}/{key}`) and URL paths: keep them plain. */
export const RULE_ID_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';
/** The project's duration syntax (`parseDuration` in src/config.ts): `0s`, `30s`, `5m`, `1h`. */
export const DURATION_PATTERN = '^[0-9]+(ms|s|m|h|d)?$';

const duration = { type: 'string', pattern: DURATION_PATTERN } as const;
const finite = { type: 'number' } as const;
const ruleId = { type: 'string', pattern: RULE_ID_PATTERN } as const;

const common = {
  id: ruleId,
  name: { type: 'string', minLength: 1, maxLength: 200 },
  type: { type: 'string', minLength: 1, maxLength: 100 },
  kind: { type: 'string' },
  scope: {
    type: 'object',
    properties: {
      device: { type: 'string', minLength: 1 },
      site: { type: 'string', minLength: 1 },
      district: { type: 'string', minLength: 1 },
    },
    additionalProperties: false,
    minProperties: 1,
    maxProperties: 1,
  },
  for: duration,
  clearFor: duration,
  severity: { enum: SEVERITIES },
  flapping: {
    type: 'object',
    properties: {
      flips: { type: 'integer', minimum: 2, maximum: 1000 },
      window: duration,
      settle: duration,
    },
    additionalProperties: false,
  },
  notify: {
    type: 'array',
    maxItems: 16,
    items: {
      type: 'object',
      properties: {
        webhook: { type: 'string', pattern: '^https?://' },
        // A signing secret guessable by brute force signs nothing (DESIGN §13 X-Taihu-Signature).
        secret: { type: 'string', minLength: 16, maxLength: 1024 },
      },
      required: ['webhook', 'secret'],
      additionalProperties: false,
    },
  },
} as const;

const escalate = {
  type: 'array',
  minItems: 1,
  maxItems: 3,
  items: {
    type: 'object',
    properties: { above: finite, below: finite, severity: { enum: SEVERITIES } },
    required: ['severity'],
    additionalProperties: false,
  },
} as const;

const bounds = {
  above: finite,
  below: finite,
  clearBelow: finite,
  clearAbove: finite,
  escalate,
} as const;

const field = { type: 'string', minLength: 1 } as const;

const KIND_PROPERTIES: Readonly<Record<RuleKind, Readonly<Record<string, unknown>>>> = {
  threshold: { field, ...bounds },
  rate: {
    field,
    change: { type: 'number', exclusiveMinimum: 0 },
    window: duration,
    direction: { enum: ['up', 'down', 'either'] },
  },
  absence: { field, after: duration },
  aggregate: { field, fn: { enum: WINDOW_FNS }, window: duration, ...bounds },
  aqi: { every: { enum: ['1h', '1d'] }, above: finite, clearBelow: finite },
  all: { rules: { type: 'array', minItems: 2, maxItems: 16, uniqueItems: true, items: ruleId } },
  any: { rules: { type: 'array', minItems: 2, maxItems: 16, uniqueItems: true, items: ruleId } },
};

const KIND_REQUIRED: Readonly<Record<RuleKind, readonly string[]>> = {
  threshold: ['field'],
  rate: ['field', 'change', 'window'],
  absence: [],
  aggregate: ['field', 'fn', 'window'],
  aqi: ['above'],
  all: ['rules'],
  any: ['rules'],
};

/** The schema of one kind of rule, as served to rule authors. */
export function ruleSchema(kind: RuleKind): Readonly<Record<string, unknown>> {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: `urn:taihu:rule:${kind}`,
    title: `Taihu ${kind} rule`,
    type: 'object',
    properties: { ...common, kind: { const: kind }, ...KIND_PROPERTIES[kind] },
    required: ['id', 'type', 'kind', 'severity', ...KIND_REQUIRED[kind]],
    additionalProperties: false,
  };
}

export const RULE_SCHEMAS: ReadonlyMap<RuleKind, Readonly<Record<string, unknown>>> = new Map(
  RULE_KINDS.map((k) => [k, ruleSchema(k)]),
);

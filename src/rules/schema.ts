/**
 * Rule validation (DESIGN §13): JSON Schema first (`rule-schema.ts`), then what a schema
 * cannot say — hysteresis on the right side, fields of the rule's device type, composites
 * over rules that exist. Every problem names its field as a JSON pointer, so a bad file
 * stops the start naming file and field, and a bad rule over the API is a 400 that does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parseDuration } from '../config.js';
import { ERR_RULE_FILE } from '../errors.js';
import { RULE_SCHEMAS } from './rule-schema.js';
import {
  RULE_KINDS,
  SEVERITIES,
  type Bound,
  type FieldType,
  type FlappingPolicy,
  type Rule,
  type RuleCatalog,
  type RuleCatalogType,
  type RuleKind,
  type Scope,
  type Severity,
} from './types.js';

/** Defaults for what a rule may leave out; each is overridable per rule. */
export const RULE_DEFAULTS = {
  /** `for`: raise at once (0 ms); set e.g. `5m` to need the condition held that long. */
  forMs: 0,
  /** `clearFor`: resolve at once (0 ms); set e.g. `5m` to need the clear condition held. */
  clearForMs: 0,
  /** `after` of an absence rule: this many of the type's reporting intervals. */
  absenceIntervals: 3,
  /** `flapping`: 4 firing/resolved flips within 10 min mark an alert flapping… */
  flapping: { flips: 4, windowMs: 10 * 60_000, settleMs: 10 * 60_000 } as FlappingPolicy,
  /** `direction` of a rate rule: a rise or a fall both count. */
  direction: 'either',
  /** `every` of an aqi rule: the hourly AQI (DESIGN §14). */
  aqiEvery: '1h',
} as const;

/** One thing wrong with a rule: where (a JSON pointer into the rule) and what. */
export interface RuleProblem {
  readonly pointer: string;
  readonly message: string;
}

export type ParseResult =
  | { readonly ok: true; readonly rule: Rule }
  | { readonly ok: false; readonly problems: readonly RuleProblem[] };

/** HJ 633 pollutants (DESIGN §14): an aqi rule needs a type that measures one of them. */
const AQI_FIELDS = ['pm25_ugm3', 'pm10_ugm3', 'no2_ugm3', 'so2_ugm3', 'o3_ugm3', 'co_mgm3'];

/** Field types each kind can compare; booleans count as 0/1 (a cover open, a leak detected). */
const FIELD_TYPES: Readonly<Partial<Record<RuleKind, readonly FieldType[]>>> = {
  threshold: ['integer', 'number', 'boolean'],
  aggregate: ['integer', 'number', 'boolean'],
  rate: ['integer', 'number'],
  absence: ['integer', 'number', 'boolean', 'string'],
};

const ajv = new Ajv({ allErrors: true, strict: true });
const VALIDATORS = new Map<RuleKind, ValidateFunction>(
  [...RULE_SCHEMAS].map(([kind, schema]) => [kind, ajv.compile(schema)]),
);

function isRuleKind(k: unknown): k is RuleKind {
  return typeof k === 'string' && (RULE_KINDS as readonly string[]).includes(k);
}

/** AJV's error as the pointer of the field it concerns and a sentence about it. */
function problemOf(e: ErrorObject): RuleProblem {
  const at = e.instancePath;
  switch (e.keyword) {
    case 'required':
      return { pointer: `${at}/${String(e.params.missingProperty)}`, message: 'is required' };
    case 'additionalProperties':
      return {
        pointer: `${at}/${String(e.params.additionalProperty)}`,
        message: 'is not a property of this kind of rule',
      };
    case 'enum':
      return {
        pointer: at,
        message: `must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`,
      };
    case 'pattern':
      return {
        pointer: at,
        message: /\/(id|rules\/\d+)$/.test(at)
          ? 'must be 1-63 lower-case letters, digits or "-", starting with a letter or digit'
          : /webhook$/.test(at)
            ? 'must be an http(s) URL'
            : 'must be a duration such as 0s, 30s, 5m or 1h',
      };
    case 'minProperties':
    case 'maxProperties':
      return { pointer: at, message: 'must have exactly one of device, site, district' };
  }
  return { pointer: at, message: e.message ?? 'is invalid' };
}

/** Validates one rule against the catalogue; composites are checked with their set (`checkRuleSet`). */
export function parseRule(raw: unknown, catalog: RuleCatalog): ParseResult {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, problems: [{ pointer: '', message: 'must be a JSON object' }] };
  }
  const obj = raw as Readonly<Record<string, unknown>>;
  const kind = obj.kind;
  if (!isRuleKind(kind)) {
    const message = kind === undefined ? 'is required' : `must be one of ${RULE_KINDS.join(', ')}`;
    return { ok: false, problems: [{ pointer: '/kind', message }] };
  }
  const validate = VALIDATORS.get(kind) as ValidateFunction;
  if (!validate(obj)) return { ok: false, problems: (validate.errors ?? []).map(problemOf) };
  const problems: RuleProblem[] = [];
  const rule = build(kind, obj as unknown as RawRule, catalog, problems);
  return problems.length > 0 || !rule ? { ok: false, problems } : { ok: true, rule };
}

/** The rule as its schema admits it (AJV has checked every type below). */
interface RawRule {
  id: string;
  name?: string;
  type: string;
  field?: string;
  scope?: { device?: string; site?: string; district?: string };
  for?: string;
  clearFor?: string;
  severity: Severity;
  flapping?: { flips?: number; window?: string; settle?: string };
  notify?: { webhook: string; secret: string }[];
  above?: number;
  below?: number;
  clearBelow?: number;
  clearAbove?: number;
  escalate?: { above?: number; below?: number; severity: Severity }[];
  change?: number;
  window?: string;
  direction?: 'up' | 'down' | 'either';
  after?: string;
  fn?: 'mean' | 'min' | 'max' | 'sum' | 'count';
  every?: '1h' | '1d';
  rules?: string[];
}

function build(
  kind: RuleKind,
  r: RawRule,
  catalog: RuleCatalog,
  problems: RuleProblem[],
): Rule | undefined {
  const fail = (pointer: string, message: string) => void problems.push({ pointer, message });
  const ms = (pointer: string, text: string | undefined, fallback: number, positive = false) => {
    if (text === undefined) return fallback;
    const v = parseDuration(text);
    if (v === undefined) fail(pointer, 'is too long a duration');
    else if (positive && v === 0) fail(pointer, 'must be longer than 0');
    return v ?? fallback;
  };
  const type = catalog.get(r.type);
  if (!type) fail('/type', `"${r.type}" is not a known device type`);
  if (type && r.field !== undefined) checkField(kind, r.type, r.field, type, fail);
  const d = RULE_DEFAULTS.flapping;
  const common = {
    id: r.id,
    name: r.name,
    type: r.type,
    scope: scopeOf(r.scope),
    forMs: ms('/for', r.for, RULE_DEFAULTS.forMs),
    clearForMs: ms('/clearFor', r.clearFor, RULE_DEFAULTS.clearForMs),
    severity: r.severity,
    flapping: {
      flips: r.flapping?.flips ?? d.flips,
      windowMs: ms('/flapping/window', r.flapping?.window, d.windowMs, true),
      settleMs: ms('/flapping/settle', r.flapping?.settle, d.settleMs, true),
    },
    notify: (r.notify ?? []).map((n, i) => {
      if (!URL.canParse(n.webhook)) fail(`/notify/${i}/webhook`, 'is not a valid URL');
      return { url: n.webhook, secret: n.secret };
    }),
  };
  const field = r.field as string;
  switch (kind) {
    case 'threshold':
      return { ...common, kind, field, bound: boundOf(r, r.severity, fail) };
    case 'aggregate':
      return {
        ...common,
        kind,
        field,
        fn: r.fn ?? 'mean',
        windowMs: ms('/window', r.window, 0, true),
        bound: boundOf(r, r.severity, fail),
      };
    case 'rate':
      return {
        ...common,
        kind,
        field,
        change: r.change ?? 0,
        windowMs: ms('/window', r.window, 0, true),
        direction: r.direction ?? RULE_DEFAULTS.direction,
      };
    case 'absence': {
      const fallback = (type?.intervalMs ?? 0) * RULE_DEFAULTS.absenceIntervals;
      const afterMs = ms('/after', r.after, fallback, true);
      return { ...common, kind, field: r.field, afterMs, intervalMs: type?.intervalMs ?? 0 };
    }
    case 'aqi':
      if (type && !AQI_FIELDS.some((f) => type.fields.has(f))) {
        fail('/type', `"${r.type}" measures none of the AQI pollutants (${AQI_FIELDS.join(', ')})`);
      }
      return {
        ...common,
        kind,
        every: r.every ?? RULE_DEFAULTS.aqiEvery,
        bound: boundOf(r, r.severity, fail),
      };
    case 'all':
    case 'any':
      return { ...common, kind, rules: r.rules ?? [] };
  }
}

function checkField(
  kind: RuleKind,
  typeName: string,
  field: string,
  type: RuleCatalogType,
  fail: (pointer: string, message: string) => void,
): void {
  const ft = type.fields.get(field);
  if (!ft) {
    fail('/field', `"${field}" is not a field of type "${typeName}"`);
    return;
  }
  const allowed = FIELD_TYPES[kind] ?? [];
  if (!allowed.includes(ft)) {
    fail('/field', `"${field}" is a ${ft} field; a ${kind} rule needs ${allowed.join(' or ')}`);
  }
}

function scopeOf(s: RawRule['scope']): Scope {
  if (s?.device !== undefined) return { by: 'device', value: s.device };
  if (s?.site !== undefined) return { by: 'site', value: s.site };
  if (s?.district !== undefined) return { by: 'district', value: s.district };
  return { by: 'device' };
}

/**
 * The raise and clear bounds with hysteresis (DESIGN §13): `above` clears below `clearBelow`
 * (default: `above` itself), `below` clears above `clearAbove`. A clear bound on the wrong side
 * would make an alert clear while it is still raised, so it is refused.
 */
function boundOf(
  r: RawRule,
  base: Severity,
  fail: (pointer: string, message: string) => void,
): Bound {
  const up = r.above !== undefined;
  if (up && r.below !== undefined) fail('/below', 'cannot be used with /above: make two rules');
  if (!up && r.below === undefined) fail('/above', 'or /below is required');
  const side = up ? 'above' : 'below';
  const raise = (up ? r.above : r.below) ?? 0;
  const [clearKey, wrongKey] = up ? ['clearBelow', 'clearAbove'] : ['clearAbove', 'clearBelow'];
  if (r[wrongKey as 'clearAbove'] !== undefined) {
    fail(`/${wrongKey}`, `goes with /${up ? 'below' : 'above'}; use /${clearKey}`);
  }
  const clear = r[clearKey as 'clearBelow'] ?? raise;
  if (up ? clear > raise : clear < raise) {
    fail(`/${clearKey}`, `must be ${up ? 'below' : 'above'} /${side}`);
  }
  const escalate: { at: number; severity: Severity }[] = [];
  let prev = { at: raise, severity: base, pointer: `/${side}`, sevPointer: '/severity' };
  for (const [i, e] of (r.escalate ?? []).entries()) {
    const at = e[side];
    const p = `/escalate/${i}`;
    if (at === undefined) {
      fail(`${p}/${side}`, `is required (the rule raises ${side} /${side})`);
      continue;
    }
    if (up ? at <= prev.at : at >= prev.at) fail(`${p}/${side}`, `must be ${side} ${prev.pointer}`);
    if (SEVERITIES.indexOf(e.severity) <= SEVERITIES.indexOf(prev.severity)) {
      fail(`${p}/severity`, `must be higher than ${prev.sevPointer}`);
    }
    escalate.push({ at, severity: e.severity });
    prev = { at, severity: e.severity, pointer: `${p}/${side}`, sevPointer: `${p}/severity` };
  }
  return { side, raise, clear, escalate };
}

/**
 * Checks what concerns several rules: unique ids, and composites (`all`/`any`) over rules that
 * exist, are not composites themselves, and share the composite's type and scope, so that "one
 * key" means the same device, site or district for every part. Returns problems by rule index.
 */
export function checkRuleSet(rules: readonly Rule[]): Map<number, RuleProblem[]> {
  const out = new Map<number, RuleProblem[]>();
  const fail = (i: number, pointer: string, message: string) => {
    const list = out.get(i) ?? [];
    list.push({ pointer, message });
    out.set(i, list);
  };
  const byId = new Map<string, Rule>();
  rules.forEach((r, i) => {
    if (byId.has(r.id)) fail(i, '/id', `"${r.id}" is already the id of another rule`);
    else byId.set(r.id, r);
  });
  rules.forEach((r, i) => {
    if (r.kind !== 'all' && r.kind !== 'any') return;
    r.rules.forEach((id, j) => {
      const p = `/rules/${j}`;
      const part = byId.get(id);
      if (!part) return fail(i, p, `"${id}" is not a rule`);
      if (part.kind === 'all' || part.kind === 'any' || part.kind === 'aqi') {
        return fail(i, p, `"${id}" is an ${part.kind} rule; a composite is built of simple rules`);
      }
      if (part.type !== r.type) fail(i, p, `"${id}" is of type "${part.type}", not "${r.type}"`);
      if (part.scope.by !== r.scope.by || part.scope.value !== r.scope.value) {
        fail(i, p, `"${id}" has another scope than this rule (their keys would differ)`);
      }
    });
  });
  return out;
}

/**
 * Reads `*.json` in `dir` (one rule, or an array of rules, per file), in name order, and
 * validates them as a set. The first bad rule stops the start: ERR_RULE_FILE names the file
 * and the field.
 */
export function loadRules(dir: string, catalog: RuleCatalog): Rule[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch (err) {
    throw ERR_RULE_FILE(dir, `cannot read the rules directory (${(err as Error).message})`);
  }
  const rules: Rule[] = [];
  const origin: { file: string; pointer: string }[] = [];
  for (const name of names.sort()) {
    const file = join(dir, name);
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw ERR_RULE_FILE(file, `not valid JSON (${(err as Error).message})`);
    }
    const list = Array.isArray(doc) ? doc : [doc];
    list.forEach((raw: unknown, i) => {
      const at = Array.isArray(doc) ? `/${i}` : '';
      const res = parseRule(raw, catalog);
      if (!res.ok) throw ERR_RULE_FILE(file, describe(at, res.problems));
      rules.push(res.rule);
      origin.push({ file, pointer: at });
    });
  }
  for (const [i, problems] of checkRuleSet(rules)) {
    const o = origin[i] as { file: string; pointer: string };
    throw ERR_RULE_FILE(o.file, describe(o.pointer, problems));
  }
  return rules;
}

/** `/above must be …; /clearBelow must be below /above`, each pointer under `prefix`. */
export function describe(prefix: string, problems: readonly RuleProblem[]): string {
  return problems.map((p) => `${prefix}${p.pointer || '/'} ${p.message}`).join('; ');
}

/**
 * A RuleCatalog over the gateway's device schemas, read structurally (type, interval and the
 * JSON Schema's `properties`), so this module needs nothing from the ingest pipeline.
 */
export function ruleCatalogOf(
  types: Iterable<{
    readonly type: string;
    readonly intervalSeconds: number;
    readonly schema: { readonly properties?: unknown };
  }>,
): RuleCatalog {
  const map = new Map<string, RuleCatalogType>();
  for (const t of types) {
    const fields = new Map<string, FieldType>();
    const props = (t.schema.properties ?? {}) as Readonly<Record<string, { type?: unknown }>>;
    for (const [name, p] of Object.entries(props)) {
      if (p.type === 'integer' || p.type === 'number' || p.type === 'boolean') {
        fields.set(name, p.type);
      } else if (p.type === 'string') fields.set(name, 'string');
    }
    map.set(t.type, { fields, intervalMs: t.intervalSeconds * 1000 });
  }
  return map;
}

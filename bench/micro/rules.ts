/**
 * Micro-benchmark of the rule evaluator's hot path: nanoseconds per reading with 50 rules of
 * every evaluated kind over all device types, and for a reading of a type no rule names (one
 * Map lookup). Printed, never asserted: `npm run build && node dist/bench/micro/rules.js`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/config.js';
import { Evaluator } from '../../src/rules/evaluate.js';
import { checkRuleSet, parseRule, ruleCatalogOf } from '../../src/rules/schema.js';
import type { Reading, Rule } from '../../src/rules/types.js';

const DEVICES = 2_000;
const READINGS = 1_000_000;

interface SchemaDoc {
  'x-type': string;
  'x-interval-seconds': number;
  properties: Record<string, { type: string; minimum?: number; maximum?: number }>;
}

const dir = join(PACKAGE_ROOT, 'schemas');
const docs = readdirSync(dir)
  .filter((n) => n.endsWith('.json'))
  .map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')) as SchemaDoc);
const catalog = ruleCatalogOf(
  docs.map((d) => ({ type: d['x-type'], intervalSeconds: d['x-interval-seconds'], schema: d })),
);

/** 50 rules, shipped-style: thresholds, rates, window means, absences, a few groups and composites. */
function rules(): Rule[] {
  const raw: Record<string, unknown>[] = [];
  const kinds = ['threshold', 'rate', 'aggregate'] as const;
  let k = 0;
  for (const d of docs) {
    raw.push({ id: `${d['x-type']}-gone`, type: d['x-type'], kind: 'absence', severity: 'minor' });
    for (const [field, p] of Object.entries(d.properties)) {
      if (p.type !== 'number' || raw.length >= 47) continue;
      const hi = (p.maximum ?? 100) * 0.8;
      const kind = kinds[k++ % kinds.length];
      const id = `${d['x-type']}-${field}`.replaceAll('_', '-').slice(0, 60);
      const common = { id, type: d['x-type'], field, kind, severity: 'major', for: '1m' };
      if (kind === 'threshold') raw.push({ ...common, above: hi, clearBelow: hi * 0.9 });
      else if (kind === 'rate') raw.push({ ...common, change: hi / 4, window: '5m' });
      else raw.push({ ...common, fn: 'mean', window: '10m', above: hi * 0.7 });
      if (raw.length % 9 === 0) {
        raw.push({
          ...common,
          id: `${id}-district`,
          kind: 'threshold',
          above: hi,
          scope: { district: 'Binhu' },
        });
      }
    }
  }
  const simple = raw.filter((r) => r.kind === 'threshold' && r.type === 'air-quality');
  raw.push({
    id: 'air-quality-smog',
    type: 'air-quality',
    kind: 'all',
    rules: simple.slice(0, 2).map((r) => r.id),
    severity: 'critical',
  });
  const out = raw.slice(0, 50).map((r) => {
    const res = parseRule(r, catalog);
    if (!res.ok) throw new Error(`${String(r.id)}: ${JSON.stringify(res.problems)}`);
    return res.rule;
  });
  if (checkRuleSet(out).size > 0) throw new Error(JSON.stringify([...checkRuleSet(out)]));
  return out;
}

type Mutable = { -readonly [K in keyof Reading]: Reading[K] };

interface Device {
  readonly reading: Mutable;
  readonly fields: Record<string, number>;
  /** Numeric fields and each one's range. */
  readonly ranges: readonly (readonly [string, number])[];
}

/** One reading object per device, rewritten in place each minute as the pipeline hands it over. */
function devices(): Device[] {
  return Array.from({ length: DEVICES }, (_, d) => {
    const doc = docs[d % docs.length] as SchemaDoc;
    const fields: Record<string, number> = {};
    const ranges = Object.entries(doc.properties)
      .filter(([, p]) => p.type === 'number')
      .map(([f, p]) => [f, p.maximum ?? 100] as const);
    const reading: Mutable = {
      deviceId: `dev-${d}`,
      type: doc['x-type'],
      district: d % 7 === 0 ? 'Binhu' : 'Liangxi',
      siteId: `site-${d % 300}`,
      ts: 0,
      fields,
    };
    return { reading, fields, ranges };
  });
}

/**
 * Each device reports once a minute; its values wander a few percent around the middle of their
 * range, with a spike past the bounds now and then — a city on a normal day, where most readings
 * change no alert. The loop without `onReading` is timed too and subtracted.
 */
function measure(name: string, ev: Evaluator | undefined, ds: readonly Device[]): number {
  let transitions = 0;
  let seed = 18;
  const pass = (n: number, t0: number) => {
    for (let i = 0; i < n; i++) {
      const dev = ds[i % ds.length] as Device;
      seed = (Math.imul(seed, 1_664_525) + 1_013_904_223) >>> 0;
      const level = seed % 500 === 0 ? 0.95 : 0.45 + (seed % 64) / 1280;
      for (const [f, max] of dev.ranges) dev.fields[f] = max * level;
      const r = dev.reading;
      r.ts = t0 + Math.floor(i / ds.length) * 60_000 + (i % 60) * 1000;
      clock.now = r.ts;
      if (ev) transitions += ev.onReading(r).length;
    }
  };
  pass(200_000, 1_800_000_000_000); // warm-up: JIT, windows grown to size
  transitions = 0;
  const start = process.hrtime.bigint();
  pass(READINGS, 1_800_000_000_000 + 200 * 60_000);
  const ns = Number(process.hrtime.bigint() - start) / READINGS;
  if (name) {
    console.log(
      `${name.padEnd(44)} ${ns.toFixed(0).padStart(6)} ns/reading  ${transitions} transitions`,
    );
  }
  return ns;
}

const clock = { now: 0 };
const set = rules();
const kinds = new Map<string, number>();
for (const r of set) kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
console.log(
  `${set.length} rules (${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ')}), ${DEVICES} devices`,
);
const loop = measure('', undefined, devices());
console.log(
  `${'(the loop itself, subtracted below)'.padEnd(44)} ${loop.toFixed(0).padStart(6)} ns`,
);
const net = (name: string, ev: Evaluator, ds: Device[]) => {
  const ns = measure('', ev, ds) - loop;
  console.log(`${name.padEnd(44)} ${ns.toFixed(0).padStart(6)} ns/reading`);
};
net('50 rules over all types', new Evaluator(set, { clock: () => clock.now }), devices());
net(
  'a type no rule names (rules on another type)',
  new Evaluator(
    set.filter((r) => r.type === 'air-quality'),
    { clock: () => clock.now },
  ),
  devices().filter((d) => d.reading.type !== 'air-quality'),
);

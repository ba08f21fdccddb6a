import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TaihuError } from '../../src/errors.js';
import { checkRuleSet, describe as say, loadRules, parseRule } from '../../src/rules/schema.js';
import type { Rule } from '../../src/rules/types.js';
import { catalog, rule } from '../helpers/rules.js';

const base = { id: 'pm25-high', type: 'air-quality', severity: 'major' };
const threshold = { ...base, kind: 'threshold', field: 'pm25_ugm3', above: 75 };

function problems(raw: unknown): string {
  const res = parseRule(raw, catalog);
  if (res.ok) return 'accepted';
  return say('', res.problems);
}

describe('a bad rule is refused with a message naming the field', () => {
  it.each<[string, unknown, string]>([
    ['not an object', [], '/ must be a JSON object'],
    ['no kind', { ...base }, '/kind is required'],
    [
      'an unknown kind',
      { ...base, kind: 'treshold' },
      '/kind must be one of threshold, rate, absence, aggregate, aqi, all, any',
    ],
    ['no id', { ...threshold, id: undefined }, '/id is required'],
    [
      'an id with upper case',
      { ...threshold, id: 'PM25' },
      '/id must be 1-63 lower-case letters, digits or "-", starting with a letter or digit',
    ],
    ['no severity', { ...threshold, severity: undefined }, '/severity is required'],
    [
      'an unknown severity',
      { ...threshold, severity: 'high' },
      '/severity must be one of info, minor, major, critical',
    ],
    [
      'an unknown device type',
      { ...threshold, type: 'air' },
      '/type "air" is not a known device type',
    ],
    [
      'a field the type does not have',
      { ...threshold, field: 'pm1_ugm3' },
      '/field "pm1_ugm3" is not a field of type "air-quality"',
    ],
    [
      'a string field compared to a number',
      { ...threshold, type: 'traffic-signal', field: 'mode' },
      '/field "mode" is a string field; a threshold rule needs integer or number or boolean',
    ],
    [
      'a boolean field for a rate',
      { ...base, type: 'manhole', kind: 'rate', field: 'cover_open', change: 1, window: '5m' },
      '/field "cover_open" is a boolean field; a rate rule needs integer or number',
    ],
    ['neither above nor below', { ...threshold, above: undefined }, '/above or /below is required'],
    [
      'both above and below',
      { ...threshold, below: 10 },
      '/below cannot be used with /above: make two rules',
    ],
    [
      'a clear bound above the raise bound',
      { ...threshold, clearBelow: 80 },
      '/clearBelow must be below /above',
    ],
    [
      'a clear bound below a below-bound',
      { ...threshold, above: undefined, below: 10, clearAbove: 5 },
      '/clearAbove must be above /below',
    ],
    [
      'the clear bound of the other side',
      { ...threshold, clearAbove: 50 },
      '/clearAbove goes with /below; use /clearBelow',
    ],
    ['a number given as text', { ...threshold, above: '75' }, '/above must be number'],
    [
      'a property of another kind',
      { ...threshold, window: '5m' },
      '/window is not a property of this kind of rule',
    ],
    [
      'a malformed duration',
      { ...threshold, for: '5 minutes' },
      '/for must be a duration such as 0s, 30s, 5m or 1h',
    ],
    [
      'a duration too long to count',
      { ...threshold, clearFor: '99999999999999999d' },
      '/clearFor is too long a duration',
    ],
    [
      'two scopes at once',
      { ...threshold, scope: { site: 's', district: 'd' } },
      '/scope must have exactly one of device, site, district',
    ],
    [
      'an empty scope',
      { ...threshold, scope: {} },
      '/scope must have exactly one of device, site, district',
    ],
    [
      'an escalation below the raise bound',
      { ...threshold, escalate: [{ above: 70, severity: 'critical' }] },
      '/escalate/0/above must be above /above',
    ],
    [
      'an escalation that does not raise the severity',
      { ...threshold, escalate: [{ above: 150, severity: 'minor' }] },
      '/escalate/0/severity must be higher than /severity',
    ],
    [
      'an escalation on the other side',
      { ...threshold, escalate: [{ below: 150, severity: 'critical' }] },
      '/escalate/0/above is required (the rule raises above /above)',
    ],
    [
      'escalations out of order',
      {
        ...threshold,
        escalate: [
          { above: 150, severity: 'critical' },
          { above: 120, severity: 'critical' },
        ],
      },
      '/escalate/1/above must be above /escalate/0/above; /escalate/1/severity must be higher than /escalate/0/severity',
    ],
    [
      'a rate without change',
      { ...base, kind: 'rate', field: 'pm25_ugm3', window: '5m' },
      '/change is required',
    ],
    [
      'a rate with no change at all',
      { ...base, kind: 'rate', field: 'pm25_ugm3', change: 0, window: '5m' },
      '/change must be > 0',
    ],
    [
      'a rate over an empty window',
      { ...base, kind: 'rate', field: 'pm25_ugm3', change: 10, window: '0s' },
      '/window must be longer than 0',
    ],
    [
      'an absence after nothing',
      { ...base, kind: 'absence', after: '0s' },
      '/after must be longer than 0',
    ],
    [
      'an aggregate with an unknown fn',
      { ...base, kind: 'aggregate', field: 'pm25_ugm3', fn: 'p99', window: '1h', above: 75 },
      '/fn must be one of mean, min, max, sum, count',
    ],
    [
      'an aggregate without window',
      { ...base, kind: 'aggregate', field: 'pm25_ugm3', fn: 'mean', above: 75 },
      '/window is required',
    ],
    [
      'an aqi rule on a type without pollutants',
      { ...base, type: 'manhole', kind: 'aqi', above: 200 },
      '/type "manhole" measures none of the AQI pollutants (pm25_ugm3, pm10_ugm3, no2_ugm3, so2_ugm3, o3_ugm3, co_mgm3)',
    ],
    [
      'a composite of one rule',
      { ...base, kind: 'all', rules: ['a'] },
      '/rules must NOT have fewer than 2 items',
    ],
    [
      'a webhook that is not http',
      { ...threshold, notify: [{ webhook: 'ftp://x', secret: 'a-long-enough-secret' }] },
      '/notify/0/webhook must be an http(s) URL',
    ],
    [
      'a webhook that does not parse',
      { ...threshold, notify: [{ webhook: 'http://[::1', secret: 'a-long-enough-secret' }] },
      '/notify/0/webhook is not a valid URL',
    ],
    [
      'a short webhook secret',
      { ...threshold, notify: [{ webhook: 'http://127.0.0.1:9/h', secret: 'short' }] },
      '/notify/0/secret must NOT have fewer than 16 characters',
    ],
    [
      'a webhook without secret',
      { ...threshold, notify: [{ webhook: 'http://127.0.0.1:9/h' }] },
      '/notify/0/secret is required',
    ],
    [
      'a flapping policy of one flip',
      { ...threshold, flapping: { flips: 1 } },
      '/flapping/flips must be >= 2',
    ],
  ])('%s', (_name, raw, message) => {
    expect(problems(raw)).toBe(message);
  });
});

describe('a good rule is accepted with its defaults filled in', () => {
  it('a threshold without clear bound clears at its raise bound, at once, with no delay', () => {
    const r = rule(threshold);
    expect(r).toMatchObject({
      kind: 'threshold',
      forMs: 0,
      clearForMs: 0,
      scope: { by: 'device' },
      bound: { side: 'above', raise: 75, clear: 75, escalate: [] },
      flapping: { flips: 4, windowMs: 600_000, settleMs: 600_000 },
      notify: [],
    });
  });

  it('durations use the project syntax: 30s, 5m, 1h', () => {
    const r = rule({ ...threshold, for: '30s', clearFor: '5m', flapping: { window: '1h' } });
    expect([r.forMs, r.clearForMs, r.flapping.windowMs]).toEqual([30_000, 300_000, 3_600_000]);
  });

  it('an absence rule waits three of the type’s intervals unless told', () => {
    const r = rule({ ...base, type: 'manhole', kind: 'absence' });
    expect(r).toMatchObject({ kind: 'absence', afterMs: 900_000, intervalMs: 300_000 });
    expect(rule({ ...base, kind: 'absence', after: '10m' })).toMatchObject({ afterMs: 600_000 });
  });

  it.each([
    [{ scope: { device: 'aq-7' } }, { by: 'device', value: 'aq-7' }],
    [{ scope: { site: 'site-3' } }, { by: 'site', value: 'site-3' }],
    [{ scope: { district: 'Xinwu' } }, { by: 'district', value: 'Xinwu' }],
  ])('scope %j keys its alerts by %j', (extra, scope) => {
    expect(rule({ ...threshold, ...extra }).scope).toEqual(scope);
  });

  it('a boolean field can be a threshold, counted as 0/1', () => {
    const r = rule({
      ...base,
      type: 'manhole',
      kind: 'threshold',
      field: 'cover_open',
      above: 0.5,
    });
    expect(r.kind).toBe('threshold');
  });

  it('an aqi rule is validated (it is evaluated once the AQI feeds the evaluator)', () => {
    expect(rule({ ...base, kind: 'aqi', above: 200 })).toMatchObject({ kind: 'aqi', every: '1h' });
  });
});

describe('a rule set is checked as a whole', () => {
  const a = rule({ ...threshold, id: 'a' });
  const b = rule({ ...threshold, id: 'b', field: 'pm10_ugm3', above: 150 });
  const set = (...extra: Record<string, unknown>[]): Rule[] => [a, b, ...extra.map(rule)];
  const only = (rules: Rule[]) => [...checkRuleSet(rules)].map(([i, p]) => `${i} ${say('', p)}`);

  it.each<[string, Record<string, unknown>, string]>([
    ['a composite over rules that exist', { id: 'c', kind: 'all', rules: ['a', 'b'] }, ''],
    [
      'a composite over a rule that does not',
      { id: 'c', kind: 'any', rules: ['a', 'zz'] },
      '2 /rules/1 "zz" is not a rule',
    ],
    [
      'a composite over another type',
      { id: 'm', kind: 'threshold', type: 'manhole', field: 'water_level_cm', above: 80 },
      '',
    ],
    [
      'a composite of another scope',
      { id: 'c', kind: 'all', rules: ['a', 'b'], scope: { district: 'Binhu' } },
      '2 /rules/0 "a" has another scope than this rule (their keys would differ); /rules/1 "b" has another scope than this rule (their keys would differ)',
    ],
    [
      'a second rule with an id in use',
      { ...threshold, id: 'a' },
      '2 /id "a" is already the id of another rule',
    ],
  ])('%s', (_name, extra, expected) => {
    expect(only(set(extra)).join('\n')).toBe(expected);
  });

  it('a composite of a composite is refused', () => {
    const c = rule({ id: 'c', kind: 'all', rules: ['a', 'b'] });
    const d = rule({ id: 'd', kind: 'any', rules: ['a', 'c'] });
    expect(only([a, b, c, d])).toEqual([
      '3 /rules/1 "c" is an all rule; a composite is built of simple rules',
    ]);
  });

  it('a composite over a rule of another type is refused', () => {
    const m = rule({
      id: 'm',
      type: 'manhole',
      kind: 'threshold',
      field: 'water_level_cm',
      above: 80,
    });
    const c = rule({ id: 'c', kind: 'all', rules: ['a', 'm'] });
    expect(only([a, m, c])).toEqual(['2 /rules/1 "m" is of type "manhole", not "air-quality"']);
  });
});

describe('loadRules', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'taihu-rules-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, doc: unknown) =>
    writeFileSync(join(dir, name), typeof doc === 'string' ? doc : JSON.stringify(doc));

  function failure(): TaihuError {
    try {
      loadRules(dir, catalog);
    } catch (err) {
      return err as TaihuError;
    }
    throw new Error('loadRules accepted the directory');
  }

  it('reads every *.json in name order, one rule or an array of rules per file', () => {
    write('b.json', [
      { ...threshold, id: 'b1' },
      { ...threshold, id: 'b2' },
    ]);
    write('a.json', { ...threshold, id: 'a1' });
    write('notes.txt', 'not a rule');
    expect(loadRules(dir, catalog).map((r) => r.id)).toEqual(['a1', 'b1', 'b2']);
  });

  it('stops at a bad rule naming the file and the field', () => {
    write('air.json', { ...threshold, clearBelow: 90 });
    const err = failure();
    expect(err.code).toBe('TAIHU_ERR_RULE_FILE');
    expect(err.message).toBe(
      `rule file ${join(dir, 'air.json')}: /clearBelow must be below /above`,
    );
  });

  it('names the rule within an array file by its index', () => {
    write('air.json', [threshold, { ...threshold, id: 'x', kind: 'rate' }]);
    expect(failure().message).toBe(
      `rule file ${join(dir, 'air.json')}: /1/change is required; /1/window is required; /1/above is not a property of this kind of rule`,
    );
  });

  it('names the file of a duplicate id and a file that is not JSON', () => {
    write('a.json', threshold);
    write('b.json', [{ ...threshold, id: 'other' }, threshold]);
    expect(failure().message).toBe(
      `rule file ${join(dir, 'b.json')}: /1/id "pm25-high" is already the id of another rule`,
    );
    write('c.json', '{ "id": ');
    expect(failure().message).toMatch(/^rule file .*c\.json: not valid JSON/);
  });

  it('names a directory it cannot read', () => {
    rmSync(dir, { recursive: true });
    expect(failure().message).toMatch(/cannot read the rules directory/);
  });
});

/**
 * The rules shipped in `rules/` load against the device schemas shipped in `schemas/`: a schema
 * change that renames a field a rule watches fails here, not at a city's start.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/config.js';
import { loadCatalog } from '../../src/ingest/catalog.js';
import { Evaluator } from '../../src/rules/evaluate.js';
import { loadRules, ruleCatalogOf } from '../../src/rules/schema.js';
import { reading } from '../helpers/rules.js';

const catalog = ruleCatalogOf(loadCatalog(join(PACKAGE_ROOT, 'schemas')).list());

describe('shipped rules', () => {
  const rules = loadRules(join(PACKAGE_ROOT, 'rules'), catalog);

  it('load and validate as a set, every kind the evaluator runs among them', () => {
    expect(new Set(rules.map((r) => r.kind))).toEqual(
      new Set(['threshold', 'rate', 'absence', 'aggregate', 'all']),
    );
  });

  it('raise an overflowing manhole with its cover off as one critical alert', () => {
    const ev = new Evaluator(rules, { clock: () => 0 });
    const who = { type: 'manhole', device: 'mh-0001' };
    const out = ev.onReading(
      reading(0, { water_level_cm: 250, cover_open: true, battery_pct: 80, tilt_deg: 30 }, who),
    );
    expect(out.map((t) => `${t.ruleId} ${t.event} ${t.severity}`)).toEqual([
      'manhole-water-high firing major',
      'manhole-cover-open firing major',
      'manhole-overflowing-open firing critical',
    ]);
  });
});

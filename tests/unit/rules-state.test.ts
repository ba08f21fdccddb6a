/**
 * Restore equivalence (DESIGN §13: kill -9 at any moment neither loses nor repeats a
 * transition): feeding events e1..en in one go gives exactly the transitions of feeding e1..ek,
 * committing the state, restoring it into a fresh evaluator and feeding ek+1..en — same
 * transitions, same seqs, same final state. Property-tested (fast-check, seeded) over rules of
 * every evaluated kind.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Evaluator } from '../../src/rules/evaluate.js';
import { parseChunk, type KeyRecord, type StateChunk } from '../../src/rules/state.js';
import type { Rule, Transition } from '../../src/rules/types.js';
import { reading, rule } from '../helpers/rules.js';

const MIN = 60_000;

const RULES: Rule[] = [
  rule({
    id: 'pm25',
    kind: 'threshold',
    field: 'pm25_ugm3',
    above: 75,
    clearBelow: 50,
    for: '2m',
    clearFor: '1m',
    escalate: [{ above: 150, severity: 'critical' }],
    flapping: { flips: 2, window: '30m', settle: '5m' },
  }),
  rule({ id: 'pm10', kind: 'threshold', field: 'pm10_ugm3', above: 100 }),
  rule({ id: 'smog', kind: 'all', rules: ['pm25', 'pm10'], for: '1m' }),
  rule({ id: 'jump', kind: 'rate', field: 'no2_ugm3', change: 50, window: '5m' }),
  rule({ id: 'gone', kind: 'absence', after: '4m', clearFor: '30s' }),
  rule({ id: 'gone-or-jump', kind: 'any', rules: ['gone', 'jump'] }),
  rule({
    id: 'district-mean',
    kind: 'aggregate',
    field: 'pm25_ugm3',
    fn: 'mean',
    window: '10m',
    above: 80,
    clearBelow: 60,
    scope: { district: 'Binhu' },
  }),
  rule({
    id: 'site-max',
    kind: 'threshold',
    field: 'no2_ugm3',
    above: 120,
    scope: { site: 'site-1' },
    for: '30s',
  }),
];

type Event =
  | {
      kind: 'reading';
      device: number;
      dt: number;
      lag: number;
      pm25?: number;
      pm10?: number;
      no2?: number;
    }
  | { kind: 'advance'; dt: number }
  | { kind: 'ack'; pick: number };

// Tenths, so window sums round in their last bits as real readings do.
const value = (max: number) =>
  fc.option(
    fc.integer({ min: 0, max: max * 10 }).map((v) => v / 10),
    { nil: undefined },
  );
const event: fc.Arbitrary<Event> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('reading' as const),
      device: fc.integer({ min: 0, max: 3 }),
      dt: fc.integer({ min: 0, max: 3 * MIN }),
      lag: fc.integer({ min: 0, max: 2 * MIN }),
      pm25: value(200),
      pm10: value(200),
      no2: value(200),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      dt: fc.integer({ min: 0, max: 10 * MIN }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('ack' as const), pick: fc.nat(5) }) },
);

/** Drives one evaluator; device time and the clock both only move forward, as in a spool replay. */
class Driver {
  ts = 1_000_000;
  clock = 1_000_000;
  readonly ev: Evaluator;
  readonly out: Transition[] = [];

  constructor() {
    this.ev = new Evaluator(RULES, { clock: () => this.clock });
  }

  apply(e: Event): void {
    if (e.kind === 'reading') {
      this.ts += e.dt;
      this.clock = Math.max(this.clock, this.ts + e.lag);
      const fields: Record<string, number> = {};
      if (e.pm25 !== undefined) fields.pm25_ugm3 = e.pm25;
      if (e.pm10 !== undefined) fields.pm10_ugm3 = e.pm10;
      if (e.no2 !== undefined) fields.no2_ugm3 = e.no2;
      const who = { device: `aq-${e.device}`, site: `site-${e.device % 2}` };
      this.out.push(...this.ev.onReading(reading(this.ts, fields, who)));
    } else if (e.kind === 'advance') {
      this.clock += e.dt;
      this.out.push(...this.ev.advance(this.clock));
    } else {
      // By id, not iteration order: a restored evaluator may list keys in another order.
      const firing = [...this.ev.alerts()]
        .filter((a) => a.state === 'firing' && a.acknowledged === null)
        .map((a) => a.id)
        .sort();
      const id = firing[e.pick % Math.max(1, firing.length)];
      if (id !== undefined) this.out.push(...this.ev.acknowledge(id, 'op', this.clock));
    }
  }
}

const byKey = (entries: readonly KeyRecord[]) =>
  [...entries].sort((a, b) => (a.rule + ':' + a.key < b.rule + ':' + b.key ? -1 : 1));

/** What a store does with deltas: one row per (rule, key), the latest wins. */
function rows(deltas: readonly StateChunk[]): StateChunk {
  const table = new Map<string, KeyRecord>();
  for (const d of deltas) for (const e of d.entries) table.set(`${e.rule}\u0000${e.key}`, e);
  return { version: 1, clock: deltas.at(-1)?.clock ?? 0, entries: [...table.values()] };
}

describe('snapshot and restore', () => {
  it('restoring committed deltas mid-stream gives the same transitions, seqs and state', () => {
    const seen = new Map<string, number>(); // rule:event → count, to show the runs are not idle
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 120 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
        (events, cutsRaw) => {
          const cuts = [...new Set(cutsRaw.map((c) => c % (events.length + 1)))].sort(
            (a, b) => a - b,
          );
          const k = cuts.at(-1) as number;

          const whole = new Driver();
          for (const e of events) whole.apply(e);
          for (const t of whole.out) {
            const name = `${t.ruleId}:${t.event}`;
            seen.set(name, (seen.get(name) ?? 0) + 1);
          }

          // The first run commits a delta at every cut (a spool batch boundary) and dies after
          // its last commit, at k; its transitions up to there are what it committed.
          const upToK = new Driver();
          const kDeltas: StateChunk[] = [];
          events.slice(0, k).forEach((e, i) => {
            if (cuts.includes(i)) kDeltas.push(upToK.ev.snapshot());
            upToK.apply(e);
          });
          kDeltas.push(upToK.ev.snapshot());

          const second = new Driver();
          second.ts = upToK.ts;
          second.clock = upToK.clock;
          second.ev.restore([parseChunk(JSON.stringify(rows(kDeltas)))]);
          expect(second.ev.nextDeadline()).toBe(upToK.ev.nextDeadline());
          for (const e of events.slice(k)) second.apply(e);

          expect([...upToK.out, ...second.out]).toEqual(whole.out);
          const a = whole.ev.snapshot(true);
          const b = second.ev.snapshot(true);
          expect(byKey(b.entries)).toEqual(byKey(JSON.parse(JSON.stringify(a.entries))));
          expect(b.clock).toBe(a.clock);
        },
      ),
      { seed: 0x7a1, numRuns: 300 },
    );
    // Every rule reached firing and resolved, and the alert machine's side paths were taken.
    for (const r of RULES) {
      expect(seen.get(`${r.id}:firing`), r.id).toBeGreaterThan(5);
      expect(seen.get(`${r.id}:resolved`), r.id).toBeGreaterThan(5);
    }
    for (const e of ['pending', 'cancelled', 'severity', 'acknowledged', 'settled']) {
      expect(seen.get(`pm25:${e}`), e).toBeGreaterThan(5);
    }
  });

  it('a delta holds only the keys changed since the last snapshot', () => {
    const d = new Driver();
    d.apply({ kind: 'reading', device: 0, dt: 0, lag: 0, pm25: 80 });
    d.apply({ kind: 'reading', device: 1, dt: 0, lag: 0, pm25: 10 });
    const first = d.ev.snapshot();
    d.apply({ kind: 'reading', device: 1, dt: 1000, lag: 0, no2: 10 });
    const second = d.ev.snapshot();
    expect(first.entries.length).toBeGreaterThan(second.entries.length);
    expect(second.entries.map((e) => `${e.rule}:${e.key}`).sort()).toEqual([
      'gone:aq-1',
      'jump:aq-1',
      'site-max:site-1',
    ]);
    expect(d.ev.snapshot().entries).toEqual([]);
  });

  it('a full snapshot followed by its deltas restores like the rows of a store', () => {
    const d = new Driver();
    d.apply({ kind: 'reading', device: 0, dt: 0, lag: 0, pm25: 80 });
    const full = d.ev.snapshot(true);
    d.apply({ kind: 'advance', dt: 5 * MIN });
    const delta = d.ev.snapshot();
    const chain = new Evaluator(RULES, { clock: () => 0 });
    chain.restore([full, delta]);
    const table = new Evaluator(RULES, { clock: () => 0 });
    table.restore([rows([full, delta])]);
    expect(byKey(chain.snapshot(true).entries)).toEqual(byKey(table.snapshot(true).entries));
    expect([...chain.alerts()].map((a) => `${a.id} ${a.state}`).sort()).toContain(
      'gone:aq-0 firing',
    );
  });

  it('state of an edited rule is reset but its seq carries on, so delivery ids never repeat', () => {
    const before = [rule({ id: 'pm25', kind: 'threshold', field: 'pm25_ugm3', above: 75 })];
    const after = [rule({ id: 'pm25', kind: 'threshold', field: 'pm25_ugm3', above: 90 })];
    const a = new Evaluator(before, { clock: () => 0 });
    a.onReading(reading(0, { pm25_ugm3: 80 }));
    const b = new Evaluator(after, { clock: () => 0 });
    b.restore([a.snapshot(true)]);
    expect(b.alert('pm25:aq-1')).toMatchObject({ state: 'inactive', seq: 1 });
    expect(b.onReading(reading(1, { pm25_ugm3: 95 }))[0]).toMatchObject({
      event: 'firing',
      seq: 2,
    });
  });

  it('state of a rule that no longer exists is dropped', () => {
    const a = new Evaluator(RULES, { clock: () => 0 });
    a.onReading(reading(0, { pm25_ugm3: 80 }));
    const b = new Evaluator(RULES.slice(1, 2), { clock: () => 0 });
    b.restore([a.snapshot(true)]);
    expect(b.snapshot(true).entries.map((e) => e.rule)).toEqual([]);
  });

  it.each([
    ['not JSON', '{', /not valid JSON/],
    ['another version', '{"version":2,"clock":0,"entries":[]}', /not a version-1 state chunk/],
    ['no entries', '{"version":1,"clock":0}', /not a version-1 state chunk/],
  ])('a stored chunk that is %s is refused, not guessed at', (_name, text, message) => {
    expect(() => parseChunk(text)).toThrow(message);
  });
});

describe('restart gap policy: no alarm storm', () => {
  const gone = rule({ id: 'gone', kind: 'absence' }); // 3 × 60 s
  const devices = Array.from({ length: 500 }, (_, i) => `aq-${i}`);
  const T0 = 1_000_000;

  /** 500 devices reporting every minute for 10 minutes, then the gateway stops. */
  function beforeStop(): { chunk: StateChunk; savedAt: number } {
    let now = T0;
    const ev = new Evaluator([gone], { clock: () => now });
    for (let m = 0; m < 10; m++) {
      devices.forEach((id, i) => {
        now = T0 + m * MIN + i * 100; // staggered over the minute
        ev.onReading(reading(now, { pm25_ugm3: 1 }, { device: id }));
      });
    }
    return { chunk: parseChunk(JSON.stringify(ev.snapshot(true))), savedAt: ev.now };
  }

  /** The gateway comes back an hour later; devices reconnect over the next 50 s. */
  function afterRestart(resume: boolean): Transition[] {
    const { chunk, savedAt } = beforeStop();
    const restart = savedAt + 60 * MIN;
    let now = restart;
    const ev = new Evaluator([gone], { clock: () => now });
    ev.restore([chunk]);
    if (resume) ev.resumeAfterGap(restart);
    const out: Transition[] = [...ev.advance(restart)];
    devices.forEach((id, i) => {
      now = restart + i * 100;
      out.push(...ev.advance(now), ...ev.onReading(reading(now, { pm25_ugm3: 1 }, { device: id })));
    });
    return out;
  }

  it('500 devices reconnecting after a restart raise no absence alert', () => {
    expect(afterRestart(true)).toEqual([]);
  });

  it('without the policy every one of them would (the storm it prevents)', () => {
    expect(afterRestart(false).filter((t) => t.event === 'firing')).toHaveLength(500);
  });

  it('a device that does not come back is absent after the time it had left, at least its interval', () => {
    let now = 0;
    const ev = new Evaluator([gone], { clock: () => now });
    ev.onReading(reading(0, {}, { device: 'near' })); // deadline 180 s: 10 s left at the stop
    now = 150_000;
    ev.onReading(reading(now, {}, { device: 'far' })); // deadline 330 s: 160 s left
    ev.advance(170_000); // the last commit before the stop
    const chunk = ev.snapshot(true);
    const later = 10 * 3_600_000;
    const back = new Evaluator([gone], { clock: () => later });
    back.restore([chunk]);
    back.resumeAfterGap(later);
    expect(back.nextDeadline()).toBe(later + 60_000); // 10 s left, but at least the interval
    const out = back.advance(later + 200_000);
    expect(out.map((t) => `${t.key}@${t.ts - later}`)).toEqual(['near@60000', 'far@160000']);
  });

  it('a device already absent before the stop stays absent from its own deadline', () => {
    let now = 0;
    const ev = new Evaluator([gone], { clock: () => now });
    ev.onReading(reading(0, {}, { device: 'dead' }));
    now = 400_000; // its deadline (180 s) passed while the gateway still listened…
    ev.onReading(reading(now, {}, { device: 'alive' })); // …and committed, before an advance
    const chunk = ev.snapshot(true);
    const back = new Evaluator([gone], { clock: () => 5_000_000 });
    back.restore([chunk]);
    back.resumeAfterGap(5_000_000);
    expect(steps(back.advance(5_000_000))).toEqual(['firing@180000']);
    expect(back.alert('gone:alive')?.state).toBe('inactive');
  });
});

function steps(ts: readonly Transition[]): string[] {
  return ts.map((t) => `${t.event}@${t.ts}`);
}

import { describe, expect, it } from 'vitest';
import type { TaihuError } from '../../src/errors.js';
import type { Transition } from '../../src/rules/types.js';
import { fixture, rule, steps, type Fixture } from '../helpers/rules.js';

const MIN = 60_000;
const pm = (v: number) => ({ pm25_ugm3: v });

/** Feeds `values` one a minute from t = 0 and returns every transition as `event@ts→state`. */
function run(f: Fixture, values: readonly number[], field = 'pm25_ugm3'): string[] {
  return values.flatMap((v, i) => steps(f.feed(i * MIN, { [field]: v })));
}

const th = (extra: Record<string, unknown>) =>
  rule({ id: 'pm', kind: 'threshold', field: 'pm25_ugm3', above: 75, ...extra });

describe('threshold rules', () => {
  it.each<[string, Record<string, unknown>, number[], string[]]>([
    [
      'fire at once above the bound and resolve at once below it',
      {},
      [80, 90, 70],
      ['firing@0→firing', 'resolved@120000→resolved'],
    ],
    [
      'hysteresis: stay firing between the clear and the raise bound',
      { clearBelow: 50 },
      [80, 60, 74, 60, 40, 70],
      ['firing@0→firing', 'resolved@240000→resolved'],
    ],
    [
      'a value exactly at the bound neither raises nor clears',
      {},
      [75, 76, 75, 74],
      ['firing@60000→firing', 'resolved@180000→resolved'],
    ],
    [
      'below bounds mirror above bounds',
      { above: undefined, below: 10, clearAbove: 20 },
      [30, 5, 15, 25],
      ['firing@60000→firing', 'resolved@180000→resolved'],
    ],
    [
      'for: pending until the condition held that long, then firing',
      { for: '2m' },
      [80, 80, 80, 80],
      ['pending@0→pending', 'firing@120000→firing'],
    ],
    [
      'for: a condition gone before the deadline is cancelled',
      { for: '5m' },
      [80, 80, 70, 80],
      ['pending@0→pending', 'cancelled@120000→inactive', 'pending@180000→pending'],
    ],
    [
      'clearFor: resolved only once the clear condition held that long',
      { clearFor: '2m' },
      [80, 70, 80, 70, 70, 70],
      ['firing@0→firing', 'resolved@300000→resolved'],
    ],
    [
      'a cancelled pending after an episode goes back to resolved',
      { for: '2m' },
      [80, 80, 80, 70, 80, 70],
      [
        'pending@0→pending',
        'firing@120000→firing',
        'resolved@180000→resolved',
        'pending@240000→pending',
        'cancelled@300000→resolved',
      ],
    ],
  ])('%s', (_name, extra, values, expected) => {
    expect(run(fixture([th(extra)]), values)).toEqual(expected);
  });

  it('a `for` deadline fires with no reading when the caller advances the clock', () => {
    const f = fixture([th({ for: '5m' })]);
    expect(steps(f.feed(0, pm(80)))).toEqual(['pending@0→pending']);
    expect(f.ev.nextDeadline()).toBe(5 * MIN);
    expect(steps(f.advance(5 * MIN - 1))).toEqual([]);
    expect(steps(f.advance(10 * MIN))).toEqual(['firing@300000→firing']);
    expect(f.ev.nextDeadline()).toBeUndefined();
  });

  it('a reading past a `for` deadline fires it at the deadline, then counts itself', () => {
    const f = fixture([th({ for: '5m' })]);
    f.feed(0, pm(80));
    expect(steps(f.feed(7 * MIN, pm(60)))).toEqual([
      'firing@300000→firing',
      'resolved@420000→resolved',
    ]);
  });

  it('a backfilled hour evaluates on device time: `for` counts readings’ ts, not arrival', () => {
    // Ten minutes of readings, all arriving at once an hour later.
    const f = fixture([th({ for: '5m' })]);
    const out = [0, 1, 2, 3, 4, 5, 6].flatMap((m) =>
      steps(f.feed(m * MIN, pm(m < 6 ? 80 : 60), { at: 60 * MIN + m })),
    );
    expect(out).toEqual(['pending@0→pending', 'firing@300000→firing', 'resolved@360000→resolved']);
  });

  it('severity rises and falls while firing, with the rule’s hysteresis gap', () => {
    const f = fixture([
      th({ clearBelow: 50, escalate: [{ above: 150, severity: 'critical' }], severity: 'major' }),
    ]);
    const out = [80, 160, 130, 120, 160, 40].map((v, i) => f.feed(i * MIN, pm(v)));
    expect(out.flat().map((t) => `${t.event}:${t.severity}:${t.notify}`)).toEqual([
      'firing:major:true',
      'severity:critical:true',
      // 130 is inside the 25-wide gap under 150: still critical; 120 is not
      'severity:major:true',
      'severity:critical:true',
      'resolved:critical:true',
    ]);
  });

  it('a group scope raises the district while any of its devices is raised', () => {
    const f = fixture([th({ scope: { district: 'Binhu' }, clearBelow: 50 })]);
    const out = [
      f.feed(0, pm(80), { device: 'a' }),
      f.feed(1, pm(20), { device: 'b' }), // b is fine; a still raises the district
      f.feed(2, pm(90), { device: 'b' }),
      f.feed(3, pm(40), { device: 'a' }), // b still raises it
      f.feed(4, pm(40), { device: 'b' }),
      f.feed(5, pm(99), { device: 'c', district: 'Xinwu' }), // not this rule's district
    ].flat();
    expect(out.map((t) => `${t.key}:${t.event}@${t.ts}`)).toEqual([
      'Binhu:firing@0',
      'Binhu:resolved@4',
    ]);
  });

  it('without a scope each device has its own alert', () => {
    const f = fixture([th({})]);
    const out = [f.feed(0, pm(80), { device: 'a' }), f.feed(0, pm(80), { device: 'b' })].flat();
    expect(out.map((t) => `${t.alertId}#${t.seq}`)).toEqual(['pm:a#1', 'pm:b#1']);
  });

  it('a device scope sees that device only', () => {
    const f = fixture([th({ scope: { device: 'a' } })]);
    expect(f.feed(0, pm(80), { device: 'b' })).toEqual([]);
    expect(steps(f.feed(0, pm(80), { device: 'a' }))).toEqual(['firing@0→firing']);
  });

  it('a reading older than the device’s last one is late and does not judge', () => {
    const f = fixture([th({})]);
    f.feed(10 * MIN, pm(80));
    expect(f.feed(5 * MIN, pm(10))).toEqual([]);
    expect(f.ev.alert('pm:aq-1')?.state).toBe('firing');
  });

  it('a boolean field compares as 0/1', () => {
    const f = fixture([
      rule({ id: 'open', type: 'manhole', kind: 'threshold', field: 'cover_open', above: 0.5 }),
    ]);
    const who = { type: 'manhole', device: 'mh-1' };
    expect(steps(f.feed(0, { cover_open: true }, who))).toEqual(['firing@0→firing']);
    expect(steps(f.feed(1, { cover_open: false }, who))).toEqual(['resolved@1→resolved']);
  });

  it('readings of a type without rules, or without the rule’s field, change nothing', () => {
    const f = fixture([th({})]);
    expect(f.feed(0, { water_level_cm: 500 }, { type: 'manhole' })).toEqual([]);
    expect(f.feed(0, { no2_ugm3: 500 })).toEqual([]);
    expect([...f.ev.alerts()]).toEqual([]);
  });
});

describe('notification and sequence', () => {
  it('notifies firing, severity, acknowledged and resolved; never pending or cancelled', () => {
    const f = fixture([th({ for: '1m', escalate: [{ above: 150, severity: 'critical' }] })]);
    const out: Transition[] = [
      ...f.feed(0, pm(80)),
      ...f.feed(30_000, pm(70)),
      ...f.feed(2 * MIN, pm(80)),
      ...f.feed(3 * MIN, pm(200)),
      ...f.ev.acknowledge('pm:aq-1', 'operator-li', 3 * MIN + 5),
      ...f.feed(4 * MIN, pm(10)),
    ];
    expect(out.map((t) => `${t.seq} ${t.event} ${t.notify}`)).toEqual([
      '1 pending false',
      '2 cancelled false',
      '3 pending false',
      '4 firing true',
      '5 severity true',
      '6 acknowledged true',
      '7 resolved true',
    ]);
  });

  it('seq keeps rising across episodes of one alert and is separate per alert', () => {
    const f = fixture([th({})]);
    const seqs = [80, 10, 80, 10].flatMap((v, i) => f.feed(i, pm(v), { device: 'a' }));
    f.feed(9, pm(80), { device: 'b' });
    expect(seqs.map((t) => t.seq)).toEqual([1, 2, 3, 4]);
    expect(f.ev.alert('pm:b')?.seq).toBe(1);
  });
});

describe('acknowledgement', () => {
  it('is kept until the episode resolves, and a repeat is a no-op', () => {
    const f = fixture([th({})]);
    f.feed(0, pm(80));
    const [ack] = f.ev.acknowledge('pm:aq-1', 'operator-li', 1000);
    expect(ack).toMatchObject({
      event: 'acknowledged',
      acknowledged: { by: 'operator-li', at: 1000 },
    });
    expect(f.ev.acknowledge('pm:aq-1', 'someone-else', 2000)).toEqual([]);
    const [resolved] = f.feed(MIN, pm(10));
    expect(resolved?.acknowledged).toEqual({ by: 'operator-li', at: 1000 });
    const [again] = f.feed(2 * MIN, pm(80));
    expect(again?.acknowledged).toBeNull();
  });

  it.each([
    ['an alert that is not firing', 'pm:aq-1', 'TAIHU_ERR_ALERT_NOT_FIRING'],
    ['an alert that does not exist', 'pm:nobody', 'TAIHU_ERR_NOT_FOUND'],
    ['an id without a rule', 'nonsense', 'TAIHU_ERR_NOT_FOUND'],
  ])('of %s is refused', (_name, id, code) => {
    const f = fixture([th({ for: '5m' })]);
    f.feed(0, pm(80)); // pending, not firing
    expect(() => f.ev.acknowledge(id, 'op', 1)).toThrow(
      expect.objectContaining({ code }) as TaihuError,
    );
  });
});

describe('flapping', () => {
  it('marks the alert flapping at the 4th flip in 10 min, mutes flips, then settles once', () => {
    const f = fixture([th({})]);
    // A reading every 2 s alternating across the bound: the ThingsBoard "mail every 4 s".
    const out = Array.from({ length: 12 }, (_, i) => f.feed(i * 2000, pm(i % 2 ? 70 : 80))).flat();
    expect(out.map((t) => `${t.event}${t.flapping ? '~' : ''}${t.notify ? '!' : ''}`)).toEqual([
      'firing!',
      'resolved!',
      'firing!',
      'resolved~!', // the step that starts flapping is told, marked
      'firing~',
      'resolved~',
      'firing~',
      'resolved~',
      'firing~',
      'resolved~',
      'firing~',
      'resolved~',
    ]);
    // Settles 10 min after the last flip, telling where it ended.
    expect(f.ev.nextDeadline()).toBe(22_000 + 10 * MIN);
    const settled = f.advance(22_000 + 10 * MIN);
    expect(settled.map((t) => `${t.event} ${t.state} ${t.notify} ${t.flapping}`)).toEqual([
      'settled resolved true false',
    ]);
  });

  it('flips spread wider than the window never mark it flapping', () => {
    const f = fixture([th({ flapping: { flips: 3, window: '5m' } })]);
    const out = [80, 70, 80, 70, 80, 70].flatMap((v, i) => f.feed(i * 3 * MIN, pm(v)));
    expect(out.every((t) => t.notify && !t.flapping)).toBe(true);
  });

  it('a settle that comes while pending waits for the pending to decide', () => {
    const f = fixture([th({ for: '5m', flapping: { flips: 2, window: '1h', settle: '10m' } })]);
    f.feed(0, pm(80));
    f.advance(5 * MIN); // firing
    f.feed(6 * MIN, pm(10)); // resolved: 2nd flip, flapping, settle at 16m
    f.feed(14 * MIN, pm(80)); // pending until 19m
    expect(steps(f.advance(16 * MIN))).toEqual([]);
    expect(steps(f.feed(17 * MIN, pm(10)))).toEqual([
      'cancelled@1020000→resolved',
      'settled@1020000→resolved',
    ]);
  });
});

describe('rate rules', () => {
  const rate = (extra: Record<string, unknown>) =>
    rule({ id: 'jump', kind: 'rate', field: 'pm25_ugm3', change: 30, window: '5m', ...extra });

  it.each<[string, Record<string, unknown>, number[], string[]]>([
    [
      'a rise of more than `change` within the window fires',
      {},
      [10, 12, 50, 52],
      ['firing@120000→firing'],
    ],
    [
      'the same rise spread over more than the window does not',
      {},
      [10, 17, 24, 31, 38, 45, 52, 59],
      [],
    ],
    [
      'it clears on the first reading without such a change',
      {},
      [10, 50, 50, 50, 50, 50, 50, 50],
      // the window is (t − 5m, t]: at 5m the 10 of t = 0 has left it
      ['firing@60000→firing', 'resolved@300000→resolved'],
    ],
    ['a fall counts when direction is either', {}, [60, 20], ['firing@60000→firing']],
    ['a fall does not count when direction is up', { direction: 'up' }, [60, 20], []],
    ['a rise does not count when direction is down', { direction: 'down' }, [20, 60], []],
  ])('%s', (_name, extra, values, expected) => {
    expect(run(fixture([rate(extra)]), values)).toEqual(expected);
  });

  it('reports the signed change as the value', () => {
    const f = fixture([rate({})]);
    f.feed(0, pm(60));
    expect(f.feed(MIN, pm(20))[0]?.value).toBe(-40);
  });
});

describe('aggregate rules', () => {
  const agg = (extra: Record<string, unknown>) =>
    rule({ id: 'mean', kind: 'aggregate', field: 'pm25_ugm3', fn: 'mean', window: '5m', ...extra });

  it.each<[string, Record<string, unknown>, number[], string[]]>([
    [
      'the window mean past the bound fires; old readings leaving it resolve',
      { above: 50, clearBelow: 40 },
      [30, 30, 100, 30, 30, 30, 30, 30],
      ['firing@120000→firing', 'resolved@420000→resolved'],
    ],
    [
      'max over the window holds a spike for the window',
      { fn: 'max', above: 90 },
      [10, 100, 10, 10, 10, 10, 10],
      ['firing@60000→firing', 'resolved@360000→resolved'],
    ],
    ['min over the window', { fn: 'min', below: 5 }, [10, 3, 10], ['firing@60000→firing']],
    [
      'sum over the window',
      { fn: 'sum', above: 100 },
      [40, 40, 40, 0, 0, 0],
      ['firing@120000→firing', 'resolved@300000→resolved'],
    ],
    [
      'count above a ceiling (a chattering device)',
      { fn: 'count', window: '3m', above: 2 },
      [1, 1, 1, 1],
      ['firing@120000→firing'],
    ],
  ])('%s', (_name, extra, values, expected) => {
    expect(run(fixture([agg(extra)]), values)).toEqual(expected);
  });

  it('a district mean takes every station of the district, a little out of order', () => {
    const f = fixture([agg({ above: 50, scope: { district: 'Binhu' } })]);
    f.feed(1000, pm(40), { device: 'a' });
    f.feed(999, pm(40), { device: 'b' });
    const [t] = f.feed(2000, pm(100), { device: 'c' });
    expect(t).toMatchObject({ key: 'Binhu', event: 'firing', value: 60 });
  });
});

describe('absence rules', () => {
  const gone = (extra: Record<string, unknown> = {}) =>
    rule({ id: 'gone', kind: 'absence', after: '3m', ...extra });

  it('fires with no reading once `after` has passed since the device was heard', () => {
    const f = fixture([gone()]);
    f.feed(0, pm(1));
    expect(f.ev.nextDeadline()).toBe(3 * MIN);
    expect(steps(f.advance(3 * MIN - 1))).toEqual([]);
    expect(steps(f.advance(10 * MIN))).toEqual(['firing@180000→firing']);
  });

  it('never fires while the device reports within `after`', () => {
    const f = fixture([gone()]);
    const out = Array.from({ length: 30 }, (_, i) => {
      const early = f.advance(i * 2 * MIN);
      return [...early, ...f.feed(i * 2 * MIN, pm(1))];
    }).flat();
    expect(out).toEqual([]);
  });

  it('resolves when the device speaks again', () => {
    const f = fixture([gone()]);
    f.feed(0, pm(1));
    f.advance(3 * MIN);
    expect(steps(f.feed(5 * MIN, pm(1)))).toEqual(['resolved@300000→resolved']);
  });

  it('fires before the reading that ends it when the caller had not advanced', () => {
    const f = fixture([gone()]);
    f.feed(0, pm(1));
    expect(steps(f.feed(5 * MIN, pm(1)))).toEqual([
      'firing@180000→firing',
      'resolved@300000→resolved',
    ]);
  });

  it('runs on the evaluator clock, not the device’s: a device clock 10 min slow is not absent', () => {
    const f = fixture([gone()]);
    const out = [0, 1, 2, 3].flatMap((m) => [
      ...f.advance(m * MIN),
      ...f.feed(m * MIN - 10 * MIN, pm(1), { at: m * MIN }),
    ]);
    expect(out).toEqual([]);
  });

  it('a device the registry expects is found absent though it never spoke', () => {
    const f = fixture([gone()]);
    f.clock.now = 1000;
    f.ev.expect({ deviceId: 'aq-9', type: 'air-quality', district: 'Binhu', siteId: 's' });
    expect(f.advance(1000 + 3 * MIN).map((t) => `${t.alertId} ${t.event}`)).toEqual([
      'gone:aq-9 firing',
    ]);
  });

  it('with a field, only readings carrying that field are signs of life', () => {
    const f = fixture([gone({ field: 'no2_ugm3' })]);
    f.feed(0, { no2_ugm3: 1 });
    f.feed(2 * MIN, pm(1));
    expect(steps(f.advance(3 * MIN))).toEqual(['firing@180000→firing']);
  });

  it('a site is absent only when none of its devices speaks', () => {
    const f = fixture([gone({ scope: { site: 'site-1' } })]);
    f.feed(0, pm(1), { device: 'a' });
    f.feed(2 * MIN, pm(1), { device: 'b' });
    expect(f.advance(4 * MIN)).toEqual([]);
    expect(steps(f.advance(5 * MIN))).toEqual(['firing@300000→firing']);
  });

  it('fires timers of several keys in deadline order', () => {
    const f = fixture([gone()]);
    f.feed(2000, pm(1), { device: 'b' });
    f.feed(1000, pm(1), { device: 'a' });
    f.feed(3000, pm(1), { device: 'c' });
    f.feed(2500, pm(1), { device: 'b' }); // moves b's deadline later, still before c's
    expect(f.advance(3000 + 3 * MIN).map((t) => `${t.key}@${t.ts}`)).toEqual([
      'a@181000',
      'b@182500',
      'c@183000',
    ]);
  });
});

describe('composite rules', () => {
  const parts = [
    th({ id: 'pm25' }),
    rule({ id: 'pm10', kind: 'threshold', field: 'pm10_ugm3', above: 150 }),
  ];
  const both = (kind: 'all' | 'any') => [
    ...parts,
    rule({ id: 'smog', kind, rules: ['pm25', 'pm10'], severity: 'critical' }),
  ];
  const smog = (out: Transition[]) =>
    out.filter((t) => t.ruleId === 'smog').map((t) => `${t.event}@${t.ts}`);

  it.each<['all' | 'any', string[]]>([
    ['all', ['firing@1', 'resolved@2']],
    ['any', ['firing@0', 'resolved@3']],
  ])('`%s` of two thresholds for one key', (kind, expected) => {
    const f = fixture(both(kind));
    const out = [
      f.feed(0, { pm25_ugm3: 80, pm10_ugm3: 100 }),
      f.feed(1, { pm25_ugm3: 80, pm10_ugm3: 200 }),
      f.feed(2, { pm25_ugm3: 10, pm10_ugm3: 200 }),
      f.feed(3, { pm25_ugm3: 10, pm10_ugm3: 100 }),
    ].flat();
    expect(smog(out)).toEqual(expected);
  });

  it('a part that fires on a timer (absence) raises the composite without a reading', () => {
    const f = fixture([
      th({ id: 'pm25' }),
      rule({ id: 'gone', kind: 'absence', after: '3m' }),
      rule({ id: 'dark', kind: 'all', rules: ['pm25', 'gone'] }),
    ]);
    f.feed(0, pm(80));
    const out = f.advance(3 * MIN);
    expect(out.map((t) => `${t.ruleId} ${t.event}@${t.ts}`)).toEqual([
      'gone firing@180000',
      'dark firing@180000',
    ]);
  });
});

describe('the alert as listed', () => {
  it('a resolved alert keeps the severity it resolved at', () => {
    const f = fixture([th({ escalate: [{ above: 150, severity: 'critical' }] })]);
    f.feed(0, pm(200));
    f.feed(1, pm(10));
    f.feed(2, pm(10));
    expect(f.ev.alert('pm:aq-1')).toMatchObject({
      state: 'resolved',
      severity: 'critical',
      seq: 2,
    });
  });

  it('lists alerts that left inactive, with state, severity, since and value', () => {
    const f = fixture([th({ for: '5m' })]);
    f.feed(0, pm(80), { device: 'a' });
    f.feed(0, pm(10), { device: 'b' });
    f.advance(5 * MIN);
    expect([...f.ev.alerts()]).toEqual([
      {
        id: 'pm:a',
        rule: 'pm',
        key: 'a',
        state: 'firing',
        severity: 'major',
        since: 5 * MIN,
        value: 80,
        flapping: false,
        acknowledged: null,
        seq: 2,
      },
    ]);
  });
});

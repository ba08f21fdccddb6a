import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  DELIVERY_DEFAULTS,
  backoff,
  deliveryBody,
  enqueue,
  isDelivered,
  newLane,
  recoverLane,
  requestFor,
  retryDead,
  signature,
  step,
  type Delivery,
  type Lane,
  type Outcome,
} from '../../src/rules/delivery.js';
import type { Transition } from '../../src/rules/types.js';
import { fixture, rule } from '../helpers/rules.js';

const SECRET = 'a-webhook-secret-of-some-length';
const HOOK = 'http://127.0.0.1:9999/alerts';

function transition(seq: number, extra: Partial<Transition> = {}): Transition {
  return {
    alertId: 'pm25-high:aq-1',
    ruleId: 'pm25-high',
    key: 'aq-1',
    seq,
    ts: Date.UTC(2026, 10, 26, 8, 0, seq),
    event: seq % 2 ? 'firing' : 'resolved',
    state: seq % 2 ? 'firing' : 'resolved',
    severity: 'major',
    value: 80,
    flapping: false,
    acknowledged: null,
    notify: true,
    ...extra,
  };
}

const ok: Outcome = { kind: 'response', status: 200 };
const err500: Outcome = { kind: 'response', status: 500 };
const half = () => 0.5;

/** A seeded jitter source (a 32-bit LCG), so a failing run can be run again. */
function seeded(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1_664_525) + 1_013_904_223) >>> 0;
    return x / 2 ** 32;
  };
}

/** Queues seqs 1..n on one lane. */
function laneWith(...seqs: number[]): Lane {
  return seqs.reduce((l, s) => enqueue(l, transition(s), 0), newLane(HOOK, 'pm25-high:aq-1'));
}

describe('what a webhook receives', () => {
  it('a body of the transition with a stable delivery id, signed with the webhook secret', () => {
    const lane = laneWith(1);
    const { action } = step(lane, 0, undefined, half);
    if (action.kind !== 'send') throw new Error(action.kind);
    const req = requestFor(action.delivery, SECRET);
    expect(req.headers['x-taihu-delivery']).toBe('pm25-high:aq-1:1');
    expect(JSON.parse(req.body)).toEqual({
      delivery: 'pm25-high:aq-1:1',
      alert: { id: 'pm25-high:aq-1', rule: 'pm25-high', key: 'aq-1' },
      seq: 1,
      event: 'firing',
      state: 'firing',
      severity: 'major',
      value: 80,
      ts: '2026-11-26T08:00:01.000Z',
      flapping: false,
      acknowledged: null,
    });
    // A receiver checks it with nothing but its own HMAC.
    const mine = createHmac('sha256', SECRET).update(req.body).digest('hex');
    expect(req.headers['x-taihu-signature']).toBe(`sha256=${mine}`);
  });

  it('the signature is plain HMAC-SHA256 (RFC 4231 test case 2)', () => {
    expect(signature('what do ya want for nothing?', 'Jefe')).toBe(
      'sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });

  it('an acknowledgement carries who and when', () => {
    const body = deliveryBody(
      transition(3, { event: 'acknowledged', acknowledged: { by: 'operator-li', at: 0 } }),
    );
    expect(JSON.parse(body).acknowledged).toEqual({
      by: 'operator-li',
      at: '1970-01-01T00:00:00.000Z',
    });
  });
});

describe('what counts as delivered', () => {
  it.each<[string, Outcome, boolean]>([
    ['200', { kind: 'response', status: 200 }, true],
    ['204', { kind: 'response', status: 204 }, true],
    ['299', { kind: 'response', status: 299 }, true],
    ['301 (not followed)', { kind: 'response', status: 301 }, false],
    ['404', { kind: 'response', status: 404 }, false],
    ['500', err500, false],
    ['503', { kind: 'response', status: 503 }, false],
    ['a timeout', { kind: 'timeout' }, false],
    ['a refused connection', { kind: 'error', message: 'ECONNREFUSED' }, false],
  ])('%s → delivered: %s', (_name, outcome, delivered) => {
    expect(isDelivered(outcome)).toBe(delivered);
  });
});

describe('retry schedule', () => {
  it.each<[number, number, number]>([
    // attempt, wait with random 0, wait with random → 1
    [1, 1_000, 1_999],
    [2, 2_000, 3_999],
    [3, 4_000, 7_999],
    [8, 128_000, 255_999],
    [9, 150_000, 299_999],
    [14, 150_000, 299_999],
  ])('after failed attempt %d it waits %d–%d ms', (n, lo, hi) => {
    expect(backoff(n, () => 0)).toBe(lo);
    expect(backoff(n, () => 0.999_999_9)).toBe(hi);
  });

  it('the first retry comes within 5 s whatever the jitter', () => {
    for (let i = 0; i < 100; i++) expect(backoff(1, () => i / 100)).toBeLessThan(5_000);
  });

  it('a 500 then a 200: retried with the same delivery id and body, then delivered', () => {
    let s = step(laneWith(1), 0, undefined, half);
    const first = s.action.kind === 'send' ? s.action.delivery : undefined;
    s = step(s.lane, 100, err500, half);
    expect(s.action).toEqual({ kind: 'wait', until: 100 + 1_500 });
    expect(step(s.lane, 1_000, undefined, half).action.kind).toBe('wait');
    s = step(s.lane, 1_600, undefined, half);
    const second = s.action.kind === 'send' ? s.action.delivery : undefined;
    expect(second?.id).toBe(first?.id);
    expect(second?.body).toBe(first?.body);
    expect(second?.attempts).toBe(2);
    s = step(s.lane, 1_700, ok, half);
    expect(s.finished.map((d) => `${d.id} ${d.state} ${d.attempts}`)).toEqual([
      'pm25-high:aq-1:1 delivered 2',
    ]);
    expect(s.action).toEqual({ kind: 'idle' });
  });

  it('a timeout is a failed attempt, retried, not a lost message', () => {
    let s = step(laneWith(1), 0, undefined, half);
    s = step(s.lane, 10_000, { kind: 'timeout' }, half);
    expect(s.finished).toEqual([]);
    expect(s.lane.queue[0]).toMatchObject({
      state: 'queued',
      lastError: 'no answer within the timeout',
    });
  });

  it('a Retry-After longer than the backoff is honoured, up to the cap', () => {
    let s = step(laneWith(1), 0, undefined, half);
    s = step(s.lane, 0, { kind: 'response', status: 429, retryAfterMs: 30_000 }, half);
    expect(s.action).toEqual({ kind: 'wait', until: 30_000 });
    s = step(
      step(s.lane, 30_000, undefined, half).lane,
      30_000,
      {
        kind: 'response',
        status: 503,
        retryAfterMs: 86_400_000,
      },
      half,
    );
    expect(s.action).toEqual({ kind: 'wait', until: 30_000 + DELIVERY_DEFAULTS.capMs });
  });

  it('a webhook down for 2 minutes gets everything afterwards, in transition order', () => {
    let lane = laneWith(1, 2, 3);
    const received: string[] = [];
    let now = 0;
    let outcome: Outcome | undefined;
    const random = seeded(18);
    for (let i = 0; i < 100 && (lane.queue.length > 0 || outcome); i++) {
      const s = step(lane, now, outcome, random);
      lane = s.lane;
      outcome = undefined;
      if (s.action.kind === 'send') {
        const up = now >= 120_000;
        if (up) received.push(s.action.delivery.id);
        outcome = up ? ok : { kind: 'error', message: 'ECONNREFUSED' };
      } else if (s.action.kind === 'wait') now = s.action.until;
    }
    expect(received).toEqual(['pm25-high:aq-1:1', 'pm25-high:aq-1:2', 'pm25-high:aq-1:3']);
    expect(lane.queue).toEqual([]);
  });
});

describe('ordering per webhook and alert', () => {
  it('sends one delivery at a time: the next waits until the first is delivered', () => {
    let s = step(laneWith(1, 2), 0, undefined, half);
    expect(s.action.kind === 'send' && s.action.delivery.seq).toBe(1);
    expect(step(s.lane, 0, undefined, half).action).toEqual({ kind: 'busy' });
    s = step(s.lane, 0, err500, half);
    s = step(s.lane, 60_000, undefined, half);
    expect(s.action.kind === 'send' && s.action.delivery.seq).toBe(1); // still the first
    s = step(s.lane, 60_001, ok, half);
    expect(s.action.kind === 'send' && s.action.delivery.seq).toBe(2);
  });

  it('a transition queued again after a replay is not sent twice; an unnotified one not at all', () => {
    const lane = laneWith(1, 2);
    expect(enqueue(lane, transition(2), 5)).toBe(lane);
    expect(enqueue(lane, transition(1), 5)).toBe(lane);
    expect(enqueue(lane, transition(3, { notify: false, event: 'pending' }), 5)).toBe(lane);
    expect(enqueue(lane, transition(3, { alertId: 'other:aq-1' }), 5)).toBe(lane);
  });

  it('a delivery in flight at a crash is sent again, same id, after the restart', () => {
    const s = step(laneWith(1), 0, undefined, half);
    const restored = JSON.parse(JSON.stringify(s.lane)) as Lane;
    const again = step(recoverLane(restored, 50_000), 50_000, undefined, half);
    expect(again.action.kind === 'send' && again.action.delivery.id).toBe('pm25-high:aq-1:1');
  });
});

describe('dead letters', () => {
  function exhaust(lane: Lane): { lane: Lane; dead: readonly Delivery[]; lastAt: number } {
    let now = 0;
    let s = step(lane, now, undefined, half);
    for (;;) {
      s = step(s.lane, now, err500, half);
      if (s.finished.length > 0) return { lane: s.lane, dead: s.finished, lastAt: now };
      if (s.action.kind !== 'wait') throw new Error(s.action.kind);
      now = s.action.until;
      s = step(s.lane, now, undefined, half);
    }
  }

  it(`after ${DELIVERY_DEFAULTS.maxAttempts} failed attempts a delivery is dead-lettered, with what waited behind it`, () => {
    const { lane, dead, lastAt } = exhaust(laneWith(1, 2));
    expect(dead.map((d) => `${d.id} ${d.state} ${d.attempts} ${d.lastError}`)).toEqual([
      'pm25-high:aq-1:1 dead 15 HTTP 500',
      'pm25-high:aq-1:2 dead 0 after pm25-high:aq-1:1: HTTP 500',
    ]);
    expect(lane.queue).toEqual([]);
    // 19–39 min of retrying; with the jitter at its middle, about 29 min.
    expect(lastAt / 60_000).toBeCloseTo(28.9, 0);
  });

  it('a later transition starts afresh; an admin retry brings the dead back in seq order', () => {
    const { lane, dead } = exhaust(laneWith(1, 2));
    let l = enqueue(lane, transition(3), 0);
    l = retryDead(l, dead, 0);
    expect(l.queue.map((d) => `${d.seq} ${d.state} ${d.attempts}`)).toEqual([
      '1 queued 0',
      '2 queued 0',
      '3 queued 0',
    ]);
  });

  it('an admin retry waits behind a delivery in flight', () => {
    const { lane, dead } = exhaust(laneWith(1));
    const s = step(enqueue(lane, transition(3), 0), 0, undefined, half);
    const l = retryDead(s.lane, dead, 0);
    expect(l.queue.map((d) => `${d.seq} ${d.state}`)).toEqual(['3 sending', '1 queued']);
  });
});

describe('from evaluator to lanes', () => {
  it('a flapping alert queues the steps it notifies, not every flip', () => {
    const f = fixture([
      rule({
        id: 'pm25-high',
        kind: 'threshold',
        field: 'pm25_ugm3',
        above: 75,
        notify: [{ webhook: HOOK, secret: SECRET }],
      }),
    ]);
    let lane = newLane(HOOK, 'pm25-high:aq-1');
    for (let i = 0; i < 40; i++) {
      for (const t of f.feed(i * 2000, { pm25_ugm3: i % 2 ? 70 : 80 })) lane = enqueue(lane, t, 0);
    }
    for (const t of f.advance(40 * 2000 + 10 * 60_000)) lane = enqueue(lane, t, 0);
    expect(lane.queue.map((d) => `${d.id} ${d.event}`)).toEqual([
      'pm25-high:aq-1:1 firing',
      'pm25-high:aq-1:2 resolved',
      'pm25-high:aq-1:3 firing',
      'pm25-high:aq-1:4 resolved',
      'pm25-high:aq-1:41 settled',
    ]);
  });
});

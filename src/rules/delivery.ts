/**
 * Webhook delivery policy (DESIGN §13), pure: what to send, how it is signed, when to retry,
 * when to give up. No HTTP here — the transport asks `step(lane, now, outcome)` what to do
 * next, does it, and reports the outcome back.
 *
 * - One lane per (webhook, alert): one delivery in flight at a time, in transition order, so a
 *   receiver never sees "resolved" before the "firing" it resolves; lanes are independent, so a
 *   dead webhook holds up nothing but its own lanes.
 * - A delivery's id is `<alert id>:<seq>` and its body is fixed when queued: every retry sends
 *   the same bytes under the same `X-Taihu-Delivery`, so a receiver deduplicates an attempt
 *   that reached it but whose answer did not reach us.
 * - Only a 2xx answer delivers. Any other status, a timeout, a refused connection is a failed
 *   attempt, retried with backoff and jitter; after `maxAttempts` the delivery is dead-lettered
 *   — listed and retryable by an admin, never dropped.
 * - Lanes are plain JSON: the outbox persists them with the alert transitions they came from,
 *   and a delivery in flight at a crash is sent again (same id) after the restart.
 */
import { createHmac } from 'node:crypto';
import type { Transition } from './types.js';

export const DELIVERY_DEFAULTS = {
  /** Backoff base: the first retry waits 1–2 s (DESIGN §13: within 5 s), then doubling. */
  baseMs: 2_000,
  /** Longest wait between two attempts (jitter spreads it over its upper half). */
  capMs: 5 * 60_000,
  /** Attempts before dead-lettering: 15 spans 19–39 min of retrying, plus the timeouts. */
  maxAttempts: 15,
  /** An attempt unanswered this long is failed; the transport enforces it. */
  timeoutMs: 10_000,
} as const;

export type DeliveryPolicy = { readonly [K in keyof typeof DELIVERY_DEFAULTS]: number };

/** What became of one attempt, as the transport saw it. */
export type Outcome =
  | { readonly kind: 'response'; readonly status: number; readonly retryAfterMs?: number }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'error'; readonly message: string };

export type DeliveryState = 'queued' | 'sending' | 'delivered' | 'dead';

export interface Delivery {
  /** `X-Taihu-Delivery`: `<alert id>:<transition seq>`, the same on every attempt. */
  readonly id: string;
  readonly webhook: string;
  readonly alertId: string;
  readonly seq: number;
  readonly event: Transition['event'];
  /** The exact bytes every attempt sends and signs. */
  readonly body: string;
  readonly state: DeliveryState;
  readonly attempts: number;
  readonly firstAttemptAt: number | null;
  /** When the next attempt may start (queued), or when the last one did (sending). */
  readonly nextAt: number;
  readonly lastError: string | null;
}

export interface Lane {
  readonly webhook: string;
  readonly alertId: string;
  /** Highest seq ever queued here: a transition queued again after a replay is not sent twice. */
  readonly lastSeq: number;
  /** Waiting deliveries in seq order; the head may be in flight. */
  readonly queue: readonly Delivery[];
}

export type Action =
  | { readonly kind: 'send'; readonly delivery: Delivery }
  | { readonly kind: 'wait'; readonly until: number }
  /** The head is in flight: report its outcome. */
  | { readonly kind: 'busy' }
  | { readonly kind: 'idle' };

export interface Step {
  readonly lane: Lane;
  readonly action: Action;
  /** Deliveries that left the lane in this step: delivered, or dead letters to list. */
  readonly finished: readonly Delivery[];
}

export function deliveryId(t: Pick<Transition, 'alertId' | 'seq'>): string {
  return `${t.alertId}:${t.seq}`;
}

/** The webhook body: the transition, times as RFC 3339, keys in a fixed order. */
export function deliveryBody(t: Transition): string {
  return JSON.stringify({
    delivery: deliveryId(t),
    alert: { id: t.alertId, rule: t.ruleId, key: t.key },
    seq: t.seq,
    event: t.event,
    state: t.state,
    severity: t.severity,
    value: t.value,
    ts: new Date(t.ts).toISOString(),
    flapping: t.flapping,
    acknowledged: t.acknowledged
      ? { by: t.acknowledged.by, at: new Date(t.acknowledged.at).toISOString() }
      : null,
  });
}

/** `sha256=<hex HMAC-SHA256 of the body with the webhook's secret>` (DESIGN §13). */
export function signature(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

/** The request an attempt sends. */
export function requestFor(
  d: Delivery,
  secret: string,
): { url: string; headers: Readonly<Record<string, string>>; body: string } {
  return {
    url: d.webhook,
    headers: {
      'content-type': 'application/json',
      'user-agent': 'taihu',
      'x-taihu-delivery': d.id,
      'x-taihu-event': d.event,
      'x-taihu-signature': signature(d.body, secret),
    },
    body: d.body,
  };
}

/**
 * Only a 2xx delivers. A 3xx is a failure too: a webhook that redirects is misconfigured, and
 * following it would send signed alerts somewhere nobody named.
 */
export function isDelivered(o: Outcome): boolean {
  return o.kind === 'response' && o.status >= 200 && o.status < 300;
}

function describeOutcome(o: Outcome): string {
  if (o.kind === 'response') return `HTTP ${o.status}`;
  return o.kind === 'timeout' ? 'no answer within the timeout' : o.message;
}

/**
 * Wait after the n-th failed attempt: exponential from `baseMs`, capped, with "equal jitter"
 * (the upper half of the step is random) so receivers coming back are not hit by every
 * gateway's retries at the same instant. `random` returns [0, 1).
 */
export function backoff(
  n: number,
  random: () => number,
  p: DeliveryPolicy = DELIVERY_DEFAULTS,
): number {
  const step = Math.min(p.capMs, p.baseMs * 2 ** Math.min(n - 1, 30));
  return Math.floor(step / 2 + random() * (step / 2));
}

export function newLane(webhook: string, alertId: string): Lane {
  return { webhook, alertId, lastSeq: 0, queue: [] };
}

/** Queues a notified transition; one already queued (a replay after a restart) is ignored. */
export function enqueue(lane: Lane, t: Transition, now: number): Lane {
  if (!t.notify || t.alertId !== lane.alertId || t.seq <= lane.lastSeq) return lane;
  const d: Delivery = {
    id: deliveryId(t),
    webhook: lane.webhook,
    alertId: t.alertId,
    seq: t.seq,
    event: t.event,
    body: deliveryBody(t),
    state: 'queued',
    attempts: 0,
    firstAttemptAt: null,
    nextAt: now,
    lastError: null,
  };
  return { ...lane, lastSeq: t.seq, queue: [...lane.queue, d] };
}

/**
 * The policy in one function: applies the in-flight head's `outcome` (if any), then says what
 * to do next. A dead-lettered head takes what waits behind it in the lane along (the webhook
 * has been failing for half an hour; walking each through the whole schedule again would only
 * deliver them later and out of any useful order); an admin retry brings them back in order.
 */
export function step(
  lane: Lane,
  now: number,
  outcome: Outcome | undefined,
  random: () => number,
  p: DeliveryPolicy = DELIVERY_DEFAULTS,
): Step {
  let queue = lane.queue;
  const finished: Delivery[] = [];
  const head = queue[0];
  if (outcome !== undefined && head?.state === 'sending') {
    if (isDelivered(outcome)) {
      finished.push({ ...head, state: 'delivered', lastError: null });
      queue = queue.slice(1);
    } else if (head.attempts >= p.maxAttempts) {
      const reason = describeOutcome(outcome);
      finished.push({ ...head, state: 'dead', lastError: reason });
      for (const d of queue.slice(1)) {
        finished.push({ ...d, state: 'dead', lastError: `after ${head.id}: ${reason}` });
      }
      queue = [];
    } else {
      const asked = outcome.kind === 'response' ? (outcome.retryAfterMs ?? 0) : 0;
      const wait = Math.max(backoff(head.attempts, random, p), Math.min(asked, p.capMs));
      const retry: Delivery = {
        ...head,
        state: 'queued',
        nextAt: now + wait,
        lastError: describeOutcome(outcome),
      };
      queue = [retry, ...queue.slice(1)];
    }
  }
  const next = queue[0];
  let action: Action;
  if (next === undefined) action = { kind: 'idle' };
  else if (next.state === 'sending') action = { kind: 'busy' };
  else if (next.nextAt > now) action = { kind: 'wait', until: next.nextAt };
  else {
    const sending: Delivery = {
      ...next,
      state: 'sending',
      attempts: next.attempts + 1,
      firstAttemptAt: next.firstAttemptAt ?? now,
      nextAt: now,
    };
    queue = [sending, ...queue.slice(1)];
    action = { kind: 'send', delivery: sending };
  }
  return { lane: { ...lane, queue }, action, finished };
}

/**
 * After a restart: a delivery that was in flight may or may not have arrived, so it is sent
 * again under the same id (the receiver deduplicates) — at least once, never silently lost.
 */
export function recoverLane(lane: Lane, now: number): Lane {
  const head = lane.queue[0];
  if (head?.state !== 'sending') return lane;
  const again: Delivery = {
    ...head,
    state: 'queued',
    nextAt: now,
    lastError: 'interrupted by a restart',
  };
  return { ...lane, queue: [again, ...lane.queue.slice(1)] };
}

/**
 * An admin's retry of dead letters: back into the lane in seq order, behind a delivery in
 * flight, with a fresh schedule. The receiver may see them after later transitions of the alert
 * (that is why they carry `seq`).
 */
export function retryDead(lane: Lane, dead: readonly Delivery[], now: number): Lane {
  const revived = dead
    .filter((d) => d.state === 'dead' && d.alertId === lane.alertId && d.webhook === lane.webhook)
    .map((d): Delivery => ({
      ...d,
      state: 'queued',
      attempts: 0,
      firstAttemptAt: null,
      nextAt: now,
    }));
  if (revived.length === 0) return lane;
  const head = lane.queue[0];
  const inFlight = head?.state === 'sending' ? [head] : [];
  const waiting = [...lane.queue.slice(inFlight.length), ...revived].sort((a, b) => a.seq - b.seq);
  return { ...lane, queue: [...inFlight, ...waiting] };
}

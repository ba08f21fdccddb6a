/**
 * A sliding window of (device time, value) samples for rate and aggregate rules, kept in
 * time order. Two parallel number arrays and a head index: pushing in order appends, evicting
 * moves the head, so a reading allocates nothing once the arrays have grown to the window.
 *
 * The running sum is part of the state, not recomputed on restore: a sum built by adding and
 * subtracting differs in its last bits from one summed afresh, and a restored evaluator must
 * decide exactly as one that never stopped (DESIGN §13, kill -9 neither loses nor repeats).
 * It is re-summed every RESUM_EVERY evictions — a count that is itself state — so rounding
 * never drifts far and both evaluators re-sum at the same reading.
 */
import type { WindowFn } from './types.js';

const RESUM_EVERY = 1024;
/** Drop the evicted prefix once it is this long and at least half the arrays. */
const COMPACT_AT = 64;

/** A window as JSON: samples from the oldest, the running sum, evictions since the last re-sum. */
export interface SamplesRecord {
  readonly t: readonly number[];
  readonly v: readonly number[];
  readonly sum: number;
  readonly evicted: number;
}

export class Samples {
  #t: number[] = [];
  #v: number[] = [];
  #head = 0;
  #sum = 0;
  #evicted = 0;

  get count(): number {
    return this.#t.length - this.#head;
  }

  /** Inserts in time order; a reading a little out of order (another device of a group) fits in. */
  push(ts: number, value: number): void {
    const t = this.#t;
    const v = this.#v;
    let i = t.length;
    t.push(ts);
    v.push(value);
    while (i > this.#head && (t[i - 1] as number) > ts) {
      t[i] = t[i - 1] as number;
      v[i] = v[i - 1] as number;
      i--;
    }
    t[i] = ts;
    v[i] = value;
    this.#sum += value;
  }

  /** Drops samples older than `minTs`. */
  evictBefore(minTs: number): void {
    const t = this.#t;
    let evicted = false;
    while (this.#head < t.length && (t[this.#head] as number) < minTs) {
      this.#sum -= this.#v[this.#head] as number;
      this.#head++;
      this.#evicted++;
      evicted = true;
    }
    if (!evicted) return;
    if (this.#head >= COMPACT_AT && this.#head * 2 >= t.length) {
      t.splice(0, this.#head);
      this.#v.splice(0, this.#head);
      this.#head = 0;
    }
    if (this.count === 0) {
      this.#sum = 0;
      this.#evicted = 0;
    } else if (this.#evicted >= RESUM_EVERY) {
      let s = 0;
      for (let i = this.#head; i < this.#v.length; i++) s += this.#v[i] as number;
      this.#sum = s;
      this.#evicted = 0;
    }
  }

  /** The window's `fn`; undefined for an empty window (no mean of nothing). */
  reduce(fn: WindowFn): number | undefined {
    const n = this.count;
    if (fn === 'count') return n;
    if (n === 0) return undefined;
    if (fn === 'sum') return this.#sum;
    if (fn === 'mean') return this.#sum / n;
    return fn === 'min' ? this.min() : this.max();
  }

  min(): number {
    let m = Infinity;
    for (let i = this.#head; i < this.#v.length; i++) m = Math.min(m, this.#v[i] as number);
    return m;
  }

  max(): number {
    let m = -Infinity;
    for (let i = this.#head; i < this.#v.length; i++) m = Math.max(m, this.#v[i] as number);
    return m;
  }

  toRecord(): SamplesRecord {
    return {
      t: this.#t.slice(this.#head),
      v: this.#v.slice(this.#head),
      sum: this.#sum,
      evicted: this.#evicted,
    };
  }

  static from(r: SamplesRecord): Samples {
    const s = new Samples();
    s.#t = [...r.t];
    s.#v = [...r.v];
    s.#sum = r.sum;
    s.#evicted = r.evicted;
    return s;
  }
}

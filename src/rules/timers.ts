/**
 * Timers as data (DESIGN §13: absence, `for` and `clearFor` timers are persisted and fire
 * without a reading). A binary min-heap of the keys that have a deadline, so the caller can
 * ask `nextDeadline()` and set one host timer, and a restart can rebuild the heap from the
 * deadlines it restored.
 *
 * Moving a deadline later — an absence deadline on every reading — does not touch the heap:
 * the entry keeps its earlier place and is re-queued when it surfaces. The reading path thus
 * pays a comparison, not a sift, and allocates nothing. Moving one earlier sifts it up.
 */

/** What the heap orders: a deadline and a total order for ties. */
export interface Timed {
  /** The deadline that counts, evaluator time (ms); undefined when nothing is armed. */
  due: number | undefined;
  /** The deadline the heap entry was placed with (≤ due); undefined when not in the heap. */
  queued: number | undefined;
  heapIndex: number;
  /** Ties on a deadline fire by rule order then key, the same before and after a restore. */
  readonly rank: number;
  readonly key: string;
}

function before(a: Timed, b: Timed): boolean {
  const qa = a.queued as number;
  const qb = b.queued as number;
  if (qa !== qb) return qa < qb;
  if (a.rank !== b.rank) return a.rank < b.rank;
  return a.key < b.key;
}

export class TimerQueue<T extends Timed> {
  readonly #heap: T[] = [];

  get size(): number {
    return this.#heap.length;
  }

  /** Call after changing `t.due`; cheap when the deadline moved later or was cleared. */
  arm(t: T): void {
    if (t.due === undefined) return; // dropped when it surfaces
    if (t.queued === undefined) {
      t.queued = t.due;
      t.heapIndex = this.#heap.length;
      this.#heap.push(t);
      this.#up(t.heapIndex);
    } else if (t.due < t.queued) {
      t.queued = t.due;
      this.#up(t.heapIndex);
    }
  }

  /** The earliest deadline armed, or undefined. */
  peek(): number | undefined {
    this.#settleTop();
    return this.#heap[0]?.queued;
  }

  /** Removes and returns the next entry whose deadline is ≤ now, in deadline order. */
  popDue(now: number): T | undefined {
    this.#settleTop();
    const top = this.#heap[0];
    if (top === undefined || (top.queued as number) > now) return undefined;
    this.#removeTop();
    return top;
  }

  /** Re-queues stale tops (deadline moved later or cleared) until the top is exact. */
  #settleTop(): void {
    for (
      let top = this.#heap[0];
      top !== undefined && top.due !== top.queued;
      top = this.#heap[0]
    ) {
      this.#removeTop();
      this.arm(top);
    }
  }

  #removeTop(): void {
    const heap = this.#heap;
    const top = heap[0] as T;
    const last = heap.pop() as T;
    top.queued = undefined;
    top.heapIndex = -1;
    if (last !== top) {
      heap[0] = last;
      last.heapIndex = 0;
      this.#down(0);
    }
  }

  #up(i: number): void {
    const heap = this.#heap;
    const t = heap[i] as T;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p] as T;
      if (!before(t, parent)) break;
      heap[i] = parent;
      parent.heapIndex = i;
      i = p;
    }
    heap[i] = t;
    t.heapIndex = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const t = heap[i] as T;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(heap[r] as T, heap[l] as T) ? r : l;
      const child = heap[c] as T;
      if (!before(child, t)) break;
      heap[i] = child;
      child.heapIndex = i;
      i = c;
    }
    heap[i] = t;
    t.heapIndex = i;
  }
}

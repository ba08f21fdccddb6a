import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/ingest/committer.js';
import type { Point, Store } from '../../src/store/types.js';

/** A store that records its write calls; the committer is about batching, not SQL. */
function recordingStore(fail = false) {
  const writes: Point[][] = [];
  const store: Store = {
    kind: 'recording',
    open: async () => {},
    write: async (points) => {
      if (fail) throw new Error('disk full');
      writes.push([...points]);
    },
    aggregate: async () => [],
    close: async () => {},
  };
  return { store, writes };
}

const point = (n: number): Point => ({
  measurement: 'm',
  tags: { device_id: 'd', district: 'x', site_id: 's' },
  fields: { seq: n },
  ts: n,
});

describe('group commit', () => {
  it('writes messages arriving together in one batch, in arrival order', async () => {
    const { store, writes } = recordingStore();
    const c = new GroupCommitter(store, { windowMs: 5, maxPoints: 1000 });
    await Promise.all([c.commit([point(1)]), c.commit([point(2), point(3)]), c.commit([point(4)])]);
    expect(writes).toHaveLength(1);
    expect(writes[0]?.map((p) => p.ts)).toEqual([1, 2, 3, 4]);
  });

  it('resolves a commit only after the store write finished', async () => {
    const { store, writes } = recordingStore();
    const c = new GroupCommitter(store, { windowMs: 0, maxPoints: 1000 });
    await c.commit([point(1)]);
    expect(writes).toHaveLength(1);
  });

  it('starts a new batch once maxPoints is reached', async () => {
    const { store, writes } = recordingStore();
    const c = new GroupCommitter(store, { windowMs: 50, maxPoints: 2 });
    await Promise.all([c.commit([point(1), point(2)]), c.commit([point(3)])]);
    expect(writes.map((w) => w.length)).toEqual([2, 1]);
  });

  it('rejects every waiter of a failed batch so nothing is acknowledged', async () => {
    const { store } = recordingStore(true);
    const c = new GroupCommitter(store, { windowMs: 1, maxPoints: 1000 });
    const results = await Promise.allSettled([c.commit([point(1)]), c.commit([point(2)])]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});

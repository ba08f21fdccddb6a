/**
 * Embedded store: SQLite through better-sqlite3, used when no InfluxDB is configured.
 *
 * The SQLite work runs in worker threads, never on the gateway's event loop: one writer
 * worker owns the read-write connection (tables, migrations, writes; a 5,000-point batch
 * with its WAL fsync takes ~128 ms), and a small pool of reader workers, one read-only
 * connection each, answers aggregates (WAL lets them read beside the writer, and lets two
 * aggregates run on two cores). The checks that need no database (`checkAggregate`: unknown
 * measurement or field, bad parameters, the bucket limit) stay here, so a bad query costs no
 * message.
 *
 * A worker that dies rejects what it owed with a retryable error (the drainer retries, /ready
 * shows the error meanwhile); the next call starts a new one, the writer reopening the tables
 * first.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import type { TaihuError } from '../../errors.js';
import { packPayloads } from '../../points/codec.js';
import { checkAggregate } from '../check-query.js';
import type { AggregateQuery, AggregateSeries, MeasurementInfo, Store } from '../types.js';
import type { Batch, PreparedBatch } from '../../points/batch.js';
import type { Tables } from './engine.js';
import type { Role, WriteRequest } from './protocol.js';
import { failed, mergeMeasurements, refused } from './schema.js';
import { SqliteThread } from './thread.js';

export interface EmbeddedStoreOptions {
  /** SQLite file; its directory is created if missing. `:memory:` for tests. */
  readonly path: string;
  readonly logger?: { warn(obj: object, msg: string): void } | undefined;
  /**
   * Reader workers for aggregates, one read-only connection each; default: the cores, at most
   * 4. 0 runs aggregates on the writer's connection, as a `:memory:` database always does
   * (another connection would see another, empty, database).
   */
  readonly readers?: number | undefined;
  /** Called with every worker thread started (tests end one to prove the store recovers). */
  readonly onWorker?: ((worker: Worker, role: Role) => void) | undefined;
}

const defaults = {
  /** Upper bound of the default reader count; each holds a 64 MiB page cache at most. */
  maxReaders: 4,
} as const;

/**
 * The worker's script. Compiled, it is `worker.js` beside this module in dist/. When this
 * module is the TypeScript source (vitest and vite-node import src/ directly), there is no
 * worker.js beside it and Node 20 cannot start a worker from a .ts file without a loader
 * (vite-node transforms only the thread it runs in, and no tsx-like loader is installed); so
 * the source runs the compiled worker from dist/, which `npm run build` produces from the same
 * files — and tests/global-setup.ts runs tsc before every test run.
 */
function workerScript(): URL {
  const here = import.meta.url;
  const script = here.endsWith('.ts')
    ? new URL('../../../dist/src/store/embedded/worker.js', here)
    : new URL('./worker.js', here);
  if (!existsSync(fileURLToPath(script))) {
    throw refused(`worker script ${fileURLToPath(script)} is missing (run npm run build)`);
  }
  return script;
}

/** A batch as the writer worker takes it. */
class EmbeddedBatch implements PreparedBatch {
  constructor(
    readonly count: number,
    readonly request: WriteRequest,
  ) {}
}

export function createEmbeddedStore(opts: EmbeddedStoreOptions): Store {
  return new EmbeddedStore(opts);
}

class EmbeddedStore implements Store {
  readonly kind = 'embedded';
  readonly #opts: EmbeddedStoreOptions;
  readonly #readerCount: number;
  /** The tables of the last successful open(); undefined before it and after close(). */
  #tables: Tables | undefined;
  /** The writer and a promise that it has opened #tables (a new writer reopens them). */
  #writer: { readonly thread: SqliteThread; readonly ready: Promise<void> } | undefined;
  readonly #readers: (SqliteThread | undefined)[] = [];
  #nextReader = 0;
  #script: URL | undefined;

  constructor(opts: EmbeddedStoreOptions) {
    this.#opts = opts;
    const memory = opts.path === ':memory:' || opts.path === '';
    const wanted = opts.readers ?? Math.min(availableParallelism(), defaults.maxReaders);
    this.#readerCount = memory ? 0 : Math.max(0, Math.floor(wanted));
  }

  async open(measurements: readonly MeasurementInfo[]): Promise<void> {
    const tables = mergeMeasurements(measurements);
    let writer = this.#writer;
    if (writer === undefined || !writer.thread.alive) {
      const thread = this.#spawn('writer');
      writer = { thread, ready: Promise.resolve() };
      this.#writer = writer;
    }
    await writer.ready;
    await writer.thread.call({ op: 'open', tables });
    this.#tables = tables;
  }

  prepare(batch: Batch): PreparedBatch {
    // Encoded records cross to the writer as one buffer, decoded there: the loop neither decodes
    // nor clones them. Points already decoded cross by structured clone.
    const request: WriteRequest =
      batch.payloads === undefined
        ? { op: 'write', points: batch.points() }
        : { op: 'writeEncoded', packed: packPayloads(batch.payloads) };
    return new EmbeddedBatch(batch.count, request);
  }

  async write(batch: PreparedBatch): Promise<void> {
    if (!(batch instanceof EmbeddedBatch)) throw refused('write() of a foreign batch');
    if (this.#tables === undefined) throw refused('write before open() or after close()');
    if (batch.count === 0) return;
    const writer = this.#liveWriter();
    await writer.ready;
    await writer.thread.call(batch.request);
  }

  async aggregate(q: AggregateQuery): Promise<AggregateSeries[]> {
    const tables = this.#tables;
    if (tables === undefined) throw refused('aggregate before open() or after close()');
    const kind = checkAggregate(q, tables, refused);
    if (kind === undefined) return [];
    const req = { op: 'aggregate', query: q, kind } as const;
    if (this.#readerCount === 0) {
      const writer = this.#liveWriter();
      await writer.ready;
      return writer.thread.call(req);
    }
    return this.#reader().call(req);
  }

  async close(): Promise<void> {
    this.#tables = undefined;
    const readers = this.#readers.splice(0);
    const writer = this.#writer;
    this.#writer = undefined;
    // readers first: the writer's close checkpoints the WAL, which waits for no reader then
    await Promise.all(readers.map((r) => r?.close()));
    await writer?.thread.close();
  }

  /** The writer, started again (and its tables reopened) if the last one died. */
  #liveWriter(): { readonly thread: SqliteThread; readonly ready: Promise<void> } {
    const current = this.#writer;
    if (current?.thread.alive) return current;
    const tables = this.#tables;
    const thread = this.#spawn('writer');
    const ready =
      tables === undefined
        ? Promise.resolve()
        : thread.call({ op: 'open', tables }).catch((err: unknown) => {
            // a later call must start afresh rather than wait on this failure forever
            void thread.close();
            throw failed('cannot reopen the store after its writer worker exited', err);
          });
    // callers that do not reach their await before this settles must not make it unhandled
    ready.catch(() => undefined);
    const writer = { thread, ready };
    this.#writer = writer;
    return writer;
  }

  /**
   * The least busy reader; ties go round-robin so every reader's page cache warms. The first
   * query starts them all, so none starts (~30 ms, cold cache) in the middle of a burst.
   */
  #reader(): SqliteThread {
    const n = this.#readerCount;
    let best: SqliteThread | undefined;
    for (let k = 0; k < n; k++) {
      const i = (this.#nextReader + k) % n;
      let r = this.#readers[i];
      if (r === undefined || !r.alive) {
        r = this.#spawn('reader');
        this.#readers[i] = r;
      }
      if (best === undefined || r.load < best.load) best = r;
    }
    this.#nextReader = (this.#nextReader + 1) % n;
    // #readerCount > 0 here, so the loop ran at least once
    return best as SqliteThread;
  }

  #spawn(role: Role): SqliteThread {
    this.#script ??= workerScript();
    const thread = new SqliteThread(this.#script, this.#opts.path, role, {
      warn: (obj, msg) => this.#opts.logger?.warn(obj, msg),
      exited: (err: TaihuError) =>
        this.#opts.logger?.warn(
          { err, role },
          'embedded store: worker exited; the next call starts a new one',
        ),
    });
    this.#opts.onWorker?.(thread.worker, role);
    return thread;
  }
}

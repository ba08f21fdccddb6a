/**
 * The gateway's handle on one SQLite worker thread: numbered requests, one promise each.
 * A worker that dies (crash, `terminate()`, out of memory) rejects everything it still owed
 * with a retryable store error, so no caller waits forever and the drainer simply retries.
 */
import { Worker } from 'node:worker_threads';
import type { TaihuError } from '../../errors.js';
import { type Reply, type Request, type Results, type Role, reviveError } from './protocol.js';
import { failed, refused } from './schema.js';

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export interface ThreadHooks {
  /** A logger call made inside the worker. */
  warn(obj: object, msg: string): void;
  /** The worker ended without being asked to; `err` is what its pending calls got. */
  exited(err: TaihuError): void;
}

export class SqliteThread {
  readonly role: Role;
  readonly worker: Worker;
  readonly #pending = new Map<number, Pending>();
  readonly #hooks: ThreadHooks;
  #nextId = 0;
  /** Set once the thread is gone: what every later call rejects with. */
  #dead: TaihuError | undefined;
  #closing = false;
  /** The last uncaught error of the worker, reported as the cause of its exit. */
  #crash: Error | undefined;
  readonly #exit: Promise<void>;

  constructor(script: URL, path: string, role: Role, hooks: ThreadHooks) {
    this.role = role;
    this.#hooks = hooks;
    this.worker = new Worker(script, { workerData: { path, role } });
    // an idle worker must not keep the process alive; #call refs it while a request is out,
    // so the process cannot exit between a write being sent and its commit being reported
    this.worker.unref();
    this.worker.on('message', (m: Reply) => this.#reply(m));
    this.worker.on('error', (err) => {
      this.#crash = err;
    });
    this.#exit = new Promise((resolve) => {
      this.worker.once('exit', (code) => {
        const err = this.#closing
          ? refused(`${role} worker closed`)
          : failed(`${role} worker exited with code ${code}`, this.#crash);
        this.#dead = err;
        const pending = [...this.#pending.values()];
        this.#pending.clear();
        for (const p of pending) p.reject(err);
        if (!this.#closing) hooks.exited(err);
        resolve();
      });
    });
  }

  get alive(): boolean {
    return this.#dead === undefined && !this.#closing;
  }

  /** Requests sent and not yet answered. */
  get load(): number {
    return this.#pending.size;
  }

  call<R extends Request>(req: R): Promise<Results[R['op']]> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      if (this.#pending.size === 1) this.worker.ref();
      try {
        this.worker.postMessage({ ...req, id });
      } catch (err) {
        // DataCloneError: something in the request cannot cross threads (a function, a symbol)
        this.#settle(id);
        reject(refused(`cannot send ${req.op} to the ${this.role} worker: ${String(err)}`));
      }
    });
  }

  /** Lets queued requests finish, closes the connection, and ends the thread. */
  async close(): Promise<void> {
    if (this.#dead === undefined && !this.#closing) {
      const closed = this.call({ op: 'close' });
      this.#closing = true;
      await closed.catch(() => undefined);
    }
    this.#closing = true;
    await this.worker.terminate();
    await this.#exit;
  }

  #reply(m: Reply): void {
    if ('warn' in m) {
      this.#hooks.warn(m.warn, m.msg);
      return;
    }
    const p = this.#settle(m.id);
    if (p === undefined) return;
    if (m.ok) p.resolve(m.value);
    else p.reject(reviveError(m.error));
  }

  #settle(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    if (p === undefined) return undefined;
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.worker.unref();
    return p;
  }
}

/**
 * A brake on guessing API keys: each client address may fail authentication a few times,
 * then waits. A token bucket per address: `burst` failures at once, refilled at
 * `perMinute`; successful requests cost nothing. Keys are 256-bit random values, so this
 * is about noise and load more than about the odds of a guess.
 */
export interface AuthLimitOptions {
  /** Failures allowed in a row before the brake; default 10. */
  readonly burst: number;
  /** Failures forgiven per minute after that; default 10. */
  readonly perMinute: number;
  /** Addresses remembered at most; the oldest are forgotten first. Default 10,000. */
  readonly maxAddresses: number;
}

export const defaultAuthLimit: AuthLimitOptions = {
  burst: 10,
  perMinute: 10,
  maxAddresses: 10_000,
};

interface Bucket {
  tokens: number;
  at: number;
}

export class AuthFailureLimit {
  readonly #opts: AuthLimitOptions;
  /** Insertion order doubles as age order for forgetting. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(opts: AuthLimitOptions = defaultAuthLimit) {
    this.#opts = opts;
  }

  /** Milliseconds the address must wait before it may try again; 0 when it may try now. */
  waitMs(address: string, now = Date.now()): number {
    const b = this.#refill(address, now);
    if (!b || b.tokens >= 1) return 0;
    return Math.ceil(((1 - b.tokens) * 60_000) / this.#opts.perMinute);
  }

  /** Counts one failed authentication. */
  failed(address: string, now = Date.now()): void {
    const b = this.#refill(address, now) ?? { tokens: this.#opts.burst, at: now };
    b.tokens = Math.max(0, b.tokens - 1);
    this.#buckets.delete(address);
    this.#buckets.set(address, b);
    if (this.#buckets.size > this.#opts.maxAddresses) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
  }

  #refill(address: string, now: number): Bucket | undefined {
    const b = this.#buckets.get(address);
    if (!b) return undefined;
    b.tokens = Math.min(
      this.#opts.burst,
      b.tokens + ((now - b.at) * this.#opts.perMinute) / 60_000,
    );
    b.at = now;
    if (b.tokens >= this.#opts.burst) this.#buckets.delete(address);
    return b;
  }
}

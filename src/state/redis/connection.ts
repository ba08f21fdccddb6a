/**
 * Redis connections of the cluster state. A gateway in cluster mode cannot start without its
 * registry, so the first connection is awaited (bounded) at start; after that ioredis
 * reconnects by itself and a command waits a few reconnect attempts before it fails.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { ERR_CLUSTER } from '../../errors.js';

/** How long a start waits for Redis to answer, ms. */
const START_TIMEOUT_MS = 10_000;
/** A failing connection logs at most once per this many ms (ioredis retries every ≤ 2 s). */
const ERROR_LOG_EVERY_MS = 10_000;

/** `redis://host:port/db` with any password left out, for logs and messages. */
export function describeRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return 'an unparsable URL';
  }
}

export const REDIS_OPTIONS: RedisOptions = {
  // A command issued while Redis is away waits this many reconnect attempts (≈ 1 s), then
  // fails: an API call answers 503 instead of hanging, and the per-message path never awaits
  // a state command.
  maxRetriesPerRequest: 3,
  connectTimeout: 5_000,
  // Several Taihu commands per tick go out as one write.
  enableAutoPipelining: true,
};

/** Opens a connection and resolves once it is ready; rejects naming the variable if it never is. */
export async function connectRedis(
  url: string,
  role: string,
  log: Logger,
  options: RedisOptions = {},
): Promise<Redis> {
  const where = describeRedisUrl(url);
  const redis = new Redis(url, { ...REDIS_OPTIONS, connectionName: `taihu-${role}`, ...options });
  let lastError = '';
  let loggedAt = 0;
  redis.on('error', (err: Error) => {
    lastError = err.message;
    const now = Date.now();
    if (now - loggedAt < ERROR_LOG_EVERY_MS) return;
    loggedAt = now;
    log.warn({ err: err.message, redis: where, connection: role }, 'Redis connection failing');
  });
  redis.on('ready', () => {
    if (loggedAt === 0) return;
    loggedAt = 0;
    log.info({ redis: where, connection: role }, 'Redis connection back');
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.disconnect();
      reject(
        ERR_CLUSTER(
          `no answer from ${where} within ${START_TIMEOUT_MS / 1000} s (TAIHU_CLUSTER_REDIS_URL)${lastError ? `: ${lastError}` : ''}`,
        ),
      );
    }, START_TIMEOUT_MS);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return redis;
}

/** Turns a failed Redis command into a retryable TAIHU_ERR_CLUSTER (HTTP 503). */
export function clusterError(err: unknown): Error {
  return ERR_CLUSTER(err instanceof Error ? err.message : String(err));
}

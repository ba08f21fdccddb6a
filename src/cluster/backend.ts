/**
 * What makes N gateways one MQTT broker: Aedes's Redis emitter (`mqemitter-redis`: a publish
 * on any instance reaches subscribers on every instance) and Redis persistence
 * (`aedes-persistence-redis`: subscriptions, retained messages, Wills and the queues of
 * persistent sessions, so a session outlives the instance it was made on).
 *
 * Ingest is untouched by either: it happens in `authorizePublish`, which Aedes runs only on
 * the instance a client published to. What the emitter carries to other instances is
 * delivered to their subscribers and never passes through `authorizePublish` again.
 */
import aedesPersistenceRedis from 'aedes-persistence-redis';
import { Redis } from 'ioredis';
import MQEmitterRedis from 'mqemitter-redis';
import type { Logger } from 'pino';
import { describeRedisUrl, REDIS_OPTIONS } from '../state/redis/connection.js';

/** Seconds a message queued for an offline persistent session is kept (a day), then dropped. */
const QUEUED_MESSAGE_TTL_S = 86_400;
/** Emitter errors log at most once per this many ms (ioredis retries every ≤ 2 s). */
const ERROR_LOG_EVERY_MS = 10_000;

export interface ClusterBackend {
  /** Aedes options: the broker id, the emitter and the persistence. */
  readonly aedes: { readonly id: string; readonly mq: unknown; readonly persistence: unknown };
  /** Closes the persistence's connection; call after the broker closed (which closes the emitter). */
  close(): Promise<void>;
}

export function createClusterBackend(url: string, instanceId: string, log: Logger): ClusterBackend {
  const where = describeRedisUrl(url);
  let loggedAt = 0;
  const warn = (err: Error, part: string) => {
    const now = Date.now();
    if (now - loggedAt < ERROR_LOG_EVERY_MS) return;
    loggedAt = now;
    log.warn({ err: err.message, redis: where, part }, 'MQTT cluster backend: Redis failing');
  };
  // [MQTT-4.7.1-3]: `sport/#` also matches `sport`, as Aedes's own in-memory emitter does.
  const mq = MQEmitterRedis({ connectionString: url, matchEmptyLevels: true });
  // why: `state` is mqemitter-redis's error channel, missing from its types; an EventEmitter
  // 'error' without a listener would throw and end the process.
  (mq as unknown as { state: NodeJS.EventEmitter }).state.on('error', (err: Error) =>
    warn(err, 'emitter'),
  );
  const conn = new Redis(url, { ...REDIS_OPTIONS, connectionName: 'taihu-sessions' });
  conn.on('error', (err: Error) => warn(err, 'sessions'));
  const persistence = aedesPersistenceRedis({
    conn,
    packetTTL: () => QUEUED_MESSAGE_TTL_S,
  });
  return {
    aedes: { id: instanceId, mq, persistence },
    async close() {
      await conn.quit().catch(() => conn.disconnect());
    },
  };
}

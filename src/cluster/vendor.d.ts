/**
 * Types for aedes-persistence-redis, which ships none. Its main export is the Redis
 * persistence behind aedes-persistence's callback layer: `setup` is async (what Aedes 1.x
 * checks) and streams are Node Readables (what Aedes 1.2's handlers pipe); its bare async
 * class (`asyncPersistence.js`) returns async generators, which Aedes 1.2 cannot pipe.
 */
declare module 'aedes-persistence-redis' {
  import type { Redis, RedisOptions } from 'ioredis';

  interface RedisPersistenceOptions extends RedisOptions {
    /** An existing connection to use instead of opening one. */
    conn?: Redis;
    /** Most queued messages delivered to a persistent session on CONNECT (default 1000). */
    maxSessionDelivery?: number;
    /** Seconds a queued (offline) message is kept; 0 = forever. */
    packetTTL?: (packet: object) => number;
  }

  interface RedisPersistence {
    setup(broker: unknown): Promise<void>;
  }

  function aedesPersistenceRedis(options?: RedisPersistenceOptions): RedisPersistence;
  export = aedesPersistenceRedis;
}

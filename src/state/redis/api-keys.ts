/**
 * API keys of a cluster: stored hashed in Redis, their roles cached in memory on every
 * instance (every HTTP request asks), reloaded whole when any instance announces a change.
 * There are a handful of keys, so a reload is one small HGETALL.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { hashKey, type ApiKeyRecord, type Role } from '../../registry/api-keys.js';
import type { ApiKeyStore } from '../types.js';
import { clusterError } from './connection.js';
import { KEY, Script } from './keys.js';

interface StoredKey extends ApiKeyRecord {
  readonly hash: string;
}

/** ARGV: origin, id, JSON, only-if-none ('1' or '0'). */
const CREATE = new Script(
  `
if ARGV[4] == '1' and redis.call('HLEN', '${KEY.apiKeys}') > 0 then return 0 end
redis.call('HSET', '${KEY.apiKeys}', ARGV[2], ARGV[3])
announce('keys', false)
return 1
`,
  true,
);

/** ARGV: origin, id, revokedAt. */
const REVOKE = new Script(
  `
local key = redis.call('HGET', '${KEY.apiKeys}', ARGV[2])
if not key then return 0 end
redis.call('HDEL', '${KEY.apiKeys}', ARGV[2])
redis.call('HSET', '${KEY.apiKeysRevoked}', ARGV[2], '{"revokedAt":"' .. ARGV[3] .. '","key":' .. key .. '}')
announce('keys', false)
return 1
`,
  true,
);

export class RedisApiKeys implements ApiKeyStore {
  readonly #redis: Redis;
  readonly #origin: string;
  /** hash → role; the env admin key is kept here too, never written to Redis. */
  #byHash = new Map<string, Role>();
  readonly #envAdminHash: string | undefined;
  #generation = 0;

  constructor(redis: Redis, instanceId: string, envAdminKey: string | undefined) {
    this.#redis = redis;
    this.#origin = instanceId;
    this.#envAdminHash = envAdminKey ? hashKey(envAdminKey) : undefined;
  }

  get generation(): number {
    return this.#generation;
  }

  roleOf(key: string): Role | undefined {
    return this.#byHash.get(hashKey(key));
  }

  /** Reads every key again (start, an announcement, a resync). */
  async load(): Promise<void> {
    const stored = await this.#all();
    const byHash = new Map<string, Role>();
    for (const k of stored) byHash.set(k.hash, k.role);
    if (this.#envAdminHash) byHash.set(this.#envAdminHash, 'admin');
    this.#byHash = byHash;
    this.#generation++;
  }

  create(role: Role, name?: string): Promise<{ id: string; key: string }> {
    return this.#create(role, name, false) as Promise<{ id: string; key: string }>;
  }

  createFirst(role: Role, name: string): Promise<{ id: string; key: string } | undefined> {
    return this.#create(role, name, true);
  }

  async list(): Promise<ApiKeyRecord[]> {
    const stored = await this.#all().catch(rethrow);
    return stored
      .map(({ id, role, name, createdAt }) => ({ id, role, name, createdAt }))
      .sort((a, b) =>
        a.createdAt === b.createdAt ? cmp(a.id, b.id) : cmp(a.createdAt, b.createdAt),
      );
  }

  async revoke(id: string): Promise<boolean> {
    const done = await REVOKE.run(this.#redis, [this.#origin, id, new Date().toISOString()]).catch(
      rethrow,
    );
    if (done !== 1) return false;
    await this.load().catch(rethrow);
    return true;
  }

  async #create(
    role: Role,
    name: string | undefined,
    onlyIfNone: boolean,
  ): Promise<{ id: string; key: string } | undefined> {
    const id = randomBytes(6).toString('hex');
    const key = `taihu_${randomBytes(32).toString('base64url')}`;
    const record: StoredKey = {
      id,
      hash: hashKey(key),
      role,
      name: name ?? null,
      createdAt: new Date().toISOString(),
    };
    const done = await CREATE.run(this.#redis, [
      this.#origin,
      id,
      JSON.stringify(record),
      onlyIfNone ? '1' : '0',
    ]).catch(rethrow);
    if (done !== 1) return undefined;
    this.#byHash.set(record.hash, role);
    this.#generation++;
    return { id, key };
  }

  async #all(): Promise<StoredKey[]> {
    const all = await this.#redis.hgetall(KEY.apiKeys);
    return Object.values(all).map((j) => JSON.parse(j) as StoredKey);
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function rethrow(err: unknown): never {
  throw clusterError(err);
}

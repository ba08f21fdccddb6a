/**
 * Where the cluster's shared state lives in Redis, and the Lua scripts that change it. Every
 * change to the registry or the API keys runs as one script: the write, the version bump and
 * the announcement on the changes channel happen together or not at all, so an instance that
 * hears a version has the data of that version to read.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** Key names; one flat `taihu:` namespace on a standalone Redis (or a Sentinel-managed one). */
export const KEY = {
  /** id → JSON of the record's fixed fields (id, type, district, siteId, lat, lon, createdAt). */
  devices: 'taihu:devices',
  /** id → `active` | `disabled`. */
  deviceState: 'taihu:device-state',
  /** id → scrypt hash of the individual secret; absent: enrollment-derived secret. */
  deviceSecret: 'taihu:device-secret',
  /** id → ISO time of deletion; seeds never bring these back. */
  deletedDevices: 'taihu:deleted-devices',
  /** id → JSON of the seed site / district. */
  sites: 'taihu:sites',
  districts: 'taihu:districts',
  /** id → JSON { id, hash, role, name, createdAt } of each unrevoked key. */
  apiKeys: 'taihu:api-keys',
  /** id → JSON { revokedAt, key } of each revoked key, kept for the record. */
  apiKeysRevoked: 'taihu:api-keys-revoked',
  /** Bumped by every registry or key change; an instance behind it reloads everything. */
  version: 'taihu:version',
  /** id → `owner|lastActivity|lastSeen`: the instance holding the connection ('' none), epoch ms. */
  liveActivity: 'taihu:live:activity',
  /** id → `ts|{"ts":…,"seq":…,"data":{…}}`: the device's newest reading. */
  liveLast: 'taihu:live:last',
  /** Newest-first list of rejection records (JSON), capped. */
  rejections: 'taihu:rejections',
  rejectionSeq: 'taihu:rejections:seq',
  rejectionsOf: (deviceId: string) => `taihu:rejections:device:${deviceId}`,
  /** Instances with an event stream open, scored by when that claim expires (epoch ms). */
  streamListeners: 'taihu:stream-listeners',
  /** Present (with a TTL) while the instance is alive. */
  instance: (id: string) => `taihu:instance:${id}`,
} as const;

/** Pub/sub channel of registry and key changes (JSON `ChangeMessage`). */
export const CHANGES_CHANNEL = 'taihu:changes';

export interface ChangeMessage {
  /** Instance that made the change. */
  readonly origin: string;
  /** `taihu:version` after the change. */
  readonly v: number;
  /** device: one device changed; keys: API keys; reload: much changed (seeds), read it all. */
  readonly kind: 'device' | 'keys' | 'reload';
  readonly id?: string;
}

/** Shared by every script that changes something: bump the version, say what changed. */
const ANNOUNCE = `
local function announce(kind, id)
  local v = redis.call('INCR', '${KEY.version}')
  local msg = '{"origin":' .. cjson.encode(ARGV[1]) .. ',"v":' .. v .. ',"kind":"' .. kind .. '"'
  if id then msg = msg .. ',"id":' .. cjson.encode(id) end
  redis.call('PUBLISH', '${CHANGES_CHANNEL}', msg .. '}')
  return v
end
`;

/**
 * A Lua script run by its SHA-1 (EVALSHA), loaded on first use or after a Redis restart.
 * Scripts name their keys literally: every key is one of `KEY`'s on one standalone server.
 */
export class Script {
  readonly #lua: string;
  readonly #sha: string;

  constructor(body: string, announces = false) {
    this.#lua = announces ? ANNOUNCE + body : body;
    this.#sha = createHash('sha1').update(this.#lua).digest('hex');
  }

  async run(redis: Redis, args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.#sha, 0, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.#lua, 0, ...args);
    }
  }
}

/**
 * The device registry of a cluster: Redis holds it, every instance keeps a full copy in
 * memory (a Registry on an in-memory SQLite database) so that authenticate, the topic ACL and
 * the tags of each point never wait for the network. Writes go to Redis first (one script:
 * write, version bump, announcement), then into this instance's copy; the other instances
 * hear the announcement and re-read the device.
 */
import Database from 'better-sqlite3';
import { ERR_CLUSTER, ERR_CONFLICT } from '../../errors.js';
import { Registry, type DeviceRecord, type DeviceState } from '../../registry/registry.js';
import type { District, Seeds, Site } from '../../registry/seeds.js';
import type { DeviceChange, Provisioning } from '../types.js';
import type { Redis } from 'ioredis';
import { clusterError } from './connection.js';
import { KEY, Script } from './keys.js';

/** Devices per seeding script call: bounds one call's arguments and how long it holds Redis. */
const SEED_CHUNK = 2_000;

/** The fields of a record that never change after creation, as stored in `taihu:devices`. */
type FixedFields = Pick<
  DeviceRecord,
  'id' | 'type' | 'district' | 'siteId' | 'lat' | 'lon' | 'createdAt'
>;

const CREATE = new Script(
  `
local id = ARGV[2]
if redis.call('HEXISTS', '${KEY.devices}', id) == 1 then return 0 end
redis.call('HDEL', '${KEY.deletedDevices}', id)
redis.call('HSET', '${KEY.devices}', id, ARGV[3])
redis.call('HSET', '${KEY.deviceState}', id, 'active')
redis.call('HSET', '${KEY.deviceSecret}', id, ARGV[4])
announce('device', id)
return 1
`,
  true,
);

/** ARGV: origin, id, hash name, value. Only an existing device is changed. */
const SET_FIELD = new Script(
  `
local id = ARGV[2]
if redis.call('HEXISTS', '${KEY.devices}', id) == 0 then return 0 end
redis.call('HSET', ARGV[3], id, ARGV[4])
announce('device', id)
return 1
`,
  true,
);

const REMOVE = new Script(
  `
local id = ARGV[2]
if redis.call('HEXISTS', '${KEY.devices}', id) == 0 then return 0 end
redis.call('HDEL', '${KEY.devices}', id)
redis.call('HDEL', '${KEY.deviceState}', id)
redis.call('HDEL', '${KEY.deviceSecret}', id)
redis.call('HSET', '${KEY.deletedDevices}', id, ARGV[3])
announce('device', id)
return 1
`,
  true,
);

/**
 * ARGV: _, district count, site count, then (id, json) pairs of districts, sites and devices.
 * Adds what is missing, never overwrites, never revives a deleted device. Returns
 * { geography entries added, ids of devices added }.
 */
const SEED = new Script(`
local nd, ns = tonumber(ARGV[2]), tonumber(ARGV[3])
local i, geo, added = 4, 0, {}
for _ = 1, nd do geo = geo + redis.call('HSETNX', '${KEY.districts}', ARGV[i], ARGV[i + 1]); i = i + 2 end
for _ = 1, ns do geo = geo + redis.call('HSETNX', '${KEY.sites}', ARGV[i], ARGV[i + 1]); i = i + 2 end
while i < #ARGV do
  local id = ARGV[i]
  if redis.call('HEXISTS', '${KEY.deletedDevices}', id) == 0
    and redis.call('HSETNX', '${KEY.devices}', id, ARGV[i + 1]) == 1 then
    redis.call('HSET', '${KEY.deviceState}', id, 'active')
    redis.call('HDEL', '${KEY.deviceSecret}', id)
    added[#added + 1] = id
  end
  i = i + 2
end
return { geo, added }
`);

/** Tells every instance to read everything again (after seeding added entries). */
const ANNOUNCE_RELOAD = new Script(`announce('reload', false) return 1`, true);

export interface RedisRegistryOptions {
  readonly redis: Redis;
  readonly instanceId: string;
}

export class RedisRegistry {
  /** This instance's copy; the only Registry the rest of the gateway sees. */
  readonly view: Registry;
  readonly provisioning: Provisioning;
  readonly #redis: Redis;
  readonly #origin: string;

  constructor(options: RedisRegistryOptions) {
    this.#redis = options.redis;
    this.#origin = options.instanceId;
    this.view = new Registry(new Database(':memory:'));
    this.provisioning = {
      applySeeds: (seeds) => this.#seed(seeds).catch(rethrow),
      create: async (d, secretHash) => {
        const site = this.view.site(d.siteId);
        if (!site) throw new Error(`unknown site ${d.siteId}`);
        const fixed: FixedFields = {
          id: d.id,
          type: d.type,
          district: site.district,
          siteId: site.id,
          lat: d.lat,
          lon: d.lon,
          createdAt: new Date().toISOString(),
        };
        const created = await CREATE.run(this.#redis, [
          this.#origin,
          d.id,
          JSON.stringify(fixed),
          secretHash,
        ]).catch(rethrow);
        if (created !== 1) throw ERR_CONFLICT('device', d.id);
        return this.view.mirror(
          { ...fixed, state: 'active', credential: 'individual' },
          secretHash,
        );
      },
      setState: async (id, state: DeviceState) => {
        const done = await SET_FIELD.run(this.#redis, [
          this.#origin,
          id,
          KEY.deviceState,
          state,
        ]).catch(rethrow);
        return done === 1 ? this.view.setState(id, state) : undefined;
      },
      setSecretHash: async (id, hash) => {
        const done = await SET_FIELD.run(this.#redis, [
          this.#origin,
          id,
          KEY.deviceSecret,
          hash,
        ]).catch(rethrow);
        return done === 1 ? this.view.setSecretHash(id, hash) : undefined;
      },
      remove: async (id) => {
        const done = await REMOVE.run(this.#redis, [
          this.#origin,
          id,
          new Date().toISOString(),
        ]).catch(rethrow);
        if (done !== 1) return false;
        this.view.remove(id);
        return true;
      },
    };
  }

  /**
   * Reads the whole registry and brings the copy in line with it. Returns the version it read
   * and what changed for devices already known (a missed announcement), so their
   * connections can be checked.
   */
  async load(): Promise<{ version: number; changes: DeviceChange[] }> {
    const replies = await this.#redis
      .multi()
      .get(KEY.version)
      .hgetall(KEY.devices)
      .hgetall(KEY.deviceState)
      .hgetall(KEY.deviceSecret)
      .hgetall(KEY.districts)
      .hgetall(KEY.sites)
      .exec();
    const [version, devices, states, secrets, districts, sites] = results(replies, 6) as [
      string | null,
      Record<string, string>,
      Record<string, string>,
      Record<string, string>,
      Record<string, string>,
      Record<string, string>,
    ];
    // Every change bumps the version, so a Redis without one never held this cluster's state:
    // it was restarted without persistence or flushed. Wiping the copy would refuse every
    // device; keep serving from it and say so until Redis is restored.
    if (version === null && this.view.size > 0) {
      throw ERR_CLUSTER(
        `Redis holds no Taihu state (restarted without persistence, or flushed?); serving the ${this.view.size} devices this instance knows until it is restored from a backup`,
      );
    }
    // Geography only ever grows (seeds add, nothing removes), like the single-node tables.
    this.view.applySeeds({
      districts: Object.values(districts).map((j) => JSON.parse(j) as District),
      sites: Object.values(sites).map((j) => JSON.parse(j) as Site),
      devices: [],
    });
    const changes: DeviceChange[] = [];
    const seen = new Set<string>();
    for (const [id, json] of Object.entries(devices)) {
      seen.add(id);
      const change = this.#apply(id, json, states[id], secrets[id]);
      if (change) changes.push(change);
    }
    for (const d of this.view.list({ limit: Infinity, offset: 0 }).items) {
      if (seen.has(d.id)) continue;
      const change = this.#apply(d.id, undefined, undefined, undefined);
      if (change) changes.push(change);
    }
    return { version: Number(version ?? 0), changes };
  }

  /** Re-reads one device after another instance announced a change to it. */
  async refresh(id: string): Promise<DeviceChange | undefined> {
    const replies = await this.#redis
      .multi()
      .hget(KEY.devices, id)
      .hget(KEY.deviceState, id)
      .hget(KEY.deviceSecret, id)
      .exec();
    const [json, state, secret] = results(replies, 3) as (string | null)[];
    return this.#apply(id, json ?? undefined, state ?? undefined, secret ?? undefined);
  }

  /** Puts one device as Redis has it into the copy; the change, if anything changed. */
  #apply(
    id: string,
    json: string | undefined,
    state: string | undefined,
    secret: string | undefined,
  ): DeviceChange | undefined {
    const before = this.view.get(id);
    const secretBefore = this.view.secretHashOf(id);
    if (json === undefined) {
      if (!before) return undefined;
      this.view.remove(id);
      return { id, before, after: undefined, secretChanged: secretBefore !== undefined };
    }
    const fixed = JSON.parse(json) as FixedFields;
    const next: DeviceRecord = {
      ...fixed,
      state: state === 'disabled' ? 'disabled' : 'active',
      credential: secret ? 'individual' : 'enrollment',
    };
    if (before && sameRecord(before, next) && secretBefore === secret) return undefined;
    const after = this.view.mirror(next, secret);
    return { id, before, after, secretChanged: secretBefore !== secret };
  }

  async #seed(seeds: Seeds): Promise<number> {
    const now = new Date().toISOString();
    const geography: string[] = [];
    for (const d of seeds.districts) geography.push(d.id, JSON.stringify(d));
    for (const s of seeds.sites) geography.push(s.id, JSON.stringify(s));
    let geo = 0;
    const added: string[] = [];
    for (let i = 0; i === 0 || i < seeds.devices.length; i += SEED_CHUNK) {
      const args: (string | number)[] = [this.#origin];
      if (i === 0) args.push(seeds.districts.length, seeds.sites.length, ...geography);
      else args.push(0, 0);
      for (const d of seeds.devices.slice(i, i + SEED_CHUNK)) {
        const fixed: FixedFields = {
          id: d.id,
          type: d.type,
          district: d.district,
          siteId: d.siteId,
          lat: d.lat,
          lon: d.lon,
          createdAt: now,
        };
        args.push(d.id, JSON.stringify(fixed));
      }
      const [g, ids] = (await SEED.run(this.#redis, args)) as [number, string[]];
      geo += g;
      added.push(...ids);
    }
    if (geo > 0 || added.length > 0) {
      await ANNOUNCE_RELOAD.run(this.#redis, [this.#origin]);
      // The announcement is for the others; this copy reads what it added now.
      await this.load();
    }
    return added.length;
  }
}

function sameRecord(a: DeviceRecord, b: DeviceRecord): boolean {
  return (
    a.type === b.type &&
    a.district === b.district &&
    a.siteId === b.siteId &&
    a.lat === b.lat &&
    a.lon === b.lon &&
    a.state === b.state &&
    a.credential === b.credential &&
    a.createdAt === b.createdAt
  );
}

/** The replies of a MULTI, or the first error in it. */
export function results(replies: [Error | null, unknown][] | null, count: number): unknown[] {
  if (!replies || replies.length !== count) throw new Error('Redis transaction was aborted');
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

function rethrow(err: unknown): never {
  throw err instanceof Error && 'statusCode' in err ? err : clusterError(err);
}

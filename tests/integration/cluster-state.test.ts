/**
 * The Redis implementation of the shared state (src/state/redis), in process, against a real
 * redis-server: two instances over one Redis see each other's changes through the
 * announcements, and the scripts keep the rules the single-node SQLite code keeps.
 */
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { loadCatalog } from '../../src/ingest/catalog.js';
import { LiveEvents, type LiveEvent } from '../../src/state/events.js';
import { loadSeeds } from '../../src/registry/seeds.js';
import { createRedisState } from '../../src/state/redis/index.js';
import { CHANGES_CHANNEL, KEY } from '../../src/state/redis/keys.js';
import type { ClusterLive } from '../../src/state/redis/live.js';
import type { DeviceChange, SharedState } from '../../src/state/types.js';
import { eventually, sleep } from '../helpers/clients.js';
import { startRedis } from '../helpers/cluster.js';
import { ROOT } from '../helpers/gateway.js';
import type { TestServer } from '../helpers/servers.js';

const log = pino({ level: 'silent' });
const catalog = loadCatalog(`${ROOT}/schemas`);
const seeds = loadSeeds(`${ROOT}/seeds`, catalog);
const [first, second] = seeds.devices as [(typeof seeds.devices)[0], (typeof seeds.devices)[0]];

let redis: TestServer;
let admin: Redis;
const open: SharedState[] = [];

async function instance(
  id: string,
  adminKey?: string,
  events = new LiveEvents(),
): Promise<SharedState> {
  const s = await createRedisState({ url: redis.url, instanceId: id, adminKey, events, log });
  open.push(s);
  return s;
}

function changes(s: SharedState): DeviceChange[] {
  const got: DeviceChange[] = [];
  s.onRemoteDeviceChange((c) => got.push(c));
  return got;
}

const rejection = (deviceId: string, code: string, n: number) => ({
  receivedAt: new Date(1_800_000_000_000 + n).toISOString(),
  deviceId,
  type: 'air-quality',
  topic: `sensors/air-quality/${deviceId}/telemetry`,
  code,
  reasons: [{ pointer: '/data', message: `reason ${n}` }],
  payload: Buffer.from(`payload ${n}`),
});

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  await admin.flushall();
});

afterAll(async () => {
  admin.disconnect();
  await redis.stop();
});

describe('cluster state in Redis', () => {
  it('seeds once, and every instance sees the seeded registry', async () => {
    const a = await instance('a');
    expect(await a.provisioning.applySeeds(seeds)).toBe(seeds.devices.length);
    const b = await instance('b');
    expect(await b.provisioning.applySeeds(seeds)).toBe(0);
    expect(b.registry.size).toBe(seeds.devices.length);
    expect(b.registry.get(first.id)).toMatchObject({ ...first, state: 'active' });
    expect(b.registry.districts().map((d) => d.id)).toEqual(
      a.registry.districts().map((d) => d.id),
    );
    expect(b.registry.site(first.siteId)?.district).toBe(first.district);
  });

  it('tells other instances of a disable, which read that device again; never its own', async () => {
    const a = await instance('a');
    await a.provisioning.applySeeds(seeds);
    const b = await instance('b');
    const [heardA, heardB] = [changes(a), changes(b)];
    const d = await a.provisioning.setState(first.id, 'disabled');
    expect(d?.state).toBe('disabled');
    expect(a.registry.get(first.id)?.state).toBe('disabled');
    await eventually(async () => b.registry.get(first.id)?.state === 'disabled');
    expect(heardB).toMatchObject([
      {
        id: first.id,
        before: { state: 'active' },
        after: { state: 'disabled' },
        secretChanged: false,
      },
    ]);
    expect(heardA).toEqual([]);
    expect(await b.provisioning.setState('no-such-device', 'disabled')).toBeUndefined();
  });

  it('carries creation, rotation and deletion; a deleted seed device stays deleted', async () => {
    const a = await instance('a');
    await a.provisioning.applySeeds(seeds);
    const b = await instance('b');
    const heard = changes(b);
    const created = await a.provisioning.create(
      { id: 'aq-new-0001', type: 'air-quality', siteId: first.siteId, lat: 31.5, lon: 120.3 },
      'scrypt$hash-1',
    );
    expect(created).toMatchObject({ credential: 'individual', district: first.district });
    await eventually(async () => b.registry.secretHashOf('aq-new-0001') === 'scrypt$hash-1');
    await expect(
      b.provisioning.create(
        { id: 'aq-new-0001', type: 'air-quality', siteId: first.siteId, lat: 0, lon: 0 },
        'x',
      ),
    ).rejects.toMatchObject({ code: 'TAIHU_ERR_CONFLICT' });

    await a.provisioning.setSecretHash(first.id, 'scrypt$hash-2');
    await eventually(async () => b.registry.get(first.id)?.credential === 'individual');
    expect(heard.at(-1)).toMatchObject({ id: first.id, secretChanged: true });

    expect(await a.provisioning.remove(second.id)).toBe(true);
    await eventually(async () => b.registry.get(second.id) === undefined);
    expect(heard.at(-1)).toMatchObject({ id: second.id, after: undefined });
    expect(await b.provisioning.applySeeds(seeds)).toBe(0);
    expect(a.registry.get(second.id)).toBeUndefined();
    expect(await b.provisioning.remove(second.id)).toBe(false);
  });

  it('reads everything again when an announcement was missed', async () => {
    const a = await instance('a');
    await a.provisioning.applySeeds(seeds);
    // A change written without its announcement, then a message that skips versions.
    await admin.hset(KEY.deviceState, first.id, 'disabled');
    const v = await admin.incr(KEY.version);
    const heard = changes(a);
    await admin.publish(CHANGES_CHANNEL, JSON.stringify({ origin: 'x', v: v + 3, kind: 'keys' }));
    await eventually(async () => a.registry.get(first.id)?.state === 'disabled');
    expect(heard).toMatchObject([{ id: first.id, after: { state: 'disabled' } }]);
  });

  it('creates the bootstrap key once however many instances race, and revokes it everywhere', async () => {
    const [a, b] = await Promise.all([instance('a'), instance('b', 'env-admin-key-0123456789')]);
    const made = await Promise.all([
      a.apiKeys.createFirst('admin', 'bootstrap'),
      b.apiKeys.createFirst('admin', 'bootstrap'),
    ]);
    const winner = made.filter((m) => m !== undefined);
    expect(winner).toHaveLength(1);
    const key = winner[0]!;
    await eventually(
      async () => a.apiKeys.roleOf(key.key) === 'admin' && b.apiKeys.roleOf(key.key) === 'admin',
    );
    // The environment's key is known only where it is set, and never stored.
    expect(b.apiKeys.roleOf('env-admin-key-0123456789')).toBe('admin');
    expect(a.apiKeys.roleOf('env-admin-key-0123456789')).toBeUndefined();
    expect((await a.apiKeys.list()).map((k) => k.id)).toEqual([key.id]);

    const generation = a.apiKeys.generation;
    expect(await b.apiKeys.revoke(key.id)).toBe(true);
    await eventually(async () => a.apiKeys.roleOf(key.key) === undefined);
    expect(a.apiKeys.generation).toBeGreaterThan(generation);
    expect(await a.apiKeys.revoke(key.id)).toBe(false);
  });

  it('keeps one newest-first rejection log for the cluster, by device, type and code', async () => {
    const [a, b] = await Promise.all([instance('a'), instance('b')]);
    a.rejections.record(rejection('aq-1', 'SCHEMA_INVALID', 1));
    await a.rejections.flush();
    b.rejections.record(rejection('aq-2', 'PAYLOAD_NOT_JSON', 2));
    b.rejections.record(rejection('aq-1', 'TIMESTAMP_TOO_OLD', 3));
    await b.rejections.flush();

    const all = await a.rejections.query({ limit: 10 });
    expect(all.map((r) => r.reasons[0]?.message)).toEqual(['reason 3', 'reason 2', 'reason 1']);
    expect(all.map((r) => r.id)).toEqual([3, 2, 1]);
    expect(all[0]).toMatchObject({
      payload: 'payload 3',
      payloadBytes: 9,
      topic: 'sensors/air-quality/aq-1/telemetry',
    });
    expect((await b.rejections.query({ device: 'aq-1', limit: 10 })).map((r) => r.id)).toEqual([
      3, 1,
    ]);
    expect(
      (await b.rejections.query({ device: 'aq-1', code: 'SCHEMA_INVALID', limit: 10 })).map(
        (r) => r.id,
      ),
    ).toEqual([1]);
    expect(
      (await b.rejections.query({ code: 'PAYLOAD_NOT_JSON', limit: 10 })).map((r) => r.id),
    ).toEqual([2]);
    expect(await b.rejections.query({ type: 'noise', limit: 10 })).toEqual([]);
    expect((await b.rejections.query({ limit: 1 })).map((r) => r.id)).toEqual([3]);
  });

  it('relays live events between instances only while a stream is open somewhere', async () => {
    const [ea, eb] = [new LiveEvents(), new LiveEvents()];
    await instance('a', undefined, ea);
    await instance('b', undefined, eb);
    // Nobody listens anywhere: no instance taps its bus (ingest keeps its free path).
    await sleep(2500);
    expect(ea.size).toBe(0);
    const got: LiveEvent[] = [];
    const off = eb.subscribe((e) => got.push(e));
    await eventually(async () => ea.size === 1, 6000);
    ea.status({ id: 'dev-1', type: 'air-quality', district: 'binhu' }, 'online', 1);
    await eventually(async () => got.length === 1);
    expect(got[0]).toMatchObject({ kind: 'status', deviceId: 'dev-1', status: 'online', at: 1 });
    off();
    await eventually(async () => ea.size === 0, 6000);
  });

  it('answers live state for the cluster: a moved device keeps its new instance, a dead instance holds nothing', async () => {
    const [a, b] = await Promise.all([instance('a'), instance('b')]);
    const [la, lb] = [a.live as ClusterLive, b.live as ClusterLive];
    const t = Date.now();
    la.connected('dev-1', t);
    la.accepted('dev-1', [{ ts: t - 10, seq: 7, data: { pm25_ugm3: 3 } }], t);
    await la.flush();
    let view = await lb.read();
    expect(view.view('dev-1', 60_000, t + 1)).toMatchObject({ status: 'online', last: { seq: 7 } });
    expect(view.status('dev-2', 60_000, t)).toBe('never');

    // Reconnected through b, then a notices its old connection closed: still online, on b.
    lb.connected('dev-1', t + 100);
    await lb.flush();
    la.disconnected('dev-1', t + 200);
    la.accepted('dev-1', [{ ts: t - 20, seq: 6, data: { pm25_ugm3: 2 } }], t + 150);
    await la.flush();
    view = await la.read({ ids: ['dev-1'] });
    expect(view.view('dev-1', 60_000, t + 300)).toMatchObject({
      status: 'online',
      last: { seq: 7 },
    });
    expect(view.status('dev-1', 60_000, t + 200 + 3 * 60_000 + 1)).toBe('stale');

    // b goes away without a word (its heartbeat key lapses; close() removes it at once).
    await b.close();
    open.splice(open.indexOf(b), 1);
    view = await la.read();
    expect(view.status('dev-1', 60_000, t + 300)).toBe('offline');
    expect(view.latest().map((l) => [l.id, l.last.seq])).toEqual([['dev-1', 7]]);
  });
});

describe('cluster configuration', () => {
  const config = (env: Record<string, string>) => () =>
    loadConfig({
      env: { TAIHU_ENROLLMENT_KEY: 'an-enrollment-key-0123', ...env },
      envFile: '/no/such/.env',
    });

  it('refuses cluster mode on the embedded store, naming the variables', () => {
    expect(config({ TAIHU_CLUSTER_REDIS_URL: 'redis://127.0.0.1:6379' })).toThrow(
      /TAIHU_CLUSTER_REDIS_URL is set \(cluster mode\) but the telemetry store is the embedded one.*TAIHU_INFLUX_URL/,
    );
    expect(
      config({
        TAIHU_CLUSTER_REDIS_URL: 'redis://127.0.0.1:6379',
        TAIHU_INFLUX_URL: 'http://127.0.0.1:8086',
        TAIHU_STORE: 'embedded',
      }),
    ).toThrow(/TAIHU_STORE/);
  });

  it('refuses cluster mode without a shared enrollment key, and a URL that is not redis://', () => {
    expect(() =>
      loadConfig({
        env: { TAIHU_CLUSTER_REDIS_URL: 'redis://r:6379', TAIHU_INFLUX_URL: 'http://i:8086' },
        envFile: '/no/such/.env',
      }),
    ).toThrow(/TAIHU_ENROLLMENT_KEY/);
    expect(
      config({ TAIHU_CLUSTER_REDIS_URL: 'http://r:6379', TAIHU_INFLUX_URL: 'http://i:8086' }),
    ).toThrow(/TAIHU_CLUSTER_REDIS_URL="\*\*\*" must match pattern/);
  });

  it('accepts cluster mode with InfluxDB', () => {
    const c = config({
      TAIHU_CLUSTER_REDIS_URL: 'redis://:secret@r:6379/2',
      TAIHU_INFLUX_URL: 'http://i:8086',
    })();
    expect(c).toMatchObject({ store: 'influxdb', clusterRedisUrl: 'redis://:secret@r:6379/2' });
  });
});

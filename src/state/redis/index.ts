/**
 * The Redis implementation of the shared state (`TAIHU_CLUSTER_REDIS_URL`).
 *
 * Freshness of the in-memory copies (registry, API key roles): every change runs as a script
 * that bumps `taihu:version` and publishes `{ origin, v, kind, id }` on `taihu:changes`.
 * Each instance subscribes; on a device change it re-reads that device (three HGETs), on a
 * key change it re-reads the keys, and it acts on what changed (a disabled, deleted or
 * rotated device is disconnected). Pub/sub is fire-and-forget, so an instance also reads
 * everything again when its subscription reconnects, when a message skips a version, and when
 * the periodic version check finds it behind.
 *
 * The same subscription carries the live events the instances relay to each other's event
 * streams while any stream is open (events.ts).
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { LiveEvents } from '../events.js';
import type { DeviceChange, SharedState } from '../types.js';
import { RedisApiKeys } from './api-keys.js';
import { connectRedis, describeRedisUrl } from './connection.js';
import { EVENTS_CHANNEL, EventRelay } from './events.js';
import { CHANGES_CHANNEL, KEY, type ChangeMessage } from './keys.js';
import { ClusterLive } from './live.js';
import { RedisRegistry } from './registry.js';
import { RedisRejections } from './rejections.js';

/** How often an instance renews its heartbeat key, ms; the key lives 3× as long. */
const HEARTBEAT_EVERY_MS = 5_000;
/** How often an instance compares its version with Redis's (the safety net under pub/sub), ms. */
const VERSION_CHECK_EVERY_MS = 10_000;

export interface RedisStateOptions {
  readonly url: string;
  /** This instance's id (also the Aedes broker id): owner of its connections in live state. */
  readonly instanceId: string;
  /** `TAIHU_ADMIN_KEY`: accepted as an admin key, never written to Redis. */
  readonly adminKey: string | undefined;
  readonly events: LiveEvents;
  readonly log: Logger;
}

export async function createRedisState(options: RedisStateOptions): Promise<SharedState> {
  const { instanceId } = options;
  const log = options.log.child({ component: 'cluster-state' });
  const where = describeRedisUrl(options.url);
  const redis = await connectRedis(options.url, 'state', log);
  let sub: Redis;
  try {
    // A subscribed connection can do nothing else: changes arrive on their own connection.
    sub = await connectRedis(options.url, 'changes', log, { enableAutoPipelining: false });
  } catch (err) {
    redis.disconnect();
    throw err;
  }

  const registry = new RedisRegistry({ redis, instanceId });
  const apiKeys = new RedisApiKeys(redis, instanceId, options.adminKey);
  const live = new ClusterLive({
    events: options.events,
    identify: (id) => registry.view.get(id),
    redis,
    instanceId,
    log,
  });
  const rejections = new RedisRejections(redis, log);
  const listeners: ((change: DeviceChange) => void)[] = [];
  const emit = (change: DeviceChange) => {
    for (const l of listeners) {
      try {
        l(change);
      } catch (err) {
        log.error({ err, deviceId: change.id }, 'device change listener failed');
      }
    }
  };

  /** Highest version this instance has heard of or read. */
  let seen = 0;
  /** Why the last reload failed, until one succeeds (for /ready). */
  let reloadError: string | undefined;
  let resyncing: Promise<void> | undefined;
  const resync = (reason: string): Promise<void> => {
    resyncing ??= (async () => {
      try {
        const { version, changes } = await registry.load();
        await apiKeys.load();
        reloadError = undefined;
        seen = Math.max(seen, version);
        for (const c of changes) emit(c);
        if (reason !== 'start')
          log.info({ reason, version, changes: changes.length }, 'state reloaded');
      } catch (err) {
        reloadError = err instanceof Error ? err.message : String(err);
        throw err;
      } finally {
        resyncing = undefined;
      }
    })();
    return resyncing;
  };
  const resyncLater = (reason: string) => {
    resync(reason).catch((err: unknown) => log.warn({ err, reason }, 'state reload failed'));
  };

  const relay = new EventRelay({ redis, sub, events: options.events, instanceId, log });
  sub.on('message', (channel: string, text: string) => {
    if (channel === EVENTS_CHANNEL) return relay.receive(text);
    let m: ChangeMessage;
    try {
      m = JSON.parse(text) as ChangeMessage;
    } catch {
      return;
    }
    const skipped = m.v > seen + 1;
    seen = Math.max(seen, m.v);
    // A skipped version is a lost message: read everything, which covers this one too.
    if (skipped) return resyncLater('missed a change');
    if (m.origin === instanceId) return;
    if (m.kind === 'device' && m.id !== undefined) {
      const id = m.id;
      registry.refresh(id).then(
        (change) => change && emit(change),
        (err: unknown) => {
          log.warn({ err, deviceId: id }, 'could not read a changed device; reloading');
          resyncLater('device read failed');
        },
      );
    } else if (m.kind === 'keys') {
      apiKeys.load().catch((err: unknown) => {
        log.warn({ err }, 'could not read API keys; reloading');
        resyncLater('key read failed');
      });
    } else resyncLater('announced');
  });
  await sub.subscribe(CHANGES_CHANNEL);
  // Loaded after subscribing: a change made in between is either in what is read or heard.
  try {
    await resync('start');
  } catch (err) {
    redis.disconnect();
    sub.disconnect();
    throw err;
  }
  // ioredis subscribes again by itself after a reconnect; what was said meanwhile is lost.
  sub.on('ready', () => resyncLater('Redis reconnected'));

  const heartbeat = () =>
    redis.set(
      KEY.instance(instanceId),
      JSON.stringify({ since: new Date().toISOString() }),
      'PX',
      HEARTBEAT_EVERY_MS * 3,
    );
  await heartbeat();
  const timers = [
    setInterval(() => {
      heartbeat().catch(() => {});
    }, HEARTBEAT_EVERY_MS),
    setInterval(() => {
      redis.get(KEY.version).then(
        (v) => {
          if (Number(v ?? 0) > seen) resyncLater('behind Redis');
        },
        () => {},
      );
    }, VERSION_CHECK_EVERY_MS),
  ];
  for (const t of timers) t.unref();
  relay.start();
  log.info(
    { redis: where, instanceId, devices: registry.view.size, version: seen },
    'cluster state loaded',
  );

  return {
    kind: 'redis',
    registry: registry.view,
    provisioning: registry.provisioning,
    apiKeys,
    live,
    rejections,
    onRemoteDeviceChange: (listener) => {
      listeners.push(listener);
    },
    health: () => {
      if (redis.status !== 'ready' || sub.status !== 'ready') {
        return { ok: false, detail: `Redis ${where}: connection ${redis.status}/${sub.status}` };
      }
      return reloadError
        ? { ok: false, detail: `Redis ${where}: ${reloadError}` }
        : { ok: true, detail: `Redis ${where}` };
    },
    async close() {
      for (const t of timers) clearInterval(t);
      await relay.stop();
      live.stop();
      await live.flush();
      await rejections.flush();
      // Devices still marked as held here read offline at once, not when the key expires.
      await redis.del(KEY.instance(instanceId)).catch(() => {});
      await Promise.allSettled([sub.quit(), redis.quit()]);
    },
  };
}

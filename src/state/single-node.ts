/**
 * The single-node state: the registry, API keys and rejection log in SQLite
 * (`${TAIHU_DATA_DIR}/registry.db`), live state in memory. The same code as before the state
 * interface existed; this file only gives it the interface's shape.
 */
import { join } from 'node:path';
import type { LiveEvents } from './events.js';
import { LiveState } from './live.js';
import { RejectionLog } from './rejections.js';
import { ApiKeys } from '../registry/api-keys.js';
import { openDatabase, Registry } from '../registry/registry.js';
import type { ApiKeyStore, Provisioning, RejectionStore, SharedState } from './types.js';

export interface SingleNodeOptions {
  readonly dataDir: string;
  /** `TAIHU_ADMIN_KEY`: accepted as an admin key, never written to disk. */
  readonly adminKey: string | undefined;
  readonly events: LiveEvents;
}

export function createSingleNodeState(options: SingleNodeOptions): SharedState {
  const db = openDatabase(join(options.dataDir, 'registry.db'));
  const registry = new Registry(db);
  const keys = new ApiKeys(db, options.adminKey);
  const log = new RejectionLog(db);
  const live = new LiveState({ events: options.events, identify: (id) => registry.get(id) });

  const provisioning: Provisioning = {
    applySeeds: async (seeds) => registry.applySeeds(seeds),
    create: async (device, secretHash) => registry.create(device, secretHash),
    setState: async (id, state) => registry.setState(id, state),
    setSecretHash: async (id, hash) => registry.setSecretHash(id, hash),
    remove: async (id) => registry.remove(id),
  };

  let generation = 0;
  const apiKeys: ApiKeyStore = {
    roleOf: (key) => keys.roleOf(key),
    get generation() {
      return generation;
    },
    async create(role, name) {
      generation++;
      return keys.create(role, name);
    },
    async createFirst(role, name) {
      if (keys.storedCount > 0) return undefined;
      generation++;
      return keys.create(role, name);
    },
    list: async () => keys.list(),
    async revoke(id) {
      generation++;
      return keys.revoke(id);
    },
  };

  const rejections: RejectionStore = {
    record: (r) => log.record(r),
    query: async (q) => log.query(q),
    flush: async () => log.flush(),
  };

  return {
    kind: 'single-node',
    registry,
    provisioning,
    apiKeys,
    live,
    rejections,
    // One instance: nothing changes anywhere else.
    onRemoteDeviceChange: () => {},
    health: () => ({ ok: true, detail: 'single node (SQLite)' }),
    async close() {
      live.stop();
      log.flush();
      db.close();
    },
  };
}

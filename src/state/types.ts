/**
 * The state every gateway of a cluster must share — the device registry (records, states,
 * secret hashes, deletions, sites and districts), API keys, live device state and the
 * rejection log — behind one interface with two implementations: single-node (SQLite and
 * memory, `single-node.ts`) and Redis (`redis/`), picked by `TAIHU_CLUSTER_REDIS_URL`.
 *
 * What the per-message path reads (a device's record and secret hash, an API key's role) is
 * synchronous and in memory on every instance; a cluster keeps that copy fresh through Redis
 * pub/sub. Writes are asynchronous: they resolve once the change is durable and announced.
 */
import type { NewRejection } from '../ingest/ingest.js';
import type { LiveState } from './live.js';
import type { RejectionQuery, RejectionRecord } from './rejections.js';
import type { ApiKeyRecord, Role } from '../registry/api-keys.js';
import type { DeviceRecord, DeviceState, NewDevice, Registry } from '../registry/registry.js';
import type { Seeds } from '../registry/seeds.js';

/** Registry methods that change it; the view leaves them out so no route writes around the state. */
export type RegistryWrite =
  'applySeeds' | 'create' | 'setState' | 'setSecretHash' | 'remove' | 'mirror';

/** Every registry read, synchronous, from this instance's memory (any read added to Registry is here too). */
export type RegistryView = Omit<Registry, RegistryWrite>;

/** Registry changes; each resolves once every instance will see it. */
export interface Provisioning {
  /** Adds seed entries not there yet (deleted devices stay deleted); resolves with the count added. */
  applySeeds(seeds: Seeds): Promise<number>;
  /** Registers a device with an individual secret hash; its district is its site's. */
  create(device: NewDevice, secretHash: string): Promise<DeviceRecord>;
  setState(id: string, state: DeviceState): Promise<DeviceRecord | undefined>;
  setSecretHash(id: string, hash: string): Promise<DeviceRecord | undefined>;
  /** Deletes for good (seeds never restore it); false if there is no such device. */
  remove(id: string): Promise<boolean>;
}

export interface ApiKeyStore {
  /** The role of a presented key, or undefined; from memory. */
  roleOf(key: string): Role | undefined;
  /** Changes whenever a key is created or revoked anywhere: a cheap "recheck your key" signal. */
  readonly generation: number;
  /** Creates a key; the plaintext is returned once and only its hash is kept. */
  create(role: Role, name?: string): Promise<{ id: string; key: string }>;
  /** Creates a key only if no key is stored yet (atomically over a cluster); else undefined. */
  createFirst(role: Role, name: string): Promise<{ id: string; key: string } | undefined>;
  /** Unrevoked stored keys (never the keys themselves). */
  list(): Promise<ApiKeyRecord[]>;
  /** Revokes a stored key at once; false if there is no such unrevoked key. */
  revoke(id: string): Promise<boolean>;
}

export interface RejectionStore {
  /** Queues a record; written in batches off the per-message path. */
  record(r: NewRejection): void;
  /** Newest first. */
  query(q: RejectionQuery): Promise<RejectionRecord[]>;
  /** Writes what is queued now (also on shutdown). */
  flush(): Promise<void>;
}

/** A device changed on another instance of the cluster. */
export interface DeviceChange {
  readonly id: string;
  readonly before: DeviceRecord | undefined;
  /** Undefined when the device was deleted. */
  readonly after: DeviceRecord | undefined;
  /** Whether its individual secret changed (rotated): connections made with the old one must go. */
  readonly secretChanged: boolean;
}

/** How healthy the shared state's backend is, for /ready. */
export interface StateHealth {
  readonly ok: boolean;
  readonly detail: string;
}

export interface SharedState {
  readonly kind: 'single-node' | 'redis';
  readonly registry: RegistryView;
  readonly provisioning: Provisioning;
  readonly apiKeys: ApiKeyStore;
  /**
   * This instance's live state (its own connections; the stale sweep runs over it); `read()`
   * answers queries for the whole cluster.
   */
  readonly live: LiveState;
  readonly rejections: RejectionStore;
  /**
   * Hears devices changed by other instances (never by this one: the route that changed it
   * acted already), to close connections a disable, delete or rotation ended.
   */
  onRemoteDeviceChange(listener: (change: DeviceChange) => void): void;
  health(): StateHealth;
  /** Flushes what is queued and lets go of files and connections. */
  close(): Promise<void>;
}

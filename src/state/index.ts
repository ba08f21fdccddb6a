/**
 * Picks the state implementation: Redis when `TAIHU_CLUSTER_REDIS_URL` is set (a cluster of
 * gateways), else SQLite and memory in `TAIHU_DATA_DIR` (one gateway).
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { LiveEvents } from './events.js';
import { createRedisState } from './redis/index.js';
import { createSingleNodeState } from './single-node.js';
import type { SharedState } from './types.js';

export type { SharedState } from './types.js';

export interface StateOptions {
  readonly events: LiveEvents;
  readonly log: Logger;
  /** This instance's id in a cluster (the Aedes broker id). */
  readonly instanceId: string;
}

export async function openState(
  config: Readonly<Pick<Config, 'clusterRedisUrl' | 'dataDir' | 'adminKey'>>,
  options: StateOptions,
): Promise<SharedState> {
  if (config.clusterRedisUrl) {
    return createRedisState({
      url: config.clusterRedisUrl,
      instanceId: options.instanceId,
      adminKey: config.adminKey,
      events: options.events,
      log: options.log,
    });
  }
  return createSingleNodeState({
    dataDir: config.dataDir,
    adminKey: config.adminKey,
    events: options.events,
  });
}

/**
 * Operators' read-only MQTT access (DESIGN §3): tools watching the city connect with an API
 * key and may subscribe to device topics, never publish. Login: user name `apikey`, password
 * = an API key (role read or admin), client id starting `op:` — a device id can never contain
 * `:`, so an operator's session can never take over a device's (same client id) or the
 * reverse, and a device registered as `apikey` still logs in as itself.
 */
import type { Role } from '../registry/api-keys.js';

export const OPERATOR_USERNAME = 'apikey';
export const OPERATOR_CLIENT_PREFIX = 'op:';

/** Where the broker checks operators' keys: memory, plus a counter that moves on any key change. */
export interface OperatorKeys {
  roleOf(key: string): Role | undefined;
  readonly generation: number;
}

/** Whether a CONNECT claims an operator identity (the client id decides, see above). */
export function isOperatorLogin(clientId: string, username: string | undefined): boolean {
  return username === OPERATOR_USERNAME && clientId.startsWith(OPERATOR_CLIENT_PREFIX);
}

/** Top levels an operator may read: the device topics and alerts, never `$SYS` or the root. */
const READABLE_ROOTS = new Set(['sensors', 'alerts']);

/**
 * An operator may subscribe to filters under `sensors/` or `alerts/`, wildcards included
 * (`sensors/+/+/telemetry`, `sensors/air-quality/#`); not to `#` or `+/…` (everything else
 * on the broker), `$SYS/…` or shared subscriptions (`$share/…`).
 */
export function operatorMaySubscribe(filter: string): boolean {
  const slash = filter.indexOf('/');
  const root = slash < 0 ? filter : filter.slice(0, slash);
  return READABLE_ROOTS.has(root);
}

/** Defence in depth on delivery: only messages of the readable namespaces reach an operator. */
export function operatorMayReceive(topic: string): boolean {
  return operatorMaySubscribe(topic);
}

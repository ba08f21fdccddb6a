/**
 * Every reach into Aedes's internals, in one place. Aedes 1.2 keeps these on its objects but
 * does not type them; each accessor names the Aedes source that sets the field, so an Aedes
 * upgrade is checked against this file alone (the broker tests exercise each one).
 */
import type { Aedes, Client } from 'aedes';

/** The CONNECT packet's Will, which Aedes keeps on the client before authenticate runs. */
export function willOf(client: Client): { topic: string; payload: Buffer } | undefined {
  // lib/handlers/connect.js init(): `client._will = packet.will`, before authenticate.
  return (client as unknown as { _will?: { topic: string; payload: Buffer } })._will;
}

/** Whether a publish is the client's Will, which the broker sends for it on an unclean close. */
export function isWill(client: Client, packet: object): boolean {
  // lib/handlers/connect.js storeWill(): `client.will` is the stored Will while connected.
  return (client as unknown as { will?: object | null }).will === packet;
}

/**
 * Restarts a connection's keepalive timer (1.5 × keepalive, restarted by each packet Aedes
 * handles [MQTT-3.1.2-24]), for the time the gateway itself does not read the socket.
 */
export function restartKeepalive(client: Client): void {
  // lib/handlers/connect.js setKeepAlive(): `client._keepaliveTimer = setTimeout(…)`.
  (client as unknown as { _keepaliveTimer?: NodeJS.Timeout | null })._keepaliveTimer?.refresh();
}

/** The connected client with this id, if any (a reconnect replaces the entry). */
export function clientById(broker: Aedes, id: string): Client | undefined {
  // lib/aedes.js: `this.clients`, a null-prototype id → Client table.
  return (broker as unknown as { clients: Record<string, Client | undefined> }).clients[id];
}

/** The owner's client id that Aedes keeps on a stored Will (aedes-persistence). */
export function willOwnerOf(packet: object): string | undefined {
  const clientId = (packet as { clientId?: unknown }).clientId;
  return typeof clientId === 'string' ? clientId : undefined;
}

/** The parts of Aedes's persistence that hold a client's session. */
export interface SessionStore {
  cleanSubscriptions(client: { id: string }): Promise<void>;
  cleanIncoming?(client: { id: string }): Promise<void>;
  delWill(client: { id: string; brokerId: string }): Promise<unknown>;
  outgoingStream(client: { id: string }): AsyncIterable<{ messageId?: number }>;
  outgoingClearMessageId(client: { id: string }, packet: { messageId?: number }): Promise<unknown>;
}

export function sessionStoreOf(broker: Aedes): SessionStore | undefined {
  // lib/aedes.js: `this.persistence` (aedes-persistence or aedes-persistence-redis).
  return (broker as unknown as { persistence?: SessionStore }).persistence;
}

/** Aedes's store of inbound QoS 2 messages awaiting PUBREL, for a client's connection. */
export interface InboundQos2 {
  /** Resolves when the client's message with this id is held (a copy); rejects when not. */
  incomingGetPacket(client: Client, packet: { messageId?: number }): Promise<unknown>;
}

export function inboundQos2Of(client: Client): InboundQos2 {
  // lib/client.js: `this.broker = broker`; lib/aedes.js: `this.persistence`.
  return (client as unknown as { broker: { persistence: InboundQos2 } }).broker.persistence;
}

/** Hears the broker's own 'error' events (session-store failures); unheard, they end the process. */
export function onBrokerError(broker: Aedes, listener: (err: Error) => void): void {
  // lib/aedes.js emits 'error' as an EventEmitter; its types list only client events.
  (broker as unknown as NodeJS.EventEmitter).on('error', listener);
}

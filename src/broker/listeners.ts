/**
 * MQTT listeners: plain TCP, MQTT over WebSocket (any path; `/mqtt` by convention) and,
 * when TAIHU_TLS_CERT/KEY are set, MQTT over TLS. Every connection is counted against
 * the connection limits at accept (a refused socket is closed before a byte is read) and
 * reaches Aedes through the wire guard (`wire.ts`).
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
} from 'node:http';
import {
  createServer as createNetServer,
  type AddressInfo,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { Aedes } from 'aedes';
import type { Logger } from 'pino';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { Config } from '../config.js';
import { ConnectionGate, peerAddress } from './limits.js';
import { clientCertificate, loadTls, type TlsMaterial } from './tls.js';
import { MqttWire, type Peer } from './wire.js';

export interface Listener {
  readonly name: 'mqtt' | 'ws' | 'mqtts';
  readonly port: number;
  close(): Promise<void>;
}

export interface ListenOptions {
  readonly gate: ConnectionGate;
  /** Largest MQTT packet, bytes. */
  readonly maxPacketBytes: number;
  /** Time allowed for a TLS handshake or WebSocket upgrade (CONNECT itself: Aedes). */
  readonly connectTimeoutMs: number;
  readonly log: Logger;
}

/** Bytes a packet may add around its payload: topic, packet id, fixed header. */
const PACKET_OVERHEAD_BYTES = 4096;

/** TAIHU_MAX_PACKET_BYTES, or room for a TAIHU_MAX_PAYLOAD_BYTES payload and its topic. */
export function maxPacketBytes(config: Pick<Config, 'maxPacketBytes' | 'maxPayloadBytes'>) {
  return config.maxPacketBytes ?? config.maxPayloadBytes + PACKET_OVERHEAD_BYTES;
}

/** Opens every MQTT listener the configuration asks for: tcp, ws, then mqtts if set. */
export async function listenMqtt(
  broker: Aedes,
  config: Readonly<Config>,
  log: Logger,
): Promise<Listener[]> {
  const opts: ListenOptions = {
    gate: new ConnectionGate(config),
    maxPacketBytes: maxPacketBytes(config),
    connectTimeoutMs: config.mqttConnectTimeoutMs,
    log,
  };
  const tls = loadTls(config);
  const listeners: Listener[] = [];
  try {
    listeners.push(await listenTcp(broker, config.mqttHost, config.mqttPort, opts));
    listeners.push(await listenWebSocket(broker, config.mqttHost, config.mqttWsPort, opts));
    if (tls) listeners.push(await listenTls(broker, config.mqttHost, config.mqttsPort, tls, opts));
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    throw err;
  }
  return listeners;
}

function listen(server: NetServer | HttpServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: NetServer | HttpServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Counts a new socket against the limits; closes it at once when over. Sockets that have
 * not reached Aedes yet (TLS handshake, WebSocket upgrade) are kept in `pending` so that
 * closing the listener does not wait for their timeouts.
 */
function gateSockets(server: NetServer, opts: ListenOptions, pending: Pending): void {
  server.prependListener('connection', (socket: Socket) => {
    const address = peerAddress(socket.remoteAddress);
    if (!opts.gate.admit(address)) {
      opts.log.debug({ address, open: opts.gate.open }, 'mqtt connection refused: over limit');
      socket.destroy();
      return;
    }
    // Dead peers of connections without MQTT keepalive (keepalive 0) are found by TCP's
    // probes: one empty segment per idle TCP_KEEPALIVE_MS, then the kernel's retries.
    socket.setKeepAlive(true, TCP_KEEPALIVE_MS);
    const key = endpoint(socket);
    pending.set(key, socket);
    socket.once('close', () => {
      pending.delete(key);
      opts.gate.release(address);
    });
  });
}

/** Idle time before TCP keepalive probes a connection (Linux then probes 9 times, 75 s apart). */
export const TCP_KEEPALIVE_MS = 60_000;

/** Accepted sockets not yet handed to Aedes, by remote endpoint. */
type Pending = Map<string, Socket>;

function endpoint(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

function hand(
  broker: Aedes,
  stream: Duplex,
  peer: Peer,
  opts: ListenOptions,
  req?: IncomingMessage,
): void {
  broker.handle(new MqttWire(stream, peer, { maxPacketBytes: opts.maxPacketBytes }), req);
}

export async function listenTcp(
  broker: Aedes,
  host: string,
  port: number,
  opts: ListenOptions,
): Promise<Listener> {
  const pending: Pending = new Map();
  const server = createNetServer((socket) => {
    if (socket.destroyed) return; // refused by the gate
    pending.delete(endpoint(socket));
    hand(broker, socket, { address: peerAddress(socket.remoteAddress) }, opts);
  });
  gateSockets(server, opts, pending);
  const bound = await listen(server, host, port);
  return { name: 'mqtt', port: bound, close: () => closeServer(server) };
}

export async function listenWebSocket(
  broker: Aedes,
  host: string,
  port: number,
  opts: ListenOptions,
): Promise<Listener> {
  const http = createHttpServer(
    {
      // An upgrade that does not finish in time is an idle socket.
      headersTimeout: opts.connectTimeoutMs,
      requestTimeout: opts.connectTimeoutMs,
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, opts.connectTimeoutMs / 4)),
    },
    (_req, res) => {
      res
        .writeHead(426, { 'content-type': 'text/plain', connection: 'close' })
        .end('MQTT over WebSocket: upgrade required\n');
    },
  );
  const pending: Pending = new Map();
  gateSockets(http, opts, pending);
  const wss = new WebSocketServer({
    server: http,
    // ws buffers a whole message before handing it on: bound it like a packet.
    maxPayload: opts.maxPacketBytes + 8,
    // MQTT over WebSocket negotiates the "mqtt" subprotocol [MQTT-6.0.0-3].
    handleProtocols: (protocols) =>
      protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false,
  });
  wss.on('connection', (ws, req) => {
    pending.delete(endpoint(req.socket));
    const stream = createWebSocketStream(ws);
    // [MQTT-6.0.0-1]: MQTT travels in binary frames; any other data frame closes the connection.
    // Ahead of the stream's own listener, so the frame is never passed on.
    ws.prependListener('message', (_data, isBinary) => {
      if (!isBinary) {
        stream.destroy();
        ws.terminate();
      }
    });
    stream.on('error', () => ws.terminate());
    hand(broker, stream, { address: peerAddress(req.socket.remoteAddress) }, opts, req);
  });
  const bound = await listen(http, host, port);
  return {
    name: 'ws',
    port: bound,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      for (const socket of pending.values()) socket.destroy();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      http.closeAllConnections();
      await closeServer(http);
    },
  };
}

export async function listenTls(
  broker: Aedes,
  host: string,
  port: number,
  tls: TlsMaterial,
  opts: ListenOptions,
): Promise<Listener> {
  const askForCertificates = tls.ca !== undefined;
  const server: TlsServer = createTlsServer({
    key: tls.key,
    cert: tls.cert,
    ca: tls.ca,
    crl: tls.crl,
    minVersion: 'TLSv1.2',
    // Devices without a certificate still log in with a password, so the handshake
    // succeeds without one; a certificate that is presented must verify (below).
    requestCert: askForCertificates,
    rejectUnauthorized: false,
    handshakeTimeout: opts.connectTimeoutMs,
  });
  const pending: Pending = new Map();
  gateSockets(server, opts, pending);
  server.on('secureConnection', (socket) => {
    const address = peerAddress(socket.remoteAddress);
    const cert = askForCertificates ? clientCertificate(socket) : ({ kind: 'none' } as const);
    if (cert.kind === 'refused') {
      opts.log.info({ address, reason: cert.reason }, 'mqtts client certificate refused');
      socket.destroy();
      return;
    }
    // The raw socket under this TLS socket is now Aedes's to close.
    pending.delete(endpoint(socket));
    const certificateCn = cert.kind === 'valid' ? cert.cn : undefined;
    hand(broker, socket, { address, certificateCn }, opts);
  });
  server.on('tlsClientError', (err, socket) => {
    opts.log.debug({ address: peerAddress(socket.remoteAddress), err: err.message }, 'tls error');
    socket.destroy();
  });
  const bound = await listen(server, host, port);
  opts.log.info(
    { port: bound, clientCertificates: askForCertificates, crl: tls.crl !== undefined },
    'mqtts listening',
  );
  return {
    name: 'mqtts',
    port: bound,
    close: async () => {
      for (const socket of pending.values()) socket.destroy();
      await closeServer(server);
    },
  };
}

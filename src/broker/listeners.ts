/**
 * MQTT listeners: plain TCP and MQTT over WebSocket (any path; `/mqtt` by convention).
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import {
  createServer as createNetServer,
  type AddressInfo,
  type Server as NetServer,
} from 'node:net';
import type { Aedes } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';

export interface Listener {
  readonly name: 'mqtt' | 'ws';
  readonly port: number;
  close(): Promise<void>;
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

export async function listenTcp(broker: Aedes, host: string, port: number): Promise<Listener> {
  const server = createNetServer((socket) => broker.handle(socket));
  const bound = await listen(server, host, port);
  return { name: 'mqtt', port: bound, close: () => closeServer(server) };
}

export async function listenWebSocket(
  broker: Aedes,
  host: string,
  port: number,
): Promise<Listener> {
  const http = createHttpServer((_req, res) => {
    res
      .writeHead(426, { 'content-type': 'text/plain' })
      .end('MQTT over WebSocket: upgrade required\n');
  });
  const wss = new WebSocketServer({
    server: http,
    // MQTT over WebSocket negotiates the "mqtt" subprotocol [MQTT-6.0.0-3].
    handleProtocols: (protocols) =>
      protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false,
  });
  wss.on('connection', (ws, req) => {
    const stream = createWebSocketStream(ws);
    stream.on('error', () => ws.terminate());
    broker.handle(stream, req);
  });
  const bound = await listen(http, host, port);
  return {
    name: 'ws',
    port: bound,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeServer(http);
    },
  };
}

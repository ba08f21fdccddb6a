/**
 * Issue 5, TLS: the mqtts listener with a CA made by `openssl` for this run, password and
 * client-certificate logins, and the certificates that must be refused.
 */
import { request } from 'node:https';
import Fastify from 'fastify';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTls } from '../../src/broker/tls.js';
import { eventually, seedDevice, sleep, telemetryTopic } from '../helpers/clients.js';
import { runTaihu, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { createPki, type Pem, type TestPki } from '../helpers/tls.js';
import { connectPacket, publishPacket, rawSession } from '../fuzz/raw-mqtt.js';

let pki: TestPki;
let gw: RunningGateway;
let tlsPort: number;
let revoked: Pem;

beforeAll(async () => {
  pki = createPki();
  revoked = pki.client(seedDevice('air-quality', 5).id);
  pki.revoke(revoked);
  gw = await startGateway({
    env: {
      TAIHU_MQTTS_PORT: '0',
      TAIHU_TLS_CERT: pki.server.certFile,
      TAIHU_TLS_KEY: pki.server.keyFile,
      TAIHU_TLS_CA: pki.ca.certFile,
      TAIHU_TLS_CRL: pki.crlFile,
    },
    httpsCa: pki.ca.cert,
  });
  tlsPort = gw.logs.find((l) => l.msg === 'mqtts listening')?.port as number;
});
afterAll(async () => {
  await gw?.stop();
  gw?.cleanup();
  pki?.cleanup();
});

const reading = (seq: number) =>
  JSON.stringify({ seq, data: { pm25_ugm3: seq, pm10_ugm3: 1, no2_ugm3: 1 } });

async function stored(deviceId: string): Promise<number> {
  const res = await gw.api(
    `/api/v1/aggregates?type=air-quality&field=pm25_ugm3&fn=count&every=1d&from=now-1h&to=now&device=${deviceId}&fill=none`,
  );
  return (res.body.series as any[]).reduce((n, s) => n + (s.points[0]?.count ?? 0), 0);
}

/** CONNECT over TLS with a client certificate; the CONNACK code, or 'closed' without one. */
async function tlsConnect(client: Pem | undefined, fields: Parameters<typeof connectPacket>[0]) {
  let s;
  try {
    s = await rawSession(tlsPort, {
      tls: { ca: pki.ca.cert, cert: client?.cert, key: client?.key },
    });
  } catch {
    return { code: 'closed' as const, session: undefined };
  }
  await s.send(connectPacket(fields));
  const connack = await s.next('connack', 2000);
  return {
    code: connack && 'returnCode' in connack ? connack.returnCode : ('closed' as const),
    session: s,
  };
}

describe('mqtts', () => {
  it('serves a client that trusts the CA, with a password login, and stores what it publishes', async () => {
    const d = seedDevice('air-quality', 0);
    const client = await mqtt.connectAsync(`mqtts://localhost:${tlsPort}`, {
      ca: pki.ca.cert,
      clientId: d.id,
      username: d.id,
      password: gw.secret(d.id),
      reconnectPeriod: 0,
    });
    await client.publishAsync(telemetryTopic(d), reading(1), { qos: 1 });
    await client.endAsync();
    expect(await eventually(async () => (await stored(d.id)) || undefined)).toBe(1);
  });

  it('does not speak plain MQTT on the TLS port', async () => {
    const d = seedDevice('air-quality', 0);
    const s = await rawSession(tlsPort);
    await s.send(connectPacket({ clientId: d.id, username: d.id, password: gw.secret(d.id) }));
    expect(await s.closesWithin(3000)).toBe(true);
    expect(s.packets).toEqual([]);
  });

  it('logs a device in by its certificate CN, without a password', async () => {
    const d = seedDevice('air-quality', 1);
    const { code, session } = await tlsConnect(pki.client(d.id), { clientId: d.id });
    expect(code).toBe(0);
    await session!.send(
      publishPacket({ topic: telemetryTopic(d), payload: reading(2), qos: 1, messageId: 1 }),
    );
    expect(await session!.next('puback')).toBeDefined();
    session!.end();
    expect(await eventually(async () => (await stored(d.id)) || undefined)).toBe(1);
  });

  it('refuses a valid certificate whose CN is not the client id (CONNACK 2)', async () => {
    const d = seedDevice('air-quality', 2);
    const other = seedDevice('air-quality', 3);
    const { code, session } = await tlsConnect(pki.client(d.id), { clientId: other.id });
    expect(code).toBe(2);
    session?.end();
  });

  it('refuses a valid certificate for an unknown or a disabled device (CONNACK 5)', async () => {
    const unknown = await tlsConnect(pki.client('zz-nowhere-0001'), {
      clientId: 'zz-nowhere-0001',
    });
    expect(unknown.code).toBe(5);
    const d = seedDevice('air-quality', 4);
    expect((await gw.api(`/api/v1/devices/${d.id}/disable`, { method: 'POST' })).status).toBe(200);
    const disabled = await tlsConnect(pki.client(d.id), { clientId: d.id });
    expect(disabled.code).toBe(5);
    await gw.api(`/api/v1/devices/${d.id}/enable`, { method: 'POST' });
  });

  it.each([
    ['expired', () => pki.client(seedDevice('air-quality', 6).id, { expired: true }), 6],
    ['from another CA', () => pki.foreign(seedDevice('air-quality', 7).id), 7],
    ['revoked (TAIHU_TLS_CRL)', () => revoked, 5],
  ])(
    'closes the connection of a client with a certificate %s, even with the right password',
    async (_name, cert, n) => {
      const d = seedDevice('air-quality', n);
      const r = await tlsConnect(cert(), {
        clientId: d.id,
        username: d.id,
        password: gw.secret(d.id),
      });
      expect(r.code).toBe('closed');
      r.session?.end();
      // The log line may trail the close by a moment.
      await eventually(async () =>
        gw.logs.some((l) => l.msg === 'mqtts client certificate refused'),
      );
    },
  );

  it('names the reason a certificate was refused in the log', async () => {
    await sleep(100);
    const reasons = gw.logs
      .filter((l) => l.msg === 'mqtts client certificate refused')
      .map((l) => l.reason);
    expect(reasons).toEqual(
      expect.arrayContaining([
        'CERT_HAS_EXPIRED',
        'CERT_REVOKED',
        'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      ]),
    );
  });
});

describe('TLS configuration', () => {
  it.each([
    [
      'a certificate file that does not exist',
      { TAIHU_TLS_CERT: '/nonexistent/cert.pem' },
      /TAIHU_TLS_CERT=.*nonexistent/,
    ],
    [
      'a key file that does not exist',
      { TAIHU_TLS_KEY: '/nonexistent/key.pem' },
      /TAIHU_TLS_KEY=.*nonexistent/,
    ],
    [
      'a key that is not the certificate key',
      { TAIHU_TLS_KEY: 'ca.key' },
      /TAIHU_TLS_CERT \/ TAIHU_TLS_KEY/,
    ],
    ['a CRL without a CA', { TAIHU_TLS_CA: '' }, /TAIHU_TLS_CRL needs TAIHU_TLS_CA/],
  ])('stops the start on %s, naming the variable', async (_name, env, message) => {
    const base = {
      TAIHU_TLS_CERT: pki.server.certFile,
      TAIHU_TLS_KEY: pki.server.keyFile,
      TAIHU_TLS_CA: pki.ca.certFile,
      TAIHU_TLS_CRL: pki.crlFile,
      TAIHU_MQTT_PORT: '0',
      TAIHU_MQTT_WS_PORT: '0',
      TAIHU_MQTTS_PORT: '0',
      TAIHU_HTTP_PORT: '0',
      TAIHU_DATA_DIR: `${pki.dir}/data-${Math.random().toString(36).slice(2)}`,
    };
    const merged: Record<string, string> = { ...base, ...env };
    if (merged.TAIHU_TLS_KEY === 'ca.key') merged.TAIHU_TLS_KEY = pki.ca.keyFile;
    const r = await runTaihu(['start'], merged);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(message);
  });

  it('gives Fastify what it needs to serve https with the same certificate', async () => {
    const tls = loadTls({
      tlsCert: pki.server.certFile,
      tlsKey: pki.server.keyFile,
      tlsCa: undefined,
      tlsCrl: undefined,
    });
    const app = Fastify({ https: tls ? { key: tls.key, cert: tls.cert } : null });
    app.get('/health', async () => ({ ok: true }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const body = await new Promise<string>((resolve, reject) => {
      request(
        { host: '127.0.0.1', port, path: '/health', ca: pki.ca.cert, servername: 'localhost' },
        (res) => {
          let text = '';
          res.on('data', (b: Buffer) => (text += b.toString()));
          res.on('end', () => resolve(text));
        },
      )
        .on('error', reject)
        .end();
    });
    await app.close();
    expect(JSON.parse(body)).toEqual({ ok: true });
  });
});

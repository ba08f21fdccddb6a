/** Provisioning over the HTTP API: individual credentials, rotation, disable/enable, delete, API keys. */
import { describe, expect, it } from 'vitest';
import { type RunningGateway, useGateway } from '../helpers/gateway.js';
import { connect, eventually, seedDevice } from '../helpers/clients.js';

let gw: RunningGateway;
const gateway = useGateway((g) => (gw = g));

const opts = (id: string, password: string) => ({ clientId: id, username: id, password });
const notAuthorized = { code: 5 };

describe('device provisioning', () => {
  it('registers a device with individual credentials returned once', async () => {
    const site = seedDevice('air-quality', 0).siteId;
    const res = await gw.api('/api/v1/devices', {
      method: 'POST',
      body: { id: 'aq-new-0001', type: 'air-quality', siteId: site },
    });
    expect(res.status).toBe(201);
    expect(res.body.device).toMatchObject({
      id: 'aq-new-0001',
      type: 'air-quality',
      siteId: site,
      state: 'active',
      credential: 'individual',
    });
    const { password } = res.body.credentials;
    expect(password.length).toBeGreaterThanOrEqual(40);

    const client = await connect(gw.ports.mqtt, opts('aq-new-0001', password));
    await client.publishAsync(
      'sensors/air-quality/aq-new-0001/telemetry',
      JSON.stringify({ seq: 1, data: { pm25_ugm3: 5, pm10_ugm3: 9, no2_ugm3: 3 } }),
      { qos: 1 },
    );
    await client.endAsync();
    // An individually provisioned device does not accept the enrollment-derived secret.
    await expect(
      connect(gw.ports.mqtt, opts('aq-new-0001', gw.secret('aq-new-0001'))),
    ).rejects.toMatchObject(notAuthorized);
    const one = await gw.api('/api/v1/devices/aq-new-0001');
    expect(one.body.last).toMatchObject({ seq: 1, data: { pm25_ugm3: 5 } });
    expect(JSON.stringify(one.body)).not.toContain(password);
  });

  it.each([
    [{ id: 'aq-new-0002', type: 'toaster', siteId: 'x' }, 400, /'type'/],
    [{ id: 'aq-new-0002', type: 'air-quality', siteId: 'nowhere' }, 400, /'siteId'/],
    [{ id: 'Bad Id', type: 'air-quality', siteId: 'x' }, 400, /'id'/],
    [
      { id: 'aq-new-0001', type: 'air-quality', siteId: seedDevice('air-quality', 0).siteId },
      409,
      /already exists/,
    ],
    [{ type: 'air-quality' }, 400, /'id' is required/],
  ])('refuses %j with %d naming the problem', async (body, status, message) => {
    const res = await gw.api('/api/v1/devices', { method: 'POST', body });
    expect(res.status).toBe(status);
    expect(res.body.message).toMatch(message);
  });

  it('rotates a secret: the old one stops working and its connection is closed', async () => {
    const dev = seedDevice('weather', 2);
    const old = gw.secret(dev.id);
    const client = await connect(gw.ports.mqtt, opts(dev.id, old));
    const closed = new Promise((r) => client.once('close', () => r(undefined)));
    const res = await gw.api(`/api/v1/devices/${dev.id}/secret`, { method: 'POST' });
    expect(res.status).toBe(200);
    await closed;
    client.end(true);
    await expect(connect(gw.ports.mqtt, opts(dev.id, old))).rejects.toMatchObject(notAuthorized);
    const fresh = await connect(gw.ports.mqtt, opts(dev.id, res.body.credentials.password));
    await fresh.endAsync();
    expect((await gw.api(`/api/v1/devices/${dev.id}`)).body.credential).toBe('individual');
  });

  it('disconnects a device when it is disabled, refuses it until enabled', async () => {
    const dev = seedDevice('noise', 3);
    const client = await connect(gw.ports.mqtt, opts(dev.id, gw.secret(dev.id)));
    const closed = new Promise((r) => client.once('close', () => r(undefined)));
    expect((await gw.api(`/api/v1/devices/${dev.id}/disable`, { method: 'POST' })).body.state).toBe(
      'disabled',
    );
    await closed;
    client.end(true);
    await expect(connect(gw.ports.mqtt, opts(dev.id, gw.secret(dev.id)))).rejects.toMatchObject(
      notAuthorized,
    );
    expect((await gw.api(`/api/v1/devices/${dev.id}/enable`, { method: 'POST' })).body.state).toBe(
      'active',
    );
    const again = await connect(gw.ports.mqtt, opts(dev.id, gw.secret(dev.id)));
    await again.endAsync();
  });

  it('deletes a device for good: refused at connect, gone from the list, 404 after', async () => {
    const dev = seedDevice('manhole', 4);
    const res = await gw.api(`/api/v1/devices/${dev.id}`, { method: 'DELETE' });
    expect(res.status).toBe(204);
    await expect(connect(gw.ports.mqtt, opts(dev.id, gw.secret(dev.id)))).rejects.toMatchObject(
      notAuthorized,
    );
    expect((await gw.api(`/api/v1/devices/${dev.id}`)).status).toBe(404);
    expect((await gw.api(`/api/v1/devices/${dev.id}`, { method: 'DELETE' })).status).toBe(404);
  });
});

describe('API keys', () => {
  it('creates a read key that reads but cannot administer, and revokes it at once', async () => {
    const created = await gw.api('/api/v1/keys', {
      method: 'POST',
      body: { role: 'read', name: 'grafana' },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ role: 'read', name: 'grafana' });
    const key = created.body.key as string;
    expect((await gw.api('/api/v1/devices?limit=1', { key })).status).toBe(200);
    const denied = await gw.api('/api/v1/devices/aq-x/disable', { key, method: 'POST' });
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('TAIHU_ERR_FORBIDDEN');
    expect((await gw.api('/api/v1/keys', { key })).status).toBe(403);

    const listed = await gw.api('/api/v1/keys');
    expect(listed.body.items.map((k: any) => k.id)).toContain(created.body.id);
    expect(JSON.stringify(listed.body)).not.toContain(key);

    expect((await gw.api(`/api/v1/keys/${created.body.id}`, { method: 'DELETE' })).status).toBe(
      204,
    );
    expect((await gw.api('/api/v1/devices?limit=1', { key })).status).toBe(401);
  });
});

describe('seeds after a delete', () => {
  it('does not bring a deleted seeded device back on restart', async () => {
    const dev = seedDevice('parking', 5);
    expect((await gw.api(`/api/v1/devices/${dev.id}`, { method: 'DELETE' })).status).toBe(204);
    await gateway.restart();
    expect((await gw.api(`/api/v1/devices/${dev.id}`)).status).toBe(404);
    // individual credentials survive the restart too
    await eventually(async () => (await gw.api('/api/v1/devices/aq-new-0001')).status === 200);
    expect((await gw.api('/api/v1/devices/aq-new-0001')).body.credential).toBe('individual');
  });
});

/**
 * The broker's connect rules and logins, in memory (tests/helpers/memory.ts): MQTT.js over a
 * duplex pair into the broker the gateway builds, no socket and no gateway process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REFUSED_LOGINS } from '../helpers/cases.js';
import { errorsTopic, seedDevice } from '../helpers/clients.js';
import {
  ADMIN_KEY,
  memoryBroker,
  openParts,
  type MemoryBroker,
  type Parts,
} from '../helpers/memory.js';

let parts: Parts;
let mem: MemoryBroker;

beforeAll(async () => {
  parts = await openParts();
  mem = await memoryBroker(parts);
});

afterAll(async () => {
  await mem?.close();
  await parts?.close();
});

describe('broker logins, in memory', () => {
  it('accepts a device with its enrollment-derived secret and counts it connected', async () => {
    const dev = seedDevice('noise', 0);
    const before = parts.state.live.connectedCount;
    const client = await mem.connect({
      clientId: dev.id,
      username: dev.id,
      password: parts.secret(dev.id),
    });
    expect(client.connected).toBe(true);
    expect(parts.state.live.connectedCount).toBe(before + 1);
    await client.endAsync();
  });

  it('refuses a wrong password with CONNACK "not authorized"', async () => {
    const dev = seedDevice('noise', 1);
    await expect(
      mem.connect({ clientId: dev.id, username: dev.id, password: 'wrong' }),
    ).rejects.toMatchObject({ code: 5 });
  });

  it.each(REFUSED_LOGINS)('refuses a connection with %s', async (_name, opts) => {
    const dev = seedDevice('noise', 2);
    await expect(mem.connect(opts(dev.id, parts.secret(dev.id)))).rejects.toMatchObject({
      code: expect.any(Number),
    });
  });

  it('refuses a disabled device and accepts it again once enabled', async () => {
    const dev = seedDevice('noise', 3);
    const login = { clientId: dev.id, username: dev.id, password: parts.secret(dev.id) };
    await parts.state.provisioning.setState(dev.id, 'disabled');
    await expect(mem.connect(login)).rejects.toMatchObject({ code: 5 });
    await parts.state.provisioning.setState(dev.id, 'active');
    await (await mem.connect(login)).endAsync();
  });

  it('lets an operator with an API key subscribe to device topics but not publish', async () => {
    const dev = seedDevice('noise', 4);
    const op = await mem.connect({ clientId: 'op:unit', username: 'apikey', password: ADMIN_KEY });
    const granted = await op.subscribeAsync('sensors/+/+/telemetry', { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
    await expect(op.subscribeAsync('#', { qos: 1 })).rejects.toMatchObject({
      packet: { cmd: 'suback', granted: [0x80] },
    });
    const closed = new Promise((r) => op.once('close', () => r(undefined)));
    op.publish(errorsTopic(dev), 'x', { qos: 1 });
    await closed;
    op.end(true);
  });

  it('refuses an operator with an unknown API key', async () => {
    await expect(
      mem.connect({ clientId: 'op:unit', username: 'apikey', password: 'not-a-key' }),
    ).rejects.toMatchObject({ code: 4 });
  });
});

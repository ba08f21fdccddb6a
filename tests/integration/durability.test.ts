/**
 * DESIGN §6: an acknowledged reading is never lost. The gateway is killed with
 * SIGKILL while devices publish QoS 1; after a restart every reading whose PUBACK a
 * client received must be in the store — compared as sets of (device, seq).
 */
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { storedSeqs } from '../helpers/stored.js';
import {
  connectAs,
  eventually,
  publisher,
  seedDevice,
  sleep,
  telemetryTopic,
} from '../helpers/clients.js';

const gateways: RunningGateway[] = [];
afterEach(async () => {
  for (const g of gateways.splice(0)) {
    await g.stop();
    g.cleanup();
  }
});

describe('durability', () => {
  it('keeps every acknowledged reading across a kill -9 of the gateway under load', async () => {
    // The publisher sends as fast as acks come back: no per-device rate limit here.
    const first = await startGateway({ env: { TAIHU_DEVICE_RATE: '0' } });
    const devices = [5, 6, 7, 8, 9].map((n) => seedDevice('air-quality', n));
    const base = Date.now() - 60 * 60_000;
    const runs = await Promise.all(
      devices.map(async (d, i) => {
        const client = await connectAs(first, d);
        client.on('error', () => {});
        return { d, client, pub: publisher(client, telemetryTopic(d), base + i * 100_000) };
      }),
    );
    await sleep(1500);
    await first.kill();
    for (const r of runs) {
      r.pub.stop();
      r.client.end(true);
    }
    const ackedTotal = runs.reduce((n, r) => n + r.pub.acked.size, 0);
    expect(ackedTotal).toBeGreaterThan(100);

    const second = await startGateway({ dataDir: first.dataDir });
    gateways.push(second);
    // Wait until the replayed spool has reached the store, then stop so the file is quiet.
    await eventually(async () => {
      const res = await second.api(
        `/api/v1/aggregates?type=air-quality&field=seq&fn=count&every=1d&from=${new Date(base - 86_400_000).toISOString()}&to=now&groupBy=device&fill=none`,
      );
      const total = res.body.series.reduce(
        (n: number, s: any) => n + s.points.reduce((m: number, p: any) => m + p.count, 0),
        0,
      );
      return total >= ackedTotal;
    }, 20_000);
    await second.stop();

    const stored = storedSeqs(first.dataDir);
    for (const r of runs) {
      const have = stored.get(r.d.id) ?? new Set<number>();
      const lost = [...r.pub.acked].filter((s) => !have.has(s));
      expect(lost, `${r.d.id}: acknowledged but not stored`).toEqual([]);
    }
  });

  it('recovers from a torn spool tail on start with a warning and keeps serving', async () => {
    const first = await startGateway();
    const d = seedDevice('air-quality', 10);
    const client = await connectAs(first, d);
    await client.publishAsync(
      telemetryTopic(d),
      JSON.stringify({ seq: 1, data: { pm25_ugm3: 1, pm10_ugm3: 1, no2_ugm3: 1 } }),
      { qos: 1 },
    );
    await client.endAsync();
    await first.stop();
    // A crash mid-write leaves half a frame at the end of the newest segment.
    const spoolDir = join(first.dataDir, 'spool');
    const newest = readdirSync(spoolDir)
      .filter((f) => f.endsWith('.seg'))
      .sort()
      .at(-1);
    expect(newest).toBeDefined();
    appendFileSync(
      join(spoolDir, newest!),
      Buffer.from([0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]),
    );

    const second = await startGateway({ dataDir: first.dataDir });
    gateways.push(second);
    expect(second.logs.some((l) => l.level === 40 && /torn or corrupt tail/.test(l.msg))).toBe(
      true,
    );
    const c2 = await connectAs(second, d);
    await c2.publishAsync(
      telemetryTopic(d),
      JSON.stringify({ seq: 2, data: { pm25_ugm3: 2, pm10_ugm3: 1, no2_ugm3: 1 } }),
      { qos: 1 },
    );
    await c2.endAsync();
    await eventually(async () => {
      const r = await second.api(
        `/api/v1/aggregates?type=air-quality&field=seq&fn=max&every=1h&from=now-1h&to=now&device=${d.id}&fill=none`,
      );
      return r.body.series[0]?.points.some((p: any) => p.value === 2);
    });
  });
});

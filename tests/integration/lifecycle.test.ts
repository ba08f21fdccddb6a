/** Start-up checks, restarts and shutdown of the built gateway. */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, runTaihu, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { connectAs, eventually, seedDevice, telemetryTopic } from '../helpers/clients.js';

const temps: string[] = [];
const gateways: RunningGateway[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'taihu-life-'));
  temps.push(d);
  return d;
}
afterEach(async () => {
  for (const g of gateways.splice(0)) await g.stop();
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
});

const startEnv = (dataDir: string, extra: Record<string, string> = {}) => ({
  TAIHU_MQTT_PORT: '0',
  TAIHU_MQTT_WS_PORT: '0',
  TAIHU_HTTP_PORT: '0',
  TAIHU_DATA_DIR: dataDir,
  ...extra,
});

describe('start-up checks', () => {
  it.each([
    ['TAIHU_MQTT_PORT', 'eighteen', /TAIHU_MQTT_PORT="eighteen" is not a port number/],
    ['TAIHU_MAX_AGE', '1 week', /TAIHU_MAX_AGE="1 week" is not a duration/],
    ['TAIHU_STORE', 'mongodb', /TAIHU_STORE="mongodb" is not one of embedded, influxdb/],
  ])('stops with a message naming %s when it is invalid', async (name, value, message) => {
    const res = await runTaihu(['start'], startEnv(tempDir(), { [name]: value }));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(message);
    expect(res.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('stops naming the file when a device schema is broken', async () => {
    const schemas = tempDir();
    cpSync(join(ROOT, 'schemas'), schemas, { recursive: true });
    const file = join(schemas, 'noise.v1.json');
    const s = JSON.parse(readFileSync(file, 'utf8'));
    s['x-category'] = 'music';
    writeFileSync(file, JSON.stringify(s));
    const res = await runTaihu(['start'], startEnv(tempDir(), { TAIHU_SCHEMAS_DIR: schemas }));
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(file);
    expect(res.stderr).toMatch(/x-category must be one of traffic, environment, facility/);
  });

  it('stops naming the file and the entry when a seed is bad', async () => {
    const seeds = tempDir();
    cpSync(join(ROOT, 'seeds'), seeds, { recursive: true });
    const file = join(seeds, 'devices.json');
    const devices = JSON.parse(readFileSync(file, 'utf8'));
    devices[3].type = 'toaster';
    writeFileSync(file, JSON.stringify(devices));
    const res = await runTaihu(['start'], startEnv(tempDir(), { TAIHU_SEEDS_DIR: seeds }));
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(file);
    expect(res.stderr).toContain(`entry 3 ("${devices[3].id}")`);
    expect(res.stderr).toMatch(/unknown device type "toaster"/);
  });

  it('prints help for every command', async () => {
    for (const cmd of [[], ['start'], ['simulate'], ['demo']]) {
      const res = await runTaihu([...cmd, '--help']);
      expect(res.code, cmd.join(' ')).toBe(0);
      expect(res.stdout).toMatch(/Usage: taihu/);
    }
    expect((await runTaihu(['start', '--help'])).stdout).toMatch(/--mqtt-port <value>/);
  });
});

describe('restart', () => {
  it('keeps stored readings and registry, and loads seeds only once', async () => {
    const dataDir = tempDir();
    const first = await startGateway({ dataDir });
    gateways.push(first);
    const devicesBefore = (await first.api('/api/v1/devices?limit=1')).body.total;
    const dev = seedDevice('air-quality', 3);
    const client = await connectAs(first, dev);
    const ts = Date.now() - 60_000;
    await client.publishAsync(
      telemetryTopic(dev),
      JSON.stringify({ ts, seq: 1, data: { pm25_ugm3: 12.5, pm10_ugm3: 20, no2_ugm3: 5 } }),
      { qos: 1 },
    );
    await client.endAsync();
    expect(await first.stop()).toBe(0);
    expect(first.logs.some((l) => l.msg === 'taihu stopped')).toBe(true);

    const second = await startGateway({ dataDir });
    gateways.push(second);
    expect(second.logs.some((l) => l.msg === 'devices loaded from seeds')).toBe(false);
    expect((await second.api('/api/v1/devices?limit=1')).body.total).toBe(devicesBefore);
    // The store is fed from the spool: poll until the reading is queryable.
    const res = await eventually(async () => {
      const r = await second.api(
        `/api/v1/aggregates?type=air-quality&field=pm25_ugm3&fn=last&every=1h&from=now-2h&device=${dev.id}&fill=none`,
      );
      return r.body.series.length > 0 ? r : undefined;
    });
    expect(res.body.series[0].points).toEqual([expect.objectContaining({ value: 12.5, count: 1 })]);
  });

  it('generates an enrollment key and an admin key into the data dir when none is configured', async () => {
    const dataDir = tempDir();
    const g = await startGateway({
      dataDir,
      env: { TAIHU_ENROLLMENT_KEY: '', TAIHU_ADMIN_KEY: '' },
    });
    gateways.push(g);
    const adminKey = readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
    expect((await g.api('/api/v1/devices?limit=1', { key: adminKey })).status).toBe(200);
    const enrollment = readFileSync(join(dataDir, 'enrollment.key'), 'utf8').trim();
    expect(enrollment.length).toBeGreaterThanOrEqual(40);
  });
});

describe('simulator', () => {
  it('plays seeded devices through the gateway and reports rejected faults', async () => {
    const g = await startGateway();
    gateways.push(g);
    const res = await runTaihu(
      [
        'simulate',
        '--broker',
        `mqtt://127.0.0.1:${g.ports.mqtt}`,
        '--devices',
        '40',
        '--rate',
        '200',
        '--duration',
        '3s',
        '--faults',
        '0.2',
        // message faults only: a wrong topic or a dropped connection loses its ack by design
        '--fault-kinds',
        'malformed-json,out-of-range,unknown-field,wrong-type,seconds-timestamp',
        '--seed',
        '7',
      ],
      { TAIHU_ENROLLMENT_KEY: 'test-enrollment-key-0123456789abcdef' },
    );
    expect(res.code, res.stderr).toBe(0);
    const m = /sent (\d+), acked (\d+) \((\d+)\/s\), rejected (\d+)/.exec(res.stdout);
    expect(m, res.stdout).not.toBeNull();
    const [sent, acked, , rejected] = m!.slice(1).map(Number) as [number, number, number, number];
    expect(sent).toBeGreaterThan(300);
    expect(acked).toBe(sent);
    expect(rejected).toBeGreaterThan(0);
    const stored = await g.api('/api/v1/rejections?limit=1000');
    expect(stored.body.items.length).toBe(rejected);
  });
});

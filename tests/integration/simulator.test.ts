/** The simulator against the built gateway: fault modes, and a backfilled day with its daily shape. */
import { describe, expect, it } from 'vitest';
import { ENROLLMENT_KEY, runTaihu, type RunningGateway, useGateway } from '../helpers/gateway.js';

let gw: RunningGateway;
useGateway((g) => (gw = g));

/** Runs `taihu simulate` against the gateway; each flag is given as `--name value`, in order. */
function simulate(flags: Record<string, string | number>) {
  const args = Object.entries(flags).flatMap(([name, value]) => [`--${name}`, String(value)]);
  return runTaihu(['simulate', '--broker', `mqtt://127.0.0.1:${gw.ports.mqtt}`, ...args], {
    TAIHU_ENROLLMENT_KEY: ENROLLMENT_KEY,
  });
}

function summary(stdout: string) {
  const m =
    /sent (\d+), acked (\d+) \(\d+\/s\), rejected (\d+); readings acked (\d+), connections refused (\d+)/.exec(
      stdout,
    );
  if (!m) throw new Error(`no summary in: ${stdout}`);
  const [sent, acked, rejected, readings, refused] = m.slice(1).map(Number) as number[];
  return {
    sent: sent!,
    acked: acked!,
    rejected: rejected!,
    readings: readings!,
    refused: refused!,
  };
}

describe('simulator', () => {
  it.each([
    ['malformed-json', 'PAYLOAD_NOT_JSON', 'district=xishan'],
    ['out-of-range', 'SCHEMA_INVALID', 'district=huishan'],
    ['unknown-field', 'SCHEMA_INVALID', 'district=jiangyin'],
    ['wrong-type', 'SCHEMA_INVALID', 'district=yixing'],
    ['seconds-timestamp', 'TIMESTAMP_TOO_OLD', 'district=xinwu'],
    ['future-timestamp', 'TIMESTAMP_IN_FUTURE', 'district=liangxi'],
  ])('plays %s faults that the gateway rejects as %s', async (kind, code, where) => {
    const district = where.split('=')[1]!;
    const res = await simulate({
      district,
      types: 'noise',
      devices: 3,
      rate: 30,
      duration: '1s',
      faults: 1,
      'fault-kinds': kind,
      seed: 3,
    });
    expect(res.code, res.stderr).toBe(0);
    const s = summary(res.stdout);
    expect(s.sent).toBeGreaterThan(10);
    expect(s.acked).toBe(s.sent); // rejected messages are still acknowledged
    expect(s.rejected).toBe(s.sent); // every one came back on the errors topic
    const types = await gw.api(`/api/v1/rejections?type=noise&limit=1000`);
    const mine = types.body.items.filter((r: any) => r.deviceId.includes(district));
    expect(mine.length).toBe(s.sent);
    expect(new Set(mine.map((r: any) => r.code))).toEqual(new Set([code]));
  });

  it('plays duplicates that the gateway stores once', async () => {
    const res = await simulate({
      types: 'weather',
      district: 'binhu',
      devices: 2,
      rate: 40,
      duration: '1500ms',
      faults: '0.5',
      'fault-kinds': 'duplicate',
      seed: 4,
    });
    expect(res.code, res.stderr).toBe(0);
    const s = summary(res.stdout);
    expect(s.rejected).toBe(0);
    const agg = await gw.api(
      '/api/v1/aggregates?type=weather&field=seq&fn=count&every=1h&from=now-1h&to=now&district=binhu&groupBy=device&fill=none',
    );
    const stored = agg.body.series.reduce(
      (n: number, x: any) => n + x.points.reduce((m: number, p: any) => m + p.count, 0),
      0,
    );
    expect(stored).toBeGreaterThan(0);
    expect(stored).toBeLessThan(s.sent); // the duplicates overwrote their originals
  });

  it('plays wrong credentials and topics that the gateway refuses without losing the device', async () => {
    const res = await simulate({
      types: 'parking',
      devices: 4,
      rate: 20,
      duration: '3500ms',
      faults: '0.3',
      'fault-kinds': 'wrong-credentials,wrong-topic',
      seed: 5,
    });
    expect(res.code, res.stderr).toBe(0);
    const s = summary(res.stdout);
    expect(s.refused).toBeGreaterThan(0);
    expect(gw.logs.some((l) => l.msg === 'connect refused: wrong password')).toBe(true);
    expect(gw.logs.some((l) => l.msg === 'publish refused by topic ACL')).toBe(true);
  });

  it('backfills a day that is queryable with its daily shape: traffic slower at 08:00 than at 03:00', async () => {
    const res = await simulate({
      types: 'traffic-flow',
      devices: 24,
      backfill: '24h',
      duration: '0s',
      seed: 9,
    });
    expect(res.code, res.stderr).toBe(0);
    const s = summary(res.stdout);
    expect(s.readings).toBeGreaterThanOrEqual(24 * 1439);
    // Wuxi is UTC+8: 08:00 local is 00:00 UTC, 03:00 local is 19:00 UTC the day before.
    const agg = await gw.api(
      '/api/v1/aggregates?type=traffic-flow&field=speed_kmh&fn=mean&every=1h&from=now-24h&to=now&fill=none',
    );
    const byHour = new Map<number, number>();
    for (const p of agg.body.series[0].points) byHour.set(new Date(p.t).getUTCHours(), p.value);
    expect(byHour.get(0)).toBeLessThan(byHour.get(19)!);
    const volume = await gw.api(
      '/api/v1/aggregates?type=traffic-flow&field=vehicle_count&fn=sum&every=1h&from=now-24h&to=now&fill=none',
    );
    const sums = new Map<number, number>();
    for (const p of volume.body.series[0].points) sums.set(new Date(p.t).getUTCHours(), p.value);
    expect(sums.get(0)).toBeGreaterThan(sums.get(19)! * 2); // rush hour vs the dead of night
  });
});

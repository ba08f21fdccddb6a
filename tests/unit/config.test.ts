import { describe, expect, it } from 'vitest';
import { loadConfig, parseDuration } from '../../src/config.js';
import { defaultAuthLimit } from '../../src/http/auth-limit.js';
import { defaultSpoolOptions } from '../../src/spool/spool.js';

const load = (env: Record<string, string>) => loadConfig({ env, envFile: '/nonexistent/.env' });

describe('config', () => {
  it('uses the documented defaults when nothing is set', () => {
    const c = load({});
    expect(c.mqttPort).toBe(1883);
    expect(c.mqttWsPort).toBe(8083);
    expect(c.httpPort).toBe(8080);
    expect(c.httpHost).toBe('127.0.0.1');
    expect(c.store).toBe('embedded');
    expect(c.maxClockSkewMs).toBe(5 * 60_000);
    expect(c.maxAgeMs).toBe(7 * 86_400_000);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('is what each module defaults to when it is given no value', () => {
    const c = load({});
    expect(defaultSpoolOptions.maxBytes).toBe(c.spoolMaxBytes);
    expect(defaultSpoolOptions.commitWindowMs).toBe(c.commitWindowMs);
    expect(defaultAuthLimit.burst).toBe(c.httpAuthFailures);
    expect(defaultAuthLimit.perMinute).toBe(c.httpAuthFailures);
  });

  it('accepts port 0 to mean "pick a free port"', () => {
    expect(load({ TAIHU_HTTP_PORT: '0' }).httpPort).toBe(0);
  });

  it('switches to InfluxDB when TAIHU_INFLUX_URL is set', () => {
    expect(load({ TAIHU_INFLUX_URL: 'http://127.0.0.1:8086' }).store).toBe('influxdb');
  });

  it('lets CLI flags override the environment', () => {
    const c = loadConfig({
      env: { TAIHU_HTTP_PORT: '9000' },
      overrides: { TAIHU_HTTP_PORT: '9001' },
      envFile: '/x',
    });
    expect(c.httpPort).toBe(9001);
  });

  it.each([
    ['TAIHU_MQTT_PORT', 'abc', /TAIHU_MQTT_PORT="abc" is not a port number/],
    ['TAIHU_MQTT_PORT', '70000', /TAIHU_MQTT_PORT=70000 must be <= 65535/],
    ['TAIHU_HTTP_PORT', '-1', /TAIHU_HTTP_PORT="-1" is not a port number/],
    ['TAIHU_STORE', 'postgres', /TAIHU_STORE="postgres" is not one of embedded, influxdb/],
    ['TAIHU_MAX_CLOCK_SKEW', '5 minutes', /TAIHU_MAX_CLOCK_SKEW="5 minutes" is not a duration/],
    ['TAIHU_INFLUX_API', 'v3', /TAIHU_INFLUX_API="v3" is not one of v2, v1/],
    ['TAIHU_MAX_BATCH', '0', /TAIHU_MAX_BATCH=0 must be >= 1/],
    ['TAIHU_LOG_LEVEL', 'loud', /TAIHU_LOG_LEVEL="loud" is not one of/],
    ['TAIHU_INFLUX_URL', 'influx:8086', /TAIHU_INFLUX_URL="influx:8086" must match pattern/],
  ])('refuses %s=%s with a message naming the variable', (name, value, message) => {
    expect(() => load({ [name]: value })).toThrow(message);
  });

  it('masks secrets in its error messages', () => {
    expect(() => load({ TAIHU_ADMIN_KEY: 'short' })).toThrow(
      /TAIHU_ADMIN_KEY="\*\*\*" must NOT have fewer than 16 characters/,
    );
  });

  it('refuses TAIHU_MQTT_AUTH=off unless the MQTT listeners are on loopback, naming both', () => {
    expect(() => load({ TAIHU_MQTT_AUTH: 'off', TAIHU_MQTT_HOST: '0.0.0.0' })).toThrow(
      /TAIHU_MQTT_AUTH=off .*TAIHU_MQTT_HOST on loopback/,
    );
    expect(load({ TAIHU_MQTT_AUTH: 'off', TAIHU_MQTT_HOST: '127.0.0.2' }).mqttAuth).toBe('off');
  });

  it('refuses a packet limit below the payload limit, naming both variables', () => {
    expect(() => load({ TAIHU_MAX_PACKET_BYTES: '1000', TAIHU_MAX_PAYLOAD_BYTES: '2000' })).toThrow(
      /TAIHU_MAX_PACKET_BYTES=1000 is below TAIHU_MAX_PAYLOAD_BYTES=2000/,
    );
  });

  it('refuses TAIHU_STORE=influxdb without a URL', () => {
    expect(() => load({ TAIHU_STORE: 'influxdb' })).toThrow(/needs TAIHU_INFLUX_URL/);
  });

  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['7d', 604_800_000],
    ['1500', 1500],
  ])('parses the duration %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', 'm', '5 m', '1.5h', '-3s', '3w'])('rejects the duration %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('README', () => {
  it('documents every configuration variable in its table', async () => {
    const { readFileSync } = await import('node:fs');
    const { OPTIONS } = await import('../../src/config.js');
    const readme = readFileSync('README.md', 'utf8');
    // The InfluxDB variables share one row: `TAIHU_INFLUX_URL`, `_TOKEN`, `_ORG`, ...
    const listed = (env: string) =>
      readme.includes(`\`${env}\``) ||
      (env.startsWith('TAIHU_INFLUX_') && readme.includes(`\`_${env.slice(13)}\``));
    const missing = OPTIONS.map((o) => o.env).filter((env) => !listed(env));
    expect(missing).toEqual([]);
  });
});

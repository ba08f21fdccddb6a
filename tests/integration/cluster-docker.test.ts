/**
 * The cluster deployment example (docker/cluster/), checked without a Docker engine: the
 * compose file against the Compose Specification schema and Taihu's own configuration, and
 * the HAProxy configuration by Debian's haproxy itself (`haproxy -c`).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { DockerfileParser } from 'dockerfile-ast';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig, OPTIONS } from '../../src/config.js';
import { composeValidator } from '../helpers/compose.js';
import { ROOT } from '../helpers/gateway.js';
import { requireTool } from '../helpers/servers.js';

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const ENV_EXAMPLE = parseEnv(read('docker/.env.example')) as Record<string, string>;

interface Service {
  image?: string;
  build?: { context?: string; dockerfile?: string };
  healthcheck?: { test?: string[] };
  environment?: Record<string, string | number | null>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
}

/** `${VAR}`, `${VAR:-default}`, `${VAR:?error}` (what the file uses); records what it reads. */
function interpolate(node: unknown, used: Set<string>): unknown {
  if (typeof node === 'string') {
    return node.replace(
      /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-?])([^}]*))?\}/g,
      (_m, name: string, op?: string, arg = '') => {
        used.add(name);
        const value = ENV_EXAMPLE[name];
        if (value === undefined || value === '') {
          if (op === ':?') throw new Error(`compose would stop: ${name}: ${arg}`);
          return op === ':-' ? arg : '';
        }
        return value;
      },
    );
  }
  if (Array.isArray(node)) return node.map((n) => interpolate(n, used));
  if (node !== null && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolate(v, used)]));
  }
  return node;
}

// Merge keys (`<<: *gateway`) are YAML 1.1, which compose reads.
const RAW: unknown = parseYaml(read('docker/cluster/compose.yml'), { merge: true });
const USED = new Set<string>();
const COMPOSE = interpolate(RAW, USED) as { services: Record<string, Service> };
const GATEWAYS = ['gateway-1', 'gateway-2', 'gateway-3'];
const service = (name: string) => COMPOSE.services[name]!;
const envOf = (s: Service) =>
  Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v ?? '')]));

describe('docker/cluster/compose.yml', () => {
  it('validates against the Compose Specification JSON Schema', () => {
    const validate = composeValidator({
      duration: /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/,
      ports: /^((\[[0-9a-fA-F:.]+\]|[0-9.]+):)?((\d+(-\d+)?)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
      expose: /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
      subnet_ip_address: /^[0-9a-fA-F:.]+\/\d{1,3}$/,
    });
    const result = validate(COMPOSE);
    expect(result.ok, result.errors).toBe(true);
  });

  it('interpolates only variables that docker/.env.example defines', () => {
    expect(USED.size).toBeGreaterThan(0);
    for (const name of USED) expect(ENV_EXAMPLE[name], name).toBeDefined();
  });

  it('runs three gateways in cluster mode on one Redis and InfluxDB, each with its own spool volume', () => {
    const known = new Set(OPTIONS.map((o) => o.env));
    const volumes = new Set<string>();
    for (const name of GATEWAYS) {
      const s = service(name);
      const env = envOf(s);
      for (const key of Object.keys(env)) expect(known.has(key), `${name}: ${key}`).toBe(true);
      expect(env.TAIHU_CLUSTER_REDIS_URL).toBe('redis://redis:6379');
      // The gateway's own validation, as the container would run it (the image sets /data).
      const config = loadConfig({
        env: { TAIHU_DATA_DIR: '/data', ...env },
        envFile: join(ROOT, 'docker/no-such.env'),
      });
      expect(config.store).toBe('influxdb');
      expect(config.clusterRedisUrl).toBe('redis://redis:6379');
      const data = s.volumes?.find((v) => v.endsWith(':/data'));
      expect(data, `${name} keeps /data in a volume`).toBeDefined();
      volumes.add(data!.split(':')[0]!);
      expect(s.ports, `${name} is reached through HAProxy only`).toBeUndefined();
    }
    expect(volumes.size).toBe(GATEWAYS.length);
    expect(service('redis').volumes).toContain('redis-data:/data');
  });

  it("builds every gateway from docker/Dockerfile, the single image's base and Node version", () => {
    const dockerfile = DockerfileParser.parse(read('docker/Dockerfile'));
    const healthcheck = dockerfile.getInstructions().find((i) => i.getKeyword() === 'HEALTHCHECK');
    const text = (healthcheck?.getArgumentsContent() ?? '').replace(/\\\r?\n/g, ' ');
    const probe = JSON.parse(text.slice(text.indexOf('CMD') + 3).trim()) as string[];
    const single = parseYaml(read('docker/compose.yml')) as { services: Record<string, Service> };
    for (const name of GATEWAYS) {
      const s = service(name);
      // The context is relative to this file's folder: docker/cluster/../.. is the repository.
      expect(join(ROOT, 'docker/cluster', s.build?.context ?? ''), name).toBe(ROOT);
      expect(s.build?.dockerfile, name).toBe('docker/Dockerfile');
      expect(s.image, name).toBe(single.services.taihu!.image);
      expect(s.healthcheck?.test, name).toEqual(['CMD', ...probe]);
    }
  });

  it('publishes MQTT and the API through HAProxy only', () => {
    const lb = service('haproxy');
    expect(lb.volumes).toContain('./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro');
    expect(lb.ports).toEqual(
      expect.arrayContaining(['1883:1883', '8083:8083', '8080:8080', '127.0.0.1:8404:8404']),
    );
    expect(Object.keys(lb.depends_on ?? {}).sort()).toEqual(GATEWAYS);
  });
});

describe('docker/cluster/haproxy.cfg', () => {
  const cfg = read('docker/cluster/haproxy.cfg');
  const backend = (name: string) => {
    const body = cfg.split(/^backend /m).find((b) => b.startsWith(`${name}\n`)) ?? '';
    return [...body.matchAll(/^\s+server (\S+) (\S+)/gm)].map((m) => `${m[1]} ${m[2]}`);
  };

  it('is a valid configuration for haproxy', async () => {
    const haproxy = requireTool('haproxy');
    const result = await new Promise<{ code: number; out: string }>((resolve) =>
      execFile(haproxy, ['-c', '-f', join(ROOT, 'docker/cluster/haproxy.cfg')], (err, so, se) =>
        resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${so}${se}` }),
      ),
    );
    expect(result.code, result.out).toBe(0);
  });

  it("balances MQTT (TCP and WebSocket) and the API over the three gateways' ports", () => {
    expect(cfg).toMatch(/^frontend mqtt\n\s+mode tcp\n\s+bind :1883$/m);
    expect(cfg).toMatch(/^frontend api\n\s+mode http\n\s+bind :8080$/m);
    for (const [name, port] of [
      ['gateways_mqtt', 1883],
      ['gateways_mqtt_ws', 8083],
      ['gateways_api', 8080],
    ] as const) {
      expect(backend(name)).toEqual(GATEWAYS.map((g) => `${g} ${g}:${port}`));
    }
  });
});

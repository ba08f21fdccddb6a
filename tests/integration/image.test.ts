/**
 * The image, built and run for real with podman: the local base image the Dockerfile's FROM
 * names (scripts/node-base-image.sh), `podman build` of docker/Dockerfile, and containers of it
 * with the environment docker/compose.yml gives the taihu service, the store pointed at what
 * runs here (the embedded store; Debian's influxd with the v1 API, as InfluxDB 2 cannot be
 * pulled). Devices and clients reach it only through the published ports, as in compose, and
 * Debian's Prometheus scrapes it with the configuration and bearer file compose uses.
 * Podman runs with runc and scripts/podman/containers.conf (DESIGN §11).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { DockerfileParser, From } from 'dockerfile-ast';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveDeviceSecret } from '../../src/registry/credentials.js';
import { connect, eventually, seedDevice, sleep, telemetryTopic } from '../helpers/clients.js';
import { ROOT } from '../helpers/gateway.js';
import {
  requireTool,
  freePort,
  influxql,
  manage,
  startInfluxDB,
  type TestServer,
} from '../helpers/servers.js';

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const ENV = { ...process.env, CONTAINERS_CONF: join(ROOT, 'scripts/podman/containers.conf') };
/** Where the image the tests build is tagged: podman's build cache makes the next build quick. */
const IMAGE_TAG = 'localhost/taihu:test';
/** The stop timeout compose gives the gateway (stop_grace_period), s. */
const STOP_TIMEOUT_S = 10;
/** Builds need minutes when nothing is cached: compiling better-sqlite3 alone takes one. */
const BUILD_TIMEOUT_MS = 20 * 60_000;
/** The host's CA bundle: npm inside the build trusts what the host trusts. */
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; never throws on a non-zero exit. */
function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { env: ENV, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr: err && !stderr ? String(err) : stderr });
      },
    );
  });
}

const podman = (args: string[], timeoutMs?: number) => run('podman', args, timeoutMs);

/** podman, failing the test with its output when it exits non-zero. */
async function podmanOk(args: string[], timeoutMs?: number): Promise<string> {
  const r = await podman(args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(
      `podman ${args.join(' ')} exited ${r.code}\n${(r.stderr + r.stdout).slice(-6000)}`,
    );
  }
  return r.stdout.trim();
}

// ---------------------------------------------------------------------------------------------
// What the repository says the image is
// ---------------------------------------------------------------------------------------------

const DOCKERFILE = DockerfileParser.parse(read('docker/Dockerfile'));
const FROMS = DOCKERFILE.getInstructions().filter((i): i is From => i instanceof From);
const BASE = FROMS[0]!.getImageName() + ':' + FROMS[0]!.getImageTag();
const NODE_VERSION = FROMS[0]!.getImageTag()!.replace(/-bookworm-slim$/, '');
const HEALTHCHECK = (() => {
  const hc = DOCKERFILE.getInstructions().find((i) => i.getKeyword() === 'HEALTHCHECK')!;
  const text = (hc.getArgumentsContent() ?? '').replace(/\\\r?\n/g, ' ');
  return JSON.parse(text.slice(text.indexOf('CMD') + 3).trim()) as string[];
})();

const ENV_EXAMPLE = parseEnv(read('docker/.env.example')) as Record<string, string>;
const COMPOSE = parseYaml(read('docker/compose.yml')) as {
  services: Record<string, { environment?: Record<string, string> }>;
};

/** `${VAR}`, `${VAR:-default}`, `${VAR:?error}` with docker/.env.example, as compose reads it. */
function interpolate(text: string): string {
  return text.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-?])([^}]*))?\}/g,
    (_m, name: string, op?: string, arg = '') => {
      const value = ENV_EXAMPLE[name];
      if (value !== undefined && value !== '') return value;
      if (op === '?') throw new Error(`compose would stop: ${name}: ${arg}`);
      return op === '-' ? arg : '';
    },
  );
}

/** A compose service's environment, interpolated. */
function composeEnv(service: string): Record<string, string> {
  const env = COMPOSE.services[service]?.environment;
  if (!env) throw new Error(`docker/compose.yml: service ${service} sets no environment`);
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(String(v))]));
}

const TAIHU_ENV = composeEnv('taihu');
const ADMIN_KEY = TAIHU_ENV.TAIHU_ADMIN_KEY!;
const ENROLLMENT_KEY = TAIHU_ENV.TAIHU_ENROLLMENT_KEY!;
/** The compose environment without the InfluxDB 2 settings, for the embedded store. */
const EMBEDDED_ENV = Object.fromEntries(
  Object.entries(TAIHU_ENV).filter(([k]) => k !== 'TAIHU_STORE' && !k.startsWith('TAIHU_INFLUX_')),
);

// ---------------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------------

interface Ports {
  mqtt: number;
  ws: number;
  http: number;
}

const created = { containers: new Set<string>(), volumes: new Set<string>() };
const unique = () => `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

async function freePorts(): Promise<Ports> {
  const taken = new Set<number>();
  const next = async () => {
    let p = await freePort();
    while (taken.has(p)) p = await freePort();
    taken.add(p);
    return p;
  };
  return { mqtt: await next(), ws: await next(), http: await next() };
}

/** `podman run -d` of the image as compose runs the taihu service; published on loopback. */
async function runGateway(
  image: string,
  opts: { env: Record<string, string>; volume: string; ports: Ports; network?: string },
): Promise<string> {
  const name = `taihu-test-${unique()}`;
  const args = ['run', '-d', '--name', name, '--stop-timeout', String(STOP_TIMEOUT_S)];
  // Podman would time the HEALTHCHECK through systemd, which this machine does not run; the
  // tests run it with `podman healthcheck run`.
  args.push('--health-interval', 'disable');
  if (opts.network) args.push('--network', opts.network);
  args.push('-v', `${opts.volume}:/data`);
  args.push('-p', `127.0.0.1:${opts.ports.mqtt}:1883`);
  args.push('-p', `127.0.0.1:${opts.ports.ws}:8083`);
  args.push('-p', `127.0.0.1:${opts.ports.http}:8080`);
  for (const [k, v] of Object.entries(opts.env)) args.push('-e', `${k}=${v}`);
  created.containers.add(name);
  await podmanOk([...args, image]);
  return name;
}

/** Waits until the published HTTP port answers /health. */
async function healthy(container: string, port: number): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`, {
        signal: AbortSignal.timeout(1000),
      });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    const state = await podmanOk(['inspect', '--format', '{{.State.Status}}', container]);
    if (state !== 'running' || Date.now() > until) {
      const logs = await podman(['logs', container]);
      throw new Error(
        `${container} is ${state}, /health not answering\n${logs.stdout.slice(-4000)}`,
      );
    }
    await sleep(200);
  }
}

/** The container's log lines that are JSON (TAIHU_LOG_FORMAT=json in the image). */
async function logLines(container: string): Promise<Record<string, unknown>[]> {
  const { stdout, stderr } = await podman(['logs', container]);
  return (stdout + '\n' + stderr)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A device of the seeds publishes one air-quality reading at QoS 1 over the published port. */
async function publishReading(ports: Ports, seq: number, pm25: number) {
  const device = seedDevice('air-quality', 0);
  const client = await connect(ports.mqtt, {
    clientId: device.id,
    username: device.id,
    password: deriveDeviceSecret(ENROLLMENT_KEY, device.id),
  });
  try {
    await client.publishAsync(
      telemetryTopic(device),
      JSON.stringify({ seq, data: { pm25_ugm3: pm25, pm10_ugm3: 60, no2_ugm3: 20 } }),
      { qos: 1 },
    );
  } finally {
    await client.endAsync();
  }
  return device;
}

/** The device's latest PM2.5 of the last hour, over the published HTTP port; undefined if none. */
async function lastPm25(ports: Ports, deviceId: string): Promise<number | undefined> {
  const res = await fetch(
    `http://127.0.0.1:${ports.http}/api/v1/aggregates?type=air-quality&field=pm25_ugm3&fn=last&every=1h&from=now-1h&device=${deviceId}&fill=none`,
    { headers: { authorization: `Bearer ${ADMIN_KEY}` } },
  );
  if (res.status !== 200) throw new Error(`GET /api/v1/aggregates answered ${res.status}`);
  const body = (await res.json()) as { series: { points: { value: number | null }[] }[] };
  return body.series.flatMap((s) => s.points).findLast((p) => p.value !== null)?.value ?? undefined;
}

/** `podman stop -t`, timed; the container's exit code after. */
async function stop(container: string): Promise<{ ms: number; exitCode: number }> {
  const started = Date.now();
  await podmanOk(['stop', '-t', String(STOP_TIMEOUT_S), container], 30_000);
  const ms = Date.now() - started;
  const exitCode = Number(
    await podmanOk(['inspect', '--format', '{{.State.ExitCode}}', container]),
  );
  return { ms, exitCode };
}

// ---------------------------------------------------------------------------------------------
// The build
// ---------------------------------------------------------------------------------------------

let image = '';
let work = '';

beforeAll(
  async () => {
    requireTool('podman');
    requireTool('mmdebstrap');
    const info = await podman(['info', '--format', '{{.Host.OCIRuntime.Name}}']);
    if (info.code !== 0 || info.stdout.trim() !== 'runc') {
      throw new Error(
        `podman cannot run containers here (runtime: ${info.stdout.trim() || 'none'}); it needs ` +
          `runc and scripts/podman/containers.conf (DESIGN §11):\n${info.stderr.slice(-2000)}`,
      );
    }
    work = mkdtempSync(join(tmpdir(), 'taihu-image-'));

    // The base image: built once, then reused while its tag and recipe stay the same.
    const base = await run('bash', [join(ROOT, 'scripts/node-base-image.sh')], BUILD_TIMEOUT_MS);
    if (base.code !== 0)
      throw new Error(`the base image did not build\n${base.stderr.slice(-6000)}`);

    const iidfile = join(work, 'iid');
    const started = Date.now();
    await podmanOk(
      [
        'build',
        '--pull=never',
        // The OCI format has no HEALTHCHECK: Docker's keeps it, as `docker build` does.
        '--format',
        'docker',
        // RUN steps reach the Debian archive and the npm registry as the host does.
        '--network',
        'host',
        '--volume',
        '/etc/hosts:/etc/hosts:ro',
        '--volume',
        '/etc/ssl/certs:/etc/ssl/certs:ro',
        '--build-arg',
        `NODE_EXTRA_CA_CERTS=${CA_BUNDLE}`,
        '--iidfile',
        iidfile,
        '--tag',
        IMAGE_TAG,
        '--file',
        join(ROOT, 'docker/Dockerfile'),
        ROOT,
      ],
      BUILD_TIMEOUT_MS,
    );
    image = readFileSync(iidfile, 'utf8').trim();
    const [size, layers] = (
      await podmanOk(['image', 'inspect', '--format', '{{.Size}} {{len .RootFS.Layers}}', image])
    ).split(' ');
    console.log(
      `image ${IMAGE_TAG} (${image.slice(7, 19)}) on ${BASE}: built in ` +
        `${((Date.now() - started) / 1000).toFixed(1)} s, ${(Number(size) / 1e6).toFixed(1)} MB, ${layers} layers`,
    );
  },
  BUILD_TIMEOUT_MS + 5 * 60_000,
);

afterAll(async () => {
  for (const c of created.containers) await podman(['rm', '--force', '--time', '0', c]);
  for (const v of created.volumes) await podman(['volume', 'rm', '--force', v]);
  if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

describe('the image built from docker/Dockerfile', () => {
  it(`runs Node ${NODE_VERSION}, the version the FROM pins, from the base image of that name`, async () => {
    const baseVersion = await podmanOk(['run', '--rm', '--network', 'none', BASE, 'node', '-v']);
    expect(baseVersion).toBe(`v${NODE_VERSION}`);
    const version = await podmanOk(['run', '--rm', '--network', 'none', image, 'node', '-v']);
    expect(version).toBe(`v${NODE_VERSION}`);
  });

  it("keeps the Dockerfile's HEALTHCHECK, user, volume and command in its configuration", async () => {
    const inspect = async (field: string) =>
      JSON.parse(await podmanOk(['image', 'inspect', '--format', `{{json ${field}}}`, image]));
    // Timings in ns, as Docker's image format stores them.
    expect(await inspect('.HealthCheck')).toEqual({
      Test: ['CMD', ...HEALTHCHECK],
      Interval: 15e9,
      Timeout: 5e9,
      StartPeriod: 30e9,
      Retries: 3,
    });
    const config = await inspect('.Config');
    expect(config.User).toBe('node');
    expect(Object.keys(config.Volumes)).toEqual(['/data']);
    expect(config.Entrypoint).toEqual(['docker-entrypoint.sh']);
    expect(config.Cmd).toEqual(['node', 'dist/src/main.js', 'start']);
    expect(config.Env).toContain(`NODE_VERSION=${NODE_VERSION}`);
  });
});

describe('a container of the image on the embedded store', () => {
  let ports: Ports;
  let container = '';
  const volume = `taihu-test-data-${unique()}`;
  let deviceId = '';

  beforeAll(async () => {
    ports = await freePorts();
    created.volumes.add(volume);
    await podmanOk(['volume', 'create', volume]);
    container = await runGateway(image, { env: EMBEDDED_ENV, volume, ports });
    await healthy(container, ports.http);
  }, 120_000);

  it('runs the gateway as PID 1 and as the non-root user node', async () => {
    expect(await podmanOk(['exec', container, 'id', '-un'])).toBe('node');
    expect(await podmanOk(['exec', container, 'id', '-u'])).toBe('1000');
    const cmdline = await podmanOk(['exec', container, 'cat', '/proc/1/cmdline']);
    expect(cmdline.split('\0').filter(Boolean)).toEqual(['node', 'dist/src/main.js', 'start']);
    const status = await podmanOk(['exec', container, 'cat', '/proc/1/status']);
    expect(status).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
  });

  it('keeps /data on a volume', async () => {
    const mounts = JSON.parse(
      await podmanOk(['inspect', '--format', '{{json .Mounts}}', container]),
    );
    expect(mounts).toContainEqual(
      expect.objectContaining({ Type: 'volume', Name: volume, Destination: '/data' }),
    );
  });

  it('passes the exact HEALTHCHECK, and fails it while the gateway is stopped', async () => {
    expect((await podman(['healthcheck', 'run', container])).code).toBe(0);
    // SIGSTOP: the process is there but answers nothing, as a hung gateway would. Sent from
    // the host: a container's PID 1 receives only signals it handles from inside.
    await podmanOk(['kill', '--signal', 'STOP', container]);
    try {
      const hung = await podman(['healthcheck', 'run', container], 30_000);
      expect(hung.code, hung.stdout + hung.stderr).not.toBe(0);
      expect(hung.stdout + hung.stderr).toMatch(/unhealthy/);
    } finally {
      await podmanOk(['kill', '--signal', 'CONT', container]);
    }
    expect((await podman(['healthcheck', 'run', container])).code).toBe(0);
  });

  it('takes a device reading on the published MQTT port and serves it on the published HTTP port', async () => {
    const device = await publishReading(ports, 515151, 42.25);
    deviceId = device.id;
    expect(await eventually(() => lastPm25(ports, deviceId), 10_000)).toBe(42.25);
  });

  it("is scraped by Prometheus with compose's scrape config and bearer file, the target remapped", async () => {
    const promtool = requireTool('promtool');
    // The file as it ships: its credentials file exists only in the compose service.
    const syntax = await run(promtool, [
      'check',
      'config',
      '--syntax-only',
      join(ROOT, 'docker/prometheus/prometheus.yml'),
    ]);
    expect(syntax.code, syntax.stdout + syntax.stderr).toBe(0);

    const dir = mkdtempSync(join(tmpdir(), 'taihu-prometheus-'));
    const keyFile = join(dir, 'metrics.key');
    // The compose service's command writes the key; the same shell line does it here.
    const wrote = await new Promise<number | null>((resolve) => {
      const sh = spawn(
        'sh',
        ['-c', `umask 077 && printf '%s' "$TAIHU_METRICS_KEY" > "$KEY_FILE"`],
        {
          env: { ...composeEnv('prometheus'), KEY_FILE: keyFile, PATH: process.env.PATH ?? '' },
        },
      );
      sh.once('exit', resolve);
    });
    expect(wrote).toBe(0);

    const config = parseYaml(read('docker/prometheus/prometheus.yml')) as {
      global: Record<string, string>;
      scrape_configs: {
        job_name: string;
        authorization: { credentials_file: string };
        static_configs: { targets: string[] }[];
      }[];
    };
    const job = config.scrape_configs[0]!;
    expect(job.static_configs[0]!.targets).toEqual(['taihu:8080']);
    job.static_configs[0]!.targets = [`127.0.0.1:${ports.http}`];
    job.authorization.credentials_file = keyFile;
    // A scrape a second instead of every 15 s, so the test waits little.
    config.global.scrape_interval = '1s';
    const configFile = join(dir, 'prometheus.yml');
    writeFileSync(configFile, stringifyYaml(config));
    const checked = await run(promtool, ['check', 'config', configFile]);
    expect(checked.code, checked.stdout + checked.stderr).toBe(0);

    const port = await freePort();
    const prometheus = manage({
      name: 'prometheus',
      binary: requireTool('prometheus'),
      args: [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      url: `http://127.0.0.1:${port}`,
      port,
      dataDir: dir,
      ready: async () => {
        try {
          return (await fetch(`http://127.0.0.1:${port}/-/ready`)).status === 200;
        } catch {
          return false;
        }
      },
    });
    await prometheus.start();
    try {
      type Target = { labels: { job: string }; health: string; lastError: string };
      const target = await eventually(async () => {
        const res = await fetch(`${prometheus.url}/api/v1/targets?state=active`);
        const body = (await res.json()) as { data: { activeTargets: Target[] } };
        const t = body.data.activeTargets.find((a) => a.labels.job === job.job_name);
        return t && t.health !== 'unknown' ? t : undefined;
      }, 20_000);
      expect(target.lastError).toBe('');
      expect(target.health).toBe('up');
      const query = async (q: string) => {
        const res = await fetch(
          `${prometheus.url}/api/v1/query?${new URLSearchParams({ query: q })}`,
        );
        const body = (await res.json()) as { data: { result: { value: [number, string] }[] } };
        return body.data.result.map((r) => Number(r.value[1]));
      };
      expect(await query(`up{job="${job.job_name}"}`)).toEqual([1]);
      const series = await eventually(async () => {
        const [n] = await query(`count({job="${job.job_name}",__name__=~"taihu_.+"})`);
        return n;
      }, 10_000);
      expect(series).toBeGreaterThan(0);
    } finally {
      await prometheus.stop();
    }
  }, 90_000);

  it(`stops on SIGTERM to PID 1 with exit 0 within ${STOP_TIMEOUT_S} s, the spool closed`, async () => {
    const { ms, exitCode } = await stop(container);
    expect(exitCode).toBe(0);
    expect(ms).toBeLessThan(STOP_TIMEOUT_S * 1000);
    const logs = await logLines(container);
    const msgs = logs.map((l) => l.msg);
    expect(logs).toContainEqual(
      expect.objectContaining({ msg: 'shutting down', signal: 'SIGTERM' }),
    );
    expect(msgs).toContain('spool closed');
    expect(msgs.at(-1)).toBe('taihu stopped');
  }, 60_000);

  it('keeps its readings on the volume across a restart and in a new container', async () => {
    await podmanOk(['start', container]);
    await healthy(container, ports.http);
    expect(await lastPm25(ports, deviceId)).toBe(42.25);
    // As an upgrade does: a new container of the image on the same volume.
    await podmanOk(['rm', '--force', '--time', String(STOP_TIMEOUT_S), container]);
    created.containers.delete(container);
    container = await runGateway(image, { env: EMBEDDED_ENV, volume, ports });
    await healthy(container, ports.http);
    expect(await lastPm25(ports, deviceId)).toBe(42.25);
    const { exitCode } = await stop(container);
    expect(exitCode).toBe(0);
  }, 120_000);
});

describe("a container of the image on Debian's InfluxDB, v1 API", () => {
  let influx: TestServer;
  let ports: Ports;
  let container = '';
  const volume = `taihu-test-data-${unique()}`;

  beforeAll(async () => {
    influx = await startInfluxDB();
    ports = await freePorts();
    created.volumes.add(volume);
    await podmanOk(['volume', 'create', volume]);
    // slirp4netns lets the container reach the host's loopback, where the test's influxd
    // listens, at 10.0.2.2; published ports work as on the default network.
    container = await runGateway(image, {
      env: {
        ...TAIHU_ENV,
        TAIHU_INFLUX_URL: `http://10.0.2.2:${influx.port}`,
        // Debian's influxd 1.6.7 has no /api/v2/write; compose's InfluxDB 2.7 takes v2.
        TAIHU_INFLUX_API: 'v1',
      },
      volume,
      ports,
      network: 'slirp4netns:allow_host_loopback=true',
    });
    await healthy(container, ports.http);
  }, 120_000);

  afterAll(async () => {
    await influx?.stop();
  });

  it('reports ready with InfluxDB as its store', async () => {
    const res = await fetch(`http://127.0.0.1:${ports.http}/ready`);
    const body = (await res.json()) as { checks: { store: { ok: boolean; detail: string } } };
    expect(res.status).toBe(200);
    expect(body.checks.store).toEqual({ ok: true, detail: 'influxdb' });
  });

  it('writes a device reading from the published MQTT port into InfluxDB, queryable over HTTP', async () => {
    const device = await publishReading(ports, 626262, 37.5);
    const row = await eventually(async () => {
      const body = await influxql(
        influx,
        TAIHU_ENV.TAIHU_INFLUX_BUCKET!,
        `SELECT "pm25_ugm3", "seq" FROM "air_quality" WHERE "device_id" = '${device.id}' AND time > now() - 1h`,
      );
      return body.results?.[0]?.series?.[0]?.values[0];
    }, 10_000);
    expect(row?.slice(1)).toEqual([37.5, 626262]);
    expect(await lastPm25(ports, device.id)).toBe(37.5);
  });

  it(`stops on SIGTERM to PID 1 with exit 0 within ${STOP_TIMEOUT_S} s, the spool closed`, async () => {
    const { ms, exitCode } = await stop(container);
    expect(exitCode).toBe(0);
    expect(ms).toBeLessThan(STOP_TIMEOUT_S * 1000);
    const msgs = (await logLines(container)).map((l) => l.msg);
    expect(msgs).toContain('spool closed');
    expect(msgs.at(-1)).toBe('taihu stopped');
  }, 60_000);
});

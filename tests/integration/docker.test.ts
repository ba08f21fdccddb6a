/**
 * The Docker deployment (docker/), checked without a Docker engine: the compose file against the
 * Compose Specification schema and Taihu's own configuration, the Dockerfile through a parser,
 * the Grafana provisioning and dashboard, and the image's start command run as a plain process
 * from a directory laid out the way the Dockerfile's COPY instructions lay out /app, with the
 * compose file's environment, against a real InfluxDB.
 */
import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, posix, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseEnv } from 'node:util';
import {
  DockerfileParser,
  From,
  PropertyInstruction,
  type Dockerfile,
  type Instruction,
} from 'dockerfile-ast';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, OPTIONS } from '../../src/config.js';
import { deriveDeviceSecret } from '../../src/registry/credentials.js';
import { connect, eventually, seedDevice, telemetryTopic } from '../helpers/clients.js';
import { composeValidator } from '../helpers/compose.js';
import { ROOT, runNode } from '../helpers/gateway.js';
import {
  freePort,
  startInfluxDB,
  startVictoriaMetrics,
  type TestServer,
} from '../helpers/servers.js';

const DOCKER = join(ROOT, 'docker');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

// ---------------------------------------------------------------------------------------------
// The compose file, with compose's own variable interpolation
// ---------------------------------------------------------------------------------------------

interface Healthcheck {
  test?: string | string[];
  disable?: boolean;
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
}

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  env_file?: string | string[];
  ports?: (string | number)[];
  volumes?: (string | { type?: string; source?: string; target?: string; read_only?: boolean })[];
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: Healthcheck;
  profiles?: string[];
  stop_grace_period?: string;
  entrypoint?: string | string[];
  tmpfs?: string | string[];
}

interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** `docker/.env.example`: what users copy to `docker/.env`, which compose reads for `${…}`. */
const ENV_EXAMPLE = parseEnv(read('docker/.env.example')) as Record<string, string>;

/** `$$`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `$VAR`. */
const INTERPOLATION =
  /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/** Compose's interpolation of one string; records the variables it reads in `used`. */
function interpolate(text: string, vars: Record<string, string>, used: Set<string>): string {
  return text.replace(
    INTERPOLATION,
    (_m, dollar: string | undefined, braced?: string, op?: string, arg = '', bare?: string) => {
      if (dollar) return '$';
      const name = (braced ?? bare)!;
      used.add(name);
      const value = vars[name];
      const unset = value === undefined;
      const empty = unset || value === '';
      switch (op) {
        case ':-':
          return empty ? arg : value;
        case '-':
          return unset ? arg : value;
        case ':?':
          if (empty) throw new Error(`compose would stop: ${name}: ${arg}`);
          return value;
        case '?':
          if (unset) throw new Error(`compose would stop: ${name}: ${arg}`);
          return value;
        default:
          return value ?? '';
      }
    },
  );
}

/** Interpolates every string value of a parsed YAML tree (compose leaves keys alone). */
function interpolateTree(node: unknown, vars: Record<string, string>, used: Set<string>): unknown {
  if (typeof node === 'string') return interpolate(node, vars, used);
  if (Array.isArray(node)) return node.map((n) => interpolateTree(n, vars, used));
  if (node !== null && typeof node === 'object') {
    return Object.fromEntries(
      Object.entries(node).map(([k, v]) => [k, interpolateTree(v, vars, used)]),
    );
  }
  return node;
}

const COMPOSE_RAW: unknown = parseYaml(read('docker/compose.yml'));
const INTERPOLATED = new Set<string>();
const COMPOSE_TREE = interpolateTree(COMPOSE_RAW, ENV_EXAMPLE, INTERPOLATED);
// The shape is asserted by the Compose Specification schema in the first test.
const COMPOSE = COMPOSE_TREE as ComposeFile;

function service(name: string): Service {
  const s = COMPOSE.services[name];
  if (!s) throw new Error(`docker/compose.yml has no service '${name}'`);
  return s;
}

/** A service's `environment`, map or list form, as strings. */
function environmentOf(s: Service): Record<string, string> {
  const env = s.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((kv) => {
        const i = kv.indexOf('=');
        return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/** The services that run Taihu's image (the gateway and the simulator). */
const TAIHU_SERVICES = Object.entries(COMPOSE.services)
  .filter(([, s]) => s.image === service('taihu').image)
  .map(([name]) => name);

const asList = (v: string | string[] | undefined): string[] =>
  v === undefined ? [] : Array.isArray(v) ? v : [v];

const COMPOSE_FORMATS: Record<string, RegExp> = {
  // Go durations: 10s, 1m30s, 500ms.
  duration: /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/,
  // [[ip:]host[-range]:]container[-range][/protocol]
  ports:
    /^((\[[0-9a-fA-F:.]+\]|[0-9.]+):)?((\d+(-\d+)?)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$|^\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
  expose: /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
  subnet_ip_address: /^[0-9a-fA-F:.]+\/\d{1,3}$/,
};

// ---------------------------------------------------------------------------------------------
// The Dockerfile
// ---------------------------------------------------------------------------------------------

const DOCKERFILE: Dockerfile = DockerfileParser.parse(read('docker/Dockerfile'));

interface Stage {
  readonly name: string | null;
  readonly instructions: Instruction[];
}

/** Instructions grouped by FROM, in order. */
const STAGES: Stage[] = (() => {
  const stages: { name: string | null; instructions: Instruction[] }[] = [];
  for (const ins of DOCKERFILE.getInstructions()) {
    if (ins instanceof From) stages.push({ name: ins.getBuildStage(), instructions: [ins] });
    else stages.at(-1)?.instructions.push(ins);
  }
  return stages;
})();
const FINAL = STAGES.at(-1)!;

const keyword = (stage: Stage, kw: string) =>
  stage.instructions.filter((i) => i.getKeyword() === kw);
const args = (ins: Instruction) => ins.getArguments().map((a) => a.getValue());

/** `KEY=value` pairs of an ENV, LABEL or ARG instruction. */
function properties(ins: Instruction): [string, string][] {
  if (!(ins instanceof PropertyInstruction)) return [];
  return ins.getProperties().map((p) => [p.getName(), p.getValue() ?? '']);
}

/** The exec-form JSON array after `CMD` (HEALTHCHECK) or of the whole instruction (CMD). */
function execForm(ins: Instruction): string[] {
  const text = (ins.getArgumentsContent() ?? '').replace(/\\\r?\n/g, ' ');
  const json = ins.getKeyword() === 'HEALTHCHECK' ? text.slice(text.indexOf('CMD') + 3) : text;
  const parsed: unknown = JSON.parse(json.trim());
  if (!Array.isArray(parsed) || !parsed.every((p) => typeof p === 'string')) {
    throw new Error(`${ins.getKeyword()} is not in exec form: ${text}`);
  }
  return parsed as string[];
}

const HEALTHCHECK = keyword(FINAL, 'HEALTHCHECK')[0];
const CMD = keyword(FINAL, 'CMD')[0];
/** The final stage's ENV: what every container of the image starts with. */
const IMAGE_ENV: Record<string, string> = Object.fromEntries(
  keyword(FINAL, 'ENV').flatMap(properties),
);
const WORKDIR = keyword(FINAL, 'WORKDIR').at(-1);
/** The HTTP port in a container: the image's TAIHU_HTTP_PORT, else Taihu's default. */
const IMAGE_HTTP_PORT = Number(
  IMAGE_ENV.TAIHU_HTTP_PORT ?? OPTIONS.find((o) => o.env === 'TAIHU_HTTP_PORT')?.default,
);

/** The WORKDIR a stage ends with. */
function workdirOf(stageName: string): string {
  const stage = STAGES.find((s) => s.name === stageName);
  const workdir = stage && keyword(stage, 'WORKDIR').at(-1);
  if (!workdir) throw new Error(`stage ${stageName} sets no WORKDIR`);
  return args(workdir)[0]!;
}
const FINAL_COPIES = DOCKERFILE.getCOPYs().filter(
  (c) => c.getRange().start.line >= FINAL.instructions[0]!.getRange().start.line,
);

// ---------------------------------------------------------------------------------------------
// .dockerignore, with Docker's rules: last matching pattern wins, `!` re-includes, a pattern
// matching a folder covers everything below it.
// ---------------------------------------------------------------------------------------------

const IGNORE_RULES = read('.dockerignore')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'))
  .map((line) => {
    const negate = line.startsWith('!');
    const glob = posix
      .normalize((negate ? line.slice(1) : line).replace(/^\/+/, ''))
      .replace(/\/+$/, '');
    const source = glob
      .split(/(\*\*\/|\*\*|\*|\?)/)
      .map((part) => {
        if (part === '**/') return '(.*/)?';
        if (part === '**') return '.*';
        if (part === '*') return '[^/]*';
        if (part === '?') return '[^/]';
        return part.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      })
      .join('');
    return { negate, re: new RegExp(`^${source}$`) };
  });

/** Whether `path` (relative to the repo root) is left out of the build context. */
function ignored(path: string): boolean {
  const parts = path.split('/');
  const candidates = parts.map((_p, i) => parts.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const rule of IGNORE_RULES) {
    if (candidates.some((c) => rule.re.test(c))) excluded = !rule.negate;
  }
  return excluded;
}

// ---------------------------------------------------------------------------------------------
// Grafana
// ---------------------------------------------------------------------------------------------

interface Datasource {
  name: string;
  uid: string;
  type: string;
  url: string;
  jsonData?: Record<string, unknown>;
  secureJsonData?: Record<string, string>;
}

interface Target {
  refId: string;
  datasource?: { type: string; uid: string };
  rawQuery?: boolean;
  query?: string;
  expr?: string;
}

interface Panel {
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
}

const PROVISIONING = join(DOCKER, 'grafana/provisioning');
const DATASOURCES = (
  parseYaml(readFileSync(join(PROVISIONING, 'datasources/taihu.yml'), 'utf8')) as {
    datasources: Datasource[];
  }
).datasources;
const DASHBOARD_PROVIDERS = (
  parseYaml(readFileSync(join(PROVISIONING, 'dashboards/taihu.yml'), 'utf8')) as {
    providers: { type: string; options: { path: string } }[];
  }
).providers;
const DASHBOARD = JSON.parse(read('docker/grafana/dashboards/wuxi.json')) as {
  uid: string;
  title: string;
  panels: Panel[];
};
const PANELS = DASHBOARD.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

/** Every target with the datasource that answers it (the target's, else its panel's). */
const TARGETS = PANELS.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, target: t, ds: t.datasource ?? p.datasource })),
);
const INFLUXQL = TARGETS.filter((t) => t.ds?.type === 'influxdb');
const PROMQL = TARGETS.filter((t) => t.ds?.type === 'prometheus');

/** Grafana's macros, as it expands them for a one-hour range at 10 s per point. */
function expandInfluxQL(query: string): string {
  return query
    .replaceAll('$timeFilter', 'time > now() - 1h')
    .replaceAll('$__interval_ms', '10000')
    .replaceAll('$__interval', '10s');
}
const expandPromQL = (expr: string) =>
  expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__range', '1h')
    .replaceAll('$__interval', '15s');

// ---------------------------------------------------------------------------------------------
// The device catalogue, for names the dashboard may use
// ---------------------------------------------------------------------------------------------

interface DeviceSchema {
  'x-type': string;
  'x-measurement': string;
  required: string[];
  properties: Record<string, unknown>;
}
const SCHEMAS: DeviceSchema[] = readdirSync(join(ROOT, 'schemas'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(read(`schemas/${f}`)) as DeviceSchema);
const MEASUREMENTS = new Map(SCHEMAS.map((s) => [s['x-measurement'], s]));
const TAGS = new Set(['device_id', 'district', 'site_id']);

// ---------------------------------------------------------------------------------------------
// docker/compose.yml
// ---------------------------------------------------------------------------------------------

describe('docker/compose.yml', () => {
  it('validates against the Compose Specification JSON Schema', () => {
    const validate = composeValidator(COMPOSE_FORMATS);
    const raw = validate(COMPOSE_RAW);
    expect(raw.ok, raw.errors).toBe(true);
    const tree = validate(COMPOSE_TREE);
    expect(tree.ok, tree.errors).toBe(true);
  });

  it("passes Taihu's services only variables that Taihu's configuration defines", () => {
    const known = new Set(OPTIONS.map((o) => o.env));
    expect(TAIHU_SERVICES.sort()).toEqual(['simulator', 'taihu']);
    for (const name of TAIHU_SERVICES) {
      const s = service(name);
      // An env_file would hand the gateway InfluxDB's and Grafana's passwords too.
      expect(s.env_file, `${name} uses env_file`).toBeUndefined();
      for (const key of Object.keys(environmentOf(s))) {
        expect(known.has(key), `${name}: ${key} is not a Taihu option`).toBe(true);
      }
    }
  });

  it('configures the gateway for InfluxDB v2 with every value that store needs', () => {
    const env = environmentOf(service('taihu'));
    expect(env.TAIHU_INFLUX_URL).toBe('http://influxdb:8086');
    expect(env.TAIHU_INFLUX_API).toBe('v2');
    for (const key of [
      'TAIHU_INFLUX_URL',
      'TAIHU_INFLUX_TOKEN',
      'TAIHU_INFLUX_ORG',
      'TAIHU_INFLUX_BUCKET',
      'TAIHU_ENROLLMENT_KEY',
      'TAIHU_ADMIN_KEY',
    ]) {
      expect(env[key], `${key} is empty`).toBeTruthy();
    }
    // The gateway's own validation, on the environment the container would get.
    const config = loadConfig({
      env: { ...IMAGE_ENV, ...env },
      envFile: join(DOCKER, 'no-such.env'),
    });
    expect(config.store).toBe('influxdb');
    expect(config.influxApi).toBe('v2');
    expect(config.dataDir).toBe('/data');
  });

  it('interpolates only variables that docker/.env.example defines', () => {
    expect(INTERPOLATED.size).toBeGreaterThan(0);
    for (const name of INTERPOLATED) {
      expect(ENV_EXAMPLE[name], `${name} is missing from docker/.env.example`).toBeDefined();
    }
  });

  it('sets up InfluxDB with the org, bucket and token the gateway and Grafana use', () => {
    const influx = environmentOf(service('influxdb'));
    const taihu = environmentOf(service('taihu'));
    const grafana = environmentOf(service('grafana'));
    expect(influx.DOCKER_INFLUXDB_INIT_MODE).toBe('setup');
    for (const key of ['USERNAME', 'PASSWORD', 'ORG', 'BUCKET', 'ADMIN_TOKEN']) {
      expect(influx[`DOCKER_INFLUXDB_INIT_${key}`], key).toBeTruthy();
    }
    expect(taihu.TAIHU_INFLUX_ORG).toBe(influx.DOCKER_INFLUXDB_INIT_ORG);
    expect(taihu.TAIHU_INFLUX_BUCKET).toBe(influx.DOCKER_INFLUXDB_INIT_BUCKET);
    expect(taihu.TAIHU_INFLUX_TOKEN).toBe(influx.DOCKER_INFLUXDB_INIT_ADMIN_TOKEN);
    expect(grafana.INFLUXDB_BUCKET).toBe(influx.DOCKER_INFLUXDB_INIT_BUCKET);
    expect(grafana.INFLUXDB_TOKEN).toBe(influx.DOCKER_INFLUXDB_INIT_ADMIN_TOKEN);
  });

  it('pins every image it pulls to a version', () => {
    for (const [name, s] of Object.entries(COMPOSE.services)) {
      if (s.build !== undefined) continue;
      const image = s.image ?? '';
      const tag = /:([^/:@]+)$/.exec(image)?.[1];
      expect(tag, `${name}: ${image} has no tag`).toBeDefined();
      expect(tag, `${name}: ${image}`).not.toBe('latest');
      expect(tag, `${name}: ${image} is not a version`).toMatch(/^v?\d+\.\d+\.\d+/);
    }
    expect(service('influxdb').image).toMatch(/^influxdb:2\.7\.\d+$/);
    expect(service('grafana').image).toMatch(/^grafana\/grafana:11\.\d+\.\d+$/);
  });

  it('starts each service only once what it depends on is healthy or started', () => {
    for (const [name, s] of Object.entries(COMPOSE.services)) {
      const deps = s.depends_on ?? {};
      expect(Array.isArray(deps), `${name}: depends_on needs conditions`).toBe(false);
      for (const [dep, { condition }] of Object.entries(deps)) {
        const target = service(dep);
        if (condition === 'service_healthy') {
          expect(target.healthcheck?.test, `${dep} has no healthcheck for ${name}`).toBeDefined();
          expect(target.healthcheck?.disable, `${dep}'s healthcheck is disabled`).not.toBe(true);
        }
      }
    }
    const condition = (from: string, to: string) =>
      (service(from).depends_on as Record<string, { condition: string }>)[to]?.condition;
    expect(condition('taihu', 'influxdb')).toBe('service_healthy');
    expect(condition('grafana', 'influxdb')).toBe('service_healthy');
    expect(condition('simulator', 'taihu')).toBe('service_healthy');
    expect(asList(service('influxdb').healthcheck?.test)).toEqual(['CMD', 'influx', 'ping']);
  });

  it("gives the gateway the image's healthcheck, its ports, the data volume and the stop grace its shutdown needs", () => {
    const taihu = service('taihu');
    expect(asList(taihu.healthcheck?.test)).toEqual(['CMD', ...execForm(HEALTHCHECK!)]);
    const published = (taihu.ports ?? []).map((p) => String(p).split(':').at(-1));
    expect(published).toEqual(expect.arrayContaining(['1883', '8083', '8080']));
    expect(taihu.volumes).toContain('taihu-data:/data');
    // main.ts gives a graceful shutdown 8 s; Docker kills after stop_grace_period.
    expect(taihu.stop_grace_period).toBe('10s');
    expect(taihu.build).toEqual({ context: '..', dockerfile: 'docker/Dockerfile' });
    expect(existsSync(resolve(DOCKER, '..', 'docker/Dockerfile'))).toBe(true);
    expect(Object.keys(COMPOSE.volumes ?? {})).toEqual(
      expect.arrayContaining(['influxdb-data', 'grafana-data', 'taihu-data']),
    );
  });

  it('runs the simulator from the same image, under its own profile, with the same enrollment key', () => {
    const sim = service('simulator');
    const taihu = service('taihu');
    expect(sim.profiles).toEqual(['simulator']);
    expect(sim.image).toBe(taihu.image);
    expect(sim.build).toEqual(taihu.build);
    expect(asList(sim.command)).toEqual([
      'node',
      'dist/src/main.js',
      'simulate',
      '--broker',
      'mqtt://taihu:1883',
      '--devices',
      '500',
      '--rate',
      '200',
    ]);
    expect(environmentOf(sim).TAIHU_ENROLLMENT_KEY).toBe(environmentOf(taihu).TAIHU_ENROLLMENT_KEY);
    // The image's probe asks the gateway's HTTP API, which the simulator does not serve.
    expect(sim.healthcheck?.disable).toBe(true);
  });

  it("has Prometheus scrape the gateway's /metrics with a key the gateway accepts", () => {
    const config = parseYaml(read('docker/prometheus/prometheus.yml')) as {
      scrape_configs: {
        job_name: string;
        metrics_path?: string;
        authorization?: { type?: string; credentials_file?: string };
        static_configs: { targets: string[] }[];
      }[];
    };
    const job = config.scrape_configs.find((j) => j.job_name === 'taihu');
    expect(job?.metrics_path).toBe('/metrics');
    const [host, port] = job!.static_configs[0]!.targets[0]!.split(':');
    expect(host).toBe('taihu');
    expect(port).toBe(String(IMAGE_HTTP_PORT));
    expect(job?.authorization?.type).toBe('Bearer');
    const file = job!.authorization!.credentials_file!;
    // The command writes the file from an environment variable holding the gateway's admin key.
    const prometheus = service('prometheus');
    const script = asList(prometheus.command).join(' ');
    const variable = new RegExp(`"\\$(\\w+)" > ${file} `).exec(script)?.[1];
    expect(variable, `no command writes ${file}`).toBeDefined();
    expect(environmentOf(prometheus)[variable!]).toBe(
      environmentOf(service('taihu')).TAIHU_ADMIN_KEY,
    );
    expect(script).toMatch(
      /exec \/bin\/prometheus --config\.file=\/etc\/prometheus\/prometheus\.yml/,
    );
    expect(asList(prometheus.tmpfs)).toContain(posix.dirname(file));
  });

  it('mounts files that exist in docker/', () => {
    for (const [name, s] of Object.entries(COMPOSE.services)) {
      for (const v of s.volumes ?? []) {
        const source = typeof v === 'string' ? v.split(':')[0]! : (v.source ?? '');
        if (!source.startsWith('.')) continue;
        expect(existsSync(resolve(DOCKER, source)), `${name}: ${source}`).toBe(true);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// docker/Dockerfile and .dockerignore
// ---------------------------------------------------------------------------------------------

describe('docker/Dockerfile', () => {
  it('builds in stages from one base image pinned to a Node 26 LTS release package.json accepts', () => {
    expect(STAGES.length).toBeGreaterThanOrEqual(2);
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines;
    const [minMajor, minMinor] = /(\d+)\.(\d+)/.exec(engines.node)!.slice(1).map(Number);
    const earlier = new Set<string>();
    for (const from of DOCKERFILE.getFROMs()) {
      // `FROM <earlier stage>` builds on a stage checked already.
      if (!earlier.has(from.getImageName() ?? '')) {
        const tag = from.getImageTag() ?? '';
        expect(from.getImageName()).toBe('node');
        expect(tag, `FROM ${from.getImage()}: not a full Node version`).toMatch(
          /^\d+\.\d+\.\d+-bookworm-slim$/,
        );
        const [major, minor] = tag.split('.').map(Number);
        // The supported line (README, "Node.js"): Active LTS since 2026-10-28. Node 20, the
        // oldest line the quick start runs on, is past its end of life.
        expect(major).toBe(26);
        expect(
          major! > minMajor! || (major === minMajor && minor! >= minMinor!),
          `${tag} < ${engines.node}`,
        ).toBe(true);
      }
      const stage = from.getBuildStage();
      if (stage) earlier.add(stage);
    }
    // The native better-sqlite3 addon built in the first stage must load in the last.
    expect(new Set(DOCKERFILE.getFROMs().map((f) => f.getImage())).size).toBe(1);
  });

  it('compiles in the build stage and keeps only production dependencies', () => {
    const build = STAGES[0]!;
    const runs = keyword(build, 'RUN').map((r) => args(r).join(' '));
    // From source, against the base image's own headers: node-gyp downloads nothing.
    expect(
      runs.some((r) =>
        /npm_config_build_from_source=true npm_config_nodedir=\/usr\/local npm ci\b/.test(r),
      ),
    ).toBe(true);
    expect(runs.some((r) => /npm run build/.test(r))).toBe(true);
    expect(runs.some((r) => /npm prune --omit=dev/.test(r))).toBe(true);
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toMatch(/^tsc -p tsconfig\.json$/);
    const tsconfig = JSON.parse(read('tsconfig.json')) as { compilerOptions: { outDir: string } };
    expect(tsconfig.compilerOptions.outDir).toBe('dist');
  });

  it("copies into the build stage every folder the start command's code is compiled from", () => {
    const copied = new Set(
      keyword(STAGES[0]!, 'COPY').flatMap((c) =>
        args(c)
          .slice(0, -1)
          .map((a) => a.split('/')[0]),
      ),
    );
    // The relative imports of dist/src/main.js, followed through the compiled output.
    const seen = new Set<string>();
    const queue = [join(ROOT, execForm(CMD!)[1]!)];
    while (queue.length > 0) {
      const file = queue.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const code = readFileSync(file, 'utf8');
      for (const [, spec] of code.matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)) {
        queue.push(resolve(file, '..', spec!));
      }
    }
    const folders = new Set(
      [...seen].map((f) => f.slice(join(ROOT, 'dist').length + 1).split('/')[0]),
    );
    expect(folders.size).toBeGreaterThan(0);
    for (const folder of folders) {
      expect(copied.has(folder), `${folder}/ is compiled into dist but not copied`).toBe(true);
    }
  });

  it('runs the final stage as a non-root user with /data as its volume', () => {
    const user = keyword(FINAL, 'USER').at(-1);
    expect(user, 'no USER in the final stage').toBeDefined();
    const name = args(user!)[0]!.split(':')[0];
    expect(['root', '0']).not.toContain(name);
    expect(keyword(FINAL, 'VOLUME').flatMap(args)).toContain('/data');
    expect(IMAGE_ENV.TAIHU_DATA_DIR).toBe('/data');
    const chown = keyword(FINAL, 'RUN')
      .map((r) => args(r).join(' '))
      .find((r) => r.includes('/data'));
    expect(chown).toMatch(new RegExp(`chown ${name}(:${name})? /data`));
  });

  it('sets container defaults that Taihu understands', () => {
    const known = new Set(OPTIONS.map((o) => o.env));
    for (const key of Object.keys(IMAGE_ENV)) {
      if (key === 'NODE_ENV' || key === 'NODE_OPTIONS') continue;
      expect(known.has(key), `ENV ${key} is not a Taihu option`).toBe(true);
    }
    expect(IMAGE_ENV).toMatchObject({
      TAIHU_HTTP_HOST: '0.0.0.0',
      TAIHU_MQTT_HOST: '0.0.0.0',
      TAIHU_LOG_FORMAT: 'json',
      NODE_ENV: 'production',
    });
  });

  it('checks its health against /health without curl or wget', () => {
    expect(keyword(FINAL, 'HEALTHCHECK')).toHaveLength(1);
    const command = execForm(HEALTHCHECK!);
    expect(command[0]).toBe('node');
    expect(command.join(' ')).toContain('/health');
    expect(command.join(' ')).not.toMatch(/\b(curl|wget)\b/);
  });

  it('exposes the MQTT, WebSocket, TLS and HTTP ports', () => {
    const ports = keyword(FINAL, 'EXPOSE').flatMap(args);
    expect(ports).toEqual(expect.arrayContaining(['1883', '8083', '8883', '8080']));
  });

  it('stops with SIGTERM sent straight to node', () => {
    expect(keyword(FINAL, 'STOPSIGNAL').flatMap(args)).toEqual(['SIGTERM']);
    // Exec form: no shell in between to swallow the signal.
    expect(keyword(FINAL, 'ENTRYPOINT')).toHaveLength(0);
    expect(execForm(CMD!)[0]).toBe('node');
  });

  it('copies only files that exist and that .dockerignore lets into the build context', () => {
    const copies = DOCKERFILE.getCOPYs();
    expect(copies.length).toBeGreaterThan(0);
    const stages = STAGES.map((s) => s.name);
    for (const copy of copies) {
      const [...sources] = args(copy).slice(0, -1);
      const from = copy.getFromFlag()?.getValue();
      if (from) {
        const index = stages.indexOf(from);
        expect(index, `COPY --from=${from}: no such stage`).toBeGreaterThanOrEqual(0);
        const stageWorkdir = workdirOf(from);
        for (const source of sources) {
          // The build stage's WORKDIR holds a copy of the context, node_modules and dist.
          expect(source.startsWith(`${stageWorkdir}/`), source).toBe(true);
          const relative = source.slice(stageWorkdir.length + 1);
          expect(existsSync(join(ROOT, relative)), `${source}: not in the repo or build`).toBe(
            true,
          );
        }
        continue;
      }
      for (const source of sources) {
        expect(existsSync(join(ROOT, source)), `COPY ${source}: no such file`).toBe(true);
        expect(ignored(source), `COPY ${source}: excluded by .dockerignore`).toBe(false);
      }
    }
  });

  it('starts a file the build produces', () => {
    const command = execForm(CMD!);
    expect(command).toEqual(['node', 'dist/src/main.js', 'start']);
    expect(args(WORKDIR!)).toEqual(['/app']);
    const dist = FINAL_COPIES.find((c) => args(c).at(-1) === './dist');
    expect(dist?.getFromFlag()?.getValue()).toBe(STAGES[0]!.name);
    // src/main.ts, compiled by `npm run build` (run by the test setup too).
    expect(existsSync(join(ROOT, 'src/main.ts'))).toBe(true);
    expect(existsSync(join(ROOT, command[1]!))).toBe(true);
    const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string> };
    expect(pkg.bin.taihu).toBe(command[1]);
  });

  it('labels the image with OCI metadata that matches package.json', () => {
    const pkg = JSON.parse(read('package.json')) as {
      version: string;
      license: string;
      description: string;
    };
    const labels = Object.fromEntries(keyword(FINAL, 'LABEL').flatMap(properties));
    const buildArgs = Object.fromEntries(keyword(FINAL, 'ARG').flatMap(properties));
    const expand = (v: string) => v.replace(/\$\{(\w+)\}/g, (_m, n: string) => buildArgs[n] ?? '');
    for (const key of ['title', 'description', 'source', 'licenses', 'version']) {
      expect(labels[`org.opencontainers.image.${key}`], key).toBeDefined();
    }
    expect(expand(labels['org.opencontainers.image.version']!)).toBe(pkg.version);
    expect(labels['org.opencontainers.image.licenses']).toBe(pkg.license);
    expect(labels['org.opencontainers.image.description']).toBe(pkg.description);
  });

  it('.dockerignore keeps local state and secrets out of the build context', () => {
    for (const path of [
      'node_modules',
      'node_modules/fastify/package.json',
      'dist/src/main.js',
      'data/spool/000001.log',
      'data/enrollment.key',
      '.git/config',
      '.env',
      'docker/.env',
      'src/.env',
      'test-output/x.json',
      'coverage/index.html',
      'tests/integration/docker.test.ts',
    ]) {
      expect(ignored(path), path).toBe(true);
    }
    for (const path of ['package.json', 'package-lock.json', 'src/main.ts', 'schemas', 'seeds']) {
      expect(ignored(path), path).toBe(false);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Grafana provisioning and the Wuxi dashboard
// ---------------------------------------------------------------------------------------------

describe('Grafana provisioning', () => {
  const grafana = service('grafana');
  /** The container path of a `./host/path:/container/path[:ro]` mount of the grafana service. */
  const mount = (hostPath: string) =>
    (grafana.volumes ?? [])
      .filter((v): v is string => typeof v === 'string')
      .map((v) => v.split(':'))
      .find(([host]) => host === hostPath);

  it('mounts the provisioning and dashboards folders read-only', () => {
    expect(mount('./grafana/provisioning')).toEqual([
      './grafana/provisioning',
      '/etc/grafana/provisioning',
      'ro',
    ]);
    expect(mount('./grafana/dashboards')?.[2]).toBe('ro');
  });

  it('provides InfluxDB as an InfluxQL source whose database is the bucket, with a token header', () => {
    const influx = DATASOURCES.find((d) => d.type === 'influxdb');
    expect(influx).toBeDefined();
    expect(influx!.url).toBe('http://influxdb:8086');
    expect(influx!.jsonData).toMatchObject({
      version: 'InfluxQL',
      dbName: '${INFLUXDB_BUCKET}',
      httpHeaderName1: 'Authorization',
    });
    expect(influx!.secureJsonData?.httpHeaderValue1).toBe('Token ${INFLUXDB_TOKEN}');
    // Grafana expands those from its own environment.
    const env = environmentOf(grafana);
    expect(env.INFLUXDB_BUCKET).toBeTruthy();
    expect(env.INFLUXDB_TOKEN).toBeTruthy();
    for (const d of DATASOURCES) {
      const host = new URL(d.url).hostname;
      expect(COMPOSE.services[host], `${d.name}: no service ${host}`).toBeDefined();
    }
  });

  it('reads dashboards from the folder compose mounts', () => {
    const target = mount('./grafana/dashboards')?.[1];
    expect(DASHBOARD_PROVIDERS.map((p) => [p.type, p.options.path])).toEqual([['file', target]]);
    expect(environmentOf(grafana).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH).toBe(
      `${target}/${basename('docker/grafana/dashboards/wuxi.json')}`,
    );
  });

  it('gives every dashboard target a query for a provisioned datasource', () => {
    expect(DASHBOARD.title).toBe('Taihu — Wuxi city');
    const uids = new Set(DATASOURCES.map((d) => d.uid));
    expect(TARGETS.length).toBeGreaterThan(0);
    for (const { panel, target, ds } of TARGETS) {
      expect(uids.has(ds?.uid ?? ''), `${panel}: datasource ${ds?.uid}`).toBe(true);
      if (ds?.type === 'influxdb') {
        expect(target.rawQuery, `${panel}/${target.refId}`).toBe(true);
        expect(target.query, `${panel}/${target.refId}`).toMatch(/^SELECT /);
      } else {
        expect(target.expr, `${panel}/${target.refId}`).toBeTruthy();
      }
    }
  });

  it('shows traffic, air, the lake, devices, ingest, rejections and the spool', () => {
    const queries = INFLUXQL.map((t) => t.target.query ?? '');
    const exprs = PROMQL.map((t) => t.target.expr ?? '');
    const has = (list: string[], re: RegExp) =>
      expect(
        list.some((q) => re.test(q)),
        String(re),
      );
    has(
      queries,
      /mean\("speed_kmh"\) FROM "traffic_flow".*GROUP BY time\(\$__interval\), "district"/,
    ).toBe(true);
    has(queries, /mean\("pm25_ugm3"\) FROM "air_quality".*"site_id"/).toBe(true);
    for (const field of ['dissolved_oxygen_mgl', 'chlorophyll_a_ugl', 'ph']) {
      has(queries, new RegExp(`\\("${field}"\\) FROM "water_quality"`)).toBe(true);
    }
    has(exprs, /taihu_connected_devices/).toBe(true);
    has(exprs, /taihu_ingest_messages_total/).toBe(true);
    has(exprs, /taihu_rejections_total/).toBe(true);
    has(exprs, /taihu_spool_bytes/).toBe(true);
  });

  it('counts devices and stored readings for every device type', () => {
    for (const title of ['Devices reporting, by type', 'Readings stored per second, by type']) {
      const panel = PANELS.find((p) => p.title === title);
      expect(panel, title).toBeDefined();
      const measured = new Set(
        (panel!.targets ?? []).map((t) => /FROM "(\w+)"\s+WHERE/.exec(t.query ?? '')?.[1]),
      );
      expect([...measured].sort(), title).toEqual([...MEASUREMENTS.keys()].sort());
    }
  });

  it('queries only measurements, fields and tags the device schemas define', () => {
    for (const { panel, target } of INFLUXQL) {
      const q = target.query ?? '';
      const aliases = new Set([...q.matchAll(/AS "(\w+)"/g)].map((m) => m[1]));
      const measurements = [...q.matchAll(/FROM "(\w+)"/g)].map((m) => m[1]!);
      expect(measurements.length, panel).toBeGreaterThan(0);
      for (const m of measurements) {
        const schema = MEASUREMENTS.get(m);
        expect(schema, `${panel}: measurement ${m}`).toBeDefined();
        for (const [, field] of q.matchAll(/\w+\("(\w+)"\)/g)) {
          if (aliases.has(field)) continue;
          expect(field === 'seq' || field! in schema!.properties, `${panel}: field ${field}`).toBe(
            true,
          );
        }
      }
      // A GROUP BY runs to its fill(), to the end of its subquery, or to the end.
      const groupBys = [...q.matchAll(/GROUP BY (.*?)(?= fill\(|\)\s*$|\)\s+WHERE|$)/g)];
      expect(groupBys.length, panel).toBeGreaterThan(0);
      for (const [, groupBy] of groupBys) {
        for (const [, tag] of groupBy!.matchAll(/"(\w+)"/g)) {
          expect(TAGS.has(tag!), `${panel}: tag ${tag}`).toBe(true);
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The image's start command, as a plain process
// ---------------------------------------------------------------------------------------------

/**
 * A folder laid out as the final stage's COPY instructions lay out its WORKDIR: what the image
 * holds and nothing else (no .env, no src/). node_modules is linked rather than copied; the
 * image's is pruned to production dependencies, which only a real build can prove sufficient.
 */
function imageWorkdir(): string {
  const app = mkdtempSync(join(tmpdir(), 'taihu-image-app-'));
  for (const copy of FINAL_COPIES) {
    const all = args(copy);
    const dest = join(app, all.at(-1)!);
    const from = copy.getFromFlag()?.getValue();
    const fromWorkdir = from ? workdirOf(from) : undefined;
    for (const source of all.slice(0, -1)) {
      const inRepo = join(ROOT, fromWorkdir ? source.slice(fromWorkdir.length + 1) : source);
      if (basename(inRepo) === 'node_modules') symlinkSync(inRepo, dest, 'dir');
      else cpSync(inRepo, dest, { recursive: true });
    }
  }
  return app;
}

interface LogLine {
  msg: string;
  [k: string]: unknown;
}

interface Started {
  readonly ports: { mqtt: number; ws: number; http: number };
  readonly logs: LogLine[];
  readonly exited: Promise<number | null>;
  readonly kill: (signal: NodeJS.Signals) => void;
  readonly running: () => boolean;
}

/** Runs argv in cwd with env; resolves once the gateway logs `taihu listening`. */
function startCommand(argv: string[], cwd: string, env: Record<string, string>): Promise<Started> {
  const child = spawn(process.execPath, argv.slice(1), {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the gateway did not start in 20 s\n${stderr}`));
    }, 20_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      let entry: LogLine;
      try {
        entry = JSON.parse(line) as LogLine;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'taihu listening') {
        clearTimeout(timer);
        resolveStart({
          ports: entry.ports as Started['ports'],
          logs,
          exited,
          kill: (signal) => child.kill(signal),
          running: () => child.exitCode === null && child.signalCode === null,
        });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited with ${code} before listening\n${stderr}`));
    });
  });
}

/** Runs an exec-form command (`node …`) with this Node to its end. */
const runToEnd = (argv: string[], cwd: string, env: Record<string, string>, timeoutMs: number) =>
  runNode(argv.slice(1), env, timeoutMs, cwd);

interface InfluxResult {
  error?: string;
  series?: {
    name: string;
    tags?: Record<string, string>;
    columns: string[];
    values: unknown[][];
  }[];
}

/** An InfluxQL query over /query, as Grafana's InfluxDB datasource sends it. */
async function influxql(url: string, db: string, q: string) {
  const res = await fetch(`${url}/query?${new URLSearchParams({ db, q, epoch: 'ms' })}`);
  const body = (await res.json()) as { error?: string; results?: InfluxResult[] };
  return { status: res.status, body };
}

describe("the image's start command, run as a plain process with the compose environment", () => {
  let influx: TestServer;
  let app: string;
  let dataDir: string;
  let gateway: Started;
  const taihuEnv = environmentOf(service('taihu'));
  const bucket = taihuEnv.TAIHU_INFLUX_BUCKET!;
  const enrollmentKey = taihuEnv.TAIHU_ENROLLMENT_KEY!;

  beforeAll(async () => {
    influx = await startInfluxDB();
    app = imageWorkdir();
    dataDir = mkdtempSync(join(tmpdir(), 'taihu-image-data-'));
    gateway = await startCommand(execForm(CMD!), app, {
      PATH: process.env.PATH ?? '',
      ...IMAGE_ENV,
      ...taihuEnv,
      // Outside a container: loopback, free ports and a temp dir in place of the /data volume.
      TAIHU_DATA_DIR: dataDir,
      TAIHU_MQTT_HOST: '127.0.0.1',
      TAIHU_HTTP_HOST: '127.0.0.1',
      TAIHU_MQTT_PORT: '0',
      TAIHU_MQTT_WS_PORT: '0',
      TAIHU_HTTP_PORT: '0',
      // The test InfluxDB in place of the compose service. It is Debian's influxd 1.6.7, which
      // has no /api/v2/write, so the v1 write API is used here; compose runs InfluxDB 2.7 with
      // v2. Token, org and bucket stay as compose sets them (the bucket is the v1 database).
      TAIHU_INFLUX_URL: influx.url,
      TAIHU_INFLUX_API: 'v1',
    });
  });

  afterAll(async () => {
    if (gateway?.running()) {
      gateway.kill('SIGKILL');
      await gateway.exited;
    }
    await influx?.stop();
    for (const dir of [app, dataDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reports ready with InfluxDB as its store', async () => {
    const res = await fetch(`http://127.0.0.1:${gateway.ports.http}/ready`);
    const body = (await res.json()) as { checks: { store: { ok: boolean; detail: string } } };
    expect(res.status).toBe(200);
    expect(body.checks.store).toEqual({ ok: true, detail: 'influxdb' });
  });

  it('answers the image HEALTHCHECK command, and the same probe fails where nothing listens', async () => {
    const probe = execForm(HEALTHCHECK!);
    const run = (port: number) =>
      runToEnd(probe, app, { PATH: process.env.PATH ?? '', TAIHU_HTTP_PORT: String(port) }, 10_000);
    expect((await run(gateway.ports.http)).code).toBe(0);
    expect((await run(await freePort())).code).toBe(1);
  });

  it('ingests a reading from a device into InfluxDB', async () => {
    const device = seedDevice('air-quality', 0);
    const client = await connect(gateway.ports.mqtt, {
      clientId: device.id,
      username: device.id,
      password: deriveDeviceSecret(enrollmentKey, device.id),
    });
    try {
      await client.publishAsync(
        telemetryTopic(device),
        JSON.stringify({ seq: 424242, data: { pm25_ugm3: 35.5, pm10_ugm3: 60, no2_ugm3: 20 } }),
        { qos: 1 },
      );
    } finally {
      await client.endAsync();
    }
    const row = await eventually(async () => {
      const { body } = await influxql(
        influx.url,
        bucket,
        `SELECT "pm25_ugm3", "seq" FROM "air_quality" WHERE "device_id" = '${device.id}' AND time > now() - 1h`,
      );
      return body.results?.[0]?.series?.[0]?.values[0];
    }, 10_000);
    expect(row?.slice(1)).toEqual([35.5, 424242]);
  });

  it("carries the simulator service's traffic into InfluxDB", async () => {
    const simulator = service('simulator');
    const simData = mkdtempSync(join(tmpdir(), 'taihu-image-sim-'));
    try {
      const argv = asList(simulator.command).map((a) =>
        a === 'mqtt://taihu:1883' ? `mqtt://127.0.0.1:${gateway.ports.mqtt}` : a,
      );
      const result = await runToEnd(
        [...argv, '--duration', '3s'],
        app,
        {
          PATH: process.env.PATH ?? '',
          ...IMAGE_ENV,
          ...environmentOf(simulator),
          TAIHU_DATA_DIR: simData,
        },
        30_000,
      );
      expect(result.code, result.stderr).toBe(0);
    } finally {
      rmSync(simData, { recursive: true, force: true });
    }
    // Every device type shows up in InfluxDB once the spool has drained.
    await eventually(async () => {
      const { body } = await influxql(influx.url, bucket, 'SHOW MEASUREMENTS');
      const names = new Set(body.results?.[0]?.series?.[0]?.values.map((v) => v[0]));
      return [...MEASUREMENTS.keys()].every((m) => names.has(m));
    }, 15_000);
  });

  it('answers every InfluxQL query of the dashboard with data it wrote', async () => {
    expect(INFLUXQL.length).toBeGreaterThan(0);
    for (const { panel, target } of INFLUXQL) {
      const q = expandInfluxQL(target.query!);
      const { status, body } = await influxql(influx.url, bucket, q);
      expect(status, `${panel}: ${q}`).toBe(200);
      expect(body.error, `${panel}: ${q}`).toBeUndefined();
      expect(body.results?.[0]?.error, `${panel}: ${q}`).toBeUndefined();
      expect(body.results?.[0]?.series?.length, `${panel}: no data for ${q}`).toBeGreaterThan(0);
    }
  });

  it('serves every metric the Prometheus panels read, in queries a PromQL engine accepts', async () => {
    // With the key the prometheus service scrapes with.
    const key = environmentOf(service('prometheus')).TAIHU_METRICS_KEY;
    const res = await fetch(`http://127.0.0.1:${gateway.ports.http}/metrics`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect(res.status, 'GET /metrics').toBe(200);
    const exposition = await res.text();
    for (const { panel, target } of PROMQL) {
      // MetricsQL, below, would also take a rate() without a range; Prometheus would not.
      expect(target.expr, panel).not.toMatch(/\b(rate|increase|irate)\(\s*\w+\s*\)/);
      for (const [name] of target.expr!.matchAll(/\btaihu_\w+/g)) {
        expect(exposition, `${panel}: ${name}`).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
      }
    }
    // VictoriaMetrics answers the Prometheus query API; its MetricsQL extends PromQL.
    const vm = await startVictoriaMetrics();
    try {
      const imported = await fetch(`${vm.url}/api/v1/import/prometheus`, {
        method: 'POST',
        body: exposition,
      });
      expect(imported.status).toBe(204);
      for (const { panel, target } of PROMQL) {
        const query = expandPromQL(target.expr!);
        const answer = await fetch(`${vm.url}/api/v1/query?${new URLSearchParams({ query })}`);
        const body = (await answer.json()) as { status: string; error?: string };
        expect(body, `${panel}: ${query}`).toMatchObject({ status: 'success' });
      }
    } finally {
      await vm.stop();
    }
  });

  it("stops cleanly on SIGTERM within Docker's 10 s stop grace", async () => {
    const started = Date.now();
    gateway.kill('SIGTERM');
    const code = await gateway.exited;
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(gateway.logs.some((l) => l.msg === 'shutting down')).toBe(true);
  });
});

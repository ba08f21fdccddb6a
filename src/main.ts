#!/usr/bin/env -S node --max-semi-space-size=64
/**
 * The `taihu` command: the process entry. Reads config, builds and starts the
 * gateway, handles signals, and is the only place that exits the process.
 */
import { readFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig, OPTIONS, PACKAGE_ROOT, parseDuration, type Config } from './config.js';
import { CODES, TaihuError } from './errors.js';
import { createGateway, type Gateway } from './gateway.js';
import { loadCatalog } from './ingest/catalog.js';
import { readOrCreateKeyFile } from './registry/credentials.js';
import { loadSeeds } from './registry/seeds.js';
import { createLogger, type Logger } from './telemetry/logger.js';
import {
  FAULT_KINDS,
  formatProgress,
  pickDevices,
  simulate,
  type FaultKind,
  type Progress,
} from '../devices/simulate.js';

/** History the demo publishes before going live. */
const DEMO_BACKFILL_MS = 6 * 3_600_000;

/** How long a graceful shutdown may take before the process exits anyway (Docker waits 10 s). */
const SHUTDOWN_DEADLINE_MS = 8_000;

const VERSION = (
  JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

// A reader that goes away (a closed pipe) must not take the gateway down with it: logs are
// lost, readings are not.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

/** `--mqtt-port` for TAIHU_MQTT_PORT, and so on. */
function flagOf(env: string): string {
  return env
    .replace(/^TAIHU_/, '')
    .toLowerCase()
    .replaceAll('_', '-');
}

function addConfigFlags(cmd: Command): Command {
  for (const o of OPTIONS) {
    const flag = flagOf(o.env);
    cmd.addOption(
      new Option(
        `--${flag} <value>`,
        `${o.doc} [${o.env}]${o.default ? ` (default: ${o.default})` : ''}`,
      ),
    );
  }
  return cmd.addOption(
    new Option('--env-file <path>', 'read variables from this file').default('.env'),
  );
}

function configFrom(opts: Record<string, string | undefined>): Readonly<Config> {
  const overrides: Record<string, string | undefined> = {};
  for (const o of OPTIONS) {
    const key = flagOf(o.env).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    if (opts[key] !== undefined) overrides[o.env] = opts[key];
  }
  return loadConfig({ overrides, envFile: opts.envFile, isTTY: Boolean(process.stdout.isTTY) });
}

/** Closes the gateway on SIGINT/SIGTERM within the deadline, then exits. */
function exitOnSignals(log: Logger, close: () => Promise<void>): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    // The deadline first: logging can fail (a closed stdout pipe) and must not stop the exit.
    const timer = setTimeout(() => process.exit(1), SHUTDOWN_DEADLINE_MS);
    timer.unref();
    log.info({ signal, deadlineMs: SHUTDOWN_DEADLINE_MS }, 'shutting down');
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

async function startGateway(config: Readonly<Config>, log: Logger): Promise<Gateway> {
  const gateway = await createGateway(config, log);
  await gateway.start();
  return gateway;
}

function positiveNumber(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

function ratio(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw new InvalidArgumentError('must be between 0 and 1');
  return n;
}

function duration(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new InvalidArgumentError('must be a duration such as 30s, 5m or 2h');
  return ms;
}

interface SimFlags {
  broker?: string;
  devices: number;
  types?: string;
  district?: string;
  rate: number;
  duration?: number;
  backfill?: number;
  faults: number;
  faultKinds?: string;
  seed: number;
  qos: string;
  enrollmentKey?: string;
  dataDir?: string;
}

function addSimulatorFlags(cmd: Command, defaults: { devices: number; rate: number }): Command {
  return cmd
    .option(
      '--devices <n>',
      'how many seeded devices to play (spread over every type)',
      positiveNumber,
      defaults.devices,
    )
    .option('--types <list>', 'only these device types, comma-separated (e.g. air-quality,parking)')
    .option('--district <id>', 'only devices in this district (e.g. binhu)')
    .option(
      '--rate <msgs/s>',
      'messages per second over all devices',
      positiveNumber,
      defaults.rate,
    )
    .option(
      '--duration <time>',
      'stop after this long, e.g. 30s or 10m (default: until Ctrl-C)',
      duration,
    )
    .option(
      '--backfill <time>',
      'first publish this much history (e.g. 24h) as fast as the gateway acknowledges it',
      duration,
    )
    .option('--faults <ratio>', 'share of deliberately broken messages, 0..1', ratio, 0)
    .option('--fault-kinds <list>', `which faults to play (default all): ${FAULT_KINDS.join(', ')}`)
    .option(
      '--seed <n>',
      'random seed: the same seed plays the same readings',
      (t) => Number.parseInt(t, 10),
      1,
    )
    .option('--qos <0|1>', 'MQTT QoS of telemetry', '1');
}

/** Loads the seeded devices the simulator should play, checking the filters. */
function simulatedDevices(config: Readonly<Config>, flags: SimFlags) {
  const catalog = loadCatalog(config.schemasDir);
  const seeds = loadSeeds(config.seedsDir, catalog);
  const types = flags.types
    ?.split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  for (const t of types ?? []) {
    if (!catalog.has(t))
      throw new TaihuError(
        CODES.CLI,
        `--types: unknown device type "${t}"; known: ${catalog
          .list()
          .map((x) => x.type)
          .join(', ')}`,
      );
  }
  if (flags.district && !seeds.districts.some((d) => d.id === flags.district)) {
    throw new TaihuError(
      CODES.CLI,
      `--district: unknown district "${flags.district}"; known: ${seeds.districts.map((d) => d.id).join(', ')}`,
    );
  }
  const pool = seeds.devices.filter(
    (d) => (!types || types.includes(d.type)) && (!flags.district || d.district === flags.district),
  );
  const intervalMsOf = (type: string) => (catalog.get(type)?.intervalSeconds ?? 60) * 1000;
  return { devices: pickDevices(pool, flags.devices), intervalMsOf };
}

/** A live progress line on a terminal, a line every 5 s elsewhere. */
function progressPrinter(): { onProgress: (p: Progress) => void; done: () => void } {
  const tty = Boolean(process.stderr.isTTY);
  let lastLine = 0;
  return {
    onProgress(p) {
      if (tty) process.stderr.write(`\r\x1b[K${formatProgress(p)}`);
      else if (p.elapsedMs - lastLine >= 5000) {
        lastLine = p.elapsedMs;
        process.stderr.write(`${formatProgress(p)}\n`);
      }
    },
    done() {
      if (tty) process.stderr.write('\n');
    },
  };
}

function printSummary(p: Progress): void {
  const secs = p.elapsedMs / 1000;
  process.stdout.write(
    `simulated ${p.devices} devices for ${secs.toFixed(1)} s: sent ${p.sent}, acked ${p.acked} ` +
      `(${(p.acked / Math.max(secs, 0.001)).toFixed(0)}/s), rejected ${p.rejected}; ` +
      `readings acked ${p.readingsAcked}, connections refused ${p.refused}\n`,
  );
}

async function runSimulator(
  config: Readonly<Config>,
  flags: SimFlags,
  broker: string,
  enrollmentKey: string,
  signal: AbortSignal,
): Promise<Progress> {
  const { devices, intervalMsOf } = simulatedDevices(config, flags);
  const faultKinds = flags.faultKinds?.split(',').map((k) => k.trim());
  for (const k of faultKinds ?? []) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) {
      throw new TaihuError(
        CODES.CLI,
        `--fault-kinds: unknown fault "${k}"; known: ${FAULT_KINDS.join(', ')}`,
      );
    }
  }
  const printer = progressPrinter();
  const result = await simulate({
    broker,
    enrollmentKey,
    devices,
    intervalMsOf,
    rate: flags.rate,
    durationMs: flags.duration,
    backfillMs: flags.backfill,
    faults: flags.faults,
    faultKinds: faultKinds as FaultKind[] | undefined,
    seed: flags.seed,
    qos: flags.qos === '0' ? 0 : 1,
    signal,
    onProgress: printer.onProgress,
  });
  printer.done();
  return result;
}

function abortOnSignals(): AbortController {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return ac;
}

const program = new Command('taihu')
  .description('Taihu: an IoT sensor ingestion gateway for city sensor networks')
  .version(VERSION)
  .showHelpAfterError();

addConfigFlags(
  program
    .command('start')
    .description('run the gateway: MQTT broker, ingest, storage and HTTP API')
    .addHelpText(
      'after',
      '\nEvery flag can also be set by its TAIHU_* environment variable or in .env.',
    ),
).action(async (opts: Record<string, string | undefined>) => {
  const config = configFrom(opts);
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  const gateway = await startGateway(config, log);
  exitOnSignals(log, () => gateway.close());
});

addSimulatorFlags(
  program
    .command('simulate')
    .description('play seeded Wuxi devices against a gateway over MQTT')
    .option(
      '--broker <url>',
      'broker URL, mqtt://host:port or ws://host:port/mqtt (default: the local gateway)',
    )
    .option(
      '--enrollment-key <key>',
      'enrollment key (default: TAIHU_ENROLLMENT_KEY or DATA_DIR/enrollment.key)',
    )
    .option('--data-dir <dir>', 'the gateway data dir holding enrollment.key'),
  { devices: 200, rate: 100 },
).action(async (flags: SimFlags) => {
  const config = loadConfig({ overrides: { TAIHU_DATA_DIR: flags.dataDir }, isTTY: false });
  const enrollmentKey =
    flags.enrollmentKey ??
    config.enrollmentKey ??
    readOrCreateKeyFile(join(config.dataDir, 'enrollment.key')).key;
  const broker = flags.broker ?? `mqtt://127.0.0.1:${config.mqttPort}`;
  const ac = abortOnSignals();
  printSummary(await runSimulator(config, flags, broker, enrollmentKey, ac.signal));
  process.exit(0);
});

addSimulatorFlags(
  addConfigFlags(
    program
      .command('demo')
      .description(
        'run the gateway on the embedded store together with simulated Wuxi devices, and print example queries',
      ),
  ),
  { devices: 300, rate: 150 },
).action(async (opts: Record<string, string | undefined> & SimFlags) => {
  opts.logLevel ??= process.env.TAIHU_LOG_LEVEL ?? 'warn';
  // Six hours of history first, so the example queries have a shape to show at once.
  opts.backfill ??= DEMO_BACKFILL_MS;
  const config = configFrom(opts);
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  const gateway = await createGateway(config, log);
  const ports = await gateway.start();
  const key = config.adminKey ?? readFileSync(join(config.dataDir, 'admin.key'), 'utf8').trim();
  const base = `http://127.0.0.1:${ports.http}`;
  const auth = `-H 'Authorization: Bearer ${key}'`;
  process.stdout.write(
    [
      '',
      `Taihu is running: MQTT mqtt://127.0.0.1:${ports.mqtt} (WebSocket ws://127.0.0.1:${ports.ws}/mqtt), HTTP ${base}`,
      `Dashboard: ${base}/   API docs: ${base}/docs`,
      `Admin API key (the dashboard asks for it): ${key} (also in ${join(config.dataDir, 'admin.key')})`,
      `Simulating ${opts.devices} Wuxi devices: ${opts.backfill / 3_600_000} h of history first, then ${opts.rate} messages/s. Try, in another terminal:`,
      '',
      `  curl -s ${auth} '${base}/api/v1/aggregates?type=air-quality&field=pm25_ugm3&fn=mean&every=30m&from=now-6h&groupBy=district'`,
      `  curl -s ${auth} '${base}/api/v1/aggregates?type=traffic-flow&field=speed_kmh&fn=mean&every=1h&from=now-6h&groupBy=district'`,
      `  curl -s ${auth} '${base}/api/v1/aggregates?type=water-quality&field=dissolved_oxygen_mgl&fn=p95&every=1h&from=now-6h'`,
      `  curl -s ${auth} '${base}/api/v1/devices?type=water-quality&limit=5'`,
      `  curl -s ${auth} '${base}/api/v1/rejections?limit=5'`,
      '',
      'Ctrl-C stops both.',
      '',
    ].join('\n'),
  );
  const ac = abortOnSignals();
  const result = await runSimulator(
    config,
    opts,
    `mqtt://127.0.0.1:${ports.mqtt}`,
    gateway.enrollmentKey,
    ac.signal,
  );
  printSummary(result);
  await gateway.close();
  process.exit(0);
});

program
  .command('bench')
  .description(
    'measure Taihu against mosquitto and raw InfluxDB writes; writes a JSON result and an SVG chart per scenario',
  )
  .argument('<scenario>', 'ingest, connections, query, drain, outage, noisy-neighbour or all')
  .option('--duration <time>', 'measured time of each load phase (default 30s)', duration)
  .option('--devices <n>', 'devices (default 1,000; connections: 10,000)', positiveNumber)
  .option(
    '--rate <msgs/s>',
    'load of outage and noisy-neighbour (default: half the measured maximum)',
    positiveNumber,
  )
  .option('--workers <n>', 'load generator threads', positiveNumber, 2)
  .option('--window <n>', 'QoS 1 messages in flight per connection', positiveNumber, 4)
  .option('--batch <n>', 'readings per message (1 = one reading object)', positiveNumber, 1)
  .option('--readings <n>', 'readings in the query scenario store', positiveNumber, 10_000_000)
  .option('--points <n>', 'points the drain scenario moves', positiveNumber, 500_000)
  .option('--outage <time>', 'how long InfluxDB is down in outage (default 60s)', duration)
  .option('--concurrency <n>', 'concurrent HTTP clients in the query scenario', positiveNumber, 10)
  .option('--repeat <n>', 'rounds of each measurement, to show the noise', positiveNumber, 1)
  .option('--cpu-prof', 'write a V8 CPU profile of the gateway (node --cpu-prof) and summarise it')
  .option('--fresh', 'rebuild cached data sets (the query store)')
  .option('--store <embedded|influxdb>', 'store of the noisy-neighbour gateway', 'embedded')
  .option('--out <dir>', 'where results, charts and profiles go', 'bench-results')
  .addHelpText(
    'after',
    '\nNeeds a build (npm run build) and Debian mosquitto and influxdb: bash bench/install-deps.sh.\n' +
      'Example: taihu bench ingest --duration 20s --repeat 3',
  )
  .action(async (scenario: string, flags: import('../bench/cli.js').BenchFlags) => {
    // Loaded here only: the gateway itself never loads benchmark code.
    const { runBench } = await import('../bench/cli.js');
    process.exit(await runBench(scenario, flags));
  });

// `taihu spool drain`: a spool left by a gateway that will not return, into the store.
{
  const spool = program
    .command('spool')
    .description('work with a spool directory (the durable log a gateway acknowledges from)');
  addConfigFlags(
    spool
      .command('drain')
      .description(
        "write what a stopped gateway's spool still holds into the configured store, then exit",
      )
      .requiredOption(
        '--dir <dir>',
        'the spool directory: DATA_DIR/spool of the gateway that wrote it',
      )
      .option(
        '--timeout <time>',
        'give up after this long, e.g. 10m (default: until empty)',
        duration,
      )
      .addHelpText(
        'after',
        '\nThe store is the one TAIHU_* configures (TAIHU_INFLUX_URL, ...), as for `taihu start`.\n' +
          'Never run it on the spool of a running gateway. Exit code 0 once the spool is empty,\n' +
          '1 if the timeout passed or Ctrl-C came first (what is not written stays in the spool).\n' +
          'Example: taihu spool drain --dir /mnt/gw3-data/spool --influx-url http://influxdb:8086',
      ),
  ).action(async (opts: Record<string, string | undefined> & { dir: string; timeout?: number }) => {
    const { drainSpoolDir } = await import('./cluster/spool-drain.js');
    const { createStore } = await import('./gateway.js');
    const config = configFrom(opts);
    const log = createLogger({ level: config.logLevel, format: config.logFormat });
    const dir = resolvePath(opts.dir);
    const store = createStore(config, log);
    await store.open(loadCatalog(config.schemasDir).measurements());
    const ac = abortOnSignals();
    const tty = Boolean(process.stderr.isTTY);
    const result = await drainSpoolDir({
      dir,
      store,
      log,
      timeoutMs: opts.timeout,
      signal: ac.signal,
      onProgress: (p) => {
        const done = p.recordsAtStart - p.pendingRecords;
        const line =
          `spool drain: ${done} of ${p.recordsAtStart} records written (${p.pointsWritten} points), ` +
          `${p.pendingRecords} left` +
          (p.storeError ? `; ${store.kind} failing, retrying: ${p.storeError}` : '');
        process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      },
    });
    if (tty) process.stderr.write('\n');
    await store.close();
    process.stdout.write(
      `${result.complete ? 'drained' : 'stopped early:'} ${result.recordsAtStart - result.pendingRecords} records ` +
        `(${result.pointsWritten} points) from ${dir} into ${store.kind} in ${(result.elapsedMs / 1000).toFixed(1)} s` +
        `${result.complete ? '' : `; ${result.pendingRecords} records remain in the spool`}` +
        `${result.rejectedFile ? `; ${result.rejectedPoints} points refused by the store, kept in ${result.rejectedFile}` : ''}\n`,
    );
    process.exit(result.complete ? 0 : 1);
  });
}

program.parseAsync().catch((err: unknown) => {
  if (err instanceof TaihuError) {
    process.stderr.write(`taihu: ${err.message}\n`);
  } else {
    process.stderr.write(`taihu: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  }
  process.exit(1);
});

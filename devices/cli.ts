/**
 * `taihu simulate` and `taihu demo`: seeded Wuxi devices played over MQTT, against a running
 * gateway or, for the demo, one started in the same process on the embedded store. Registered
 * by src/main.ts, which is still the only place that exits the process (`exit`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  addConfigFlags,
  abortOnSignals,
  configFrom,
  duration,
  positiveNumber,
  ratio,
} from '../src/cli.js';
import { loadConfig, type Config } from '../src/config.js';
import { ERR_CLI } from '../src/errors.js';
import { createGateway } from '../src/gateway.js';
import { loadCatalog } from '../src/ingest/catalog.js';
import { readOrCreateKeyFile } from '../src/registry/credentials.js';
import { loadSeeds } from '../src/registry/seeds.js';
import { createLogger } from '../src/telemetry/logger.js';
import {
  FAULT_KINDS,
  formatProgress,
  pickDevices,
  simulate,
  type FaultKind,
  type Progress,
} from './simulate.js';

/** History the demo publishes before going live. */
const DEMO_BACKFILL_MS = 6 * 3_600_000;

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
      throw ERR_CLI(
        `--types: unknown device type "${t}"; known: ${catalog
          .list()
          .map((x) => x.type)
          .join(', ')}`,
      );
  }
  if (flags.district && !seeds.districts.some((d) => d.id === flags.district)) {
    throw ERR_CLI(
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
      throw ERR_CLI(`--fault-kinds: unknown fault "${k}"; known: ${FAULT_KINDS.join(', ')}`);
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

/**
 * Adds `simulate` and `demo` to the program. `exit` ends the process once a run is over
 * (main.ts passes process.exit, so exiting stays in one place).
 */
export function addDeviceCommands(program: Command, exit: (code: number) => void): void {
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
    exit(0);
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
    await runDemo(opts);
    exit(0);
  });
}

/** The gateway and the simulator in one process, with example queries to try meanwhile. */
async function runDemo(opts: Record<string, string | undefined> & SimFlags): Promise<void> {
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
}

#!/usr/bin/env -S node --max-semi-space-size=64
/**
 * The `taihu` command: the process entry. Reads config, builds and starts the
 * gateway, handles signals, and is the only place that exits the process.
 */
import { readFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { Command } from 'commander';
import { addDeviceCommands } from '../devices/cli.js';
import { abortOnSignals, addConfigFlags, configFrom, duration, positiveNumber } from './cli.js';
import { PACKAGE_ROOT, type Config } from './config.js';
import { TaihuError } from './errors.js';
import { createGateway, type Gateway } from './gateway.js';
import { loadCatalog } from './ingest/catalog.js';
import { createLogger, type Logger } from './telemetry/logger.js';

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

addDeviceCommands(program, (code) => process.exit(code));

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
    '\nNeeds a build (npm run build) and Debian mosquitto and influxdb: bash scripts/install-test-deps.sh --bench.\n' +
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

/**
 * `taihu bench <scenario>`: runs one scenario (or all), prints its table, writes its JSON result
 * and SVG chart under the output dir. Loaded by src/main.ts only when the command runs, so the
 * gateway never loads benchmark code.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { toolsNeededBy } from '../support/tools.js';
import { ROOT } from './gateway.js';
import type { BenchOptions } from './measure.js';
import { describeMachine } from './proc.js';
import { formatProfile, type ProfileSummary } from './profile.js';
import { printTable, ProgressLine, writeResult, type Row, type ScenarioResult } from './report.js';
import { connections } from './scenarios/connections.js';
import { drain } from './scenarios/drain.js';
import { ingest } from './scenarios/ingest.js';
import { noisyNeighbour } from './scenarios/noisy-neighbour.js';
import { outage } from './scenarios/outage.js';
import { query } from './scenarios/query.js';

export const SCENARIOS = [
  'ingest',
  'connections',
  'query',
  'drain',
  'outage',
  'noisy-neighbour',
  'all',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** The flags as commander parsed them (durations already in ms). */
export interface BenchFlags {
  readonly duration?: number | undefined;
  readonly devices?: number | undefined;
  readonly rate?: number | undefined;
  readonly workers: number;
  readonly window: number;
  readonly batch: number;
  readonly readings: number;
  readonly points: number;
  readonly outage?: number | undefined;
  readonly concurrency: number;
  readonly repeat: number;
  readonly cpuProf?: boolean | undefined;
  readonly fresh?: boolean | undefined;
  readonly store: string;
  readonly out: string;
}

/** Default measured time of a load phase, ms. */
const DEFAULT_DURATION_MS = 30_000;
/** Default time InfluxDB is down in the outage scenario, ms (the 60 s). */
const DEFAULT_OUTAGE_MS = 60_000;

function finish(r: ScenarioResult, outDir: string): ScenarioResult {
  printTable(`${r.scenario} (${r.startedAt})`, r.rows);
  const profiles = (r.figures as { profiles?: ProfileSummary }).profiles;
  if (profiles) process.stdout.write(`\n${formatProfile(profiles)}\n`);
  const files = writeResult(outDir, r);
  process.stdout.write(`\nresult: ${files.json}\nchart:  ${files.svg}\n`);
  return r;
}

/** Runs the scenario; resolves with the process exit code. */
export async function runBench(scenario: string, flags: BenchFlags): Promise<number> {
  if (!(SCENARIOS as readonly string[]).includes(scenario)) {
    process.stderr.write(
      `taihu bench: unknown scenario "${scenario}"; one of ${SCENARIOS.join(', ')}\n`,
    );
    return 2;
  }
  if (flags.store !== 'embedded' && flags.store !== 'influxdb') {
    process.stderr.write(`taihu bench: --store is embedded or influxdb, not "${flags.store}"\n`);
    return 2;
  }
  toolsNeededBy('the benchmarks', 'bash scripts/install-test-deps.sh --bench');
  const outDir = resolve(flags.out);
  mkdirSync(outDir, { recursive: true });
  const progress = new ProgressLine();
  const opts: BenchOptions = {
    outDir,
    durationMs: flags.duration ?? DEFAULT_DURATION_MS,
    devices: flags.devices,
    rate: flags.rate,
    workers: flags.workers,
    window: flags.window,
    batch: flags.batch,
    readings: flags.readings,
    points: flags.points,
    outageMs: flags.outage ?? DEFAULT_OUTAGE_MS,
    concurrency: flags.concurrency,
    repeat: flags.repeat,
    cpuProf: flags.cpuProf === true,
    fresh: flags.fresh === true,
    store: flags.store,
    machine: describeMachine(outDir),
    progress,
  };
  const m = opts.machine;
  progress.note(
    `machine: ${m.nproc} × ${m.cpuModel}, ${m.memTotalGiB} GiB, Linux ${m.kernel}, Node ${m.node}, ` +
      `ulimit -n ${m.openFilesLimit}, fdatasync ${m.fdatasyncMs} ms, load ${m.loadavg.join(' ')}`,
  );
  progress.note(`package root ${ROOT}; results in ${outDir}`);

  const results: ScenarioResult[] = [];
  const run = async (name: Exclude<Scenario, 'all'>, rate?: number) => {
    const o = rate === undefined || opts.rate !== undefined ? opts : { ...opts, rate };
    switch (name) {
      case 'ingest': {
        const out = await ingest(o);
        results.push(finish(out.result, outDir));
        return out.maxRate;
      }
      case 'connections':
        results.push(finish(await connections(o), outDir));
        return undefined;
      case 'query':
        results.push(finish(await query(o), outDir));
        return undefined;
      case 'drain':
        results.push(finish(await drain(o), outDir));
        return undefined;
      case 'outage':
        results.push(finish(await outage(o), outDir));
        return undefined;
      case 'noisy-neighbour':
        results.push(finish(await noisyNeighbour(o), outDir));
        return undefined;
    }
  };

  if (scenario !== 'all') {
    await run(scenario as Exclude<Scenario, 'all'>);
    return 0;
  }
  const max = await run('ingest');
  const half = max === undefined ? undefined : Math.round(max / 2);
  await run('connections');
  await run('query');
  await run('drain');
  await run('outage', half);
  await run('noisy-neighbour', half);
  const rows: Row[] = results.flatMap((r) =>
    r.rows
      .filter((row) => row.target !== undefined)
      .map((row) => ({ ...row, metric: `${r.scenario}: ${row.metric}` })),
  );
  finish(
    {
      scenario: 'all',
      startedAt: results[0]?.startedAt ?? new Date().toISOString(),
      machine: opts.machine,
      params: { scenarios: results.map((r) => r.scenario) },
      rows,
      figures: { results },
      chart: { title: 'all scenarios: see each scenario chart', panels: [], markers: [] },
      notes: [],
    },
    outDir,
  );
  return 0;
}

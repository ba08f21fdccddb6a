// The quick start's first minute, as a user runs it after `npm ci`: `npm run demo` builds Taihu
// and starts the gateway with simulated devices. Passes when, within the minute, the example
// query the demo prints answers with readings of the history it published and a device's
// reading from the last minute is queryable, and Ctrl-C (SIGINT to the process group) ends it
// cleanly after the minute: the demo prints its summary and npm ends as it does on Ctrl-C (by SIGINT, passed on
// once its script has exited 0). Ports are free ones and the data dir a temp dir, so it runs beside anything.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The first minute of the quick start, ms. */
const MINUTE_MS = 60_000;
/** How long Ctrl-C may take to end the demo (the gateway's own deadline is 8 s), ms. */
const STOP_MS = 10_000;

const dataDir = mkdtempSync(join(tmpdir(), 'taihu-quickstart-'));
const started = Date.now();
const demo = spawn('npm', ['run', 'demo'], {
  env: {
    ...process.env,
    TAIHU_DATA_DIR: dataDir,
    TAIHU_HTTP_PORT: '0',
    TAIHU_MQTT_PORT: '0',
    TAIHU_MQTT_WS_PORT: '0',
  },
  detached: true,
  stdio: ['ignore', 'pipe', 'pipe'],
});
let output = '';
demo.stdout.on('data', (b) => (output += b));
demo.stderr.on('data', (b) => (output += b));
const exited = new Promise((resolve) =>
  demo.once('exit', (code, signal) => resolve({ code, signal })),
);
let running = true;
void exited.then(() => (running = false));

const { fetch } = globalThis;
const fail = (why) => {
  if (running) process.kill(-demo.pid, 'SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
  console.error(
    `quick start smoke failed: ${why}\n--- npm run demo output (tail) ---\n${output.slice(-4000)}`,
  );
  process.exit(1);
};

async function get(url, key) {
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, body: await res.json() };
}

let base;
let key;
let history = 0;
let live = 0;
while (Date.now() - started < MINUTE_MS) {
  if (!running) fail('npm run demo exited');
  base ??= /HTTP (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
  key ??= /Admin API key \(the dashboard asks for it\): (\S+)/.exec(output)?.[1];
  if (base && key) {
    // The first example query the demo prints, and a count of the last minute's readings.
    const mean = await get(
      `${base}/api/v1/aggregates?type=air-quality&field=pm25_ugm3&fn=mean&every=30m&from=now-6h&groupBy=district`,
      key,
    );
    if (mean.status !== 200) fail(`the example query answered ${mean.status}`);
    history = mean.body.series.flatMap((s) => s.points).filter((p) => p.value !== null).length;
    const recent = await get(
      `${base}/api/v1/aggregates?type=traffic-flow&field=speed_kmh&fn=count&every=1m&from=now-1m&fill=none`,
      key,
    );
    live =
      recent.body.series?.flatMap((s) => s.points).reduce((n, p) => n + (p.value ?? 0), 0) ?? 0;
    if (history > 0 && live > 0) break;
  }
  await sleep(1000);
}
if (!base || !key) fail('the demo printed no HTTP address and admin key within a minute');
if (history === 0) fail('the example query found no readings within a minute');
if (live === 0) fail('no reading from the last minute was queryable within a minute');
const upAfter = Date.now() - started;

// The rest of the minute: the demo keeps running and devices keep reporting live.
await sleep(Math.max(0, MINUTE_MS - (Date.now() - started)));
if (!running) fail('npm run demo exited before the minute was over');
const health = await fetch(`${base}/health`);
if (health.status !== 200) fail(`/health answered ${health.status} at the end of the minute`);
const lastMinute = await get(
  `${base}/api/v1/aggregates?type=traffic-flow&field=speed_kmh&fn=count&every=1m&from=now-1m&fill=none`,
  key,
);
const liveAtEnd =
  lastMinute.body.series?.flatMap((s) => s.points).reduce((n, p) => n + (p.value ?? 0), 0) ?? 0;
if (liveAtEnd === 0) fail('no traffic reading in the last minute at the end of the minute');

const stopAt = Date.now();
process.kill(-demo.pid, 'SIGINT');
const end = await Promise.race([exited, sleep(STOP_MS).then(() => undefined)]);
if (end === undefined) fail(`Ctrl-C did not stop the demo within ${STOP_MS / 1000} s`);
if (end.code !== 0 && end.signal !== 'SIGINT')
  fail(`Ctrl-C ended npm with ${end.code ?? end.signal}`);
if (!/^simulated \d+ devices for /m.test(output)) fail('the demo printed no summary on Ctrl-C');
if (/shutdown failed|"level":50/.test(output)) fail('the demo logged an error while stopping');
rmSync(dataDir, { recursive: true, force: true });
console.log(
  `quick start smoke on Node ${process.versions.node}: queryable after ${(upAfter / 1000).toFixed(1)} s ` +
    `(${history} half-hour means of history, ${live} traffic readings in the last minute; ` +
    `${liveAtEnd} at the end of the minute), ` +
    `stopped by Ctrl-C in ${((Date.now() - stopAt) / 1000).toFixed(1)} s cleanly`,
);

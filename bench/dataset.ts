/**
 * The query scenario's data set: the seeded Wuxi fleet (every device of `seeds/devices.json`,
 * each at its type's reporting interval, values from the simulator's models) backfilled up to
 * now until the embedded store holds the asked number of readings, written straight through
 * `createEmbeddedStore` into a gateway data dir (far faster than over MQTT, and the same rows).
 * Cached under the output dir: rebuilding 10 M readings takes minutes; `--fresh` rebuilds.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCity } from '../devices/city.js';
import { MODELS } from '../devices/models/index.js';
import type { SimDevice } from '../devices/models/types.js';
import { createRng, deriveSeed, hash32 } from '../devices/rng.js';
import { loadCatalog } from '../src/ingest/catalog.js';
import { createEmbeddedStore } from '../src/store/embedded/index.js';
import type { FieldValue, Point } from '../src/points/point.js';
import { writePoints } from '../src/points/batch.js';
import type { ProgressLine } from './report.js';
import { fmt } from './report.js';

const MINUTE = 60_000;
/** Points per store write (one SQLite transaction). */
const WRITE_BATCH = 20_000;

export interface DatasetMeta {
  readonly readings: number;
  readonly devices: number;
  /** Epoch ms: first tick and the end (exclusive) of the data. */
  readonly fromMs: number;
  readonly toMs: number;
  readonly perType: Readonly<Record<string, number>>;
  readonly buildSeconds: number;
  readonly writesPerSec: number;
}

export interface Dataset {
  /** A gateway data dir holding telemetry.db. */
  readonly dataDir: string;
  readonly meta: DatasetMeta;
  readonly devices: readonly SimDevice[];
  readonly cached: boolean;
}

export async function cityDataset(opts: {
  readonly root: string;
  readonly cacheDir: string;
  readonly readings: number;
  readonly fresh: boolean;
  readonly progress: ProgressLine;
}): Promise<Dataset> {
  const devices = JSON.parse(
    readFileSync(join(opts.root, 'seeds', 'devices.json'), 'utf8'),
  ) as SimDevice[];
  const dataDir = join(opts.cacheDir, `query-${opts.readings}`);
  const metaFile = join(dataDir, 'dataset.json');
  if (!opts.fresh && existsSync(metaFile)) {
    const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as DatasetMeta;
    if (meta.readings === opts.readings) return { dataDir, meta, devices, cached: true };
  }
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });

  const catalog = loadCatalog(join(opts.root, 'schemas'));
  const city = createCity(1);
  const intervalOf = (type: string) => (catalog.get(type)?.intervalSeconds ?? 60) * 1000;
  const fleet = devices.map((d) => {
    const model = MODELS.get(d.type);
    const type = catalog.get(d.type);
    if (!model || !type) throw new Error(`no model or schema for ${d.type}`);
    const h = hash32('bench', d.id);
    return {
      device: d,
      measurement: type.measurement,
      tags: { device_id: d.id, district: d.district, site_id: d.siteId },
      next: model.create(d, createRng(deriveSeed(1, d.id)), city),
      everyTicks: Math.max(1, Math.round(intervalOf(d.type) / MINUTE)),
      phase: h % Math.max(1, Math.round(intervalOf(d.type) / MINUTE)),
      // devices do not report on the minute: a fixed offset per device within it
      offsetMs: h % MINUTE,
      seq: 0,
    };
  });
  const perTick = fleet.reduce((n, f) => n + 1 / f.everyTicks, 0);
  const ticks = Math.ceil(opts.readings / perTick) + 1;
  const toMs = Math.floor(Date.now() / MINUTE) * MINUTE;
  const fromMs = toMs - ticks * MINUTE;

  const store = createEmbeddedStore({ path: join(dataDir, 'telemetry.db') });
  await store.open(catalog.measurements());
  const perType: Record<string, number> = {};
  let written = 0;
  let writeMs = 0;
  const started = performance.now();
  let batch: Point[] = [];
  const flush = async () => {
    const t = performance.now();
    await writePoints(store, batch);
    writeMs += performance.now() - t;
    written += batch.length;
    batch = [];
    opts.progress.update(
      `[query data set] ${fmt(written)} of ${fmt(opts.readings)} readings written (${fmt((written * 1000) / Math.max(1, writeMs))}/s into SQLite)`,
    );
  };
  try {
    for (let k = 0; k < ticks && written + batch.length < opts.readings; k++) {
      const tick = fromMs + k * MINUTE;
      for (const f of fleet) {
        if (k % f.everyTicks !== f.phase) continue;
        const ts = tick + f.offsetMs;
        const data = f.next(ts);
        const fields: Record<string, FieldValue> = Object.create(null);
        for (const [name, v] of Object.entries(data)) fields[name] = v;
        fields.seq = f.seq++;
        batch.push({ measurement: f.measurement, tags: f.tags, fields, ts });
        perType[f.device.type] = (perType[f.device.type] ?? 0) + 1;
        if (written + batch.length >= opts.readings) break;
      }
      if (batch.length >= WRITE_BATCH) await flush();
    }
    if (batch.length > 0) await flush();
  } finally {
    await store.close();
  }
  opts.progress.done();
  const meta: DatasetMeta = {
    readings: written,
    devices: devices.length,
    fromMs,
    toMs,
    perType,
    buildSeconds: Math.round((performance.now() - started) / 100) / 10,
    writesPerSec: Math.round((written * 1000) / Math.max(1, writeMs)),
  };
  writeFileSync(metaFile, `${JSON.stringify(meta, null, 2)}\n`);
  return { dataDir, meta, devices, cached: false };
}

import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/ingest/catalog.js';
import { readSeeds, type Position } from '../helpers/seeds.js';

const read = (path: string): unknown => JSON.parse(readFileSync(path, 'utf8'));
const { districts, sites, devices } = readSeeds();
const catalog = loadCatalog('schemas');

const DEVICE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const WUXI_DISTRICTS = ['binhu', 'huishan', 'jiangyin', 'liangxi', 'xinwu', 'xishan', 'yixing'];

/** Site kinds each device type may be installed at. */
const KINDS_FOR_TYPE = new Map<string, readonly string[]>([
  ['traffic-flow', ['intersection']],
  ['traffic-signal', ['intersection']],
  ['parking', ['parking-garage']],
  ['air-quality', ['aq-station']],
  ['weather', ['weather-station', 'aq-station']],
  ['noise', ['noise-point', 'aq-station', 'intersection']],
  ['water-quality', ['buoy']],
  ['streetlight', ['streetlight-circuit']],
  ['manhole', ['manhole-point']],
  ['bridge-structure', ['bridge']],
  ['water-pipe', ['pipe-point']],
]);

/** Ray casting; seed points are never placed exactly on a border. */
function inside([x, y]: Position, ring: readonly Position[]): boolean {
  let hit = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i] ?? [0, 0];
    const [xj, yj] = ring[j] ?? [0, 0];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

/** Proper crossing of segments ab and cd (touching at shared vertices does not count). */
function crosses(a: Position, b: Position, c: Position, d: Position): boolean {
  const orient = (p: Position, q: Position, r: Position) =>
    Math.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]));
  return orient(a, b, c) * orient(a, b, d) < 0 && orient(c, d, a) * orient(c, d, b) < 0;
}

/** Distance in metres on a local flat approximation (fine at city scale). */
function metres(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const dy = (a.lat - b.lat) * 111_320;
  const dx = (a.lon - b.lon) * 111_320 * Math.cos((a.lat * Math.PI) / 180);
  return Math.hypot(dx, dy);
}

const count = <T>(xs: readonly T[], key: (x: T) => string): Map<string, number> => {
  const m = new Map<string, number>();
  for (const x of xs) m.set(key(x), (m.get(key(x)) ?? 0) + 1);
  return m;
};

describe('seed files', () => {
  it.each([
    ['districts', districts],
    ['sites', sites],
    ['devices', devices],
  ] as const)('%s.json validates against its JSON Schema', (name, data) => {
    const ajv = new Ajv({ allErrors: true });
    const validate = ajv.compile(read(`seeds/schema/${name}.schema.json`) as object);
    const ok = validate(data);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('the seed schemas reject a record with an unknown field', () => {
    const ajv = new Ajv({ allErrors: true });
    const validate = ajv.compile(read('seeds/schema/devices.schema.json') as object);
    expect(validate([{ ...devices[0], secret: 'hunter2' }])).toBe(false);
  });
});

describe('districts', () => {
  it("are Wuxi's seven districts and county-level cities, with unique ids", () => {
    expect(districts.map((d) => d.id).sort()).toEqual(WUXI_DISTRICTS);
  });

  it.each(districts.map((d) => [d.id, d] as const))(
    '%s has a simple outline around its own centroid',
    (_id, d) => {
      expect(inside(d.centroid, d.boundary)).toBe(true);
      const n = d.boundary.length;
      for (let i = 0; i < n; i++) {
        for (let j = i + 2; j < n; j++) {
          if (i === 0 && j === n - 1) continue;
          const a = d.boundary[i] as Position;
          const b = d.boundary[(i + 1) % n] as Position;
          const c = d.boundary[j] as Position;
          const e = d.boundary[(j + 1) % n] as Position;
          expect(crosses(a, b, c, e), `edges ${i} and ${j}`).toBe(false);
        }
      }
    },
  );

  it("no district's centroid lies inside another district", () => {
    for (const d of districts) {
      for (const other of districts) {
        if (other.id !== d.id)
          expect(inside(d.centroid, other.boundary), `${d.id} in ${other.id}`).toBe(false);
      }
    }
  });
});

describe('sites', () => {
  const byDistrict = new Map(districts.map((d) => [d.id, d]));

  it('have unique, well-formed ids', () => {
    expect(new Set(sites.map((s) => s.id)).size).toBe(sites.length);
    for (const s of sites) expect(s.id).toMatch(DEVICE_ID);
  });

  it('lie inside their own district and no other', () => {
    for (const s of sites) {
      const p: Position = [s.lon, s.lat];
      const d = byDistrict.get(s.district);
      expect(d, s.id).toBeDefined();
      expect(inside(p, d?.boundary ?? []), `${s.id} in ${s.district}`).toBe(true);
      const others = districts.filter((o) => o.id !== s.district && inside(p, o.boundary));
      expect(
        others.map((o) => o.id),
        s.id,
      ).toEqual([]);
    }
  });

  it('include at least 100 intersections and 20 air-quality stations', () => {
    const kinds = count(sites, (s) => s.kind);
    expect(kinds.get('intersection') ?? 0).toBeGreaterThanOrEqual(100);
    expect(kinds.get('aq-station') ?? 0).toBeGreaterThanOrEqual(20);
  });

  it('put lake buoys only on the Binhu and Yixing shores of Taihu', () => {
    const buoys = sites.filter((s) => s.kind === 'buoy');
    expect(buoys.length).toBeGreaterThan(0);
    expect(new Set(buoys.map((b) => b.district))).toEqual(new Set(['binhu', 'yixing']));
  });
});

describe('devices', () => {
  const siteById = new Map(sites.map((s) => [s.id, s]));

  it('number at least 1,000', () => {
    expect(devices.length).toBeGreaterThanOrEqual(1000);
  });

  it('have unique ids of the form {prefix}-{district}-{nnnn}', () => {
    expect(new Set(devices.map((d) => d.id)).size).toBe(devices.length);
    for (const d of devices) {
      expect(d.id).toMatch(DEVICE_ID);
      expect(d.id).toMatch(new RegExp(`^[a-z]{2}-${d.district}-\\d{4}$`));
    }
  });

  it('use one id prefix per type', () => {
    const prefixes = new Map<string, Set<string>>();
    for (const d of devices) {
      const set = prefixes.get(d.type) ?? new Set<string>();
      set.add(d.id.split('-')[0] ?? '');
      prefixes.set(d.type, set);
    }
    for (const [type, set] of prefixes) expect([...set], type).toHaveLength(1);
    const all = [...prefixes.values()].map((s) => [...s][0]);
    expect(new Set(all).size).toBe(all.length);
  });

  it('cover every type of the catalogue, and only those', () => {
    const types = new Set(devices.map((d) => d.type));
    expect([...types].sort()).toEqual(catalog.list().map((t) => t.type));
  });

  it('are in every district', () => {
    const perDistrict = count(devices, (d) => d.district);
    for (const id of WUXI_DISTRICTS) expect(perDistrict.get(id) ?? 0, id).toBeGreaterThan(0);
  });

  it('sit at an existing site of a fitting kind, in the same district, within 500 m', () => {
    for (const d of devices) {
      const site = siteById.get(d.siteId);
      expect(site, `${d.id} → ${d.siteId}`).toBeDefined();
      if (!site) continue;
      expect(site.district, d.id).toBe(d.district);
      expect(KINDS_FOR_TYPE.get(d.type), d.type).toContain(site.kind);
      expect(metres(d, site), d.id).toBeLessThan(500);
    }
  });

  it('have several traffic-flow detectors and one signal controller per intersection', () => {
    const detectors = count(
      devices.filter((d) => d.type === 'traffic-flow'),
      (d) => d.siteId,
    );
    const controllers = count(
      devices.filter((d) => d.type === 'traffic-signal'),
      (d) => d.siteId,
    );
    for (const s of sites.filter((x) => x.kind === 'intersection')) {
      expect(detectors.get(s.id) ?? 0, s.id).toBeGreaterThanOrEqual(2);
      expect(controllers.get(s.id), s.id).toBe(1);
    }
  });

  it('carry no secrets', () => {
    const text = readFileSync('seeds/devices.json', 'utf8');
    expect(text).not.toMatch(/secret|password|token|key/i);
  });
});

// Generates seeds/districts.json, seeds/sites.json and seeds/devices.json for Wuxi.
// The committed JSON is the source of truth; this script is how it was made, kept so that
// the seed can be grown or reshaped consistently. Deterministic: same script, same files.
//
//   node seeds/generate.mjs        # rewrites the three files next to this script
//
// Geography is deliberately rough: district polygons are 8–16 vertex outlines that share
// their borders, road grids are laid out around each district's urban core, and land
// sites avoid Taihu and Wuli Lake. Names follow real Wuxi roads and places.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** mulberry32: small, fast, and enough for laying out a seed file. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
/** What a district outside the centre installs: only its intersections and AQ stations vary. */
const suburbCounts = (intersection, aqStations = 4) => ({
  intersection,
  'aq-station': aqStations,
  'weather-station': 2,
  'noise-point': 4,
  'pipe-point': 5,
  'streetlight-circuit': 6,
  'parking-garage': 4,
  'manhole-point': 8,
});
const random = mulberry32(20261126);
const uniform = (lo, hi) => lo + random() * (hi - lo);
const gaussian = () => {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
};
const shuffle = (xs) => {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
};
const r6 = (v) => Math.round(v * 1e6) / 1e6;
const r4 = (v) => Math.round(v * 1e4) / 1e4;
const pad = (n) => String(n).padStart(4, '0');

/** Ray casting; points exactly on an edge are not expected (sites are jittered off borders). */
function inside([x, y], ring) {
  let hit = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

/** Area centroid of a simple polygon (shoelace). */
function centroid(ring) {
  let a = 0;
  let cx = 0;
  let cy = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [x0, y0] = ring[j];
    const [x1, y1] = ring[i];
    const cross = x0 * y1 - x1 * y0;
    a += cross;
    cx += (x0 + x1) * cross;
    cy += (y0 + y1) * cross;
  }
  return [r4(cx / (3 * a)), r4(cy / (3 * a))];
}

// Shared border vertices are written once and reused, so neighbours meet without gaps.
const P = {
  jyW: [120.0, 31.72],
  hsJy: [120.2, 31.71],
  tri: [120.36, 31.73],
  xsJy: [120.47, 31.73],
  jyE: [120.55, 31.76],
  lxNE: [120.34, 31.62],
  hsXs: [120.37, 31.66],
  lxN: [120.3, 31.615],
  lxNW: [120.26, 31.6],
  lxW: [120.24, 31.575],
  lxE: [120.355, 31.59],
  lxSE: [120.35, 31.555],
  lxS: [120.32, 31.535],
  lxSW1: [120.255, 31.55],
  lxSW2: [120.28, 31.535],
  xwN1: [120.4, 31.58],
  xwN2: [120.45, 31.56],
  xwE: [120.55, 31.55],
  bhXw: [120.33, 31.47],
  bhXwS: [120.36, 31.44],
  bhYx1: [120.05, 31.44],
  bhYx2: [120.08, 31.38],
  hsSW: [120.06, 31.58],
  hsS: [120.15, 31.57],
};

const DISTRICTS = [
  {
    id: 'liangxi',
    name: 'Liangxi',
    nameZh: '梁溪区',
    boundary: [P.lxW, P.lxNW, P.lxN, P.lxNE, P.lxE, P.lxSE, P.lxS, P.lxSW2, P.lxSW1],
    core: [120.302, 31.576],
    spacing: [0.0085, 0.0072],
    ns: [
      'Liangxi Rd',
      'Jiefang West Rd',
      'Zhongshan Rd',
      'Xingsheng Rd',
      'Jiefang East Rd',
      'Guangrui Rd',
      'Jinxing Rd',
    ],
    ew: [
      'Tonghui Rd',
      'Xingyuan Rd',
      'Chongan St',
      'Renmin Rd',
      'Xueqian St',
      'Liangqing Rd',
      'Qingyang Rd',
      'Yonghe Rd',
    ],
    places: ['Huangxiang', 'Qitang', 'Chongan Temple', 'Nanchang Street'],
    garages: [
      'Sanyang Plaza',
      'Hang Lung Plaza',
      'Chongan Temple',
      'Nanchang Street',
      'Wuxi Railway Station',
      'Grand Canal Plaza',
    ],
    bridges: ['Qingming Bridge', 'Wuqiao Bridge', 'Xinsheng Rd Canal Bridge'],
    counts: {
      intersection: 30,
      'aq-station': 4,
      'weather-station': 2,
      'noise-point': 4,
      'pipe-point': 5,
      'streetlight-circuit': 8,
      'parking-garage': 6,
      'manhole-point': 12,
    },
    spread: 0.02,
  },
  {
    id: 'xinwu',
    name: 'Xinwu',
    nameZh: '新吴区',
    boundary: [
      P.lxE,
      P.xwN1,
      P.xwN2,
      P.xwE,
      [120.5, 31.48],
      [120.43, 31.45],
      P.bhXwS,
      P.bhXw,
      P.lxS,
      P.lxSE,
    ],
    core: [120.385, 31.51],
    spacing: [0.011, 0.0095],
    ns: ['Xinmei Rd', 'Xinhua Rd', 'Changjiang Rd', 'Xinguang Rd', 'Jingxian Rd', 'Xixian Rd'],
    ew: [
      'Gaolang East Rd',
      'Hanjiang Rd',
      'Xinzhou Rd',
      'Zhenze Rd',
      'Xingchuang 2nd Rd',
      'Shuofang Rd',
    ],
    places: ['Wangzhuang', 'Meicun', 'Shuofang', 'Hongshan'],
    garages: ['Shuofang Airport', 'Xinwu Metro Hub', 'Baolong Plaza', 'Xinwu Sports Centre'],
    bridges: ['Xinhua Rd Grand Canal Bridge', 'Gaolang East Rd Bridge'],
    counts: suburbCounts(18),
    spread: 0.035,
  },
  {
    id: 'xishan',
    name: 'Xishan',
    nameZh: '锡山区',
    boundary: [
      P.tri,
      P.xsJy,
      P.jyE,
      [120.62, 31.7],
      [120.62, 31.6],
      P.xwE,
      P.xwN2,
      P.xwN1,
      P.lxE,
      P.lxNE,
      P.hsXs,
    ],
    core: [120.405, 31.607],
    spacing: [0.01, 0.009],
    ns: ['Yunlin Rd', 'Xishan Ave', 'Yongshun Rd', 'Dongting Rd', 'Anzhen Rd'],
    ew: ['Xiangjiang Rd', 'Dongbeitang Rd', 'Yandai Rd', 'Jiangdong Rd', 'Ehu Rd'],
    places: ['Dongting', 'Donggang', 'Anzhen'],
    garages: [
      'Dongting Wanda',
      'Wuxi East Railway Station',
      'Xishan Sports Centre',
      'Anzhen Market',
    ],
    bridges: ['Xishan Ave Canal Bridge', 'Yunlin Rd Bridge'],
    counts: suburbCounts(12, 3),
    spread: 0.04,
  },
  {
    id: 'huishan',
    name: 'Huishan',
    nameZh: '惠山区',
    boundary: [
      P.jyW,
      P.hsJy,
      P.tri,
      P.hsXs,
      P.lxNE,
      P.lxN,
      P.lxNW,
      P.lxW,
      P.hsS,
      P.hsSW,
      [120.02, 31.63],
      [119.99, 31.68],
    ],
    core: [120.285, 31.66],
    spacing: [0.01, 0.009],
    ns: ['Huishan Ave', 'Yanxin Rd', 'Zhanqian Rd', 'Huiyu Rd', 'Changan Rd'],
    ew: ['Yanqiao Rd', 'Wanshou Rd', 'Qianhu Rd', 'Zhoushan Rd', 'Luoshe Rd'],
    places: ['Yanqiao', 'Luoshe', 'Qianqiao'],
    garages: ['Huishan Wanda', 'Yanqiao Metro', 'Huishan Old Town', 'Luoshe Market'],
    bridges: ['Huishan Ave Bridge', 'Yanqiao Canal Bridge'],
    counts: suburbCounts(12, 3),
    spread: 0.04,
  },
  {
    id: 'binhu',
    name: 'Binhu',
    nameZh: '滨湖区',
    boundary: [
      P.lxW,
      P.lxSW1,
      P.lxSW2,
      P.lxS,
      P.bhXw,
      P.bhXwS,
      [120.32, 31.36],
      [120.18, 31.34],
      P.bhYx2,
      P.bhYx1,
      [120.05, 31.52],
      P.hsSW,
      P.hsS,
    ],
    core: [120.245, 31.54],
    spacing: [0.0105, 0.0085],
    ns: ['Shanshui West Rd', 'Qianrong Rd', 'Meiliang Rd', 'Hubin Rd', 'Lihu Ave', 'Liyuan Rd'],
    ew: ['Taihu Ave', 'Jinshi Rd', 'Yanghu Rd', 'Gaolang West Rd', 'Wuhu Ave', 'Xiuxi Rd'],
    places: ['Xuelang', 'Rongxiang', 'Huazhuang', 'Liyuan'],
    garages: ['Binhu Wanda Plaza', 'Lihu Park', 'Jiangnan University', 'Rongxiang'],
    bridges: ['Lihu Bridge', 'Baojie Bridge'],
    counts: suburbCounts(18),
    spread: 0.03,
  },
  {
    id: 'jiangyin',
    name: 'Jiangyin',
    nameZh: '江阴市',
    boundary: [
      P.jyW,
      [120.0, 31.8],
      [120.08, 31.9],
      [120.2, 31.95],
      [120.3, 31.97],
      [120.42, 31.96],
      [120.52, 31.93],
      [120.57, 31.85],
      P.jyE,
      P.xsJy,
      P.tri,
      P.hsJy,
    ],
    core: [120.285, 31.9],
    spacing: [0.011, 0.0095],
    ns: ['Huangshan Rd', 'Chengjiang Rd', 'Hongqiao Rd', 'Tianmu Rd', 'Changshan Ave'],
    ew: ['Binjiang Rd', 'Renmin Rd', 'Chaoyang Rd', 'Furong Ave', 'Chengnan Rd'],
    places: ['Chengjiang', 'Xiagang', 'Huashi', 'Zhouzhuang'],
    garages: ['Binjiang Park', 'Renmin Rd Mall', 'Jiangyin Railway Station', 'Huashi Centre'],
    bridges: ['Jiangyin Yangtze River Bridge', 'Chengjiang Bridge'],
    counts: suburbCounts(12),
    spread: 0.05,
  },
  {
    id: 'yixing',
    name: 'Yixing',
    nameZh: '宜兴市',
    boundary: [
      [119.55, 31.55],
      [119.7, 31.62],
      [119.88, 31.58],
      [119.98, 31.52],
      P.bhYx1,
      P.bhYx2,
      [120.05, 31.25],
      [119.95, 31.13],
      [119.8, 31.08],
      [119.65, 31.12],
      [119.53, 31.2],
      [119.52, 31.38],
    ],
    core: [119.82, 31.36],
    spacing: [0.011, 0.0095],
    ns: ['Yangxian Rd', 'Taodu Rd', 'Jingxi Rd', 'Longbei Rd', 'Dongshan Rd'],
    ew: ['Jiefang Rd', 'Renmin Rd', 'Jiubin Ave', 'Dongjiu Ave', 'Yicheng Rd'],
    places: ['Yicheng', 'Dingshu', 'Zhangzhu', 'Guanlin'],
    garages: ['Yixing Wanda', 'Yixing Railway Station', 'Dingshu Pottery Street', 'Dongjiu Park'],
    bridges: ['Dongjiu Bridge', 'Xijiu Bridge'],
    counts: suburbCounts(10),
    spread: 0.06,
  },
];

// Water that land sites keep out of: northern Taihu (Mashan peninsula cut out) and Wuli Lake.
const TAIHU = [
  [119.95, 31.1],
  [119.92, 31.3],
  [119.97, 31.43],
  [120.02, 31.49],
  [120.06, 31.45],
  [120.065, 31.4],
  [120.14, 31.4],
  [120.145, 31.47],
  [120.2, 31.52],
  [120.24, 31.5],
  [120.27, 31.46],
  [120.36, 31.42],
  [120.45, 31.15],
  [120.1, 31.0],
];
const LIHU = [
  [120.222, 31.515],
  [120.225, 31.526],
  [120.25, 31.53],
  [120.275, 31.523],
  [120.3, 31.516],
  [120.3, 31.505],
  [120.27, 31.504],
  [120.24, 31.509],
];
const onWater = (p) => inside(p, TAIHU) || inside(p, LIHU);

// Buoys are placed by hand: bays where Wuxi watches for cyanobacteria blooms.
const BUOYS = new Map([
  [
    'binhu',
    [
      ['Meiliang Bay Buoy 1', 120.193, 31.503],
      ['Meiliang Bay Buoy 2', 120.176, 31.481],
      ['Meiliang Bay Buoy 3', 120.205, 31.47],
      ['Meiliang Bay Buoy 4', 120.162, 31.455],
      ['Mashan East Buoy', 120.155, 31.428],
      ['Mashan South Buoy', 120.1, 31.385],
      ['Taihu North Buoy', 120.185, 31.4],
      ['Lake Centre North Buoy', 120.225, 31.372],
      ['Gonghu Bay Buoy 1', 120.3, 31.43],
      ['Gonghu Bay Buoy 2', 120.318, 31.4],
      ['Gonghu Bay Buoy 3', 120.275, 31.405],
      ['Wuli Lake Buoy', 120.265, 31.514],
    ],
  ],
  [
    'yixing',
    [
      ['Zhushan Bay Buoy 1', 120.012, 31.452],
      ['Zhushan Bay Buoy 2', 120.035, 31.42],
      ['Zhoutie Buoy', 119.978, 31.4],
      ['Dapu Buoy', 119.97, 31.3],
      ['Dingshu Buoy', 119.99, 31.24],
      ['Lanshan Buoy', 119.975, 31.19],
    ],
  ],
]);

const FIXED_BRIDGES = new Map([['Jiangyin Yangtze River Bridge', [120.272, 31.938]]]);

const SITE_CODE = new Map([
  ['intersection', 'int'],
  ['aq-station', 'aq'],
  ['weather-station', 'wx'],
  ['noise-point', 'noise'],
  ['buoy', 'buoy'],
  ['bridge', 'brg'],
  ['pipe-point', 'pipe'],
  ['streetlight-circuit', 'slc'],
  ['parking-garage', 'park'],
  ['manhole-point', 'mh'],
]);

const sites = [];
const siteCounters = new Map();
function addSite(district, kind, name, [lon, lat]) {
  const key = `${district.id}-${SITE_CODE.get(kind)}`;
  const n = (siteCounters.get(key) ?? 0) + 1;
  siteCounters.set(key, n);
  const site = {
    id: `${key}-${pad(n)}`,
    district: district.id,
    kind,
    name,
    lat: r6(lat),
    lon: r6(lon),
  };
  sites.push(site);
  return site;
}

/** A land point near the district's core, inside its boundary. */
function landPoint(d, spread) {
  for (let i = 0; i < 10_000; i++) {
    const p = [d.core[0] + gaussian() * spread, d.core[1] + gaussian() * spread * 0.85];
    if (inside(p, d.boundary) && !onWater(p)) return p;
  }
  throw new Error(`no land point found in ${d.id}`);
}

for (const d of DISTRICTS) {
  // Intersections: the crossings of the district's road grid that fall on its land.
  const crossings = [];
  d.ns.forEach((ns, i) => {
    d.ew.forEach((ew, j) => {
      const lon = d.core[0] + (i - (d.ns.length - 1) / 2) * d.spacing[0] + uniform(-8e-4, 8e-4);
      const lat = d.core[1] + ((d.ew.length - 1) / 2 - j) * d.spacing[1] + uniform(-8e-4, 8e-4);
      if (inside([lon, lat], d.boundary) && !onWater([lon, lat]))
        crossings.push({ name: `${ew} / ${ns}`, p: [lon, lat] });
    });
  });
  if (crossings.length < d.counts.intersection) {
    throw new Error(`${d.id}: only ${crossings.length} crossings on land`);
  }
  const chosen = shuffle(crossings).slice(0, d.counts.intersection);
  chosen.sort((a, b) => b.p[1] - a.p[1] || a.p[0] - b.p[0]);
  for (const c of chosen) addSite(d, 'intersection', c.name, c.p);

  const roads = [...d.ns, ...d.ew];
  const road = (k) => roads[k % roads.length];
  d.places.forEach((place, k) => {
    if (k < d.counts['aq-station'])
      addSite(d, 'aq-station', `${place} Air Station`, landPoint(d, d.spread));
  });
  for (let k = 0; k < d.counts['weather-station']; k++) {
    addSite(d, 'weather-station', `${d.places[k]} Weather Station`, landPoint(d, d.spread * 1.5));
  }
  for (let k = 0; k < d.counts['noise-point']; k++) {
    addSite(d, 'noise-point', `${road(k * 3 + 1)} Noise Monitor`, landPoint(d, d.spread));
  }
  for (const [name, lon, lat] of BUOYS.get(d.id) ?? []) addSite(d, 'buoy', name, [lon, lat]);
  for (const name of d.bridges)
    addSite(d, 'bridge', name, FIXED_BRIDGES.get(name) ?? landPoint(d, d.spread));
  const mains = [300, 400, 500, 600, 800];
  for (let k = 0; k < d.counts['pipe-point']; k++) {
    addSite(
      d,
      'pipe-point',
      `${road(k * 2)} DN${mains[k % mains.length]} Main`,
      landPoint(d, d.spread * 1.2),
    );
  }
  for (let k = 0; k < d.counts['streetlight-circuit']; k++) {
    addSite(
      d,
      'streetlight-circuit',
      `${road(k)} Lighting Circuit ${Math.floor(k / roads.length) + 1}`,
      landPoint(d, d.spread),
    );
  }
  for (let k = 0; k < d.counts['parking-garage']; k++) {
    addSite(d, 'parking-garage', `${d.garages[k]} Garage`, landPoint(d, d.spread * 0.8));
  }
  for (let k = 0; k < d.counts['manhole-point']; k++) {
    addSite(
      d,
      'manhole-point',
      `${road(k * 5 + 2)} Manhole ${pad(k + 1).slice(1)}`,
      landPoint(d, d.spread),
    );
  }
}

// Devices: how many of each type a site of each kind carries, and where on the site.
const METRES_PER_DEG_LAT = 111_320;
const offset = ([lon, lat], eastM, northM) => [
  lon + eastM / (METRES_PER_DEG_LAT * Math.cos((lat * Math.PI) / 180)),
  lat + northM / METRES_PER_DEG_LAT,
];
const APPROACHES = [
  [0, 45],
  [45, 0],
  [0, -45],
  [-45, 0],
]; // N, E, S, W approaches

const PLACEMENT = [
  {
    kind: 'intersection',
    type: 'traffic-flow',
    prefix: 'tf',
    at: (p, k) => offset(p, ...APPROACHES[k]),
    per: 4,
  },
  {
    kind: 'intersection',
    type: 'traffic-signal',
    prefix: 'ts',
    at: (p) => offset(p, 12, 12),
    per: 1,
  },
  { kind: 'parking-garage', type: 'parking', prefix: 'pk', at: (p) => p, per: 1 },
  { kind: 'aq-station', type: 'air-quality', prefix: 'aq', at: (p) => p, per: 1 },
  { kind: 'weather-station', type: 'weather', prefix: 'wx', at: (p) => p, per: 1 },
  { kind: 'noise-point', type: 'noise', prefix: 'ns', at: (p) => p, per: 1 },
  { kind: 'buoy', type: 'water-quality', prefix: 'wq', at: (p) => p, per: 1 },
  {
    kind: 'streetlight-circuit',
    type: 'streetlight',
    prefix: 'sl',
    at: (p, k, dir) => offset(p, 35 * k * Math.cos(dir), 35 * k * Math.sin(dir)),
    per: 5,
  },
  { kind: 'manhole-point', type: 'manhole', prefix: 'mh', at: (p) => p, per: 1 },
  {
    kind: 'bridge',
    type: 'bridge-structure',
    prefix: 'br',
    at: (p, k, dir) => offset(p, 60 * (k - 1) * Math.cos(dir), 60 * (k - 1) * Math.sin(dir)),
    per: 3,
  },
  { kind: 'pipe-point', type: 'water-pipe', prefix: 'wp', at: (p) => p, per: 1 },
];

const devices = [];
const deviceCounters = new Map();
for (const place of PLACEMENT) {
  for (const site of sites.filter((s) => s.kind === place.kind)) {
    const dir = uniform(0, 2 * Math.PI);
    for (let k = 0; k < place.per; k++) {
      const key = `${place.prefix}-${site.district}`;
      const n = (deviceCounters.get(key) ?? 0) + 1;
      deviceCounters.set(key, n);
      const [lon, lat] = place.at([site.lon, site.lat], k, dir);
      devices.push({
        id: `${key}-${pad(n)}`,
        type: place.type,
        district: site.district,
        siteId: site.id,
        lat: r6(lat),
        lon: r6(lon),
      });
    }
  }
}

// One record per line keeps diffs of the big files readable.
const lines = (records) => `[\n${records.map((r) => `  ${JSON.stringify(r)}`).join(',\n')}\n]\n`;
const districts = DISTRICTS.map((d) => ({
  id: d.id,
  name: d.name,
  nameZh: d.nameZh,
  centroid: centroid(d.boundary),
  boundary: d.boundary,
}));
const districtJson = `[\n${districts
  .map((d) => {
    const ring = d.boundary.map((p) => JSON.stringify(p)).join(', ');
    return `  {\n    "id": ${JSON.stringify(d.id)},\n    "name": ${JSON.stringify(d.name)},\n    "nameZh": ${JSON.stringify(d.nameZh)},\n    "centroid": ${JSON.stringify(d.centroid)},\n    "boundary": [${ring}]\n  }`;
  })
  .join(',\n')}\n]\n`;

writeFileSync(join(here, 'districts.json'), districtJson);
writeFileSync(join(here, 'sites.json'), lines(sites));
writeFileSync(join(here, 'devices.json'), lines(devices));

const tally = (xs, key) => [
  ...xs.reduce((m, x) => m.set(x[key], (m.get(x[key]) ?? 0) + 1), new Map()),
];
console.log(`districts: ${districts.length}, sites: ${sites.length}, devices: ${devices.length}`);
console.log('sites by kind', Object.fromEntries(tally(sites, 'kind')));
console.log('devices by type', Object.fromEntries(tally(devices, 'type')));
console.log('devices by district', Object.fromEntries(tally(devices, 'district')));

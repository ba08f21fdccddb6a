/**
 * The city map: district outlines from the registry's seeds and one dot per registered
 * device, drawn as SVG in an equirectangular projection (plenty at city scale). No tiles:
 * the page must work on a network with no way out.
 */
import { fill, fmtAgo, fmtValue, h, svg } from './dom';
import { STATUS_COLORS, STATUS_LABELS, scaleFor, type Scale } from './scales';
import { city, dataFields, districtName, statusCounts, type DeviceView } from './state';
import { STATUSES, type District } from './types';

const W = 1000;
const PAD = 24;
/** Dot radius in map units at zoom 1. */
const DOT_R = 5;
const MUTED = '#4b5563';
const NO_VALUE = '#8b949e';

interface Projection {
  x(lon: number): number;
  y(lat: number): number;
  height: number;
}

function projection(districts: District[], devices: Iterable<DeviceView>): Projection {
  let minLon = Infinity;
  let maxLon = -Infinity;
  let minLat = Infinity;
  let maxLat = -Infinity;
  const add = (lon: number, lat: number) => {
    minLon = Math.min(minLon, lon);
    maxLon = Math.max(maxLon, lon);
    minLat = Math.min(minLat, lat);
    maxLat = Math.max(maxLat, lat);
  };
  for (const d of districts) for (const [lon, lat] of d.boundary ?? [d.centroid]) add(lon, lat);
  for (const d of devices) add(d.lon, d.lat);
  if (!Number.isFinite(minLon)) add(120.3, 31.57);
  // A degree of longitude is shorter than one of latitude by cos(latitude).
  const kx = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
  const s = (W - 2 * PAD) / Math.max((maxLon - minLon) * kx, 1e-6);
  return {
    x: (lon) => PAD + (lon - minLon) * kx * s,
    y: (lat) => PAD + (maxLat - lat) * s,
    height: (maxLat - minLat) * s + 2 * PAD,
  };
}

/**
 * Whether the browser has a font for `text`: a glyph it lacks is drawn as the same empty
 * box as a private-use character. Machines without CJK fonts get no Chinese labels then.
 */
function canShow(text: string): boolean {
  const ctx = document.createElement('canvas').getContext('2d');
  if (!ctx) return true;
  ctx.font = '16px sans-serif';
  const missing = String.fromCodePoint(0xf0000).repeat([...text].length);
  return ctx.measureText(text).width !== ctx.measureText(missing).width;
}

/** `status` or `<type>/<field>`. */
type ColorBy = string;

export interface CityMap {
  readonly el: HTMLElement;
  dispose(): void;
}

export function cityMap(): CityMap {
  let colorBy: ColorBy = sessionStorage.getItem('taihu.colorBy') ?? 'status';
  let scale: Scale | undefined;
  let proj: Projection | undefined;
  const dots = new Map<string, SVGCircleElement>();
  let zoom = 1;
  let center = { x: W / 2, y: 0 };
  let pinned: string | undefined;

  const select = h('select', { id: 'color-by' });
  const find = h('input', {
    id: 'find-device',
    type: 'search',
    list: 'device-ids',
    placeholder: 'e.g. aq-liangxi-0001',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const ids = h('datalist', { id: 'device-ids' });
  const findForm = h(
    'form',
    { class: 'find', role: 'search' },
    h('label', { for: 'find-device' }, 'Find a device'),
    find,
    ids,
    h('button', { type: 'submit' }, 'Open'),
  );
  const gDistricts = svg('g', { class: 'districts' });
  const gLabels = svg('g', { class: 'district-labels', 'aria-hidden': 'true' });
  const gDots = svg('g', { class: 'dots' });
  const map = svg('svg', {
    id: 'city-map',
    role: 'img',
    'aria-labelledby': 'map-summary',
    tabindex: '0',
    preserveAspectRatio: 'xMidYMid meet',
  });
  // Labels over the dots (they ignore the pointer), so a dense district keeps its name.
  map.append(gDistricts, gDots, gLabels);
  const tip = h('div', { class: 'map-tip', id: 'map-tip', role: 'status', hidden: true });
  const legend = h('ul', { class: 'legend', id: 'map-legend' });
  const summary = h('p', { class: 'map-summary', id: 'map-summary' });
  const zoomIn = h('button', { type: 'button', class: 'icon', 'aria-label': 'Zoom in' }, '+');
  const zoomOut = h('button', { type: 'button', class: 'icon', 'aria-label': 'Zoom out' }, '−');
  const zoomReset = h('button', { type: 'button', 'aria-label': 'Show the whole city' }, 'Fit');

  const el = h(
    'section',
    { class: 'card map-card', 'aria-labelledby': 'map-title' },
    h(
      'div',
      { class: 'card-head' },
      h('h2', { id: 'map-title' }, 'City map'),
      h(
        'div',
        { class: 'controls' },
        h('label', { for: 'color-by' }, 'Colour by'),
        select,
        findForm,
      ),
    ),
    h(
      'div',
      { class: 'map-wrap' },
      map,
      tip,
      h('div', { class: 'zoom', role: 'group', 'aria-label': 'Zoom' }, zoomIn, zoomOut, zoomReset),
    ),
    h('div', { class: 'map-foot' }, legend, summary),
  );

  function fillColorBy(): void {
    const opts: HTMLElement[] = [h('option', { value: 'status' }, 'Device status')];
    for (const t of city.types.values()) {
      const fields = dataFields(t.type).filter((f) => f.kind !== 'string');
      if (fields.length === 0) continue;
      opts.push(
        h(
          'optgroup',
          { label: t.title },
          ...fields.map((f) =>
            h(
              'option',
              { value: `${t.type}/${f.name}` },
              `${f.name}${f.unit ? ` (${f.unit})` : ''}`,
            ),
          ),
        ),
      );
    }
    fill(select, ...opts);
    if (!select.querySelector(`option[value="${CSS.escape(colorBy)}"]`)) colorBy = 'status';
    select.value = colorBy;
  }

  function field(): { type: string; name: string } | undefined {
    if (colorBy === 'status') return undefined;
    const [type = '', name = ''] = colorBy.split('/');
    return { type, name };
  }

  function rescale(): void {
    const f = field();
    if (!f) {
      scale = undefined;
      return;
    }
    const t = city.types.get(f.type);
    const info = t?.fields.find((x) => x.name === f.name);
    if (!t || !info) {
      scale = undefined;
      return;
    }
    const values: unknown[] = [];
    for (const d of city.devices.values())
      if (d.type === f.type && d.data) values.push(d.data[f.name]);
    scale = scaleFor(t.type, t.title, info, values);
  }

  function colorOf(d: DeviceView): { color: string; muted: boolean } {
    const f = field();
    if (!f || !scale) return { color: STATUS_COLORS[d.status], muted: false };
    if (d.type !== f.type) return { color: MUTED, muted: true };
    return { color: scale.colorOf(d.data?.[f.name]) ?? NO_VALUE, muted: false };
  }

  function paint(d: DeviceView): void {
    const dot = dots.get(d.id);
    if (!dot) return;
    const { color, muted } = colorOf(d);
    dot.setAttribute('fill', color);
    dot.setAttribute('data-status', d.status);
    dot.classList.toggle('muted', muted);
  }

  function draw(): void {
    proj = projection(city.districts, city.devices.values());
    const p = proj;
    map.setAttribute('viewBox', `0 0 ${W} ${p.height.toFixed(1)}`);
    center = { x: W / 2, y: p.height / 2 };
    fill(
      gDistricts,
      ...city.districts
        .filter((d) => d.boundary)
        .map((d) =>
          svg(
            'polygon',
            {
              class: 'district',
              'data-district': d.id,
              points: (d.boundary ?? [])
                .map(([lon, lat]) => `${p.x(lon).toFixed(1)},${p.y(lat).toFixed(1)}`)
                .join(' '),
            },
            svg('title', {}, `${d.name}${d.nameZh ? ` ${d.nameZh}` : ''}: ${d.devices} devices`),
          ),
        ),
    );
    fill(
      gLabels,
      ...city.districts.map((d) =>
        svg(
          'text',
          { x: p.x(d.centroid[0]).toFixed(1), y: p.y(d.centroid[1]).toFixed(1) },
          svg('tspan', { class: 'name' }, d.name),
          d.nameZh && canShow(d.nameZh)
            ? svg('tspan', { class: 'zh', x: p.x(d.centroid[0]).toFixed(1), dy: '1.2em' }, d.nameZh)
            : null,
        ),
      ),
    );
    dots.clear();
    rescale();
    const f = field();
    const list = [...city.devices.values()];
    // Devices of the mapped type on top of the muted rest.
    if (f) list.sort((a, b) => Number(a.type === f.type) - Number(b.type === f.type));
    fill(
      gDots,
      ...list.map((d) => {
        const dot = svg('circle', {
          class: 'dot',
          'data-id': d.id,
          cx: p.x(d.lon).toFixed(1),
          cy: p.y(d.lat).toFixed(1),
          r: DOT_R,
        });
        dots.set(d.id, dot);
        return dot;
      }),
    );
    for (const d of list) paint(d);
    fill(ids, ...list.map((d) => h('option', { value: d.id })));
    applyView();
    drawLegend();
  }

  function drawLegend(): void {
    const items: HTMLElement[] = [];
    const swatch = (color: string, muted = false) => {
      const s = h('span', { class: `swatch${muted ? ' muted' : ''}`, 'aria-hidden': 'true' });
      s.style.background = color;
      return s;
    };
    const f = field();
    if (!f || !scale) {
      const c = statusCounts();
      for (const s of STATUSES) {
        items.push(
          h(
            'li',
            { 'data-status': s },
            swatch(STATUS_COLORS[s]),
            h('span', {}, STATUS_LABELS[s]),
            h('span', { class: 'count' }, c[s]),
          ),
        );
      }
      summary.textContent = `${city.devices.size} devices in ${city.districts.length} districts, coloured by status. Hover or click a dot for the device; Ctrl + wheel or the buttons zoom, dragging pans.`;
    } else {
      items.push(h('li', { class: 'legend-title' }, scale.title));
      for (const b of scale.bands) items.push(h('li', {}, swatch(b.color), h('span', {}, b.label)));
      items.push(h('li', {}, swatch(NO_VALUE), h('span', {}, 'no reading since start')));
      items.push(h('li', {}, swatch(MUTED, true), h('span', {}, 'other device types')));
      const n = [...city.devices.values()].filter((d) => d.type === f.type).length;
      const t = city.types.get(f.type)?.title ?? f.type;
      summary.textContent = `${n} ${t} devices coloured by their last ${f.name}; ${city.devices.size} devices in all.`;
    }
    fill(legend, ...items);
  }

  // ---- zoom and pan: the viewBox moves, dots keep their size on screen ----
  function applyView(): void {
    if (!proj) return;
    const w = W / zoom;
    const hgt = proj.height / zoom;
    const x = Math.min(Math.max(center.x, w / 2), W - w / 2);
    const y = Math.min(Math.max(center.y, hgt / 2), proj.height - hgt / 2);
    center = { x, y };
    map.setAttribute(
      'viewBox',
      `${(x - w / 2).toFixed(2)} ${(y - hgt / 2).toFixed(2)} ${w.toFixed(2)} ${hgt.toFixed(2)}`,
    );
    const r = DOT_R / Math.pow(zoom, 0.75);
    // Devices of other types than the mapped field stay in the background, smaller.
    const big = r.toFixed(2);
    const small = (r * 0.6).toFixed(2);
    for (const dot of dots.values())
      dot.setAttribute('r', dot.classList.contains('muted') ? small : big);
    map.style.setProperty('--zoom', String(zoom));
    map.classList.toggle('zoomed', zoom > 1);
  }
  function zoomBy(f: number, at?: { x: number; y: number }): void {
    const next = Math.min(Math.max(zoom * f, 1), 24);
    if (at) {
      // Keep the point under the cursor where it is.
      center = {
        x: at.x + (center.x - at.x) * (zoom / next),
        y: at.y + (center.y - at.y) * (zoom / next),
      };
    }
    zoom = next;
    applyView();
  }
  function toMap(ev: { clientX: number; clientY: number }): { x: number; y: number } {
    const pt = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(map.getScreenCTM()?.inverse());
    return { x: pt.x, y: pt.y };
  }
  zoomIn.addEventListener('click', () => zoomBy(1.6));
  zoomOut.addEventListener('click', () => zoomBy(1 / 1.6));
  zoomReset.addEventListener('click', () => {
    zoom = 1;
    applyView();
  });
  map.addEventListener(
    'wheel',
    (ev) => {
      // A plain wheel scrolls the page past the map; Ctrl + wheel (and a pinch) zooms it.
      if (!ev.ctrlKey && !ev.metaKey) return;
      ev.preventDefault();
      zoomBy(ev.deltaY < 0 ? 1.25 : 0.8, toMap(ev));
    },
    { passive: false },
  );
  let drag: { x: number; y: number; moved: boolean } | undefined;
  map.addEventListener('pointerdown', (ev) => {
    if (ev.button !== 0) return;
    drag = { ...toMap(ev), moved: false };
  });
  map.addEventListener('pointermove', (ev) => {
    if (!drag || zoom === 1 || ev.buttons !== 1) return;
    const p = toMap(ev);
    if (!drag.moved && Math.hypot(p.x - drag.x, p.y - drag.y) < 2 / zoom) return;
    drag.moved = true;
    map.setPointerCapture(ev.pointerId);
    center = { x: center.x - (p.x - drag.x), y: center.y - (p.y - drag.y) };
    applyView();
  });
  map.addEventListener('keydown', (ev) => {
    const step = 60 / zoom;
    const moves: Record<string, [number, number]> = {
      ArrowLeft: [-step, 0],
      ArrowRight: [step, 0],
      ArrowUp: [0, -step],
      ArrowDown: [0, step],
    };
    const m = moves[ev.key];
    if (m) {
      center = { x: center.x + m[0], y: center.y + m[1] };
      applyView();
    } else if (ev.key === '+' || ev.key === '=') zoomBy(1.6);
    else if (ev.key === '-') zoomBy(1 / 1.6);
    else if (ev.key === '0') {
      zoom = 1;
      applyView();
    } else if (ev.key === 'Escape') hideTip();
    else return;
    ev.preventDefault();
  });

  // ---- the device under the pointer ----
  function showTip(id: string, pin: boolean): void {
    const d = city.devices.get(id);
    if (!d) return;
    const t = city.types.get(d.type);
    const fields = dataFields(d.type).slice(0, 5);
    const f = field();
    fill(
      tip,
      h('strong', { class: 'tip-id' }, d.id),
      h('span', { class: 'tip-meta' }, `${t?.title ?? d.type} · ${districtName(d.district)}`),
      h('span', { class: `badge status-${d.status}` }, d.status),
      d.lastSeen ? h('span', { class: 'tip-seen' }, ` last seen ${fmtAgo(d.lastSeen)}`) : null,
      d.data
        ? h(
            'dl',
            { class: 'tip-data' },
            ...fields.flatMap((fi) => [
              h('dt', { class: f?.name === fi.name ? 'hl' : '' }, fi.name),
              h(
                'dd',
                {},
                d.data?.[fi.name] === undefined
                  ? '—'
                  : `${fmtValue(d.data[fi.name])}${fi.unit ? ` ${fi.unit}` : ''}`,
              ),
            ]),
          )
        : h('p', { class: 'muted-text' }, 'No reading since the gateway started.'),
      h('a', { href: `#/devices/${encodeURIComponent(d.id)}` }, 'Open the device page →'),
    );
    tip.hidden = false;
    tip.classList.toggle('pinned', pin);
    // Beside the dot (not the pointer): the same for a click, a hover and a live update.
    const box = el.querySelector('.map-wrap')?.getBoundingClientRect();
    const at = dots.get(id)?.getBoundingClientRect();
    if (box && at) {
      const x = at.x + at.width / 2 - box.left;
      const y = at.y + at.height / 2 - box.top;
      const flipX = x > box.width - 280;
      const flipY = y > box.height - 200;
      tip.style.left = `${flipX ? x - 12 : x + 12}px`;
      tip.style.top = `${flipY ? y - 12 : y + 12}px`;
      tip.style.transform = `translate(${flipX ? '-100%' : '0'}, ${flipY ? '-100%' : '0'})`;
    }
    for (const dot of gDots.querySelectorAll('.selected')) dot.classList.remove('selected');
    dots.get(id)?.classList.add('selected');
  }
  function hideTip(): void {
    pinned = undefined;
    tip.hidden = true;
    for (const dot of gDots.querySelectorAll('.selected')) dot.classList.remove('selected');
  }
  const dotOf = (t: EventTarget | null) =>
    t instanceof SVGCircleElement && t.dataset.id ? t.dataset.id : undefined;
  map.addEventListener('pointerover', (ev) => {
    const id = dotOf(ev.target);
    if (id && !pinned) showTip(id, false);
  });
  map.addEventListener('pointerout', (ev) => {
    if (dotOf(ev.target) && !pinned) hideTip();
  });
  map.addEventListener('click', (ev) => {
    if (drag?.moved) return;
    const id = dotOf(ev.target);
    if (id) {
      pinned = id;
      showTip(id, true);
    } else hideTip();
  });

  select.addEventListener('change', () => {
    colorBy = select.value;
    sessionStorage.setItem('taihu.colorBy', colorBy);
    hideTip();
    draw();
  });
  findForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = find.value.trim();
    if (city.devices.has(id)) location.hash = `#/devices/${encodeURIComponent(id)}`;
    else {
      find.setCustomValidity(id ? `No device "${id}" is registered` : 'Type a device id');
      find.reportValidity();
    }
  });
  find.addEventListener('input', () => find.setCustomValidity(''));

  // Live: recolour one dot per change; the legend's counts at most once a second.
  let legendDirty = false;
  const pulse = new Set<string>();
  const offChange = city.deviceChanged.on((d) => {
    paint(d);
    if (!pulse.has(d.id)) {
      const dot = dots.get(d.id);
      if (dot) {
        pulse.add(d.id);
        dot.classList.add('pulse');
        window.setTimeout(() => {
          dot.classList.remove('pulse');
          pulse.delete(d.id);
        }, 900);
      }
    }
    legendDirty = true;
    if (pinned === d.id) showTip(d.id, true);
  });
  const legendTimer = window.setInterval(() => {
    if (!legendDirty) return;
    legendDirty = false;
    drawLegend();
  }, 1000);
  const offReload = city.reloaded.on(() => {
    // Keep the view; redraw what changed.
    const keep = { zoom, center };
    draw();
    zoom = keep.zoom;
    center = keep.center;
    applyView();
  });

  fillColorBy();
  draw();
  return {
    el,
    dispose() {
      offChange();
      offReload();
      window.clearInterval(legendTimer);
    },
  };
}

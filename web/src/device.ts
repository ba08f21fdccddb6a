/**
 * One device: its record, live status and last reading (kept current from the stream),
 * a history chart of one field, and its recent rejections with reasons.
 */
import { ApiError, getJson, withQuery } from './api';
import { AggregateChart, FNS, WINDOWS } from './chart';
import { fill, fmtAgo, fmtTime, fmtValue, h } from './dom';
import { rejectionTable, type Page } from './rejections';
import { city, districtName, numericFields, unitOf } from './state';
import type { DeviceDetail, Reading, Rejection, Site } from './types';

const REJECTIONS_EVERY_MS = 15_000;
/** Wait after a live reading before re-reading the history (the spool drains in batches). */
const CHART_AFTER_READING_MS = 1500;

export function devicePage(id: string): Page {
  const title = h('h1', { id: 'device-title' }, id);
  const statusBadge = h('span', { class: 'badge', id: 'device-status' }, '…');
  const sub = h('p', { class: 'lede', id: 'device-sub' });
  const record = h('dl', { class: 'record', id: 'device-record' });
  const lastMeta = h('p', { class: 'note', id: 'device-last-meta' });
  const last = h('table', { class: 'last', id: 'device-last' });
  const rejections = h('div', { class: 'table-scroll', id: 'device-rejections' });
  const fieldSel = h('select', { id: 'hist-field' });
  const fnSel = h('select', { id: 'hist-fn' }, ...FNS.map((f) => h('option', { value: f }, f)));
  const winSel = h(
    'select',
    { id: 'hist-window' },
    ...WINDOWS.map((w) => h('option', { value: w.every }, w.label)),
  );
  winSel.value = '5m';
  const main = h(
    'div',
    { class: 'page device-page' },
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← City map')),
    h('div', { class: 'title-row' }, title, statusBadge),
    sub,
  );
  const el = main;

  const ac = new AbortController();
  let device: DeviceDetail | undefined;
  let chart: AggregateChart | undefined;
  const timers: number[] = [];
  let chartSoon: number | undefined;
  const offs: (() => void)[] = [];

  const showStatus = (s: string) => {
    statusBadge.textContent = s;
    statusBadge.className = `badge status-${s}`;
  };

  const showLast = (r: Reading | null, lastSeen: string | null) => {
    if (!device) return;
    const d = device;
    if (!r) {
      lastMeta.textContent = 'No reading since the gateway started.';
      fill(last);
      last.dataset.ts = '';
      return;
    }
    last.dataset.ts = r.ts;
    lastMeta.replaceChildren(
      'Measured ',
      h('time', { datetime: r.ts }, fmtTime(r.ts)),
      r.seq !== null ? ` · seq ${r.seq}` : '',
      lastSeen ? ` · received ${fmtAgo(lastSeen)}` : '',
    );
    const known = city.types.get(d.type)?.fields.map((f) => f.name) ?? [];
    const names = [
      ...known.filter((n) => n in r.data),
      ...Object.keys(r.data).filter((n) => !known.includes(n)),
    ];
    fill(
      last,
      h('caption', { class: 'sr-only' }, `Last reading of ${d.id}`),
      h(
        'tbody',
        {},
        ...names.map((n) =>
          h(
            'tr',
            { 'data-field': n },
            h('th', { scope: 'row' }, n),
            h('td', { class: 'num', 'data-value': String(r.data[n]) }, fmtValue(r.data[n])),
            h('td', { class: 'unit' }, unitOf(d.type, n)),
          ),
        ),
      ),
    );
    last.classList.remove('flash');
    void last.offsetWidth; // restarts the highlight animation
    last.classList.add('flash');
  };

  const loadRejections = async () => {
    try {
      const { items } = await getJson<{ items: Rejection[] }>(
        withQuery('/api/v1/rejections', { device: id, limit: 20 }),
        ac.signal,
      );
      fill(rejections, rejectionTable(items, { showDevice: false }));
    } catch (err) {
      if (!ac.signal.aborted) fill(rejections, h('p', { class: 'note' }, (err as Error).message));
    }
  };

  const loadChart = () => {
    if (!device || !chart) return;
    const win =
      WINDOWS.find((w) => w.every === winSel.value) ?? (WINDOWS[2] as (typeof WINDOWS)[number]);
    void chart.load({
      type: device.type,
      field: fieldSel.value,
      fn: fnSel.value,
      window: win,
      device: id,
    });
  };

  const render = async () => {
    try {
      device = await getJson<DeviceDetail>(`/api/v1/devices/${encodeURIComponent(id)}`, ac.signal);
    } catch (err) {
      if (ac.signal.aborted) return;
      main.append(
        h(
          'p',
          { class: 'error', role: 'alert' },
          err instanceof ApiError && err.status === 404
            ? `No device "${id}" is registered.`
            : `Could not load the device: ${(err as Error).message}`,
        ),
      );
      return;
    }
    const d = device;
    const t = city.types.get(d.type);
    document.title = `${d.id} · Taihu`;
    showStatus(d.status);
    sub.textContent = `${t?.title ?? d.type} in ${districtName(d.district)}`;
    let site: Site | undefined;
    try {
      site = (
        await getJson<{ items: Site[] }>(
          withQuery('/api/v1/sites', { district: d.district }),
          ac.signal,
        )
      ).items.find((s) => s.id === d.siteId);
    } catch {
      // The site's name is a nicety; its id is shown either way.
    }
    const row = (k: string, v: Node | string) => [h('dt', {}, k), h('dd', {}, v)];
    fill(
      record,
      ...row('Type', `${t?.title ?? d.type} (${d.type})`),
      ...row('District', districtName(d.district)),
      ...row('Site', site ? `${site.name} (${site.id})` : d.siteId),
      ...row('Position', `${d.lat.toFixed(5)}, ${d.lon.toFixed(5)}`),
      ...row('State', d.state),
      ...row(
        'Credentials',
        d.credential === 'individual' ? 'individual secret' : 'enrollment-derived',
      ),
      ...row('Registered', fmtTime(d.createdAt)),
      ...row('Reports every', t ? `${t.intervalSeconds} s` : '—'),
      ...row('Telemetry topic', h('code', {}, `sensors/${d.type}/${d.id}/telemetry`)),
    );
    showLast(d.last, d.lastSeen);

    const fields = numericFields(d.type);
    fill(
      fieldSel,
      ...fields.map((f) =>
        h('option', { value: f.name }, `${f.name}${f.unit ? ` (${f.unit})` : ''}`),
      ),
    );
    chart = new AggregateChart('device-chart', {
      labelOf: () => fieldSel.value,
      unit: () => unitOf(d.type, fieldSel.value),
      maxGapSeconds: () => 3 * (t?.intervalSeconds ?? 60),
    });
    const form = h(
      'form',
      { class: 'controls', id: 'hist-form' },
      h('span', { class: 'ctl' }, h('label', { for: 'hist-field' }, 'Field'), fieldSel),
      h('span', { class: 'ctl' }, h('label', { for: 'hist-fn' }, 'Function'), fnSel),
      h('span', { class: 'ctl' }, h('label', { for: 'hist-window' }, 'Window'), winSel),
    );
    form.addEventListener('change', loadChart);
    form.addEventListener('submit', (ev) => ev.preventDefault());

    main.append(
      h(
        'div',
        { class: 'device-grid' },
        h(
          'section',
          { class: 'card', 'aria-labelledby': 'rec-title' },
          h('h2', { id: 'rec-title' }, 'Record'),
          record,
        ),
        h(
          'section',
          { class: 'card', 'aria-labelledby': 'last-title' },
          h('h2', { id: 'last-title' }, 'Last reading'),
          lastMeta,
          last,
        ),
      ),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'hist-title' },
        h('div', { class: 'card-head' }, h('h2', { id: 'hist-title' }, 'History')),
        fields.length > 0
          ? form
          : h('p', { class: 'note' }, 'This type has no numeric fields to chart.'),
        fields.length > 0 ? chart.el : null,
      ),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'rej-title' },
        h(
          'div',
          { class: 'card-head' },
          h('h2', { id: 'rej-title' }, 'Recent rejections'),
          h(
            'a',
            { href: `#/rejections?device=${encodeURIComponent(d.id)}` },
            'All rejections of this device',
          ),
        ),
        rejections,
      ),
    );
    if (fields.length > 0) loadChart();
    void loadRejections();
    timers.push(window.setInterval(() => void loadRejections(), REJECTIONS_EVERY_MS));
    timers.push(window.setInterval(loadChart, 30_000));

    offs.push(
      city.readings.on((e) => {
        if (e.id !== id) return;
        const r = e.readings.at(-1);
        if (r) showLast(r, new Date().toISOString());
        // The stream speaks once the reading is durable; the store has it a moment later.
        window.clearTimeout(chartSoon);
        chartSoon = window.setTimeout(loadChart, CHART_AFTER_READING_MS);
      }),
      city.statuses.on((e) => {
        if (e.id === id) showStatus(e.status);
      }),
      // A re-read after a reconnect may carry a newer status than the last event.
      city.reloaded.on(() => {
        const v = city.devices.get(id);
        if (v) showStatus(v.status);
      }),
    );
  };
  void render();
  return {
    el,
    dispose() {
      ac.abort();
      chart?.destroy();
      for (const t of timers) window.clearInterval(t);
      window.clearTimeout(chartSoon);
      for (const off of offs) off();
    },
  };
}

/**
 * The live panel: ingest rate and the latest readings from the stream, device counts by
 * status from the shared device state, and rejections and spool from /metrics (the stream
 * carries accepted readings and status changes only).
 */
import { getText, parseMetrics } from './api';
import { fill, fmtBytes, fmtNumber, fmtTime, fmtValue, h } from './dom';
import { STATUS_COLORS, STATUS_LABELS } from './scales';
import { city, dataFields, districtName, statusCounts, unitOf } from './state';
import { STATUSES, type ReadingEvent } from './types';

/** Window of the ingest rate, ms: short enough to follow a burst, long enough to be steady. */
const RATE_WINDOW_MS = 10_000;
/** Window of the rejection rate, ms. */
const REJECT_WINDOW_MS = 60_000;
const METRICS_EVERY_MS = 5_000;
/** Readings listed; the stylesheet shows fewer on small screens. */
const FEED_LENGTH = 16;

export interface LivePanel {
  readonly el: HTMLElement;
  dispose(): void;
}

function stat(id: string, label: string, unit: string, extra?: HTMLElement): HTMLElement {
  return h(
    'div',
    { class: 'stat', id: `${id}-box` },
    h('dt', {}, label),
    h('dd', {}, h('span', { class: 'value', id }, '…'), h('span', { class: 'unit' }, unit)),
    extra,
  );
}

export function livePanel(): LivePanel {
  const statusList = h(
    'ul',
    { class: 'status-counts', 'aria-label': 'Devices by status' },
    ...STATUSES.map((s) => {
      const dot = h('span', { class: 'swatch round', 'aria-hidden': 'true' });
      dot.style.background = STATUS_COLORS[s];
      return h(
        'li',
        {},
        dot,
        h('span', { class: 'value', id: `stat-${s}` }, '…'),
        h('span', { class: 'label' }, STATUS_LABELS[s].replace(/ \(.*\)/, '')),
      );
    }),
  );
  const feed = h('ol', { class: 'feed', id: 'live-feed', 'aria-label': 'Latest readings' });
  const metricsNote = h('p', { class: 'note', id: 'metrics-note' });
  const el = h(
    'section',
    { class: 'card live-card', 'aria-labelledby': 'live-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'live-title' }, 'Live')),
    h(
      'dl',
      { class: 'stats' },
      stat('stat-rate', 'Ingest', 'readings/s'),
      stat('stat-rejections', 'Rejections', 'per minute'),
      stat('stat-spool', 'Spool', ''),
      stat('stat-connected', 'Connected', 'devices'),
    ),
    statusList,
    metricsNote,
    h('h3', {}, 'Latest readings'),
    feed,
  );

  // ---- ingest rate from the stream ----
  const arrivals: [number, number][] = [];
  const onReading = (e: ReadingEvent) => {
    arrivals.push([performance.now(), e.readings.length]);
    const r = e.readings.at(-1);
    if (!r) return;
    const t = city.types.get(e.type);
    const fields = dataFields(e.type)
      .filter((f) => f.name in r.data)
      .slice(0, 2);
    const li = h(
      'li',
      { 'data-device': e.id },
      h('time', { datetime: r.ts }, fmtTime(r.ts)),
      h('a', { href: `#/devices/${encodeURIComponent(e.id)}` }, e.id),
      h('span', { class: 'feed-meta' }, `${t?.title ?? e.type}, ${districtName(e.district)}`),
      h(
        'span',
        { class: 'feed-data' },
        fields
          .map(
            (f) =>
              `${f.name} ${fmtValue(r.data[f.name])}${unitOf(e.type, f.name) ? ` ${unitOf(e.type, f.name)}` : ''}`,
          )
          .join(' · '),
      ),
    );
    feed.prepend(li);
    while (feed.children.length > FEED_LENGTH) feed.lastElementChild?.remove();
  };
  const offReading = city.readings.on(onReading);

  const tick = () => {
    const now = performance.now();
    while (arrivals.length > 0 && (arrivals[0]?.[0] ?? now) < now - RATE_WINDOW_MS)
      arrivals.shift();
    const n = arrivals.reduce((s, [, k]) => s + k, 0);
    set('stat-rate', fmtNumber(n / (RATE_WINDOW_MS / 1000)));
    const c = statusCounts();
    for (const s of STATUSES) set(`stat-${s}`, city.loaded ? String(c[s]) : '…');
  };
  const tickTimer = window.setInterval(tick, 1000);

  // ---- rejections and spool from the metrics ----
  const rejections: [number, number][] = [];
  const ac = new AbortController();
  const pollMetrics = async () => {
    try {
      const m = parseMetrics(await getText('/metrics', ac.signal));
      const now = Date.now();
      rejections.push([now, m.get('taihu_rejections_total') ?? 0]);
      while (rejections.length > 2 && (rejections[1]?.[0] ?? now) <= now - REJECT_WINDOW_MS) {
        rejections.shift();
      }
      const first = rejections[0];
      const last = rejections.at(-1);
      if (first && last && last[0] - first[0] >= METRICS_EVERY_MS / 2) {
        const perMin = ((last[1] - first[1]) / (last[0] - first[0])) * 60_000;
        set('stat-rejections', fmtNumber(Math.max(0, perMin)));
      } else set('stat-rejections', '…');
      const spool = m.get('taihu_spool_bytes') ?? 0;
      const pending = m.get('taihu_spool_pending_records') ?? 0;
      set('stat-spool', fmtBytes(spool));
      const back = (m.get('taihu_spool_backpressure') ?? 0) > 0;
      el.querySelector('#stat-spool-box')?.classList.toggle('alarm', back);
      set('stat-connected', String(m.get('taihu_connected_devices') ?? 0));
      metricsNote.textContent = back
        ? `Spool above its high watermark: acknowledgements are held (${pending} records waiting for the store).`
        : `${plural(pending, 'record')} waiting for the store; ${plural(m.get('taihu_rejections_total') ?? 0, 'message')} rejected since start.`;
    } catch {
      // A 401 is reported by the request itself; anything else shows as stale numbers.
      if (!ac.signal.aborted) metricsNote.textContent = 'Metrics unavailable; retrying.';
    }
  };
  void pollMetrics();
  const metricsTimer = window.setInterval(() => void pollMetrics(), METRICS_EVERY_MS);

  function set(id: string, text: string): void {
    const node = el.querySelector(`#${id}`);
    if (node && node.textContent !== text) node.textContent = text;
  }
  fill(feed);
  tick();
  return {
    el,
    dispose() {
      offReading();
      ac.abort();
      window.clearInterval(tickTimer);
      window.clearInterval(metricsTimer);
    },
  };
}

function plural(n: number, noun: string): string {
  return `${fmtNumber(n)} ${noun}${n === 1 ? '' : 's'}`;
}

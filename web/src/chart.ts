/**
 * An aggregate over time as a uPlot chart, with the same numbers as a table (for screen
 * readers, for copying, and so the plotted values can be checked against the API).
 */
import uPlot from 'uplot';
import { ApiError, getJson, withQuery } from './api';
import { fill, fmtNumber, fmtTime, h } from './dom';
import type { Aggregate } from './types';

/** Okabe–Ito: distinguishable with the common colour-vision deficiencies. */
export const SERIES_COLORS = [
  '#56b4e9',
  '#e69f00',
  '#009e73',
  '#f0e442',
  '#cc79a7',
  '#d55e00',
  '#0072b2',
  '#ffffff',
];

export interface Window {
  label: string;
  ms: number;
  every: string;
  everyMs: number;
}

const MIN = 60_000;
export const WINDOWS: Window[] = [
  { label: 'Last 15 minutes', ms: 15 * MIN, every: '30s', everyMs: 30_000 },
  { label: 'Last hour', ms: 60 * MIN, every: '1m', everyMs: MIN },
  { label: 'Last 6 hours', ms: 360 * MIN, every: '5m', everyMs: 5 * MIN },
  { label: 'Last 24 hours', ms: 1440 * MIN, every: '15m', everyMs: 15 * MIN },
  { label: 'Last 7 days', ms: 7 * 1440 * MIN, every: '1h', everyMs: 60 * MIN },
];

export const FNS = ['mean', 'min', 'max', 'median', 'p95', 'sum', 'count'] as const;

export interface ChartQuery {
  type: string;
  field: string;
  fn: string;
  window: Window;
  device?: string;
  district?: string;
  groupBy?: 'district' | 'device' | 'site';
}

export interface ChartOptions {
  /** Name of a series from its group (e.g. a district's name). */
  labelOf(group: Record<string, string>): string;
  /** Which series to draw; all when absent. */
  include?(group: Record<string, string>): boolean;
  unit(): string;
  /**
   * Longest silence, s, still drawn as a line: a device reporting every 5 min leaves
   * empty 1-min buckets that are not an outage. Longer gaps break the line.
   */
  maxGapSeconds(): number;
  height?: number;
}

const keyOf = (g: Record<string, string>) => Object.values(g).join('/') || 'all';

export class AggregateChart {
  readonly el: HTMLElement;
  readonly #plotBox: HTMLElement;
  readonly #msg: HTMLElement;
  readonly #caption: HTMLElement;
  readonly #table: HTMLTableElement;
  readonly #opts: ChartOptions;
  #plot: uPlot | undefined;
  #resize: ResizeObserver;
  #abort: AbortController | undefined;

  constructor(id: string, opts: ChartOptions) {
    this.#opts = opts;
    this.#plotBox = h('div', { class: 'plot' });
    this.#msg = h('p', { class: 'chart-msg', role: 'status' });
    this.#caption = h('figcaption', {});
    this.#table = h('table', { class: 'data', id: `${id}-table` });
    this.el = h(
      'figure',
      { class: 'chart', id, 'data-state': 'idle' },
      this.#plotBox,
      this.#msg,
      this.#caption,
      h(
        'details',
        { class: 'table-view' },
        h('summary', {}, 'Show the numbers as a table'),
        h('div', { class: 'table-scroll' }, this.#table),
      ),
    );
    this.#resize = new ResizeObserver(() => {
      if (this.#plot) this.#plot.setSize(this.#size());
    });
    this.#resize.observe(this.#plotBox);
  }

  #size(): { width: number; height: number } {
    const width = Math.max(280, this.#plotBox.clientWidth);
    const tall = window.matchMedia('(min-width: 1800px)').matches;
    return { width, height: this.#opts.height ?? (tall ? 380 : 280) };
  }

  /** Fetches the aggregate for a window ending now (at a bucket boundary) and draws it. */
  async load(q: ChartQuery): Promise<void> {
    this.#abort?.abort();
    const ac = new AbortController();
    this.#abort = ac;
    // Bucket-aligned ends: the last bucket is the one filling now, the first one is whole.
    const to = Math.ceil(Date.now() / q.window.everyMs) * q.window.everyMs;
    const from = to - q.window.ms;
    const path = withQuery('/api/v1/aggregates', {
      type: q.type,
      field: q.field,
      fn: q.fn,
      every: q.window.every,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      device: q.device,
      district: q.district,
      groupBy: q.groupBy,
      fill: 'null',
    });
    this.el.dataset.query = path;
    this.el.dataset.state = 'loading';
    this.el.setAttribute('aria-busy', 'true');
    try {
      const agg = await getJson<Aggregate>(path, ac.signal);
      if (ac.signal.aborted) return;
      this.#render(agg, q);
    } catch (err) {
      if (ac.signal.aborted) return;
      this.el.dataset.state = 'error';
      this.#msg.textContent =
        err instanceof ApiError ? `The gateway said: ${err.message}` : (err as Error).message;
      this.#plot?.destroy();
      this.#plot = undefined;
    } finally {
      if (!ac.signal.aborted) this.el.removeAttribute('aria-busy');
    }
  }

  #render(agg: Aggregate, q: ChartQuery): void {
    const series = agg.series
      .filter((s) => this.#opts.include?.(s.group) ?? true)
      .map((s) => ({ ...s, key: keyOf(s.group), label: this.#opts.labelOf(s.group) }))
      .sort((a, b) => a.label.localeCompare(b.label));
    const times = [...new Set(series.flatMap((s) => s.points.map((p) => p.t)))].sort();
    const xs = times.map((t) => Date.parse(t) / 1000);
    const columns = series.map((s) => {
      const byT = new Map(s.points.map((p) => [p.t, p]));
      return times.map((t) => byT.get(t) ?? null);
    });
    const values = columns.flat().filter((p) => p !== null && p.value !== null).length;
    const unit = q.fn === 'count' ? 'readings' : this.#opts.unit();
    this.#caption.textContent =
      `${q.fn} of ${agg.field}${unit ? ` (${unit})` : ''} per ${agg.every}, ` +
      `${fmtTime(agg.from)} to ${fmtTime(agg.to)}`;
    this.el.dataset.series = String(series.length);
    this.el.dataset.points = String(values);
    this.#msg.textContent = values === 0 ? 'No readings in this window.' : '';

    // Table, newest bucket first.
    fill(
      this.#table,
      h('caption', {}, this.#caption.textContent),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { scope: 'col' }, 'Bucket start'),
          ...series.map((s) => h('th', { scope: 'col' }, s.label)),
        ),
      ),
      h(
        'tbody',
        {},
        ...times
          .map((t, i) =>
            h(
              'tr',
              {},
              h('th', { scope: 'row' }, h('time', { datetime: t }, fmtTime(t))),
              ...columns.map((col, j) => {
                const p = col[i];
                const v = p?.value ?? null;
                return h(
                  'td',
                  {
                    'data-series': series[j]?.key ?? '',
                    'data-t': t,
                    'data-value': v === null ? '' : String(v),
                    'data-count': p ? String(p.count) : '0',
                  },
                  v === null ? '—' : fmtNumber(v),
                );
              }),
            ),
          )
          .reverse(),
      ),
    );

    const maxGap = Math.max(this.#opts.maxGapSeconds(), (2 * q.window.everyMs) / 1000);
    this.#plot?.destroy();
    this.#plot = undefined;
    if (values === 0) {
      this.el.dataset.state = 'empty';
      return;
    }
    const data: uPlot.AlignedData = [xs, ...columns.map((c) => c.map((p) => p?.value ?? null))];
    // Axis text follows the page's size, which grows on wall screens.
    const px = Math.round(parseFloat(getComputedStyle(document.documentElement).fontSize) * 0.8);
    const font = `${px}px system-ui, sans-serif`;
    const axis = {
      stroke: '#c9d1d9',
      grid: { stroke: '#2a3440', width: 1 },
      ticks: { stroke: '#2a3440', width: 1 },
      font,
    };
    const long = q.window.ms > 86_400_000;
    const clock = (s: number) =>
      new Date(s * 1000).toLocaleString('en-GB', {
        hour12: false,
        hour: '2-digit',
        minute: '2-digit',
        ...(long ? { day: 'numeric', month: 'short' } : {}),
      });
    const opts: uPlot.Options = {
      ...this.#size(),
      scales: { x: { time: true } },
      axes: [
        { ...axis, size: px * 3, values: (_u, ticks) => ticks.map(clock) },
        {
          ...axis,
          size: px * 5,
          values: (_u, ticks) => ticks.map((v) => fmtNumber(v)),
          label: unit,
          labelFont: font,
          labelSize: px * 1.6,
        },
      ],
      cursor: { focus: { prox: 16 } },
      legend: { live: true },
      series: [
        { label: 'Time', value: (_u, v) => (v === null ? '—' : fmtTime(v * 1000)) },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: SERIES_COLORS[i % SERIES_COLORS.length] ?? '#ffffff',
          width: 2,
          spanGaps: false,
          gaps: (u: uPlot, _s: number, _i0: number, _i1: number, nullGaps: uPlot.Series.Gaps) => {
            const x0 = xs[0] ?? 0;
            const maxPx = u.valToPos(x0 + maxGap, 'x', true) - u.valToPos(x0, 'x', true);
            return nullGaps.filter(([a, b]) => b - a > maxPx);
          },
          points: { show: xs.length <= 60, size: 6 },
          value: (_u: uPlot, v: number | null) => (v === null ? '—' : fmtNumber(v)),
        })),
      ],
    };
    this.#plot = new uPlot(opts, data, this.#plotBox);
    this.el.dataset.state = 'ready';
  }

  destroy(): void {
    this.#abort?.abort();
    this.#resize.disconnect();
    this.#plot?.destroy();
  }
}

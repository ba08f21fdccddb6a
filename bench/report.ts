/**
 * What a scenario leaves behind: a table on stdout, a JSON result file and an SVG chart of
 * throughput and latency over time under the output dir (`bench-results/` by default), and a
 * live progress line on stderr while it runs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Machine } from './proc.js';

export interface Row {
  readonly metric: string;
  readonly value: string;
  /** The target, when the row has one. */
  readonly target?: string | undefined;
  readonly verdict?: 'met' | 'missed' | undefined;
}

export interface Series {
  readonly name: string;
  /** [seconds since the scenario started, value]. */
  readonly points: readonly (readonly [number, number])[];
}

export interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly series: readonly Series[];
}

export interface Chart {
  readonly title: string;
  readonly panels: readonly Panel[];
  /** Vertical lines: phase changes, outages. */
  readonly markers: readonly { readonly t: number; readonly label: string }[];
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly startedAt: string;
  readonly machine: Machine;
  readonly params: Readonly<Record<string, unknown>>;
  readonly rows: readonly Row[];
  /** Every measured number, for tooling; rows are what a person reads. */
  readonly figures: Readonly<Record<string, unknown>>;
  readonly chart: Chart;
  readonly notes: readonly string[];
}

/** `verdict` for a figure that must stay at or under (`max`) or reach (`min`) its target. */
export function judge(value: number, target: number, kind: 'max' | 'min'): 'met' | 'missed' {
  if (!Number.isFinite(value)) return 'missed';
  return kind === 'max' ? (value <= target ? 'met' : 'missed') : value >= target ? 'met' : 'missed';
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

export function printTable(title: string, rows: readonly Row[]): void {
  const head = ['metric', 'measured', 'target', ''];
  const cells = rows.map((r) => [
    r.metric,
    r.value,
    r.target ?? '',
    r.verdict === undefined ? '' : r.verdict === 'met' ? 'met' : 'MISSED',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]) =>
    c
      .map((x, i) => x.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  process.stdout.write(
    `\n${title}\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n` +
      `${cells.map(line).join('\n')}\n`,
  );
}

/** Writes `<scenario>-<time>.json` and `.svg`; returns their paths. */
export function writeResult(outDir: string, r: ScenarioResult): { json: string; svg: string } {
  mkdirSync(outDir, { recursive: true });
  const stamp = r.startedAt.replace(/[:.]/g, '-');
  const json = join(outDir, `${r.scenario}-${stamp}.json`);
  const svg = join(outDir, `${r.scenario}-${stamp}.svg`);
  writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(svg, renderSvg(r.chart));
  return { json, svg };
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf'];
const W = 960;
const PANEL_H = 240;
const M = { left: 70, right: 20, top: 30, bottom: 36 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** 1, 2 or 5 × 10^n steps giving about `count` ticks up to `max`. */
function ticks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(v);
  return out;
}

function short(v: number): string {
  if (v >= 1e6) return `${fmt(v / 1e6, v % 1e6 === 0 ? 0 : 1)}M`;
  if (v >= 1e4) return `${fmt(v / 1e3, 0)}k`;
  return fmt(v, v < 10 && v % 1 !== 0 ? 1 : 0);
}

/** A hand-written SVG: one panel per metric, time on x, a legend per panel, phase markers. */
export function renderSvg(chart: Chart): string {
  const all = chart.panels.flatMap((p) => p.series.flatMap((s) => s.points.map((pt) => pt[0])));
  const xMax = Math.max(1, ...all, ...chart.markers.map((m) => m.t));
  const height = 40 + chart.panels.length * (PANEL_H + 20);
  const plotW = W - M.left - M.right;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(chart.title)}</text>`,
  ];
  chart.panels.forEach((panel, pi) => {
    const top = 40 + pi * (PANEL_H + 20);
    const plotH = PANEL_H - M.top - M.bottom;
    const y0 = top + M.top + plotH;
    const values = panel.series.flatMap((s) => s.points.map((p) => p[1]));
    const yMax = Math.max(1e-9, ...values.filter(Number.isFinite)) * 1.1;
    const x = (t: number) => M.left + (t / xMax) * plotW;
    const y = (v: number) => y0 - (Math.min(v, yMax) / yMax) * plotH;
    out.push(
      `<text x="${M.left}" y="${top + 18}" font-weight="bold">${esc(panel.title)} (${esc(panel.unit)})</text>`,
    );
    for (const v of ticks(yMax / 1.1)) {
      out.push(
        `<line x1="${M.left}" x2="${W - M.right}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`,
        `<text x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555">${short(v)}</text>`,
      );
    }
    for (const t of ticks(xMax, 10)) {
      out.push(
        `<line x1="${x(t)}" x2="${x(t)}" y1="${y0}" y2="${y0 + 4}" stroke="#555"/>`,
        `<text x="${x(t)}" y="${y0 + 16}" text-anchor="middle" fill="#555">${short(t)}</text>`,
      );
    }
    out.push(
      `<text x="${W - M.right}" y="${y0 + 30}" text-anchor="end" fill="#555">seconds</text>`,
      `<line x1="${M.left}" x2="${W - M.right}" y1="${y0}" y2="${y0}" stroke="#555"/>`,
      `<line x1="${M.left}" x2="${M.left}" y1="${top + M.top}" y2="${y0}" stroke="#555"/>`,
    );
    for (const m of chart.markers) {
      out.push(
        `<line x1="${x(m.t)}" x2="${x(m.t)}" y1="${top + M.top}" y2="${y0}" stroke="#999" stroke-dasharray="4 3"/>`,
      );
      if (pi === 0) {
        out.push(
          `<text x="${x(m.t) + 3}" y="${top + M.top + 10}" fill="#666" font-size="10">${esc(m.label)}</text>`,
        );
      }
    }
    panel.series.forEach((s, si) => {
      const color = COLORS[si % COLORS.length] ?? '#000';
      // a gap in time (phases measured apart) breaks the line
      const parts: string[][] = [];
      let prev = -Infinity;
      for (const [t, v] of s.points) {
        if (!Number.isFinite(v)) continue;
        if (t - prev > 5 || parts.length === 0) parts.push([]);
        parts.at(-1)?.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
        prev = t;
      }
      for (const p of parts) {
        out.push(
          `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${p.join(' ')}"/>`,
        );
      }
      const lx = M.left + 10 + si * 170;
      out.push(
        `<rect x="${lx}" y="${top + M.top - 14}" width="12" height="3" fill="${color}"/>`,
        `<text x="${lx + 16}" y="${top + M.top - 9}" fill="#333">${esc(s.name)}</text>`,
      );
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** One live line on a terminal (rewritten in place), a line every 5 s elsewhere. */
export class ProgressLine {
  readonly #tty = Boolean(process.stderr.isTTY);
  #last = 0;

  update(text: string): void {
    if (this.#tty) {
      process.stderr.write(`\r\x1b[K${text.slice(0, (process.stderr.columns || 160) - 1)}`);
      return;
    }
    const now = Date.now();
    if (now - this.#last >= 5000) {
      this.#last = now;
      process.stderr.write(`${text}\n`);
    }
  }

  /** Ends the live line (keeps its last text on a terminal). */
  done(): void {
    if (this.#tty) process.stderr.write('\n');
    this.#last = 0;
  }

  /** A message on its own line. */
  note(text: string): void {
    if (this.#tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${text}\n`);
  }
}

/**
 * Reads the V8 CPU profiles the gateway wrote (`node --cpu-prof`, the bench's `--cpu-prof`) and
 * says where the time went: self time by function and by package (aedes, ajv, better-sqlite3,
 * node internals…), the evidence for what to change when a target is missed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  readonly files: readonly string[];
  readonly totalMs: number;
  /** Share of samples outside (idle) and inside the program, %. */
  readonly idlePct: number;
  readonly gcPct: number;
  readonly byPackage: readonly { readonly name: string; readonly pct: number }[];
  readonly byFunction: readonly { readonly name: string; readonly pct: number }[];
  /**
   * Worker threads (the embedded store's SQLite workers), summed apart: their idle time is not
   * the event loop's, and their busy time runs beside it on another core.
   */
  readonly workers?: ProfileSummary | undefined;
}

/** `CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile`; thread 0 is the main thread. */
function threadOf(file: string): number {
  const parts = file.split('.');
  return Number(parts[parts.length - 3] ?? 0);
}

/** `aedes`, `better-sqlite3`, `taihu:src/spool/spool.js`, `node:net`… for a script URL. */
function packageOf(url: string): string {
  if (url === '') return '(native / VM)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  if (url.startsWith('node:')) return url;
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return `taihu:${url.slice(dist + '/dist/'.length)}`;
  return url;
}

export function summarizeProfiles(dir: string, top = 25): ProfileSummary | undefined {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length === 0) return undefined;
  } catch {
    return undefined;
  }
  const main = files.filter((f) => threadOf(f) === 0);
  const workers = files.filter((f) => threadOf(f) !== 0);
  const summary = summarizeFiles(dir, main.length > 0 ? main : files, top);
  if (summary === undefined || main.length === 0 || workers.length === 0) return summary;
  return { ...summary, workers: summarizeFiles(dir, workers, top) };
}

function summarizeFiles(dir: string, files: string[], top: number): ProfileSummary | undefined {
  if (files.length === 0) return undefined;
  const selfByFn = new Map<string, number>();
  const selfByPkg = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let gc = 0;
  for (const f of files) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    p.samples.forEach((id, i) => {
      const dt = (p.timeDeltas[i] ?? 0) / 1000;
      const n = byId.get(id);
      if (!n) return;
      total += dt;
      const { functionName, url, lineNumber } = n.callFrame;
      if (functionName === '(idle)') {
        idle += dt;
        return;
      }
      if (functionName === '(garbage collector)') gc += dt;
      const pkg = packageOf(url);
      const fn = `${functionName || '(anonymous)'} ${pkg}${url ? `:${lineNumber + 1}` : ''}`;
      selfByFn.set(fn, (selfByFn.get(fn) ?? 0) + dt);
      const key = functionName.startsWith('(') && url === '' ? functionName : pkg;
      selfByPkg.set(key, (selfByPkg.get(key) ?? 0) + dt);
    });
  }
  const busy = Math.max(1e-9, total - idle);
  const rank = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, v]) => ({ name, pct: Math.round((v * 1000) / busy) / 10 }));
  return {
    files: files.map((f) => join(dir, f)),
    totalMs: Math.round(total),
    idlePct: Math.round((idle * 1000) / Math.max(1e-9, total)) / 10,
    gcPct: Math.round((gc * 1000) / busy) / 10,
    byPackage: rank(selfByPkg),
    byFunction: rank(selfByFn),
  };
}

/** The summary as lines for the terminal: shares of busy (non-idle) time. */
export function formatProfile(s: ProfileSummary, title = 'CPU profile'): string {
  const lines = [
    `${title} (${s.files.length} file(s), ${Math.round(s.totalMs / 1000)} s, idle ${s.idlePct}%, GC ${s.gcPct}% of busy):`,
    '  self time by package:',
    ...s.byPackage.slice(0, 15).map((x) => `    ${String(x.pct).padStart(5)}%  ${x.name}`),
    '  self time by function:',
    ...s.byFunction.slice(0, 20).map((x) => `    ${String(x.pct).padStart(5)}%  ${x.name}`),
  ];
  if (s.workers) lines.push('', formatProfile(s.workers, 'worker threads'));
  return lines.join('\n');
}

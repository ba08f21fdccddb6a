/**
 * What the benchmarks read from /proc: a process's CPU time and RSS, the whole machine's busy
 * time (to tell how much of it other work took during a run: this machine is shared), and the
 * machine description every result file starts with.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, fdatasyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { availableParallelism, cpus, freemem, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';

function getconf(name: string, fallback: number): number {
  try {
    const n = Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : fallback;
  } catch {
    return fallback;
  }
}

const CLK_TCK = getconf('CLK_TCK', 100);

export interface ProcStat {
  /** user + system CPU time, ms. */
  readonly cpuMs: number;
  /** Resident set size, bytes. */
  readonly rssBytes: number;
}

/** CPU time and RSS of `pid`; undefined once it is gone. */
export function procStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces: count fields after its closing parenthesis
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]); // utime, stime: fields 14 and 15
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { cpuMs: (ticks * 1000) / CLK_TCK, rssBytes: rssKb * 1024 };
  } catch {
    return undefined;
  }
}

/**
 * CPU time of the whole machine, ms over all cores, from /proc/stat: time in processes
 * (user, nice, system), which per-process times add up to, and time in interrupts, which no
 * process is charged for (loopback TCP is processed there, much of it for our own traffic).
 */
export function machineCpu(): { busyMs: number; irqMs: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const ms = (ticks: number) => (ticks * 1000) / CLK_TCK;
  // user nice system idle iowait irq softirq steal …
  return {
    busyMs: ms((v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0)),
    irqMs: ms((v[5] ?? 0) + (v[6] ?? 0)),
  };
}

/**
 * Watches processes over a run: CPU % (100 = one core) and RSS per sample, and how busy the
 * machine was beyond them (other engineers' work on a shared machine).
 */
export class CpuWatch {
  readonly #pids: () => Record<string, number | undefined>;
  #last: { at: number; machine: { busyMs: number; irqMs: number }; procs: Map<string, number> };
  readonly #start: {
    at: number;
    machine: { busyMs: number; irqMs: number };
    procs: Map<string, number>;
  };

  constructor(pids: () => Record<string, number | undefined>) {
    this.#pids = pids;
    const procs = this.#read();
    const m = machineCpu();
    this.#last = { at: performance.now(), machine: m, procs };
    this.#start = { at: performance.now(), machine: m, procs: new Map(procs) };
  }

  #read(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, pid] of Object.entries(this.#pids())) {
      const s = pid === undefined ? undefined : procStat(pid);
      if (s) out.set(name, s.cpuMs);
    }
    return out;
  }

  /**
   * CPU % of each watched process, of other processes and of interrupts since the previous
   * call; RSS now.
   */
  sample(): {
    cpu: Record<string, number>;
    otherCpu: number;
    irqCpu: number;
    rss: Record<string, number>;
  } {
    const now = performance.now();
    const dt = Math.max(1, now - this.#last.at);
    const m = machineCpu();
    const procs = this.#read();
    const cpu: Record<string, number> = {};
    const rss: Record<string, number> = {};
    let ours = 0;
    for (const [name, ms] of procs) {
      const d = ms - (this.#last.procs.get(name) ?? ms);
      cpu[name] = (d * 100) / dt;
      ours += d;
      const pid = this.#pids()[name];
      rss[name] = pid === undefined ? 0 : (procStat(pid)?.rssBytes ?? 0);
    }
    const otherCpu = Math.max(0, ((m.busyMs - this.#last.machine.busyMs - ours) * 100) / dt);
    const irqCpu = ((m.irqMs - this.#last.machine.irqMs) * 100) / dt;
    this.#last = { at: now, machine: m, procs };
    return { cpu, otherCpu, irqCpu, rss };
  }

  /** Average CPU % of each process, of other processes and of interrupts over the watch. */
  totals(): { cpu: Record<string, number>; otherCpu: number; irqCpu: number; seconds: number } {
    const now = performance.now();
    const dt = Math.max(1, now - this.#start.at);
    const procs = this.#read();
    const cpu: Record<string, number> = {};
    let ours = 0;
    for (const [name, ms] of procs) {
      const d = ms - (this.#start.procs.get(name) ?? ms);
      cpu[name] = (d * 100) / dt;
      ours += d;
    }
    const m = machineCpu();
    const busy = m.busyMs - this.#start.machine.busyMs;
    return {
      cpu,
      otherCpu: Math.max(0, ((busy - ours) * 100) / dt),
      irqCpu: ((m.irqMs - this.#start.machine.irqMs) * 100) / dt,
      seconds: dt / 1000,
    };
  }
}

/** Median fdatasync latency of a 4 KiB append in `dir`, ms (the spool's commit cost). */
export function fdatasyncMs(dir: string, rounds = 200): number {
  const file = join(dir, `.fdatasync-probe-${process.pid}`);
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(4096, 1);
  const times: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      writeSync(fd, buf);
      const t = performance.now();
      fdatasyncSync(fd);
      times.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? 0;
}

export interface Machine {
  readonly cpuModel: string;
  readonly nproc: number;
  readonly memTotalGiB: number;
  readonly memFreeGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly openFilesLimit: string;
  readonly fdatasyncMs: number;
  readonly loadavg: readonly number[];
}

export function describeMachine(dataDir: string): Machine {
  let ulimit = '?';
  try {
    ulimit = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  } catch {
    // reported as '?'
  }
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    nproc: availableParallelism(),
    memTotalGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    memFreeGiB: Math.round((freemem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    node: process.version,
    openFilesLimit: ulimit,
    fdatasyncMs: Math.round(fdatasyncMs(dataDir) * 1000) / 1000,
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

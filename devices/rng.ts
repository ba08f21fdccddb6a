/**
 * Seeded randomness for the simulator. Two flavours:
 * - `createRng`: a sequential stream (sfc32), for per-reading measurement noise;
 * - `hashUnit` / `valueNoise` / `episodeAt`: stateless functions of (seed, time), for
 *   anything that must give the same answer whatever order times are asked in
 *   (backfill, city-wide weather, incidents that span many readings).
 */
import type { Rng } from './models/types.js';

const TWO_POW_32 = 4294967296;

/** murmur3's finaliser: full avalanche on 32 bits, so neighbouring inputs decorrelate. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function mixInt(h: number, n: number): number {
  // Split so integers beyond 2^32 (e.g. epoch ms) still hash every bit.
  const lo = n >>> 0;
  const hi = Math.floor(n / TWO_POW_32) >>> 0;
  h = fmix32((h ^ lo) + 0x9e3779b9);
  return fmix32((h ^ hi) + 0x7f4a7c15);
}

function mixString(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  // Length terminates the string, so ('ab', 'c') and ('a', 'bc') differ.
  return mixInt(h, s.length);
}

/** A 32-bit hash of the parts, in order. Numbers must be finite; they are truncated. */
export function hash32(...parts: readonly (number | string)[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) h = typeof p === 'string' ? mixString(h, p) : mixInt(h, Math.trunc(p));
  return h >>> 0;
}

/** A seed for a sub-stream: `deriveSeed(base, 'device', id)` gives each device its own. */
export function deriveSeed(base: number | string, ...parts: readonly (number | string)[]): number {
  return hash32(base, ...parts);
}

/** Uniform in [0, 1), a pure function of its arguments. */
export function hashUnit(seed: number, ...parts: readonly number[]): number {
  return hash32(seed, ...parts) / TWO_POW_32;
}

/**
 * Smooth noise in [-1, 1] along `x`: random values at integer lattice points, joined
 * with a smoothstep, so the signal wanders without jumps.
 */
export function valueNoise(seed: number, x: number): number {
  const i = Math.floor(x);
  const f = x - i;
  const a = hashUnit(seed, i) * 2 - 1;
  const b = hashUnit(seed, i + 1) * 2 - 1;
  const s = f * f * (3 - 2 * f);
  return a + (b - a) * s;
}

/** Something that happens for a while: an incident, a leak, a rain shower. */
export interface Episode {
  /** Epoch ms. */
  readonly start: number;
  /** Epoch ms, exclusive. */
  readonly end: number;
  /** Uniform in [0, 1), drawn with the episode, for its size. */
  readonly strength: number;
}

export interface EpisodeOptions {
  /** Time is cut into slots of this many ms; at most one episode starts in each. */
  readonly slotMs: number;
  /** Probability that an episode starts in a given slot (may depend on the slot's start). */
  readonly chance: number | ((slotStart: number) => number);
  readonly minMs: number;
  readonly maxMs: number;
}

/**
 * The episode in progress at `t`, if any. Stateless: each slot's hash decides whether an
 * episode starts in it, when and for how long, so `t` may be asked in any order.
 * Overlaps resolve to the latest start.
 */
export function episodeAt(seed: number, t: number, opts: EpisodeOptions): Episode | undefined {
  const slot = Math.floor(t / opts.slotMs);
  const lookback = Math.ceil(opts.maxMs / opts.slotMs);
  for (let k = slot; k >= slot - lookback; k--) {
    const e = episodeInSlot(seed, k, opts);
    if (e && e.start <= t && t < e.end) return e;
  }
  return undefined;
}

/** Every episode that overlaps [from, to), oldest first. */
export function episodesBetween(
  seed: number,
  from: number,
  to: number,
  opts: EpisodeOptions,
): Episode[] {
  const out: Episode[] = [];
  const first = Math.floor(from / opts.slotMs) - Math.ceil(opts.maxMs / opts.slotMs);
  const last = Math.floor(to / opts.slotMs);
  for (let k = first; k <= last; k++) {
    const e = episodeInSlot(seed, k, opts);
    if (e && e.start < to && e.end > from) out.push(e);
  }
  return out;
}

function episodeInSlot(seed: number, slot: number, opts: EpisodeOptions): Episode | undefined {
  const slotStart = slot * opts.slotMs;
  const p = typeof opts.chance === 'number' ? opts.chance : opts.chance(slotStart);
  if (hashUnit(seed, slot, 1) >= p) return undefined;
  const start = slotStart + Math.floor(hashUnit(seed, slot, 2) * opts.slotMs);
  const length = opts.minMs + hashUnit(seed, slot, 3) * (opts.maxMs - opts.minMs);
  return { start, end: start + Math.round(length), strength: hashUnit(seed, slot, 4) };
}

/**
 * sfc32 (passes PractRand, 128-bit state), seeded through splitmix32 from a 32-bit hash of
 * `seed`; numeric seeds are truncated to integers.
 */
export function createRng(seed: number | string): Rng {
  let s = hash32(seed, 'rng');
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return (z ^ (z >>> 15)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  const nextU32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t;
  };
  // Discard the first outputs: sfc32 needs a few rounds to mix a fresh state.
  for (let i = 0; i < 12; i++) nextU32();

  let spare: number | undefined;
  const next = (): number => nextU32() / TWO_POW_32;
  return {
    next,
    range: (min, max) => min + next() * (max - min),
    normal: () => {
      if (spare !== undefined) {
        const z = spare;
        spare = undefined;
        return z;
      }
      // Box–Muller; 1 - u keeps the logarithm away from 0.
      const u = 1 - next();
      const v = next();
      const r = Math.sqrt(-2 * Math.log(u));
      spare = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: (p) => next() < p,
  };
}

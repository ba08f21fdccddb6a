/**
 * Subpacketed messages (Flag D bit set): a message too long for one frame is sent as PNUM
 * packets numbered PNO = 1..PNUM, each a complete frame with its own CRC, sharing the QN of the
 * message. One Reassembler lives per connection; it holds at most `maxMessages` unfinished
 * messages of at most `maxParts` parts each, so a station cannot make it grow, and the caller
 * expires what did not complete within `windowMs`.
 *
 * Every part that asked for an answer is answered (9014, echoing the shared QN) only when the
 * whole message is durable, so the parts come back in the `done` result.
 */
import { HJ212_FAULT, type Hj212FaultCode } from './faults.js';
import type { CpArea, Packet } from './packet.js';

export interface ReassemblyOptions {
  /** Unfinished messages held per connection (default 16); the oldest gives way. */
  maxMessages?: number;
  /** Largest PNUM accepted (default 64). */
  maxParts?: number;
  /** How long the parts of one message may take to arrive, in ms (default 60 000). */
  windowMs?: number;
}

export type AddResult =
  | { done: true; packet: Packet; parts: readonly Packet[] }
  | { done: false; dropped?: readonly Packet[] }
  | { done: false; code: Hj212FaultCode; message: string };

interface Pending {
  readonly parts: (Packet | undefined)[];
  received: number;
  readonly since: number;
}

export class Reassembler {
  readonly #maxMessages: number;
  readonly #maxParts: number;
  readonly #windowMs: number;
  /** Insertion order = age, which eviction and expiry rely on. */
  readonly #pending = new Map<string, Pending>();

  constructor(opts: ReassemblyOptions = {}) {
    this.#maxMessages = opts.maxMessages ?? 16;
    this.#maxParts = opts.maxParts ?? 64;
    this.#windowMs = opts.windowMs ?? 60_000;
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** Adds one subpacket (a packet with PNUM and PNO). */
  add(p: Packet, now: number): AddResult {
    const pnum = p.pnum ?? 1;
    const pno = p.pno ?? 1;
    if (pnum > this.#maxParts) {
      return refuse(`PNUM ${pnum} is over the limit of ${this.#maxParts}`);
    }
    const key = `${p.mn}\u0000${p.cn}\u0000${p.qn ?? ''}`;
    let m = this.#pending.get(key);
    let dropped: Packet[] | undefined;
    if (m === undefined) {
      if (this.#pending.size >= this.#maxMessages) dropped = this.#dropOldest();
      m = { parts: new Array<Packet | undefined>(pnum).fill(undefined), received: 0, since: now };
      this.#pending.set(key, m);
    } else if (m.parts.length !== pnum) {
      return refuse(`PNUM ${pnum} differs from the ${m.parts.length} of earlier parts`);
    }
    if (m.parts[pno - 1] === undefined) {
      m.parts[pno - 1] = p;
      m.received++;
    } // else: a resent part, already held
    if (m.received < pnum) return dropped ? { done: false, dropped } : { done: false };
    this.#pending.delete(key);
    const parts = m.parts as Packet[];
    const merged = mergeParts(parts);
    if (typeof merged === 'string') return refuse(merged);
    return { done: true, packet: merged, parts };
  }

  /** Takes out every message older than the window, for the caller to report and forget. */
  expire(now: number): Packet[][] {
    const out: Packet[][] = [];
    for (const [key, m] of this.#pending) {
      if (now - m.since < this.#windowMs) break;
      this.#pending.delete(key);
      out.push(m.parts.filter((x): x is Packet => x !== undefined));
    }
    return out;
  }

  #dropOldest(): Packet[] {
    const first = this.#pending.entries().next();
    if (first.done === true) return [];
    const [key, m] = first.value;
    this.#pending.delete(key);
    return m.parts.filter((x): x is Packet => x !== undefined);
  }
}

function refuse(message: string): AddResult {
  return { done: false, code: HJ212_FAULT.BAD_SUBPACKET, message };
}

/** One packet with the CP items of every part; a message string when parts contradict. */
function mergeParts(parts: readonly Packet[]): Packet | string {
  const first = parts[0] as Packet;
  const cp: CpArea = { params: new Map(), factors: new Map() };
  for (const part of parts) {
    const t = part.cp.dataTime;
    if (t !== undefined) {
      if (cp.dataTime !== undefined && cp.dataTime !== t) {
        return `PNO ${part.pno} has DataTime ${t}, earlier parts ${cp.dataTime}`;
      }
      cp.dataTime = t;
    }
    for (const [k, v] of part.cp.params) {
      if (cp.params.has(k) && cp.params.get(k) !== v) return `PNO ${part.pno} repeats ${k}`;
      cp.params.set(k, v);
    }
    for (const [code, values] of part.cp.factors) {
      if (cp.factors.has(code)) return `PNO ${part.pno} repeats factor ${code}`;
      cp.factors.set(code, values);
    }
  }
  const merged: Packet = { ...first, cp };
  delete merged.pnum;
  delete merged.pno;
  return merged;
}

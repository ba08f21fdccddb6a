/**
 * HJ 212-2017 framing (§6.2, the communication packet table): `##` + the data segment's length
 * as 4 decimal digits + the data segment + its Annex A CRC as 4 hex digits + CR LF.
 *
 *   ##0101QN=20160801085857223;ST=32;…;CP=&&RtdInterval=30&&1C80\r\n
 *
 * The decoder is fed whatever TCP hands over: several frames in one read, one frame over many
 * reads, garbage before a header. It keeps one window of fixed size (the largest frame the
 * limit allows) for the bytes of an unfinished frame and never grows it, so a station that
 * floods bytes costs a bounded amount of memory; garbage is skipped with `indexOf` on the read
 * itself without being copied when no frame is pending.
 */
import { hj212Crc, crcHex } from './crc.js';
import { HJ212_FAULT, type Hj212FaultCode } from './faults.js';

/** The standard's own upper bound of the data segment (§6.2: "0 ≤ n ≤ 1024"). */
export const HJ212_MAX_DATA_LENGTH = 1024;

/** `##` + 4 length digits before the segment, 4 CRC digits + CR LF after it. */
const OVERHEAD = 12;
const HASH = 0x23;
const CR = 0x0d;
const LF = 0x0a;

export interface FrameSink {
  /** One frame whose length, CRC and CR LF were right: its data segment. */
  frame(segment: string): void;
  /** A refused frame or skipped bytes; decoding goes on with the next `##`. */
  fault(code: Hj212FaultCode, message: string): void;
}

export interface FrameDecoderOptions {
  /** Largest data segment accepted, in bytes (default 1024, the standard's bound; at most 9999). */
  maxDataLength?: number;
}

export class FrameDecoder {
  readonly #sink: FrameSink;
  readonly #max: number;
  readonly #win: Buffer;
  #start = 0;
  #end = 0;
  #garbage = 0;

  constructor(sink: FrameSink, opts: FrameDecoderOptions = {}) {
    const max = opts.maxDataLength ?? HJ212_MAX_DATA_LENGTH;
    if (!Number.isInteger(max) || max < 0 || max > 9999) {
      throw new RangeError(`maxDataLength must be an integer in 0..9999, not ${max}`);
    }
    this.#sink = sink;
    this.#max = max;
    this.#win = Buffer.allocUnsafe(max + OVERHEAD);
  }

  /** Bytes held for a frame that has not ended yet (what a slow-frame timeout looks at). */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Drops a pending partial frame (after a timeout or a reconnect). */
  reset(): void {
    this.#start = this.#end = 0;
    this.#garbage = 0;
  }

  push(chunk: Uint8Array): void {
    const n = chunk.length;
    let off = 0;
    while (off < n) {
      if (this.#start === this.#end) {
        this.#start = this.#end = 0;
        off = this.#skipToHash(chunk, off);
        if (off >= n) break;
      } else if (this.#start > 0) {
        this.#win.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      const take = Math.min(this.#win.length - this.#end, n - off);
      this.#win.set(chunk.subarray(off, off + take), this.#end);
      this.#end += take;
      off += take;
      this.#drain();
    }
    this.#flushGarbage();
  }

  /** With no frame pending: skips to the next `#` of the read without copying what precedes. */
  #skipToHash(chunk: Uint8Array, off: number): number {
    const h = chunk.indexOf(HASH, off);
    const stop = h < 0 ? chunk.length : h;
    this.#garbage += stop - off;
    return stop;
  }

  /** Takes every complete frame out of the window; leaves an unfinished one at its start. */
  #drain(): void {
    const w = this.#win;
    for (;;) {
      const s = this.#start;
      const e = this.#end;
      let h = s;
      while (h < e && w[h] !== HASH) h++;
      this.#garbage += h - s;
      this.#start = h;
      if (e - h < 2) return;
      if (w[h + 1] !== HASH) {
        this.#skip(1);
        continue;
      }
      const len = this.#length(h);
      if (len === WAIT) return;
      if (len === REFUSED) continue;
      const total = OVERHEAD + len;
      if (e - h < total) return;
      this.#check(h, len);
    }
  }

  /** The declared length of the frame at `h`, WAIT for more bytes, or REFUSED (fault raised). */
  #length(h: number): number {
    const w = this.#win;
    let len = 0;
    for (let k = 0; k < 4; k++) {
      if (h + 2 + k >= this.#end) return WAIT;
      const b = w[h + 2 + k] as number;
      if (b >= 0x30 && b <= 0x39) {
        len = len * 10 + (b - 0x30);
        continue;
      }
      if (k === 0 && b === HASH) {
        // `###…`: the header is the last two of the run.
        this.#skip(1);
        return REFUSED;
      }
      this.#refuse(HJ212_FAULT.BAD_LENGTH, 'the 4 characters after "##" are not a decimal length');
      // Resume at the offending byte: it may be the `#` of the next frame.
      this.#start = h + 2 + k;
      return REFUSED;
    }
    if (len > this.#max) {
      this.#refuse(
        HJ212_FAULT.FRAME_TOO_LARGE,
        `declared data length ${len} is over the limit of ${this.#max} bytes`,
      );
      this.#start = h + 6;
      return REFUSED;
    }
    return len;
  }

  /** Checks CR LF and CRC of the complete frame at `h`, hands it on, and moves past it. */
  #check(h: number, len: number): void {
    const w = this.#win;
    const data = h + 6;
    const crcAt = data + len;
    if (w[crcAt + 4] !== CR || w[crcAt + 5] !== LF) {
      this.#refuse(
        HJ212_FAULT.MISSING_CRLF,
        `no CR LF after the declared data length ${len} and the CRC`,
      );
      // The declared length is not to be trusted: look for the next `##` inside this frame.
      this.#start = data;
      return;
    }
    this.#start = crcAt + 6;
    const sent = parseHex4(w, crcAt);
    if (sent < 0) {
      this.#refuse(HJ212_FAULT.BAD_CRC, 'the CRC field is not 4 hex digits');
      return;
    }
    const crc = hj212Crc(w, data, crcAt);
    if (sent !== crc) {
      this.#refuse(HJ212_FAULT.BAD_CRC, `CRC ${crcHex(sent)} sent, ${crcHex(crc)} computed`);
      return;
    }
    this.#flushGarbage();
    this.#sink.frame(w.toString('utf8', data, crcAt));
  }

  #skip(bytes: number): void {
    this.#garbage += bytes;
    this.#start += bytes;
  }

  #refuse(code: Hj212FaultCode, message: string): void {
    this.#flushGarbage();
    this.#sink.fault(code, message);
  }

  #flushGarbage(): void {
    if (this.#garbage === 0) return;
    const n = this.#garbage;
    this.#garbage = 0;
    this.#sink.fault(HJ212_FAULT.GARBAGE, `skipped ${n} byte(s) outside any "##" frame`);
  }
}

const WAIT = -1;
const REFUSED = -2;

/** The value of 4 hex digits at `at` (either case), or -1. */
function parseHex4(buf: Uint8Array, at: number): number {
  let v = 0;
  for (let k = 0; k < 4; k++) {
    const b = buf[at + k] as number;
    let d: number;
    if (b >= 0x30 && b <= 0x39) d = b - 0x30;
    else if (b >= 0x41 && b <= 0x46) d = b - 0x37;
    else if (b >= 0x61 && b <= 0x66) d = b - 0x57;
    else return -1;
    v = (v << 4) | d;
  }
  return v;
}

/** One complete frame around `segment` (the simulator's and the answers' encoder). */
export function encodeFrame(segment: string): Buffer {
  const len = Buffer.byteLength(segment, 'utf8');
  if (len > 9999) throw new RangeError(`data segment of ${len} bytes does not fit 4 digits`);
  const out = Buffer.allocUnsafe(len + OVERHEAD);
  out.write('##', 0, 'latin1');
  out.write(String(len).padStart(4, '0'), 2, 'latin1');
  out.write(segment, 6, 'utf8');
  out.write(crcHex(hj212Crc(out, 6, 6 + len)), 6 + len, 'latin1');
  out[len + 10] = CR;
  out[len + 11] = LF;
  return out;
}

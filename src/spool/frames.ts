/**
 * Record framing of the spool's segment files, and a reader that walks them.
 *
 * A segment is a plain sequence of frames, no file header; its name is the zero-padded
 * sequence number of its first record. One frame, little-endian:
 *
 *   offset  size  field
 *        0     4  payload length n (u32), 1 ≤ n ≤ MAX_PAYLOAD
 *        4     4  CRC-32C of bytes [8, 24 + n): sequence, append time and payload
 *        8     8  sequence number (u32 low word, u32 high word)
 *       16     8  append time, epoch ms (f64)
 *       24     n  payload: a format byte, then the encoded points (src/points/codec.ts)
 *
 * The checksum covers the sequence number, so a frame copied or left over from elsewhere
 * cannot pass for the record the reader expects, and the length is bounded, so a corrupt
 * length never makes the reader allocate or skip more than what is on disk.
 */
import type { FileHandle } from 'node:fs/promises';
import { crc32c } from './crc32c.js';

export const HEADER_BYTES = 24;
/** Larger than any MQTT message Taihu accepts, small enough to bound a corrupt length. */
export const MAX_PAYLOAD = 64 * 1024 * 1024;
/** The smallest possible frame: a header and a format byte. Bounds how many records fit. */
export const MIN_FRAME = HEADER_BYTES + 1;

const INCOMPLETE = -1;
const INVALID = -2;
/** Bytes read ahead per disk read while walking a segment. */
const READ_CHUNK = 1024 * 1024;

/** A frame with everything but its sequence number and checksum, which the writer fills in. */
export function newFrame(payloadBytes: number, appendedAt: number): Buffer {
  const f = Buffer.allocUnsafe(HEADER_BYTES + payloadBytes);
  f.writeUInt32LE(payloadBytes, 0);
  f.writeDoubleLE(appendedAt, 16);
  return f;
}

/** Stamps the sequence number and checksum of the frame at `buf[pos]`. */
export function sealFrame(buf: Buffer, pos: number, seq: number): void {
  const end = pos + HEADER_BYTES + buf.readUInt32LE(pos);
  buf.writeUInt32LE(seq % 2 ** 32, pos + 8);
  buf.writeUInt32LE(Math.floor(seq / 2 ** 32), pos + 12);
  buf.writeUInt32LE(crc32c(buf, pos + 8, end), pos + 4);
}

export function frameSeq(buf: Buffer, pos: number): number {
  return buf.readUInt32LE(pos + 8) + buf.readUInt32LE(pos + 12) * 2 ** 32;
}

export function frameTime(buf: Buffer, pos: number): number {
  return buf.readDoubleLE(pos + 16);
}

/** Bytes of the intact frame at `buf[pos]`; INCOMPLETE if `buf` ends inside it; INVALID. */
function frameLength(buf: Buffer, pos: number): number {
  if (pos + HEADER_BYTES > buf.length) return INCOMPLETE;
  const n = buf.readUInt32LE(pos);
  if (n < 1 || n > MAX_PAYLOAD) return INVALID;
  const end = pos + HEADER_BYTES + n;
  if (end > buf.length) return INCOMPLETE;
  return crc32c(buf, pos + 8, end) === buf.readUInt32LE(pos + 4) ? end - pos : INVALID;
}

export type Step = 'frame' | 'end' | 'bad';

/**
 * Walks the frames of one segment file up to a limit the caller gives on each step (the
 * durable end, which grows while the segment is being written). After `next()` returned
 * 'frame', `seq`, `appendedAt`, `length` and `payload()` describe it until `skip()`.
 */
export class FrameReader {
  readonly path: string;
  readonly #fh: FileHandle;
  #buf: Buffer = Buffer.alloc(0);
  /** File offset of `#buf[0]`. */
  #bufStart = 0;
  /** File offset of the frame `next()` looks at. */
  offset = 0;
  seq = 0;
  appendedAt = 0;
  length = 0;

  constructor(path: string, fh: FileHandle) {
    this.path = path;
    this.#fh = fh;
  }

  async next(limit: number): Promise<Step> {
    if (this.offset >= limit) return 'end';
    for (;;) {
      const pos = this.offset - this.#bufStart;
      const n = pos >= 0 && pos < this.#buf.length ? frameLength(this.#buf, pos) : INCOMPLETE;
      if (n === INVALID) return 'bad';
      if (n !== INCOMPLETE) {
        // A frame that runs past the durable end is a torn write, however intact it looks.
        if (this.offset + n > limit) return 'bad';
        this.seq = frameSeq(this.#buf, pos);
        this.appendedAt = frameTime(this.#buf, pos);
        this.length = n;
        return 'frame';
      }
      if (!(await this.#fill(limit))) return 'bad';
    }
  }

  /** The payload of the current frame (format byte first); a view, valid until the next read. */
  payload(): Buffer {
    const pos = this.offset - this.#bufStart + HEADER_BYTES;
    return this.#buf.subarray(pos, pos + this.length - HEADER_BYTES);
  }

  skip(): void {
    this.offset += this.length;
  }

  /**
   * After a bad frame: the next offset, before `limit`, where an intact frame numbered within
   * [minSeq, maxSeq] starts. Seeks there and returns its sequence number, or seeks to `limit`
   * and returns undefined. Reads the rest of the segment at once; this is the error path.
   */
  async resync(limit: number, minSeq: number, maxSeq: number): Promise<number | undefined> {
    const from = this.offset;
    const buf = await this.#read(from, limit - from);
    this.#buf = buf;
    this.#bufStart = from;
    for (let i = 1; i + HEADER_BYTES < buf.length; i++) {
      // Cheap tests first: almost every offset fails on length or sequence number.
      const n = buf.readUInt32LE(i);
      if (n < 1 || n > MAX_PAYLOAD || i + HEADER_BYTES + n > buf.length) continue;
      const seq = frameSeq(buf, i);
      if (seq < minSeq || seq > maxSeq) continue;
      if (crc32c(buf, i + 8, i + HEADER_BYTES + n) !== buf.readUInt32LE(i + 4)) continue;
      this.offset = from + i;
      return seq;
    }
    this.offset = limit;
    return undefined;
  }

  close(): Promise<void> {
    return this.#fh.close();
  }

  /** Reads more from `offset`; false when nothing more can be read before `limit`. */
  async #fill(limit: number): Promise<boolean> {
    const pos = this.offset - this.#bufStart;
    const inBuf = pos >= 0 && pos < this.#buf.length;
    const covered = inBuf ? this.#bufStart + this.#buf.length : this.offset;
    if (covered >= limit) return false;
    let need = HEADER_BYTES;
    if (inBuf && pos + HEADER_BYTES <= this.#buf.length) {
      need += Math.min(this.#buf.readUInt32LE(pos), MAX_PAYLOAD);
    }
    const buf = await this.#read(
      this.offset,
      Math.min(limit - this.offset, Math.max(READ_CHUNK, need)),
    );
    // A file shorter than the limit (truncated behind our back) must not make next() spin.
    if (this.offset + buf.length <= covered) return false;
    this.#buf = buf;
    this.#bufStart = this.offset;
    return true;
  }

  async #read(position: number, size: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(Math.max(0, size));
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await this.#fh.read(buf, got, buf.length - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  }
}

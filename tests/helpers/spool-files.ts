/** Reading and rewriting spool segment files by hand, to make what a crash or a bug leaves. */
import { readFile, writeFile } from 'node:fs/promises';
import { HEADER_BYTES, newFrame, sealFrame } from '../../src/spool/frames.js';

/** Start offsets of the frames of a segment file, from their length fields. */
export function frameOffsets(bytes: Buffer): number[] {
  const offsets: number[] = [];
  for (
    let off = 0;
    off + HEADER_BYTES <= bytes.length;
    off += HEADER_BYTES + bytes.readUInt32LE(off)
  )
    offsets.push(off);
  return offsets;
}

/** Rewrites every frame of a segment file with the payload `change` makes of it, resealed. */
export async function rewritePayloads(
  file: string,
  change: (payload: Buffer, index: number) => Buffer,
): Promise<void> {
  const bytes = await readFile(file);
  const out: Buffer[] = [];
  for (const [i, off] of frameOffsets(bytes).entries()) {
    const n = bytes.readUInt32LE(off);
    const payload = change(bytes.subarray(off + HEADER_BYTES, off + HEADER_BYTES + n), i);
    const frame = newFrame(payload.length, bytes.readDoubleLE(off + 16));
    payload.copy(frame, HEADER_BYTES);
    sealFrame(frame, 0, bytes.readUInt32LE(off + 8));
    out.push(frame);
  }
  await writeFile(file, Buffer.concat(out));
}

/** A format 2 payload cut inside its JSON: a good header, points that do not decode. */
export function undecodable(payload: Buffer): Buffer {
  return Buffer.concat([payload.subarray(0, 5), Buffer.from('[["air_quality"')]);
}

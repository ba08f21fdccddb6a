import { describe, expect, it } from 'vitest';
import { crcHex, hj212Crc } from '../../src/hj212/crc.js';

/**
 * The example of HJ 212-2017 Annex A, after its C routine: the frame
 *   ##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;
 *   CP=&&RtdInterval=30&&1C80\r\n
 * "where 1C80 is the CRC16 of the data segment QN=…&&". (The annex's sentence prints the code
 * as "1C08", a transposition: the frame it explains ends in 1C80, which is what the annex's
 * own C routine computes.)
 */
const ANNEX_A_SEGMENT =
  'QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&';

/** CRC-16/MODBUS, the routine several open HJ 212 implementations use instead of Annex A's. */
function crc16Modbus(buf: Uint8Array): number {
  let crc = 0xffff;
  for (const b of buf) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

const bytes = (s: string) => Buffer.from(s, 'utf8');

describe('HJ 212-2017 Annex A CRC', () => {
  it('gives 1C80 on the data segment of the Annex A example', () => {
    const seg = bytes(ANNEX_A_SEGMENT);
    expect(seg.length).toBe(101); // the example's "0101"
    expect(hj212Crc(seg)).toBe(0x1c80);
    expect(crcHex(hj212Crc(seg))).toBe('1C80');
  });

  it('is not CRC-16/MODBUS: the same segment gives 0759 under MODBUS', () => {
    const seg = bytes(ANNEX_A_SEGMENT);
    expect(crc16Modbus(seg)).toBe(0x0759);
    expect(crc16Modbus(seg)).not.toBe(hj212Crc(seg));
  });

  it.each([
    // Steps 1 and 10: nothing checked, the register keeps 0xFFFF.
    ['', 0xffff, 0xffff],
    // 'A' = 0x41, by hand: step 3 (0xFFFF >> 8) ^ 0x41 = 0xBE; steps 4–7, shifting out
    // 0,1,0,1,0,1,1,0: 5F, 5F>>1^A001 = A02E, 5017, 880A, 4405, 8203, E100, 7080.
    // MODBUS instead starts from 0xFFFF ^ 0x41 = 0xFFBE and ends at 707F.
    ['A', 0x7080, 0x707f],
  ])('computes %j by hand as Annex A describes it', (s, annexA, modbus) => {
    expect(hj212Crc(bytes(s))).toBe(annexA);
    expect(crc16Modbus(bytes(s))).toBe(modbus);
  });

  it('checks a range of a larger buffer without copying it', () => {
    const framed = bytes(`##0101${ANNEX_A_SEGMENT}1C80\r\n`);
    expect(hj212Crc(framed, 6, 107)).toBe(0x1c80);
  });

  it('writes the CRC as 4 upper-case hex digits, high byte first', () => {
    expect(crcHex(0x1c80)).toBe('1C80');
    expect(crcHex(0x0759)).toBe('0759');
    expect(crcHex(0x000a)).toBe('000A');
  });
});

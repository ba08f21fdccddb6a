import { describe, expect, it } from 'vitest';
import { crcHex, hj212Crc } from '../../src/hj212/crc.js';
import { HJ212_FAULT } from '../../src/hj212/faults.js';
import { encodeFrame, FrameDecoder, type FrameDecoderOptions } from '../../src/hj212/frame.js';

/** The Annex A example frame of HJ 212-2017, byte for byte. */
const ANNEX_A_FRAME =
  '##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n';
const ANNEX_A_SEGMENT = ANNEX_A_FRAME.slice(6, 107);

const seg = (n: number) =>
  `QN=2026112608000${String(n).padStart(4, '0')};ST=22;CN=2011;PW=abc123;MN=WX-AQ-0${n};Flag=5;CP=&&DataTime=20261126080000;a34004-Rtd=${n}.5,a34004-Flag=N&&`;

function decoder(opts?: FrameDecoderOptions) {
  const frames: string[] = [];
  const faults: { code: string; message: string }[] = [];
  const d = new FrameDecoder(
    { frame: (s) => frames.push(s), fault: (code, message) => faults.push({ code, message }) },
    opts,
  );
  return { d, frames, faults, codes: () => faults.map((f) => f.code) };
}

/** A frame with its length and CRC computed by hand-checked code, and `mutate` applied. */
function raw(segment: string, mutate: (f: string) => string = (f) => f): Buffer {
  const b = Buffer.from(segment, 'utf8');
  const f = `##${String(b.length).padStart(4, '0')}${segment}${crcHex(hj212Crc(b))}\r\n`;
  return Buffer.from(mutate(f), 'utf8');
}

describe('HJ 212 frame encoder', () => {
  it('reproduces the Annex A example frame exactly', () => {
    expect(encodeFrame(ANNEX_A_SEGMENT).toString('latin1')).toBe(ANNEX_A_FRAME);
  });

  it('counts the length in bytes, not characters', () => {
    const f = encodeFrame('CP=&&i13011=无锡&&');
    expect(f.subarray(2, 6).toString()).toBe(
      String(Buffer.byteLength('CP=&&i13011=无锡&&')).padStart(4, '0'),
    );
  });

  it('round-trips through the decoder', () => {
    const { d, frames, faults } = decoder();
    for (let n = 0; n < 5; n++) d.push(encodeFrame(seg(n)));
    expect(frames).toEqual([0, 1, 2, 3, 4].map(seg));
    expect(faults).toEqual([]);
  });
});

describe('HJ 212 frame decoder', () => {
  it('takes the Annex A example frame', () => {
    const { d, frames, faults } = decoder();
    d.push(Buffer.from(ANNEX_A_FRAME, 'latin1'));
    expect(frames).toEqual([ANNEX_A_SEGMENT]);
    expect(faults).toEqual([]);
  });

  it('takes several frames from one read', () => {
    const { d, frames } = decoder();
    d.push(Buffer.concat([raw(seg(1)), raw(seg(2)), raw(seg(3))]));
    expect(frames).toEqual([seg(1), seg(2), seg(3)]);
  });

  it('takes one frame over many reads, one byte at a time', () => {
    const { d, frames, faults } = decoder();
    const first = raw(seg(1));
    const all = Buffer.concat([first, raw(seg(2))]);
    for (let i = 0; i < all.length; i++) {
      d.push(all.subarray(i, i + 1));
      const boundary = i === first.length - 1 || i === all.length - 1;
      expect(d.buffered === 0, `after byte ${i}`).toBe(boundary);
    }
    expect(frames).toEqual([seg(1), seg(2)]);
    expect(faults).toEqual([]);
    expect(d.buffered).toBe(0);
  });

  it('takes a frame split at every possible point', () => {
    const f = raw(seg(7));
    for (let cut = 1; cut < f.length; cut++) {
      const { d, frames } = decoder();
      d.push(f.subarray(0, cut));
      d.push(f.subarray(cut));
      expect(frames, `cut at ${cut}`).toEqual([seg(7)]);
    }
  });

  it('skips leading garbage to the next "##", saying how much it skipped', () => {
    const { d, frames, faults } = decoder();
    d.push(Buffer.concat([Buffer.from('\x00\xffGET / HTTP/1.1\r\n#x', 'latin1'), raw(seg(1))]));
    expect(frames).toEqual([seg(1)]);
    expect(faults).toEqual([
      { code: HJ212_FAULT.GARBAGE, message: 'skipped 20 byte(s) outside any "##" frame' },
    ]);
  });

  it('finds a header after a run of "#"', () => {
    const { d, frames, codes } = decoder();
    d.push(Buffer.concat([Buffer.from('###'), raw(seg(1)).subarray(2)]));
    expect(frames).toEqual([seg(1)]);
    expect(codes()).toEqual([HJ212_FAULT.GARBAGE]);
  });

  it('refuses length digits that are not decimal and takes the next frame', () => {
    const { d, frames, faults } = decoder();
    d.push(Buffer.concat([raw(seg(1), (f) => `##01a${f.slice(5)}`), raw(seg(2))]));
    expect(faults[0]).toEqual({
      code: HJ212_FAULT.BAD_LENGTH,
      message: 'the 4 characters after "##" are not a decimal length',
    });
    expect(frames).toEqual([seg(2)]);
  });

  it('refuses a declared length over the limit without buffering the body', () => {
    const { d, frames, faults } = decoder({ maxDataLength: 100 });
    const big = raw('x'.repeat(101));
    d.push(big.subarray(0, 6));
    expect(faults).toEqual([
      {
        code: HJ212_FAULT.FRAME_TOO_LARGE,
        message: 'declared data length 101 is over the limit of 100 bytes',
      },
    ]);
    expect(d.buffered).toBe(0);
    d.push(Buffer.concat([big.subarray(6), raw('CP=&&&&')]));
    expect(frames).toEqual(['CP=&&&&']);
  });

  it('accepts a segment of exactly the limit', () => {
    const { d, frames } = decoder({ maxDataLength: 100 });
    const s = `CP=&&${'x'.repeat(93)}&&`;
    d.push(raw(s));
    expect(frames).toEqual([s]);
  });

  it('refuses a wrong CRC, naming both values, and goes on after the frame', () => {
    const { d, frames, faults } = decoder();
    const bad = ANNEX_A_FRAME.replace('1C80', '1C08');
    d.push(Buffer.concat([Buffer.from(bad, 'latin1'), raw(seg(2))]));
    expect(faults).toEqual([
      { code: HJ212_FAULT.BAD_CRC, message: 'CRC 1C08 sent, 1C80 computed' },
    ]);
    expect(frames).toEqual([seg(2)]);
  });

  it('takes the CRC in lower case too', () => {
    const { d, frames } = decoder();
    d.push(Buffer.from(ANNEX_A_FRAME.replace('1C80', '1c80'), 'latin1'));
    expect(frames).toEqual([ANNEX_A_SEGMENT]);
  });

  it('refuses a CRC field that is not hex', () => {
    const { d, faults } = decoder();
    d.push(Buffer.from(ANNEX_A_FRAME.replace('1C80', '1C8G'), 'latin1'));
    expect(faults).toEqual([
      { code: HJ212_FAULT.BAD_CRC, message: 'the CRC field is not 4 hex digits' },
    ]);
  });

  it('refuses a frame without CR LF and still finds a frame that follows at once', () => {
    const { d, frames, faults } = decoder();
    const noCrlf = ANNEX_A_FRAME.slice(0, -2);
    d.push(Buffer.concat([Buffer.from(noCrlf, 'latin1'), raw(seg(2))]));
    expect(faults[0]?.code).toBe(HJ212_FAULT.MISSING_CRLF);
    expect(frames).toEqual([seg(2)]);
  });

  it('recovers the next frame when a declared length is too long', () => {
    const { d, frames, codes } = decoder();
    // Length says 0110, the segment has 101 bytes: the next frame starts inside "its" body.
    const lying = ANNEX_A_FRAME.replace('##0101', '##0110');
    d.push(Buffer.concat([Buffer.from(lying, 'latin1'), raw(seg(3)), raw(seg(4))]));
    expect(codes()[0]).toBe(HJ212_FAULT.MISSING_CRLF);
    expect(frames).toEqual([seg(3), seg(4)]);
  });

  it('holds no more than one frame of memory while garbage floods in', () => {
    const { d, frames } = decoder({ maxDataLength: 64 });
    const junk = Buffer.alloc(64 * 1024, 'z');
    for (let i = 0; i < 32; i++) d.push(junk);
    expect(d.buffered).toBe(0);
    // A lone "#" at the end of a read is all that is kept.
    d.push(Buffer.from('zz#'));
    expect(d.buffered).toBe(1);
    d.push(raw('CP=&&&&').subarray(1));
    expect(frames).toEqual(['CP=&&&&']);
  });

  it('reports garbage at most once per read', () => {
    const { d, faults } = decoder();
    d.push(Buffer.from('a#b#c#d'));
    expect(faults).toHaveLength(1);
  });

  it('drops a partial frame on reset', () => {
    const { d, frames } = decoder();
    const f = raw(seg(1));
    d.push(f.subarray(0, 30));
    d.reset();
    expect(d.buffered).toBe(0);
    d.push(raw(seg(2)));
    expect(frames).toEqual([seg(2)]);
  });

  it('refuses a limit it cannot express', () => {
    const sink = { frame: () => undefined, fault: () => undefined };
    expect(() => new FrameDecoder(sink, { maxDataLength: 10_000 })).toThrow(/0\.\.9999/);
  });
});

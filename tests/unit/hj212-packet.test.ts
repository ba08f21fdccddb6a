import { describe, expect, it } from 'vitest';
import {
  dataAnswer,
  noticeAnswer,
  QN_RTN,
  qnRtnFor,
  requestAnswer,
  wantsDataAnswer,
} from '../../src/hj212/answers.js';
import { HJ212_FAULT } from '../../src/hj212/faults.js';
import { encodeFrame, FrameDecoder } from '../../src/hj212/frame.js';
import { flagBits, parseSegment, type Packet } from '../../src/hj212/packet.js';
import { stationPassword } from '../../src/hj212/password.js';
import { Reassembler } from '../../src/hj212/reassembly.js';
import { hj212TimeToEpochMs, isTimeZone } from '../../src/hj212/time.js';

const HOURLY =
  'QN=20261126090000123;ST=22;CN=2061;PW=Xy3_-a;MN=WXAQ320200001;Flag=5;CP=&&DataTime=20261126080000;' +
  'a34004-Min=30.1,a34004-Avg=48.2,a34004-Max=61.0,a34004-Flag=N;a21005-Avg=0.82,a21005-Flag=M&&';

function parsed(segment: string): Packet {
  const r = parseSegment(segment);
  if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
  return r.value;
}

describe('HJ 212 data segment', () => {
  it('reads the Annex A example segment', () => {
    const p = parsed(
      'QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&',
    );
    expect(p).toMatchObject({
      qn: '20160801085857223',
      st: '32',
      cn: '1062',
      pw: '100000',
      mn: '010000A8900016F000169DC0',
      flag: 5,
    });
    expect(p.cp.params.get('RtdInterval')).toBe('30');
  });

  it('reads DataTime and per-factor Min/Avg/Max/Flag of hourly data', () => {
    const p = parsed(HOURLY);
    expect(p.cp.dataTime).toBe('20261126080000');
    const pm = p.cp.factors.get('a34004');
    expect(Object.fromEntries(pm?.numbers ?? [])).toEqual({ Min: 30.1, Avg: 48.2, Max: 61 });
    expect(pm?.flag).toBe('N');
    expect(p.cp.factors.get('a21005')?.flag).toBe('M');
  });

  it('keeps -Rtd, -Cou, -ZsRtd as numbers and other suffixes as text', () => {
    const p = parsed(
      'ST=21;CN=2011;PW=123456;MN=TH01;CP=&&DataTime=20261126080000;w01001-Rtd=8.62,w01001-Flag=N,w01001-EFlag=A01,w01001-SampleTime=20261126075500;w00000-Cou=12.5,w00000-ZsRtd=-1.5&&',
    );
    const ph = p.cp.factors.get('w01001');
    expect(ph?.numbers.get('Rtd')).toBe(8.62);
    expect(Object.fromEntries(ph?.texts ?? [])).toEqual({
      EFlag: 'A01',
      SampleTime: '20261126075500',
    });
    expect(p.cp.factors.get('w00000')?.numbers.get('ZsRtd')).toBe(-1.5);
  });

  it('keys factors in a Map, so a code like __proto__ is only data', () => {
    const p = parsed('ST=22;CN=2011;PW=1;MN=m;CP=&&__proto__-Rtd=1&&');
    expect(p.cp.factors.get('__proto__')?.numbers.get('Rtd')).toBe(1);
  });

  it('takes an empty CP, and a trailing ";" inside it', () => {
    expect(parsed('ST=91;CN=9014;PW=1;MN=m;Flag=4;CP=&&&&').cp.factors.size).toBe(0);
    expect(parsed('ST=22;CN=2011;PW=1;MN=m;CP=&&a34004-Rtd=1;&&').cp.factors.size).toBe(1);
  });

  it.each([
    ['no CP', 'ST=22;CN=2011;PW=1;MN=m', HJ212_FAULT.BAD_SEGMENT],
    ['CP not closed', 'ST=22;CN=2011;PW=1;MN=m;CP=&&a34004-Rtd=1', HJ212_FAULT.BAD_CP],
    ['missing MN', 'ST=22;CN=2011;PW=1;CP=&&&&', HJ212_FAULT.BAD_SEGMENT],
    ['missing PW', 'ST=22;CN=2011;MN=m;CP=&&&&', HJ212_FAULT.BAD_SEGMENT],
    ['unknown field', 'ST=22;CN=2011;PW=1;MN=m;XX=1;CP=&&&&', HJ212_FAULT.BAD_SEGMENT],
    ['repeated field', 'ST=22;ST=22;CN=2011;PW=1;MN=m;CP=&&&&', HJ212_FAULT.BAD_SEGMENT],
    [
      'QN of 16 digits',
      'QN=2026112609000012;ST=22;CN=2011;PW=1;MN=m;CP=&&&&',
      HJ212_FAULT.BAD_FIELD,
    ],
    ['CN of 3 digits', 'ST=22;CN=201;PW=1;MN=m;CP=&&&&', HJ212_FAULT.BAD_FIELD],
    ['PW of 7', 'ST=22;CN=2011;PW=1234567;MN=m;CP=&&&&', HJ212_FAULT.BAD_FIELD],
    ['MN of 25', `ST=22;CN=2011;PW=1;MN=${'m'.repeat(25)};CP=&&&&`, HJ212_FAULT.BAD_FIELD],
    ['Flag over 255', 'ST=22;CN=2011;PW=1;MN=m;Flag=256;CP=&&&&', HJ212_FAULT.BAD_FIELD],
    [
      'PNUM without D',
      'ST=22;CN=2011;PW=1;MN=m;Flag=5;PNUM=2;PNO=1;CP=&&&&',
      HJ212_FAULT.BAD_FIELD,
    ],
    ['D without PNO', 'ST=22;CN=2011;PW=1;MN=m;Flag=7;PNUM=2;CP=&&&&', HJ212_FAULT.BAD_FIELD],
    ['PNO over PNUM', 'ST=22;CN=2011;PW=1;MN=m;Flag=7;PNUM=2;PNO=3;CP=&&&&', HJ212_FAULT.BAD_FIELD],
    ['value not a number', 'ST=22;CN=2011;PW=1;MN=m;CP=&&a34004-Rtd=1e3&&', HJ212_FAULT.BAD_FIELD],
    ['bad DataTime', 'ST=22;CN=2011;PW=1;MN=m;CP=&&DataTime=2026112608&&', HJ212_FAULT.BAD_FIELD],
    ['item without =', 'ST=22;CN=2011;PW=1;MN=m;CP=&&a34004-Rtd&&', HJ212_FAULT.BAD_CP],
    [
      'repeated value',
      'ST=22;CN=2011;PW=1;MN=m;CP=&&a34004-Rtd=1,a34004-Rtd=2&&',
      HJ212_FAULT.BAD_CP,
    ],
    ['CP over 950', `ST=22;CN=2011;PW=1;MN=m;CP=&&x=${'1'.repeat(950)}&&`, HJ212_FAULT.BAD_CP],
  ])('refuses a segment with %s', (_what, segment, code) => {
    const r = parseSegment(segment);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe(code);
  });

  it('round-trips encode → decode → parse', () => {
    const segments: string[] = [];
    const d = new FrameDecoder({ frame: (s) => segments.push(s), fault: () => undefined });
    d.push(encodeFrame(HOURLY));
    expect(parsed(segments[0] as string)).toEqual(parsed(HOURLY));
  });
});

describe('HJ 212 Flag', () => {
  it.each([
    // Flag=5 (Annex A example) = 000001 0 1: version 2017, no subpackets, answer wanted.
    [5, { version: 1, answerRequired: true, subpacketed: false }],
    // Flag=4 (the standard's 9014 example) = 000001 0 0.
    [4, { version: 1, answerRequired: false, subpacketed: false }],
    // Flag=7 = 000001 1 1: split into subpackets, answer wanted.
    [7, { version: 1, answerRequired: true, subpacketed: true }],
    // Flag=1: an HJ/T 212-2005 station (version 000000) asking for an answer.
    [1, { version: 0, answerRequired: true, subpacketed: false }],
  ])('reads Flag=%i', (flag, bits) => {
    expect(flagBits(flag)).toEqual(bits);
  });
});

describe('HJ 212 answers', () => {
  const p = parsed(HOURLY);

  it('answers data with 9014 echoing QN, as the standard example', () => {
    expect(dataAnswer(p)).toBe(
      'QN=20261126090000123;ST=91;CN=9014;PW=Xy3_-a;MN=WXAQ320200001;Flag=4;CP=&&&&',
    );
    // The standard's own example, rebuilt from its fields.
    expect(
      dataAnswer({ qn: '20160801085000001', pw: '123456', mn: '010000A8900016F000169DC0' }),
    ).toBe(
      'QN=20160801085000001;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&',
    );
  });

  it('owes a 9014 only to data uploads whose Flag A bit is set', () => {
    expect(wantsDataAnswer(p)).toBe(true);
    expect(wantsDataAnswer({ cn: '2061', flag: 4 })).toBe(false);
    expect(wantsDataAnswer({ cn: '2061' })).toBe(false);
    expect(wantsDataAnswer({ cn: '1062', flag: 5 })).toBe(false);
    for (const cn of ['2011', '2051', '2061', '2031'])
      expect(wantsDataAnswer({ cn, flag: 5 })).toBe(true);
  });

  it('builds 9011 with QnRtn and 9013', () => {
    expect(requestAnswer(p, QN_RTN.PW_WRONG)).toBe(
      'QN=20261126090000123;ST=91;CN=9011;PW=Xy3_-a;MN=WXAQ320200001;Flag=4;CP=&&QnRtn=3&&',
    );
    expect(noticeAnswer(p)).toContain(';CN=9013;');
  });

  it('names refusals with the QnRtn values of the standard', () => {
    expect(qnRtnFor('PW_WRONG')).toBe(3);
    expect(qnRtnFor('MN_UNKNOWN')).toBe(4);
    expect(qnRtnFor('ST_WRONG')).toBe(5);
    expect(qnRtnFor('CN_UNKNOWN')).toBe(8);
    expect(qnRtnFor(HJ212_FAULT.BAD_CRC)).toBe(9);
    expect(qnRtnFor(HJ212_FAULT.BAD_CP)).toBe(2);
  });

  it('leaves QN out of the answer when the station sent none (HJ/T 212-2005)', () => {
    expect(dataAnswer({ pw: '1', mn: 'm' })).toBe('ST=91;CN=9014;PW=1;MN=m;Flag=4;CP=&&&&');
  });
});

describe('HJ 212 subpacket reassembly', () => {
  const part = (pno: number, pnum: number, cp: string, qn = '20261126090000123') =>
    parsed(`QN=${qn};ST=22;CN=2061;PW=1;MN=m;Flag=7;PNUM=${pnum};PNO=${pno};CP=&&${cp}&&`);

  it('merges the parts of a message in PNO order once all have come, whatever their order', () => {
    const r = new Reassembler();
    expect(r.add(part(2, 2, 'DataTime=20261126080000;a21005-Avg=0.8'), 0)).toEqual({
      done: false,
    });
    const done = r.add(part(1, 2, 'DataTime=20261126080000;a34004-Avg=48'), 1);
    expect(done.done).toBe(true);
    if (done.done) {
      expect([...done.packet.cp.factors.keys()]).toEqual(['a34004', 'a21005']); // PNO order
      expect(done.packet.pnum).toBeUndefined();
      expect(done.parts.map((x) => x.pno)).toEqual([1, 2]);
    }
    expect(r.pending).toBe(0);
  });

  it('keeps a resent part once', () => {
    const r = new Reassembler();
    r.add(part(1, 2, 'a34004-Avg=48'), 0);
    r.add(part(1, 2, 'a34004-Avg=48'), 1);
    expect(r.add(part(2, 2, 'a21005-Avg=1'), 2).done).toBe(true);
  });

  it('refuses parts that contradict each other', () => {
    const r = new Reassembler();
    r.add(part(1, 2, 'DataTime=20261126080000'), 0);
    expect(r.add(part(2, 3, 'a34004-Avg=1'), 0)).toMatchObject({ code: HJ212_FAULT.BAD_SUBPACKET });
    expect(r.add(part(2, 2, 'DataTime=20261126090000'), 0)).toMatchObject({
      code: HJ212_FAULT.BAD_SUBPACKET,
    });
    expect(new Reassembler({ maxParts: 4 }).add(part(1, 5, ''), 0)).toMatchObject({
      code: HJ212_FAULT.BAD_SUBPACKET,
    });
  });

  it('holds a bounded number of messages and expires old ones', () => {
    const r = new Reassembler({ maxMessages: 2, windowMs: 1000 });
    r.add(part(1, 2, '', '20261126090000001'), 0);
    r.add(part(1, 2, '', '20261126090000002'), 10);
    const third = r.add(part(1, 2, '', '20261126090000003'), 20);
    expect(third).toMatchObject({ done: false, dropped: [{ qn: '20261126090000001' }] });
    expect(r.pending).toBe(2);
    expect(r.expire(1015).map((parts) => parts[0]?.qn)).toEqual(['20261126090000002']);
    expect(r.pending).toBe(1);
  });
});

describe('HJ 212 DataTime', () => {
  it.each([
    // Beijing time is UTC+8 all year: 08:00 local is 00:00Z.
    ['20261126080000', 'Asia/Shanghai', '2026-11-26T00:00:00.000Z'],
    ['20260101000000', 'Asia/Shanghai', '2025-12-31T16:00:00.000Z'],
    // QN carries milliseconds.
    ['20261126090000123', 'Asia/Shanghai', '2026-11-26T01:00:00.123Z'],
    ['20261126080000', 'UTC', '2026-11-26T08:00:00.000Z'],
    // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist and is read
    // with the offset before the jump (−5 h), landing at 03:30 EDT.
    ['20260308023000', 'America/New_York', '2026-03-08T07:30:00.000Z'],
    ['20260308013000', 'America/New_York', '2026-03-08T06:30:00.000Z'],
    ['20260308033000', 'America/New_York', '2026-03-08T07:30:00.000Z'],
    // 2026-11-01: 01:30 happens twice; the first (EDT, −4 h) is taken.
    ['20261101013000', 'America/New_York', '2026-11-01T05:30:00.000Z'],
    ['20261101023000', 'America/New_York', '2026-11-01T07:30:00.000Z'],
    // Southern hemisphere: Sydney leaves daylight saving on 2026-04-05 at 03:00 → 02:00.
    ['20260405023000', 'Australia/Sydney', '2026-04-04T15:30:00.000Z'],
  ])('reads %s in %s as %s', (text, tz, iso) => {
    expect(new Date(hj212TimeToEpochMs(text, tz) as number).toISOString()).toBe(iso);
  });

  it('refuses times that are not on the calendar', () => {
    for (const t of ['20261326080000', '20260431080000', '20261126250000', '2026112608000']) {
      expect(hj212TimeToEpochMs(t), t).toBeUndefined();
    }
  });

  it('defaults to Asia/Shanghai and knows valid zones', () => {
    expect(hj212TimeToEpochMs('20261126080000')).toBe(Date.UTC(2026, 10, 26, 0));
    expect(isTimeZone('Asia/Shanghai')).toBe(true);
    expect(isTimeZone('Mars/Olympus')).toBe(false);
  });
});

describe('HJ 212 station password', () => {
  it('is the first 6 characters of the enrollment-derived secret', () => {
    expect(stationPassword('Xy3_-aQ9kLmN0pRsTuVwXyZ0123456789abcdefghi')).toBe('Xy3_-a');
    expect(() => stationPassword('short')).toThrow(RangeError);
  });
});

/**
 * The HJ 212-2017 data segment (§6.3, the data-segment table):
 *
 *   QN=20160801085857223;ST=22;CN=2011;PW=123456;MN=…;Flag=5;[PNUM=…;PNO=…;]CP=&&…&&
 *
 * Field lengths in that table count the `KEY=` prefix: QN 20 (a 17-digit timestamp
 * YYYYMMDDhhmmsszzz), ST 5, CN 7, PW 9 (6 characters), MN 27 (up to 24 characters), Flag 8
 * (up to 3 digits), PNUM 9 and PNO 8 (up to 4 digits), CP 0–950. Inside CP (§6.3.3) items are
 * separated by `;`, the values of one item (one factor) by `,`, and each is `key=value`; a
 * factor's values are `code-Suffix` (`a34004-Rtd=35.2,a34004-Flag=N`).
 *
 * Parsing returns a result instead of throwing: a refused packet is an expected event on this
 * path, not an exception.
 */
import { HJ212_FAULT, type Hj212FaultCode } from './faults.js';

/** Flag (§6.3, data-segment table): bits V5 V4 V3 V2 V1 V0 D A, A the lowest. */
export const FLAG_ANSWER = 0b01; // A: 1 = the command wants an answer
export const FLAG_SUBPACKETS = 0b10; // D: 1 = the packet carries PNUM and PNO
/** V5–V0 = 000001 is HJ 212-2017; 000000 is HJ/T 212-2005. The Annex A example has Flag=5. */
export const FLAG_VERSION_2017 = 1;

export interface FlagBits {
  /** The standard's version bits: 0 = HJ/T 212-2005, 1 = HJ 212-2017. */
  version: number;
  answerRequired: boolean;
  subpacketed: boolean;
}

export function flagBits(flag: number): FlagBits {
  return {
    version: flag >>> 2,
    answerRequired: (flag & FLAG_ANSWER) !== 0,
    subpacketed: (flag & FLAG_SUBPACKETS) !== 0,
  };
}

/** The values of one factor: `code-Suffix=value` items of the CP area. */
export interface FactorValues {
  /** Numeric values by suffix: Rtd, Avg, Min, Max, Cou, ZsRtd, ZsAvg, ZsMin, ZsMax. */
  readonly numbers: Map<string, number>;
  /** `-Flag`: the data flag (N normal, F stopped, M maintenance, S set by hand, D fault,
   *  C calibration, T over range, B communication fault; §6.6 data-flag table). */
  flag?: string;
  /** Every other suffix, as sent (EFlag, SampleTime, …). */
  readonly texts: Map<string, string>;
}

export interface CpArea {
  /** `DataTime=YYYYMMDDhhmmss`, local time of the station, as sent. */
  dataTime?: string;
  /** Items without a factor code (RtdInterval, QnRtn, ExeRtn, PolId, …), DataTime excluded. */
  readonly params: Map<string, string>;
  /** By factor code, in the order sent. */
  readonly factors: Map<string, FactorValues>;
}

export interface Packet {
  qn?: string;
  st: string;
  cn: string;
  pw: string;
  mn: string;
  /** Absent in HJ/T 212-2005 packets; then no answer is wanted. */
  flag?: number;
  pnum?: number;
  pno?: number;
  cp: CpArea;
}

export type Parsed<T> =
  { ok: true; value: T } | { ok: false; code: Hj212FaultCode; message: string };

const NUMERIC_SUFFIXES = new Set([
  'Rtd',
  'Avg',
  'Min',
  'Max',
  'Cou',
  'ZsRtd',
  'ZsAvg',
  'ZsMin',
  'ZsMax',
]);

const FIELD_RULES: ReadonlyMap<string, RegExp> = new Map([
  ['QN', /^\d{17}$/],
  ['ST', /^[0-9A-Z]{2}$/],
  ['CN', /^\d{4}$/],
  ['PW', /^[\x21-\x7e]{1,6}$/],
  ['MN', /^[\x21-\x7e]{1,24}$/],
  ['Flag', /^\d{1,3}$/],
  ['PNUM', /^\d{1,4}$/],
  ['PNO', /^\d{1,4}$/],
]);
const REQUIRED = ['ST', 'CN', 'PW', 'MN'] as const;
const NUMBER_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;
const CP_MAX = 950 - 'CP=&&&&'.length;

const fail = (code: Hj212FaultCode, message: string) => ({ ok: false, code, message }) as const;

export function parseSegment(segment: string): Parsed<Packet> {
  const cpAt = segment.indexOf('CP=&&');
  if (cpAt < 0 || (cpAt > 0 && segment[cpAt - 1] !== ';')) {
    return fail(HJ212_FAULT.BAD_SEGMENT, 'no CP=&&…&& area');
  }
  if (!segment.endsWith('&&') || segment.length < cpAt + 7) {
    return fail(HJ212_FAULT.BAD_CP, 'the CP area does not end with "&&"');
  }
  const fields = new Map<string, string>();
  const head = cpAt === 0 ? [] : segment.slice(0, cpAt - 1).split(';');
  for (const item of head) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const rule = FIELD_RULES.get(key);
    if (eq < 0 || rule === undefined) {
      return fail(HJ212_FAULT.BAD_SEGMENT, `unknown data-segment field "${key.slice(0, 16)}"`);
    }
    if (fields.has(key)) return fail(HJ212_FAULT.BAD_SEGMENT, `field ${key} appears twice`);
    const value = item.slice(eq + 1);
    if (!rule.test(value)) return fail(HJ212_FAULT.BAD_FIELD, `malformed ${key}`);
    fields.set(key, value);
  }
  for (const key of REQUIRED) {
    if (!fields.has(key)) return fail(HJ212_FAULT.BAD_SEGMENT, `missing field ${key}`);
  }
  const body = segment.slice(cpAt + 5, segment.length - 2);
  if (body.length > CP_MAX) return fail(HJ212_FAULT.BAD_CP, 'the CP area is over 950 characters');
  const cp = parseCp(body);
  if (!cp.ok) return cp;
  const packet: Packet = {
    st: fields.get('ST') as string,
    cn: fields.get('CN') as string,
    pw: fields.get('PW') as string,
    mn: fields.get('MN') as string,
    cp: cp.value,
  };
  const qn = fields.get('QN');
  if (qn !== undefined) packet.qn = qn;
  const flag = fields.get('Flag');
  if (flag !== undefined) {
    packet.flag = Number(flag);
    if (packet.flag > 255) return fail(HJ212_FAULT.BAD_FIELD, 'Flag is over 255');
  }
  return subpacketFields(packet, fields);
}

/** PNUM and PNO are present exactly when Flag's D bit says so, and 1 ≤ PNO ≤ PNUM. */
function subpacketFields(packet: Packet, fields: Map<string, string>): Parsed<Packet> {
  const pnum = fields.get('PNUM');
  const pno = fields.get('PNO');
  const d = packet.flag !== undefined && (packet.flag & FLAG_SUBPACKETS) !== 0;
  if (!d) {
    if (pnum !== undefined || pno !== undefined) {
      return fail(HJ212_FAULT.BAD_FIELD, 'PNUM/PNO sent but the Flag D bit is 0');
    }
    return { ok: true, value: packet };
  }
  if (pnum === undefined || pno === undefined) {
    return fail(HJ212_FAULT.BAD_FIELD, 'the Flag D bit is 1 but PNUM or PNO is missing');
  }
  packet.pnum = Number(pnum);
  packet.pno = Number(pno);
  if (packet.pnum < 1 || packet.pno < 1 || packet.pno > packet.pnum) {
    return fail(HJ212_FAULT.BAD_FIELD, `PNO ${pno} is not within 1..PNUM ${pnum}`);
  }
  return { ok: true, value: packet };
}

/** The inside of `CP=&&…&&`. */
export function parseCp(body: string): Parsed<CpArea> {
  const cp: CpArea = { params: new Map(), factors: new Map() };
  if (body === '') return { ok: true, value: cp };
  for (const item of body.split(';')) {
    if (item === '') continue; // a trailing `;` before `&&` is common and harmless
    for (const part of item.split(',')) {
      const eq = part.indexOf('=');
      if (eq <= 0)
        return fail(HJ212_FAULT.BAD_CP, `CP item "${part.slice(0, 24)}" is not key=value`);
      const r = addCpValue(cp, part.slice(0, eq), part.slice(eq + 1));
      if (r !== undefined) return r;
    }
  }
  return { ok: true, value: cp };
}

function addCpValue(cp: CpArea, key: string, value: string) {
  const dash = key.indexOf('-');
  if (dash < 0) {
    if (key === 'DataTime') {
      if (!/^\d{14}$/.test(value)) return fail(HJ212_FAULT.BAD_FIELD, 'malformed DataTime');
      if (cp.dataTime !== undefined) return fail(HJ212_FAULT.BAD_CP, 'DataTime appears twice');
      cp.dataTime = value;
      return undefined;
    }
    if (cp.params.has(key)) return fail(HJ212_FAULT.BAD_CP, `CP item ${key} appears twice`);
    cp.params.set(key, value);
    return undefined;
  }
  const code = key.slice(0, dash);
  const suffix = key.slice(dash + 1);
  if (code === '' || suffix === '') return fail(HJ212_FAULT.BAD_CP, `malformed CP key "${key}"`);
  let f = cp.factors.get(code);
  if (f === undefined) {
    f = { numbers: new Map(), texts: new Map() };
    cp.factors.set(code, f);
  }
  if (f.numbers.has(suffix) || f.texts.has(suffix) || (suffix === 'Flag' && f.flag !== undefined)) {
    return fail(HJ212_FAULT.BAD_CP, `${key} appears twice`);
  }
  if (NUMERIC_SUFFIXES.has(suffix)) {
    if (!NUMBER_RE.test(value)) return fail(HJ212_FAULT.BAD_FIELD, `${key} is not a number`);
    f.numbers.set(suffix, Number(value));
  } else if (suffix === 'Flag') {
    f.flag = value;
  } else {
    f.texts.set(suffix, value);
  }
  return undefined;
}

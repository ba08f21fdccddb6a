/**
 * What the upper computer (the gateway) sends back to a station, per HJ 212-2017.
 *
 * The standard's interaction commands (ST=91, "系统交互"): 9011 request answer (`QnRtn`),
 * 9012 execution result (`ExeRtn`), 9013 notification answer, 9014 data answer. For data the
 * station uploads (CN 2011 real-time, 2051 minute, 2061 hourly, 2031 daily) the only answer the
 * upload flow defines is 9014, sent when the packet's Flag has its A bit set, echoing its QN;
 * the standard's example is
 *
 *   QN=20160801085000001;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&
 *
 * (Flag=4: version 2017, no answer wanted back, no subpackets). Several open implementations
 * add `QnRtn=1` to its CP or send Flag=0/9; this follows the standard's example.
 *
 * The standard has no negative data answer. A station whose upload is not answered resends it
 * after its timeout, up to its retry count (set by CN 1000 `OverTime`/`ReCount`), then gives up
 * and goes on with the next data: that is exactly what a refused upload must cause, so a
 * refused upload gets no 9014. The 9011 request answer carries the standard's refusal reasons
 * (`QnRtn`, §6.6 "请求命令返回" table: 3 PW wrong, 4 MN wrong, 9 CRC wrong, …); the gateway may
 * send one so the station's operator sees why, using `requestAnswer` with `qnRtnFor(code)`.
 */
import { HJ212_FAULT, type Hj212FaultCode } from './faults.js';
import { FLAG_VERSION_2017, type Packet } from './packet.js';

/** Command codes (CN) this gateway knows, from the standard's command table. */
export const CN = {
  REALTIME_DATA: '2011',
  MINUTE_DATA: '2051',
  HOURLY_DATA: '2061',
  DAILY_DATA: '2031',
  REQUEST_ANSWER: '9011',
  EXECUTION_RESULT: '9012',
  NOTICE_ANSWER: '9013',
  DATA_ANSWER: '9014',
} as const;

/** The data uploads answered by 9014. */
export const DATA_UPLOADS: ReadonlySet<string> = new Set([
  CN.REALTIME_DATA,
  CN.MINUTE_DATA,
  CN.HOURLY_DATA,
  CN.DAILY_DATA,
]);

/** `QnRtn` values (§6.6, the request-return table). */
export const QN_RTN = {
  READY: 1,
  REFUSED: 2,
  PW_WRONG: 3,
  MN_WRONG: 4,
  ST_WRONG: 5,
  FLAG_WRONG: 6,
  QN_WRONG: 7,
  CN_WRONG: 8,
  CRC_WRONG: 9,
  UNKNOWN: 100,
} as const;

/** ST of interaction commands (§6.6, the system-code table: 91 "系统交互"). */
const ST_INTERACTION = '91';
/** Answers want no answer back and are never split: version bits only. */
const ANSWER_FLAG = FLAG_VERSION_2017 << 2;

/** What identifies the packet being answered; QN is echoed, as the standard requires. */
export type AnswerTo = Pick<Packet, 'qn' | 'pw' | 'mn'>;

function answer(to: AnswerTo, cn: string, cp: string): string {
  const qn = to.qn === undefined ? '' : `QN=${to.qn};`;
  return `${qn}ST=${ST_INTERACTION};CN=${cn};PW=${to.pw};MN=${to.mn};Flag=${ANSWER_FLAG};CP=&&${cp}&&`;
}

/** The 9014 data answer: the HJ 212 PUBACK, sent only once the data is durable. */
export function dataAnswer(to: AnswerTo): string {
  return answer(to, CN.DATA_ANSWER, '');
}

/** The 9013 notification answer. */
export function noticeAnswer(to: AnswerTo): string {
  return answer(to, CN.NOTICE_ANSWER, '');
}

/** The 9011 request answer with its `QnRtn`. */
export function requestAnswer(to: AnswerTo, qnRtn: number): string {
  return answer(to, CN.REQUEST_ANSWER, `QnRtn=${qnRtn}`);
}

/** Whether the gateway owes this packet a 9014 once its data is committed. */
export function wantsDataAnswer(p: Pick<Packet, 'cn' | 'flag'>): boolean {
  return p.flag !== undefined && (p.flag & 1) === 1 && DATA_UPLOADS.has(p.cn);
}

const QN_RTN_BY_FAULT: ReadonlyMap<string, number> = new Map([
  [HJ212_FAULT.BAD_CRC, QN_RTN.CRC_WRONG],
]);

/** The `QnRtn` naming a refusal; gateway-side causes (unknown MN, wrong PW) have their own. */
export function qnRtnFor(
  code: Hj212FaultCode | 'PW_WRONG' | 'MN_UNKNOWN' | 'ST_WRONG' | 'CN_UNKNOWN',
): number {
  switch (code) {
    case 'PW_WRONG':
      return QN_RTN.PW_WRONG;
    case 'MN_UNKNOWN':
      return QN_RTN.MN_WRONG;
    case 'ST_WRONG':
      return QN_RTN.ST_WRONG;
    case 'CN_UNKNOWN':
      return QN_RTN.CN_WRONG;
    default:
      return QN_RTN_BY_FAULT.get(code) ?? QN_RTN.REFUSED;
  }
}

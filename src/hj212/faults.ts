/**
 * Why an HJ 212 frame or packet was refused. Codes are stable: they go to the rejection log and
 * the logs next to the MQTT rejection codes of `REJECT` in src/errors.ts.
 */
export const HJ212_FAULT = {
  /** Bytes before a `##` header (or between frames) that belong to no frame. */
  GARBAGE: 'HJ212_GARBAGE',
  /** The 4 characters after `##` are not decimal digits. */
  BAD_LENGTH: 'HJ212_BAD_LENGTH',
  /** The declared data-segment length is over the configured limit. */
  FRAME_TOO_LARGE: 'HJ212_FRAME_TOO_LARGE',
  /** The CRC field is not 4 hex digits, or does not match the Annex A CRC of the segment. */
  BAD_CRC: 'HJ212_BAD_CRC',
  /** No CR LF where the declared length says the frame ends. */
  MISSING_CRLF: 'HJ212_MISSING_CRLF',
  /** The data segment is not `KEY=value;…;CP=&&…&&`, or a field is missing, repeated or unknown. */
  BAD_SEGMENT: 'HJ212_BAD_SEGMENT',
  /** A field's value is malformed (QN, ST, CN, PW, MN, Flag, PNUM, PNO, DataTime, a number). */
  BAD_FIELD: 'HJ212_BAD_FIELD',
  /** The CP area is not `&&…&&` or one of its items is not `key=value`. */
  BAD_CP: 'HJ212_BAD_CP',
  /** A subpacket that contradicts the others of its message (PNUM, DataTime), or one too many. */
  BAD_SUBPACKET: 'HJ212_BAD_SUBPACKET',
  /** Subpackets of a message that never completed within the reassembly window. */
  SUBPACKET_TIMEOUT: 'HJ212_SUBPACKET_TIMEOUT',
} as const;
export type Hj212FaultCode = (typeof HJ212_FAULT)[keyof typeof HJ212_FAULT];

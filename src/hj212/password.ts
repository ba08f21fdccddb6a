/**
 * The HJ 212 access password (`PW`) of a station. The data-segment table gives PW 6 characters,
 * and a station cannot carry the 43-character device secret of MQTT devices, so for an
 * enrollment-derived device (DESIGN §5) PW is the first 6 characters of its derived secret,
 * `base64url(HMAC-SHA256(enrollment key, deviceId))` (DESIGN §14). Those characters
 * (`A–Z a–z 0–9 - _`) never collide with the segment's separators `;`, `=`, `,` and `&`.
 *
 * 6 base64url characters are 36 bits: enough to tell stations apart and to refuse a
 * misconfigured one, not a secret that resists guessing. The listener compares it in constant
 * time and rate-limits failures like MQTT logins.
 */

/** PW length, from the data-segment table ("PW=" + 6 characters = 9). */
export const PW_LENGTH = 6;

/** The PW of an enrollment-derived station, from its derived secret. */
export function stationPassword(derivedSecret: string): string {
  if (derivedSecret.length < PW_LENGTH) {
    throw new RangeError(`a derived secret has at least ${PW_LENGTH} characters`);
  }
  return derivedSecret.slice(0, PW_LENGTH);
}

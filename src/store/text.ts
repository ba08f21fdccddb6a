/**
 * Text every store keeps exactly. Line protocol has no line break inside a value (one point is
 * one line), and an unpaired surrogate has no UTF-8 form, so it would read back as U+FFFD. The
 * InfluxDB store refuses such values; the schema catalog refuses string enums holding them, so
 * no device reading carries one.
 */

/** Unpaired surrogates: with the u flag the class cannot match half of a valid pair. */
export const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
export const LINE_BREAK = /[\n\r]/;

/** A string no store would alter: one line of well-formed Unicode. */
export function isStorableText(v: unknown): v is string {
  return typeof v === 'string' && !LINE_BREAK.test(v) && !LONE_SURROGATE.test(v);
}

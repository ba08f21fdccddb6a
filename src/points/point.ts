/**
 * A reading as it moves through the gateway: made by ingest, appended to the spool, written by
 * every store. The spool's record format for it is codec.ts beside this file.
 */

export type FieldValue = number | boolean | string;

/** Low-cardinality identity of a series; values come from the registry, never the payload. */
export interface PointTags {
  readonly device_id: string;
  readonly district: string;
  readonly site_id: string;
}

/** One reading, normalised. Same series + timestamp overwrites (idempotent replay). */
export interface Point {
  readonly measurement: string;
  readonly tags: PointTags;
  /** Field name → value; a null-prototype object. Only fields present in the reading. */
  readonly fields: Readonly<Record<string, FieldValue>>;
  /** Epoch milliseconds. */
  readonly ts: number;
}

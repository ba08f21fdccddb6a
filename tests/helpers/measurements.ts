/** The measurement the embedded store tests write: air quality with one field of each kind. */
import type { FieldKind, MeasurementInfo } from '../../src/store/types.js';

export function airQuality(fields: readonly (readonly [string, FieldKind])[]): MeasurementInfo {
  return { type: 'air-quality', measurement: 'air_quality', fields: new Map(fields) };
}

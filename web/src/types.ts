/** The API's answers, as the dashboard reads them (see /openapi.json). */

export type DeviceStatus = 'online' | 'offline' | 'stale' | 'never';
export const STATUSES: readonly DeviceStatus[] = ['online', 'stale', 'offline', 'never'];

export interface Device {
  id: string;
  type: string;
  district: string;
  siteId: string;
  lat: number;
  lon: number;
  state: 'active' | 'disabled';
  credential: 'enrollment' | 'individual';
  createdAt: string;
  status: DeviceStatus;
  lastSeen: string | null;
}

export interface Reading {
  ts: string;
  seq: number | null;
  data: Record<string, unknown>;
}

export interface DeviceDetail extends Device {
  last: Reading | null;
}

export interface Latest {
  id: string;
  type: string;
  district: string;
  status: DeviceStatus;
  lastSeen: string;
  ts: string;
  seq: number | null;
  data: Record<string, unknown>;
}

export interface District {
  id: string;
  name: string;
  nameZh: string | null;
  centroid: [number, number];
  boundary: [number, number][] | null;
  devices: number;
}

export interface Site {
  id: string;
  district: string;
  kind: string;
  name: string;
  lat: number;
  lon: number;
}

export interface FieldInfo {
  name: string;
  // The store's field types: a field never changes type.
  kind: 'float' | 'integer' | 'boolean' | 'string';
  unit?: string;
}

export interface TypeInfo {
  type: string;
  title: string;
  category: string;
  intervalSeconds: number;
  fields: FieldInfo[];
}

export interface AggregatePoint {
  t: string;
  value: number | null;
  count: number;
}

export interface Aggregate {
  type: string;
  field: string;
  fn: string;
  every: string;
  from: string;
  to: string;
  series: { group: Record<string, string>; points: AggregatePoint[] }[];
}

export interface Rejection {
  id: number;
  receivedAt: string;
  deviceId: string;
  type: string;
  topic: string;
  code: string;
  reasons: { pointer: string; message: string }[];
  payload: string;
  payloadBytes: number;
}

/** `event: reading` of /api/v1/stream. */
export interface ReadingEvent {
  id: string;
  type: string;
  district: string;
  siteId: string;
  readings: Reading[];
}

/** `event: status` of /api/v1/stream. */
export interface StatusEvent {
  id: string;
  type: string;
  district: string;
  status: DeviceStatus;
  at: string;
}

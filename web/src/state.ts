/**
 * What the page knows about the city, shared by its views: the device types, districts,
 * devices with their status and last reading. Loaded once, kept current by the live
 * stream, and re-read now and then (and after a reconnect, since nothing is replayed).
 */
import { getJson } from './api';
import { LiveStream, type StreamState } from './sse';
import type {
  Device,
  DeviceStatus,
  District,
  Latest,
  ReadingEvent,
  StatusEvent,
  TypeInfo,
} from './types';

export interface DeviceView extends Device {
  /** The last reading's data and time, when one arrived since the gateway started. */
  data: Record<string, unknown> | null;
  ts: string | null;
}

type Listener<T> = (v: T) => void;

class Emitter<T> {
  readonly #fns = new Set<Listener<T>>();
  on(fn: Listener<T>): () => void {
    this.#fns.add(fn);
    return () => this.#fns.delete(fn);
  }
  emit(v: T): void {
    for (const fn of this.#fns) fn(v);
  }
}

export const city = {
  types: new Map<string, TypeInfo>(),
  districts: [] as District[],
  devices: new Map<string, DeviceView>(),
  /** Registered devices, as the API counts them. */
  total: 0,
  loaded: false,
  streamState: 'stopped' as StreamState,
  streamDetail: '',
  /** The devices list (or much of it) changed: redraw everything. */
  reloaded: new Emitter<void>(),
  /** One device's status or last reading changed. */
  deviceChanged: new Emitter<DeviceView>(),
  readings: new Emitter<ReadingEvent>(),
  statuses: new Emitter<StatusEvent>(),
  stream: new Emitter<StreamState>(),
};

export function districtName(id: string): string {
  return city.districts.find((d) => d.id === id)?.name ?? id;
}

export function unitOf(type: string, field: string): string {
  return city.types.get(type)?.fields.find((f) => f.name === field)?.unit ?? '';
}

/** The fields of a type's readings (the schema lists `seq` of the envelope too). */
export function dataFields(type: string) {
  return (city.types.get(type)?.fields ?? []).filter((f) => f.name !== 'seq');
}

/** Numeric fields of a type: the ones that can be charted. */
export function numericFields(type: string) {
  return dataFields(type).filter((f) => f.kind === 'float' || f.kind === 'integer');
}

export async function loadStatic(): Promise<void> {
  const [schemas, districts] = await Promise.all([
    getJson<{ items: TypeInfo[] }>('/api/v1/schemas'),
    getJson<{ items: District[] }>('/api/v1/districts'),
  ]);
  city.types = new Map(schemas.items.map((t) => [t.type, t]));
  city.districts = districts.items;
}

/** Re-reads every device and every last reading. */
export async function loadDevices(): Promise<void> {
  const [devices, latest] = await Promise.all([
    getJson<{ items: Device[]; total: number }>('/api/v1/devices?limit=10000'),
    getJson<{ items: Latest[] }>('/api/v1/latest?limit=10000'),
  ]);
  const last = new Map(latest.items.map((l) => [l.id, l]));
  city.devices = new Map(
    devices.items.map((d) => {
      const l = last.get(d.id);
      return [d.id, { ...d, data: l?.data ?? null, ts: l?.ts ?? null }];
    }),
  );
  city.total = devices.total;
  city.loaded = true;
  city.reloaded.emit();
}

export function statusCounts(): Record<DeviceStatus, number> {
  const c: Record<DeviceStatus, number> = { online: 0, stale: 0, offline: 0, never: 0 };
  for (const d of city.devices.values()) c[d.status]++;
  return c;
}

let stream: LiveStream | undefined;
let resync: number | undefined;

/** Opens the live stream and the periodic re-read; safe to call again (after a new key). */
export function startLive(): void {
  stream?.stop();
  window.clearInterval(resync);
  let opened = false;
  stream = new LiveStream({
    reading(e) {
      const d = city.devices.get(e.id);
      const r = e.readings.at(-1);
      if (d && r) {
        d.data = r.data;
        d.ts = r.ts;
        d.lastSeen = new Date().toISOString();
        city.deviceChanged.emit(d);
      }
      city.readings.emit(e);
    },
    status(e) {
      const d = city.devices.get(e.id);
      if (d) {
        d.status = e.status;
        city.deviceChanged.emit(d);
      }
      city.statuses.emit(e);
    },
    state(s, detail) {
      city.streamState = s;
      city.streamDetail = detail ?? '';
      // Events missed while away are not replayed: read the state again.
      if (s === 'open' && opened) void loadDevices().catch(() => undefined);
      if (s === 'open') opened = true;
      city.stream.emit(s);
    },
  });
  stream.start();
  // Bounds any drift (a device added or deleted elsewhere, an event lost on a slow link).
  resync = window.setInterval(() => void loadDevices().catch(() => undefined), 60_000);
}

export function stopLive(): void {
  stream?.stop();
  stream = undefined;
  window.clearInterval(resync);
}

/**
 * The topic contract (DESIGN §3): `sensors/{type}/{deviceId}/{kind}`.
 */
export const TOPIC_KINDS = ['telemetry', 'status', 'errors'] as const;
export type TopicKind = (typeof TOPIC_KINDS)[number];

export interface SensorTopic {
  readonly type: string;
  readonly deviceId: string;
  readonly kind: TopicKind;
}

const SEGMENT_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** Parses a device topic; undefined for anything that is not exactly one of ours. */
export function parseSensorTopic(topic: string): SensorTopic | undefined {
  const parts = topic.split('/');
  if (parts.length !== 4 || parts[0] !== 'sensors') return undefined;
  const [, type = '', deviceId = '', kind = ''] = parts;
  if (!SEGMENT_RE.test(type) || !SEGMENT_RE.test(deviceId)) return undefined;
  if (!(TOPIC_KINDS as readonly string[]).includes(kind)) return undefined;
  return { type, deviceId, kind: kind as TopicKind };
}

export function sensorTopic(type: string, deviceId: string, kind: TopicKind): string {
  return `sensors/${type}/${deviceId}/${kind}`;
}

export interface AclDevice {
  readonly id: string;
  readonly type: string;
}

/** A device publishes only to its own telemetry and status topics. */
export function mayPublish(device: AclDevice, topic: string): SensorTopic | undefined {
  const t = parseSensorTopic(topic);
  if (!t || t.deviceId !== device.id || t.type !== device.type) return undefined;
  return t.kind === 'telemetry' || t.kind === 'status' ? t : undefined;
}

/** A device subscribes only to its own errors topic, literally (no wildcards). */
export function maySubscribe(device: AclDevice, topic: string): boolean {
  return topic === sensorTopic(device.type, device.id, 'errors');
}

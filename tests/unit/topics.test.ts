import { describe, expect, it } from 'vitest';
import { mayPublish, maySubscribe, parseSensorTopic } from '../../src/broker/topics.js';

const device = { id: 'aq-binhu-0007', type: 'air-quality' };

describe('topic parsing', () => {
  it('parses a telemetry topic', () => {
    expect(parseSensorTopic('sensors/air-quality/aq-binhu-0007/telemetry')).toEqual({
      type: 'air-quality',
      deviceId: 'aq-binhu-0007',
      kind: 'telemetry',
    });
  });

  it.each([
    'sensors/air-quality/aq-binhu-0007',
    'sensors/air-quality/aq-binhu-0007/telemetry/extra',
    'sensor/air-quality/aq-binhu-0007/telemetry',
    'sensors/air-quality/aq-binhu-0007/commands',
    'sensors/Air-Quality/aq-binhu-0007/telemetry',
    'sensors/air-quality/+/telemetry',
    'sensors/air-quality/#',
    'sensors//aq-binhu-0007/telemetry',
    '/sensors/air-quality/aq-binhu-0007/telemetry',
    'sensors/air-quality/__proto__/telemetry',
    'sensors/air-quality/aq binhu/telemetry',
    '$SYS/broker/clients',
  ])('refuses %j', (topic) => {
    expect(parseSensorTopic(topic)).toBeUndefined();
  });
});

describe('topic ACL', () => {
  it.each([
    ['sensors/air-quality/aq-binhu-0007/telemetry', true],
    ['sensors/air-quality/aq-binhu-0007/status', true],
    ['sensors/air-quality/aq-binhu-0007/errors', false],
    ['sensors/air-quality/aq-binhu-0008/telemetry', false],
    ['sensors/noise/aq-binhu-0007/telemetry', false],
    ['sensors/air-quality/+/telemetry', false],
    ['sensors/#', false],
  ])('publish to %s allowed: %s', (topic, allowed) => {
    expect(Boolean(mayPublish(device, topic))).toBe(allowed);
  });

  it.each([
    ['sensors/air-quality/aq-binhu-0007/errors', true],
    ['sensors/air-quality/aq-binhu-0007/+', false],
    ['sensors/air-quality/aq-binhu-0007/telemetry', false],
    ['sensors/air-quality/aq-binhu-0008/errors', false],
    ['sensors/+/aq-binhu-0007/errors', false],
    ['#', false],
    ['$SYS/#', false],
  ])('subscribe to %s allowed: %s', (topic, allowed) => {
    expect(maySubscribe(device, topic)).toBe(allowed);
  });
});

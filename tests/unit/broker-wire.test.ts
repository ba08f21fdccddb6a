/**
 * The MQTT wire guard in memory: what closes a connection, what passes untouched, and that
 * where a chunk boundary falls changes nothing.
 */
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { checkText, MAX_TOPIC_LEVELS, MqttWire } from '../../src/broker/wire.js';
import {
  connectPacket,
  DISCONNECT,
  field,
  frame,
  PINGREQ,
  publishPacket,
  subscribePacket,
  unsubscribePacket,
} from '../fuzz/raw-mqtt.js';

const LIMIT = 1024;
const CONNECT = connectPacket({
  clientId: 'aq-binhu-0007',
  username: 'aq-binhu-0007',
  password: 'x',
});
const TOPIC = 'sensors/air-quality/aq-binhu-0007/telemetry';

/** Feeds chunks through a guard; resolves with what came out and the error, if any. */
async function feed(chunks: Buffer[], maxPacketBytes = LIMIT) {
  const inner = new PassThrough();
  const wire = new MqttWire(inner, { address: '127.0.0.1' }, { maxPacketBytes });
  const out: Buffer[] = [];
  let error: (Error & { code?: string }) | undefined;
  wire.on('data', (b: Buffer) => out.push(b));
  wire.on('error', (e) => (error = e));
  for (const c of chunks) {
    if (wire.destroyed) break;
    inner.write(c);
    await new Promise((r) => setImmediate(r));
  }
  return { out: Buffer.concat(out), error, destroyed: wire.destroyed };
}

/** C0/C1 controls, DEL and the noncharacters (U+FDD0–U+FDEF, U+xFFFE/U+xFFFF as UTF-16). */
const SUSPICIOUS = new RegExp(
  '[\\u0000-\\u001f\\u007f-\\u009f\\ufdd0-\\ufdef]|[\\ufffe\\uffff]|' +
    '[\\ud83f\\ud87f\\ud8bf\\ud8ff\\ud93f\\ud97f\\ud9bf\\ud9ff\\uda3f\\uda7f\\udabf\\udaff\\udb3f\\udb7f\\udbbf\\udbff][\\udffe\\udfff]',
);

const text = (s: string | number[]) => (typeof s === 'string' ? Buffer.from(s) : Buffer.from(s));

describe('checkText', () => {
  it.each([
    ['printable ASCII', 'sensors/a/b/telemetry', 'name'],
    ['two-byte UTF-8', 'capteurs/été', 'name'],
    ['three-byte UTF-8', '传感器/太湖', 'name'],
    ['four-byte UTF-8', 'emoji/😀', 'name'],
    ['U+FEFF (kept, never stripped [MQTT-1.5.3-3])', '\uFEFFa', 'name'],
    ['wildcards in a filter', 'sensors/+/x/#', 'filter'],
    ['# alone', '#', 'filter'],
    ['+ alone', '+', 'filter'],
    ['+ as the first, last and an empty-neighboured level', '+/a//+/+', 'filter'],
    ['# after an empty level', 'a//#', 'filter'],
    ['+ then # (the specification\'s "+/tennis/#")', '+/tennis/#', 'filter'],
    ['wildcards in other text', 'a+b#', 'text'],
    ['an empty client id', '', 'text'],
  ] as const)('accepts %s', (_name, s, kind) => {
    const b = text(s);
    expect(checkText(b, 0, b.length, kind)).toBeUndefined();
  });

  it.each([
    ['U+0000', [0x61, 0x00, 0x62], /U\+0000/],
    ['a lone lead byte', [0x61, 0xc3], /truncated|ill-formed/],
    ['a lone continuation byte', [0x80], /ill-formed/],
    ['0xFF', [0x61, 0xff], /ill-formed/],
    ['an overlong "/" (C0 AF)', [0xc0, 0xaf], /ill-formed/],
    ['an overlong three-byte form', [0xe0, 0x80, 0xaf], /overlong/],
    ['a lone high surrogate (ED A0 80)', [0xed, 0xa0, 0x80], /surrogate/],
    ['a lone low surrogate (ED B0 80)', [0xed, 0xb0, 0x80], /surrogate/],
    ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80], /out-of-range/],
    ['U+FFFF', [0x61, 0xef, 0xbf, 0xbf], /noncharacter/],
    ['U+FFFE', [0xef, 0xbf, 0xbe], /noncharacter/],
    ['U+1FFFF', [0xf0, 0x9f, 0xbf, 0xbf], /noncharacter/],
    ['U+FDD0', [0xef, 0xb7, 0x90], /noncharacter/],
    ['a C0 control', [0x61, 0x1b], /control/],
    ['DEL', [0x7f], /control/],
    ['a C1 control (U+0085)', [0xc2, 0x85], /control/],
  ])('refuses %s in any string', (_name, bytes, message) => {
    const b = text(bytes);
    for (const kind of ['name', 'filter', 'text'] as const) {
      expect(checkText(b, 0, b.length, kind), kind).toMatch(message);
    }
  });

  it.each([
    ['an empty topic', '', 'name', /empty topic/],
    ['an empty filter', '', 'filter', /empty topic/],
    ['+ in a topic name', 'sensors/+/x', 'name', /wildcard/],
    ['# in a topic name', 'sensors/#', 'name', /wildcard/],
    ['an over-long topic', 'a'.repeat(1025), 'name', /longer than 1024/],
    [
      'too many levels',
      Array(MAX_TOPIC_LEVELS + 1)
        .fill('a')
        .join('/'),
      'filter',
      /levels/,
    ],
    ['+ sharing a level (a+)', 'a+', 'filter', /MQTT-4.7.1-3/],
    ['+ sharing a level (+a)', '+a', 'filter', /MQTT-4.7.1-3/],
    ['+ sharing a level (a/+b)', 'a/+b', 'filter', /MQTT-4.7.1-3/],
    ['+ before # in one level (+#)', '+#', 'filter', /MQTT-4.7.1-3/],
    ['# sharing a level (a#)', 'a#', 'filter', /MQTT-4.7.1-2/],
    ['# sharing a level (a/b#)', 'a/b#', 'filter', /MQTT-4.7.1-2/],
    ['# that is not last (a/#/b)', 'a/#/b', 'filter', /MQTT-4.7.1-2/],
    ['# that is not last (#/a)', '#/a', 'filter', /MQTT-4.7.1-2/],
    ['## as a level', 'a/##', 'filter', /MQTT-4.7.1-2/],
  ] as const)('refuses %s', (_name, s, kind, message) => {
    const b = text(s);
    expect(checkText(b, 0, b.length, kind)).toMatch(message);
  });

  it('agrees with the WHATWG decoder on well-formedness for arbitrary bytes', () => {
    const strict = new TextDecoder('utf-8', { fatal: true });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 24 }), (arr) => {
        const b = Buffer.from(arr);
        const problem = checkText(b, 0, b.length, 'text');
        let decoded: string | undefined;
        try {
          decoded = strict.decode(b);
        } catch {
          decoded = undefined;
        }
        // Ill-formed for the decoder ⇒ refused here; refused here for another reason ⇒
        // the text holds a control character or a noncharacter.
        if (decoded === undefined) return problem !== undefined;
        return problem === undefined ? !SUSPICIOUS.test(decoded) : SUSPICIOUS.test(decoded);
      }),
      { seed: 5, numRuns: 5000 },
    );
  });
});

describe('MqttWire', () => {
  const session = Buffer.concat([
    CONNECT,
    subscribePacket(1, [['sensors/air-quality/aq-binhu-0007/errors', 1]]),
    publishPacket({ topic: TOPIC, payload: '{"data":{}}', qos: 1, messageId: 7 }),
    publishPacket({ topic: TOPIC, payload: 'x'.repeat(500), qos: 0 }),
    unsubscribePacket(2, ['sensors/air-quality/aq-binhu-0007/errors']),
    PINGREQ,
    DISCONNECT,
  ]);

  it('passes a valid session through byte for byte', async () => {
    const r = await feed([session]);
    expect(r.error).toBeUndefined();
    expect(r.out.equals(session)).toBe(true);
  });

  it('does the same wherever the chunk boundaries fall', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 1, max: session.length - 1 }), { maxLength: 12 }),
        async (cuts) => {
          const at = [0, ...cuts.sort((a, b) => a - b), session.length];
          const chunks = at.slice(1).map((end, i) => session.subarray(at[i], end));
          const r = await feed(chunks);
          return r.error === undefined && r.out.equals(session);
        },
      ),
      { seed: 7, numRuns: 150 },
    );
  });

  it('also when every byte arrives alone', async () => {
    const r = await feed([...session].map((b) => Buffer.from([b])));
    expect(r.error).toBeUndefined();
    expect(r.out.equals(session)).toBe(true);
  });

  const PUB = (o: Partial<Parameters<typeof publishPacket>[0]> = {}) =>
    publishPacket({ topic: TOPIC, payload: '{}', qos: 1, messageId: 1, ...o });
  const badTopic = (bytes: number[]) =>
    Buffer.concat([Buffer.from('sensors/'), Buffer.from(bytes)]);

  it.each([
    [
      'a first packet that is not CONNECT',
      [PUB()],
      /first packet must be CONNECT \[MQTT-3.1.0-1\]/,
    ],
    ['bytes that are not MQTT', [Buffer.from('GET / HTTP/1.1\r\n\r\n')], /MQTT-3.1.0-1/],
    ['a second CONNECT', [CONNECT, CONNECT], /MQTT-3.1.0-2/],
    ['a CONNACK from a client', [CONNECT, Buffer.from([0x20, 2, 0, 0])], /not one a client sends/],
    ['PUBLISH with QoS 3', [CONNECT, Buffer.from([0x36, 3, 0, 1, 0x61])], /MQTT-3.3.1-4/],
    [
      'SUBSCRIBE with flags 0000',
      [CONNECT, Buffer.from([0x80, 6, 0, 1, 0, 1, 0x61, 0])],
      /MQTT-2.2.2-2/,
    ],
    ['CONNECT with flags 0110', [Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])], /MQTT-2.2.2-2/],
    [
      'a Remaining Length of five bytes',
      [CONNECT, Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01])],
      /./,
    ],
    [
      'a 256 MB declared first packet',
      [Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f])],
      /at least .* bytes; the limit is 1024/,
    ],
    [
      'a packet over the limit',
      [CONNECT, PUB({ payload: 'x'.repeat(LIMIT) })],
      /the limit is 1024/,
    ],
    [
      'Will QoS 3',
      [connectPacket({ clientId: 'a', will: { topic: 'a/b', payload: 'x', qos: 3 } })],
      /MQTT-3.1.2-14/,
    ],
    [
      'password without user name',
      [connectPacket({ clientId: 'a', password: 'pw' })],
      /MQTT-3.1.2-22/,
    ],
    ['the reserved CONNECT flag', [connectPacket({ clientId: 'a', flags: 0x03 })], /MQTT-3.1.2-3/],
    [
      'a Will topic with a wildcard',
      [connectPacket({ clientId: 'a', will: { topic: 'a/#', payload: 'x', qos: 0 } })],
      /Will topic: wildcard/,
    ],
    [
      'bytes after the last CONNECT field',
      [
        frame(
          0x10,
          Buffer.concat([connectPacket({ clientId: 'a' }).subarray(2), Buffer.from([1])]),
        ),
      ],
      /after its last field/,
    ],
    [
      'U+0000 in the client id',
      [connectPacket({ clientId: 'a\u0000b' })],
      /client identifier: U\+0000/,
    ],
    [
      'invalid UTF-8 in the user name',
      [connectPacket({ clientId: 'a', username: Buffer.from([0x61, 0xc3]) })],
      /user name: .*UTF-8/,
    ],
    ['PUBLISH QoS 1 with packet id 0', [CONNECT, PUB({ messageId: 0 })], /MQTT-2.3.1-1/],
    ['PUBLISH QoS 0 with DUP set', [CONNECT, Buffer.from([0x38, 3, 0, 1, 0x61])], /MQTT-3.3.1-2/],
    ['a PUBACK of 3 bytes', [CONNECT, Buffer.from([0x40, 3, 0, 1, 0])], /PUBACK .* not 2/],
    ['a PUBACK of 1 byte', [CONNECT, Buffer.from([0x40, 1, 0])], /PUBACK .* not 2/],
    ['a PUBREC of 0 bytes', [CONNECT, Buffer.from([0x50, 0])], /PUBREC .* not 2/],
    ['a PUBCOMP of 4 bytes', [CONNECT, Buffer.from([0x70, 4, 0, 1, 0, 0])], /PUBCOMP .* not 2/],
    ['a PUBREL of 3 bytes', [CONNECT, Buffer.from([0x62, 3, 0, 1, 0])], /PUBREL .* not 2/],
    ['a PUBREL with flags 0000', [CONNECT, Buffer.from([0x60, 2, 0, 1])], /MQTT-2.2.2-2/],
    ['a PUBACK with packet id 0', [CONNECT, Buffer.from([0x40, 2, 0, 0])], /MQTT-2.3.1-1/],
    ['a PUBREC with packet id 0', [CONNECT, Buffer.from([0x50, 2, 0, 0])], /MQTT-2.3.1-1/],
    ['a PUBREL with packet id 0', [CONNECT, Buffer.from([0x62, 2, 0, 0])], /MQTT-2.3.1-1/],
    ['a PUBCOMP with packet id 0', [CONNECT, Buffer.from([0x70, 2, 0, 0])], /MQTT-2.3.1-1/],
    ['a PINGREQ with a payload', [CONNECT, Buffer.from([0xc0, 1, 0])], /PINGREQ with 1 bytes/],
    ['a DISCONNECT with a payload', [CONNECT, Buffer.from([0xe0, 2, 0, 0])], /DISCONNECT with 2/],
    [
      'a protocol name that is not MQTT',
      [connectPacket({ clientId: 'a', protocolName: 'MQTX' })],
      /MQTT-3.1.2-1/,
    ],
    ['PUBLISH QoS 2 with packet id 0', [CONNECT, PUB({ qos: 2, messageId: 0 })], /MQTT-2.3.1-1/],
    [
      'a PUBLISH topic with a lone surrogate',
      [CONNECT, PUB({ topic: badTopic([0xed, 0xa0, 0x80]) })],
      /surrogate/,
    ],
    [
      'a PUBLISH topic with U+FFFF',
      [CONNECT, PUB({ topic: badTopic([0xef, 0xbf, 0xbf]) })],
      /noncharacter/,
    ],
    [
      'a PUBLISH shorter than its topic',
      [CONNECT, frame(0x30, Buffer.concat([Buffer.from([0, 50]), Buffer.from('abc')]))],
      /shorter than its topic/,
    ],
    [
      'SUBSCRIBE with packet id 0',
      [CONNECT, subscribePacket(0, [['a', 0]])],
      /SUBSCRIBE with packet identifier 0/,
    ],
    ['SUBSCRIBE without a filter', [CONNECT, frame(0x82, Buffer.from([0, 1]))], /MQTT-3.8.3-3/],
    ['UNSUBSCRIBE without a filter', [CONNECT, frame(0xa2, Buffer.from([0, 1]))], /MQTT-3.10.3-2/],
    ['a SUBSCRIBE filter with U+0000', [CONNECT, subscribePacket(1, [['a\u0000', 0]])], /U\+0000/],
    [
      'a SUBSCRIBE filter whose + is not a whole level',
      [CONNECT, subscribePacket(1, [['sensors/air-quality/aq+/errors', 0]])],
      /SUBSCRIBE topic filter: \+ that is not a whole level \[MQTT-4.7.1-3\]/,
    ],
    [
      'a SUBSCRIBE filter whose # is not last',
      [CONNECT, subscribePacket(1, [['sensors/#/errors', 0]])],
      /SUBSCRIBE topic filter: # that is not the whole last level \[MQTT-4.7.1-2\]/,
    ],
    [
      'an UNSUBSCRIBE filter whose # shares a level',
      [CONNECT, unsubscribePacket(1, ['sensors/a#'])],
      /UNSUBSCRIBE topic filter: # .* \[MQTT-4.7.1-2\]/,
    ],
    [
      'a SUBSCRIBE filter without its QoS byte',
      [CONNECT, frame(0x82, Buffer.concat([Buffer.from([0, 1]), field('a')]))],
      /requested QoS/,
    ],
  ])('closes the connection on %s', async (_name, chunks, message) => {
    const r = await feed(chunks);
    expect(r.destroyed).toBe(true);
    expect(r.error?.code).toBe('TAIHU_ERR_MQTT_PROTOCOL');
    expect(r.error?.message).toMatch(message);
  });

  it('refuses a 256 MB header from its length bytes, before any body byte', async () => {
    const r = await feed([Buffer.from([0x10, 0xff, 0xff]), Buffer.from([0xff, 0x7f])], 1024);
    expect(r.destroyed).toBe(true);
    expect(r.out.length).toBe(0);
  });

  it.each([
    ['MQTT 5', { level: 5 }],
    ['an unknown level of MQTT', { level: 7 }],
    ['MQTT with the 3.1 level', { level: 3 }],
    ['MQIsdp with the 3.1.1 level', { protocolName: 'MQIsdp', level: 4 }],
  ])(
    'answers %s with CONNACK 0x01 and closes, passing nothing on [MQTT-3.1.2-2]',
    async (_name, fields) => {
      const inner = new PassThrough();
      const wire = new MqttWire(inner, { address: '127.0.0.1' }, { maxPacketBytes: LIMIT });
      const out: Buffer[] = [];
      const sent: Buffer[] = [];
      let error: (Error & { code?: string }) | undefined;
      wire.on('data', (b: Buffer) => out.push(b));
      wire.on('error', (e) => (error = e));
      inner.on('data', (b: Buffer) => sent.push(b));
      inner.write(connectPacket({ clientId: 'a', ...fields }));
      await new Promise((r) => setTimeout(r, 20));
      expect(Buffer.concat(out).length).toBe(0);
      // PassThrough echoes what was written to it: the CONNECT, then the guard's CONNACK.
      expect(Buffer.concat(sent).subarray(-4)).toEqual(Buffer.from([0x20, 0x02, 0x00, 0x01]));
      expect(wire.destroyed).toBe(true);
      expect(error?.code).toBe('TAIHU_ERR_MQTT_PROTOCOL');
      expect(error?.message).toMatch(/protocol level .* \[MQTT-3.1.2-2\]/);
    },
  );

  it('keeps MQTT 3.1 (MQIsdp, level 3) working', async () => {
    const v31 = connectPacket({ clientId: 'a', protocolName: 'MQIsdp', level: 3 });
    const r = await feed([v31, PINGREQ]);
    expect(r.error).toBeUndefined();
    expect(r.out.equals(Buffer.concat([v31, PINGREQ]))).toBe(true);
  });

  it('hands everything buffered to one read(), as Aedes reads once per readable event', async () => {
    const inner = new PassThrough();
    const wire = new MqttWire(inner, { address: '127.0.0.1' }, { maxPacketBytes: LIMIT });
    const reads: number[] = [];
    wire.on('readable', () => {
      const b = wire.read(null as unknown as undefined) as Buffer | null;
      if (b) reads.push(b.length);
    });
    // MQTT.js over WebSocket writes a CONNECT one field per frame.
    inner.write(CONNECT.subarray(0, 3));
    inner.write(CONNECT.subarray(3, 9));
    inner.write(CONNECT.subarray(9));
    await new Promise((r) => setImmediate(r));
    expect(reads).toEqual([CONNECT.length]);
    wire.destroy();
  });

  it('stops reading while held and resumes on release', async () => {
    const inner = new PassThrough();
    const wire = new MqttWire(inner, { address: '127.0.0.1' }, { maxPacketBytes: LIMIT });
    const out: Buffer[] = [];
    wire.on('data', (b: Buffer) => out.push(b));
    inner.write(CONNECT);
    await new Promise((r) => setImmediate(r));
    wire.hold();
    inner.write(PINGREQ);
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(out).length).toBe(CONNECT.length);
    wire.release();
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(out).length).toBe(CONNECT.length + PINGREQ.length);
    wire.destroy();
    expect(inner.destroyed).toBe(true);
  });

  it('stops reading for the throttle time, whatever hold and release do meanwhile', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const inner = new PassThrough();
      const wire = new MqttWire(inner, { address: '127.0.0.1' }, { maxPacketBytes: LIMIT });
      const out: Buffer[] = [];
      wire.on('data', (b: Buffer) => out.push(b));
      const tick = () => new Promise((r) => setImmediate(r));
      const seen = () => Buffer.concat(out).length;
      inner.write(CONNECT);
      await tick();
      wire.throttle(20, 1000);
      wire.throttle(20, 1000); // a second refusal adds its time: 40 ms in all
      expect(wire.throttled).toBe(true);
      inner.write(PINGREQ);
      await tick();
      wire.hold();
      wire.release(); // an ack arriving meanwhile does not lift the throttle
      vi.advanceTimersByTime(30);
      await tick();
      expect(seen()).toBe(CONNECT.length);
      wire.hold();
      vi.advanceTimersByTime(10);
      await tick();
      expect(wire.throttled).toBe(false);
      expect(seen()).toBe(CONNECT.length); // still held for its in-flight limit
      wire.release();
      await tick();
      expect(seen()).toBe(CONNECT.length + PINGREQ.length);

      for (let i = 0; i < 1000; i++) wire.throttle(20, 100); // capped at 100 ms from now
      vi.advanceTimersByTime(99);
      expect(wire.throttled).toBe(true);
      vi.advanceTimersByTime(1);
      expect(wire.throttled).toBe(false);

      wire.throttle(1000, 1000);
      wire.destroy(); // a pending throttle dies with the connection
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../src/config.js';
import { ConnectionGate, DeviceLimiter, peerAddress } from '../../src/broker/limits.js';

describe('ConnectionGate', () => {
  it('admits up to the total, then refuses until a slot is released', () => {
    const gate = new ConnectionGate({ maxConnections: 2, maxConnectionsPerIp: 0 });
    expect(gate.admit('10.0.0.1')).toBe(true);
    expect(gate.admit('10.0.0.2')).toBe(true);
    expect(gate.admit('10.0.0.3')).toBe(false);
    gate.release('10.0.0.1');
    expect(gate.admit('10.0.0.3')).toBe(true);
    expect(gate.refused).toEqual({ total: 1, perIp: 0 });
  });

  it('counts per address, and keys like __proto__ are just addresses', () => {
    const gate = new ConnectionGate({ maxConnections: 0, maxConnectionsPerIp: 1 });
    expect(gate.admit('__proto__')).toBe(true);
    expect(gate.admit('__proto__')).toBe(false);
    expect(gate.admit('constructor')).toBe(true);
    gate.release('__proto__');
    expect(gate.admit('__proto__')).toBe(true);
    expect(gate.open).toBe(2);
  });

  it('treats an IPv4-mapped IPv6 address as the IPv4 address', () => {
    expect(peerAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(peerAddress('::1')).toBe('::1');
    expect(peerAddress(undefined)).toBe('unknown');
  });
});

describe('DeviceLimiter', () => {
  it('allows a burst, then the rate', () => {
    const l = new DeviceLimiter({ rate: 10, burst: 5, maxInflight: 0 });
    const s = l.slot('d', 0);
    const taken = Array.from({ length: 8 }, () => l.take(s, 0));
    expect(taken.filter(Boolean)).toHaveLength(5);
    expect(l.take(s, 99)).toBe(false); // 0.99 of a token back
    expect(l.take(s, 100)).toBe(true); // one token back after 100 ms at 10/s
    expect(l.take(s, 10_000)).toBe(true);
    expect(s.tokens).toBe(4); // refilled to the burst, one spent
  });

  it('keeps one bucket per device id across reconnects', () => {
    const l = new DeviceLimiter({ rate: 1, burst: 1, maxInflight: 0 });
    expect(l.take(l.slot('d', 0), 0)).toBe(true);
    expect(l.take(l.slot('d', 0), 0)).toBe(false);
    expect(l.take(l.slot('e', 0), 0)).toBe(true);
  });

  it('does not limit with a rate of 0, and reports the in-flight ceiling', () => {
    const l = new DeviceLimiter({ rate: 0, burst: 1, maxInflight: 2 });
    const s = l.slot('d', 0);
    for (let i = 0; i < 1000; i++) expect(l.take(s, 0)).toBe(true);
    s.inflight = 2;
    expect(l.full(s)).toBe(true);
    expect(new DeviceLimiter({ rate: 0, burst: 1, maxInflight: 0 }).full(s)).toBe(false);
  });
});

describe('isLoopbackHost', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['localhost', true],
    ['::1', true],
    ['[::1]', true],
    ['0.0.0.0', false],
    ['::', false],
    ['192.168.1.5', false],
    ['127.0.0.1.example.com', false],
  ])('%s → %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});

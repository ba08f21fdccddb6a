import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findDuplicateKey } from '../../src/ingest/duplicate-keys.js';

const check = (text: string) => findDuplicateKey(text, JSON.parse(text));

describe('findDuplicateKey', () => {
  it.each([
    ['{"a":1,"a":2}', '/a', 'a'],
    ['{"a":{"b":1,"c":{"d":1,"d":1}}}', '/a/c/d', 'd'],
    ['[1,{"x":[{"k":1},{"k":2,"k":3}]}]', '/1/x/1/k', 'k'],
    ['{"a\\u0062":1,"ab":2}', '/ab', 'ab'],
    ['{"__proto__":1,"__proto__":2}', '/__proto__', '__proto__'],
    ['{"":1,"":2}', '/', ''],
    ['{"~/":1,"~/":2}', '/~0~1', '~/'],
  ])('finds the repeated key in %s', (text, pointer, key) => {
    expect(check(text)).toEqual({ pointer, key });
  });

  it.each([
    '{"a":1,"b":2}',
    '{"a":{"a":{"a":1}}}',
    '[{"a":1},{"a":2}]',
    '{"s":"a:b\\":c","t":"::"}',
    '{"a:b":1,"a":"\\\\"}',
    '"just: a string"',
    '42',
  ])('accepts %s', (text) => {
    expect(check(text)).toBeUndefined();
  });

  it('refuses a repeat nested too deep to walk again, without naming it', () => {
    const depth = 100_000;
    const text = '{"a":'.repeat(depth) + '{"k":1,"k":2}' + '}'.repeat(depth);
    expect(check(text)).toEqual({ pointer: '', key: undefined });
  });

  it('finds a repeat exactly when a generated document has one (seeded)', () => {
    const { node } = fc.letrec<{ node: Node }>((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        fc.oneof(fc.integer(), fc.string(), fc.boolean(), fc.constant(null)),
        fc.array(tie('node'), { maxLength: 4 }).map((items): Node => ({ items })),
        fc
          .array(fc.tuple(key, tie('node')), { maxLength: 5 })
          .map((entries): Node => ({ entries })),
      ),
    }));
    fc.assert(
      fc.property(node, (n) => {
        const text = encode(n);
        expect(check(text) !== undefined).toBe(hasRepeat(n));
      }),
      { seed: 4242, numRuns: 3000 },
    );
  });
});

/** A JSON value whose objects are lists of entries, so a key can appear twice. */
type Node =
  | number
  | string
  | boolean
  | null
  | { readonly items: readonly Node[] }
  | { readonly entries: readonly (readonly [string, Node])[] };

const key = fc.constantFrom('a', 'b', 'c', 'a:b', '"', '\\', 'é', '__proto__', ':');

function encode(n: Node): string {
  if (typeof n !== 'object' || n === null) return JSON.stringify(n);
  if ('items' in n) return `[${n.items.map(encode).join(',')}]`;
  return `{${n.entries.map(([k, v]) => `${JSON.stringify(k)}:${encode(v)}`).join(',')}}`;
}

function hasRepeat(n: Node): boolean {
  if (typeof n !== 'object' || n === null) return false;
  if ('items' in n) return n.items.some(hasRepeat);
  const names = n.entries.map(([k]) => k);
  return new Set(names).size !== names.length || n.entries.some(([, v]) => hasRepeat(v));
}

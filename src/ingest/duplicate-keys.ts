/**
 * Duplicate keys in a JSON object. RFC 8259 §4 says names SHOULD be unique and that parsers
 * disagree on what a repeated one means: `JSON.parse` keeps the last, others the first or
 * refuse. A reading like `{"pm25_ugm3": 12, "pm25_ugm3": 900}` is therefore ambiguous, and
 * storing either value would be a guess, so the pipeline refuses it.
 *
 * The check runs on every payload, so it is cheap on the accepted path: in text that
 * `JSON.parse` accepted, each ':' outside a string separates exactly one object member, so the
 * text repeats a key exactly when it has more such colons than the parsed value has own keys
 * (`JSON.parse` defines every key as an own data property, `__proto__` included). Only then is
 * the text walked again to name the key and where it is.
 */
import { visit } from 'jsonc-parser';
import { escapePointer } from './pointer.js';

export interface DuplicateKey {
  /** JSON pointer to the repeated member, e.g. `/data/pm25_ugm3`. */
  readonly pointer: string;
  /** undefined when the text nests too deep to walk again; the payload is refused all the same. */
  readonly key: string | undefined;
}

/** `text` must be what `JSON.parse` turned into `doc`. */
export function findDuplicateKey(text: string, doc: unknown): DuplicateKey | undefined {
  if (typeof doc !== 'object' || doc === null) return undefined;
  if (countMembers(text) === countKeys(doc)) return undefined;
  return locate(text) ?? { pointer: '', key: undefined };
}

/** Colons outside strings; in valid JSON, one per object member. */
function countMembers(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x3a /* : */) {
      n++;
    } else if (c === 0x22 /* " */) {
      // jump to the closing quote: the next '"' not escaped by an odd run of backslashes
      let end = i;
      for (;;) {
        end = text.indexOf('"', end + 1);
        if (end < 0) return n;
        let slash = end - 1;
        while (text.charCodeAt(slash) === 0x5c /* \ */) slash--;
        if ((end - 1 - slash) % 2 === 0) break;
      }
      i = end;
    }
  }
  return n;
}

/** Own keys of every object in the value; iterative, so deep nesting cannot overflow the stack. */
function countKeys(doc: object): number {
  let n = 0;
  const stack: unknown[] = [doc];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      for (const item of v) if (typeof item === 'object' && item !== null) stack.push(item);
      continue;
    }
    const obj = v as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      n++;
      const child = obj[key];
      if (typeof child === 'object' && child !== null) stack.push(child);
    }
  }
  return n;
}

/** The first repeated key in document order; undefined if the walk could not finish. */
function locate(text: string): DuplicateKey | undefined {
  const open: Set<string>[] = [];
  let found: DuplicateKey | undefined;
  try {
    visit(text, {
      onObjectBegin: () => {
        open.push(new Set());
      },
      onObjectEnd: () => {
        open.pop();
      },
      onObjectProperty: (key, _offset, _length, _line, _column, path) => {
        const seen = open[open.length - 1];
        if (found !== undefined || seen === undefined) return;
        if (!seen.has(key)) {
          seen.add(key);
          return;
        }
        const segments = [...path(), key].map((s) => escapePointer(String(s)));
        found = { pointer: `/${segments.join('/')}`, key };
      },
    });
  } catch {
    // a walk this deep overflows the parser's recursion; the caller still refuses the payload
  }
  return found;
}

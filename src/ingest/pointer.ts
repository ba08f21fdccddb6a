/** A key as one JSON pointer segment (RFC 6901 §3: '~' → '~0', '/' → '~1'). */
export function escapePointer(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

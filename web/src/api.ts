/**
 * Talking to the gateway: the API key (kept in sessionStorage, so it leaves with the tab)
 * and JSON requests that carry it. A 401 anywhere is one event the page reacts to by
 * asking for another key.
 */

const KEY_ITEM = 'taihu.apiKey';

export function getKey(): string | null {
  return sessionStorage.getItem(KEY_ITEM);
}

export function setKey(key: string): void {
  sessionStorage.setItem(KEY_ITEM, key);
}

export function clearKey(): void {
  sessionStorage.removeItem(KEY_ITEM);
}

/** The gateway refused the key (HTTP 401). */
export class UnauthorizedError extends Error {
  constructor() {
    super('This key was not accepted by the gateway');
    this.name = 'UnauthorizedError';
  }
}

/** Any other failed request, with the gateway's own message when it sent one. */
export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

const unauthorizedListeners = new Set<() => void>();

/** Called whenever a request comes back 401. */
export function onUnauthorized(fn: () => void): void {
  unauthorizedListeners.add(fn);
}

export function reportUnauthorized(): void {
  for (const fn of unauthorizedListeners) fn();
}

export function authHeaders(): Record<string, string> {
  const key = getKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

async function request(path: string, signal?: AbortSignal): Promise<Response> {
  const res = await fetch(path, { headers: authHeaders(), signal: signal ?? null });
  if (res.status === 401) {
    reportUnauthorized();
    throw new UnauthorizedError();
  }
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { message?: unknown };
      if (typeof body.message === 'string') message = body.message;
    } catch {
      // Not JSON: the status line says enough.
    }
    throw new ApiError(res.status, message);
  }
  return res;
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  return (await request(path, signal)).json() as Promise<T>;
}

export async function getText(path: string, signal?: AbortSignal): Promise<string> {
  return (await request(path, signal)).text();
}

/** Builds `path?k=v&...`, leaving out empty values. */
export function withQuery(path: string, q: Record<string, string | number | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `${path}?${s}` : path;
}

/** Sums the samples of each metric in Prometheus text, over all label sets. */
export function parseMetrics(text: string): Map<string, number> {
  const sums = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{.*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[2]);
    if (!Number.isFinite(value)) continue;
    const name = m[1] as string;
    sums.set(name, (sums.get(name) ?? 0) + value);
  }
  return sums;
}

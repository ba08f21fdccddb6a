/**
 * The live stream, read with fetch(): EventSource cannot send an Authorization header.
 * One connection serves the whole page; it reconnects with backoff, and the gateway
 * replays nothing, so after a reconnect the page re-reads the state it shows.
 */
import { authHeaders, reportUnauthorized } from './api';
import type { ReadingEvent, StatusEvent } from './types';

export type StreamState = 'connecting' | 'open' | 'retrying' | 'stopped';

export interface StreamHandlers {
  reading(e: ReadingEvent): void;
  status(e: StatusEvent): void;
  state(s: StreamState, detail?: string): void;
}

/** One SSE frame: `event:` and the `data:` lines joined, or null for comments. */
export function parseFrame(block: string): { event: string; data: string } | null {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'event') event = value;
    else if (name === 'data') data.push(value);
  }
  return data.length > 0 ? { event, data: data.join('\n') } : null;
}

export class LiveStream {
  readonly #handlers: StreamHandlers;
  #abort: AbortController | undefined;
  #retryMs = 1000;
  #timer: number | undefined;

  constructor(handlers: StreamHandlers) {
    this.#handlers = handlers;
  }

  start(): void {
    this.stop();
    const ac = new AbortController();
    this.#abort = ac;
    void this.#run(ac);
  }

  stop(): void {
    this.#abort?.abort();
    this.#abort = undefined;
    window.clearTimeout(this.#timer);
  }

  async #run(ac: AbortController): Promise<void> {
    this.#handlers.state('connecting');
    try {
      const res = await fetch('/api/v1/stream', {
        headers: { ...authHeaders(), accept: 'text/event-stream' },
        signal: ac.signal,
        cache: 'no-store',
      });
      if (res.status === 401) {
        this.#handlers.state('stopped', 'key not accepted');
        reportUnauthorized();
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      this.#handlers.state('open');
      this.#retryMs = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut: RegExpExecArray | null;
        while ((cut = /\r?\n\r?\n/.exec(buffer))) {
          const frame = parseFrame(buffer.slice(0, cut.index));
          buffer = buffer.slice(cut.index + cut[0].length);
          if (frame) this.#dispatch(frame.event, frame.data);
        }
      }
      throw new Error('the gateway closed the stream');
    } catch (err) {
      if (ac.signal.aborted) return;
      const wait = this.#retryMs;
      this.#retryMs = Math.min(this.#retryMs * 2, 15_000);
      this.#handlers.state('retrying', `${(err as Error).message}; retrying in ${wait / 1000} s`);
      this.#timer = window.setTimeout(() => {
        if (!ac.signal.aborted) void this.#run(ac);
      }, wait);
    }
  }

  #dispatch(event: string, data: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    if (event === 'reading') this.#handlers.reading(parsed as ReadingEvent);
    else if (event === 'status') this.#handlers.status(parsed as StatusEvent);
  }
}

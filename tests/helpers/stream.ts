/** An SSE client for GET /api/v1/stream that parses frames back into objects. */
import { expect } from 'vitest';
import { ADMIN_KEY, type RunningGateway } from './gateway.js';

export interface StreamFrame {
  event: string;
  data: any;
}

/**
 * Reads frames from an instance's GET /api/v1/stream until `until` holds for the frames so
 * far (10 s at most). `onOpen` runs once the stream's opening comment arrives, so what it
 * publishes cannot race the subscription.
 */
export async function readStream(
  g: RunningGateway,
  query: string,
  until: (frames: StreamFrame[]) => boolean,
  onOpen: () => Promise<void>,
): Promise<{ frames: StreamFrame[]; contentType: string | null }> {
  const ac = new AbortController();
  const timeout = setTimeout(() => ac.abort(), 10_000);
  const frames: StreamFrame[] = [];
  try {
    const res = await fetch(`http://127.0.0.1:${g.ports.http}/api/v1/stream?${query}`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
      signal: ac.signal,
    });
    expect(res.status).toBe(200);
    const contentType = res.headers.get('content-type');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let opened = false;
    while (!until(frames)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (!opened && block.startsWith(':')) {
          opened = true;
          await onOpen();
          continue;
        }
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) frames.push({ event, data: JSON.parse(data) });
      }
    }
    return { frames, contentType };
  } finally {
    clearTimeout(timeout);
    ac.abort();
  }
}

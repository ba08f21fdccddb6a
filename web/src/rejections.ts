/**
 * Rejected messages as a device maker needs them: what was wrong (the JSON pointer into
 * the message and the gateway's words), what the code means, and the payload as received.
 */
import { getJson, withQuery } from './api';
import { fill, fmtAgo, fmtTime, h } from './dom';
import { city } from './state';
import type { Rejection } from './types';

/** What each code means and what to look at, in a device maker's terms. */
export const CODES: Record<string, string> = {
  SCHEMA_INVALID:
    'A value in `data` is missing, unknown, of the wrong type or out of range for the device type’s JSON Schema.',
  ENVELOPE_INVALID:
    'The reading is not an object of `ts`, `seq` and `data` as the contract describes.',
  PAYLOAD_NOT_JSON: 'The payload is not valid JSON.',
  PAYLOAD_NOT_UTF8: 'The payload is not valid UTF-8 text.',
  PAYLOAD_TOO_LARGE: 'The message is larger than the gateway accepts (TAIHU_MAX_PAYLOAD_BYTES).',
  BATCH_TOO_LARGE: 'The array holds more readings than one message may (TAIHU_MAX_BATCH).',
  TIMESTAMP_IN_FUTURE:
    '`ts` is ahead of the gateway’s clock by more than it allows: check the device clock.',
  TIMESTAMP_TOO_OLD:
    '`ts` is older than the gateway accepts: check the device clock, and that `ts` is in milliseconds.',
  STATUS_INVALID: 'A status message must be exactly `online` or `offline`.',
  TOPIC_FORBIDDEN: 'The device published to a topic that is not its own.',
  STORE_REFUSED: 'The database refused this reading after the gateway accepted it.',
  RATE_LIMITED:
    'The device sent faster than its allowed rate; the message was acknowledged but not stored.',
};

/** Renders `text with \`code\`` with the backticked parts as <code>. */
function withCode(text: string): (Node | string)[] {
  return text.split(/`([^`]+)`/).map((part, i) => (i % 2 === 1 ? h('code', {}, part) : part));
}

export function rejectionTable(items: Rejection[], opts: { showDevice: boolean }): HTMLElement {
  if (items.length === 0)
    return h('p', { class: 'empty', id: 'rejections-empty' }, 'No rejected messages match.');
  return h(
    'table',
    { class: 'rejections', id: 'rejections-table' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Received'),
        opts.showDevice ? h('th', { scope: 'col' }, 'Device') : null,
        h('th', { scope: 'col' }, 'Code'),
        h('th', { scope: 'col' }, 'What was wrong'),
        h('th', { scope: 'col' }, 'Payload'),
      ),
    ),
    h(
      'tbody',
      {},
      ...items.map((r) =>
        h(
          'tr',
          { 'data-id': r.id, 'data-code': r.code },
          h(
            'td',
            { class: 'nowrap' },
            h('time', { datetime: r.receivedAt, title: r.receivedAt }, fmtTime(r.receivedAt)),
            h('span', { class: 'ago' }, fmtAgo(r.receivedAt)),
          ),
          opts.showDevice
            ? h(
                'td',
                {},
                h('a', { href: `#/devices/${encodeURIComponent(r.deviceId)}` }, r.deviceId),
                h('span', { class: 'sub' }, city.types.get(r.type)?.title ?? r.type),
              )
            : null,
          h('td', {}, h('span', { class: 'code-badge' }, r.code)),
          h(
            'td',
            {},
            h(
              'ul',
              { class: 'reasons' },
              ...r.reasons.map((x) =>
                h(
                  'li',
                  {},
                  h('code', { class: 'pointer' }, x.pointer || '/'),
                  ' ',
                  h('span', { class: 'reason' }, x.message),
                ),
              ),
            ),
            CODES[r.code] ? h('p', { class: 'explain' }, ...withCode(CODES[r.code] ?? '')) : null,
            h('p', { class: 'topic' }, 'Topic ', h('code', {}, r.topic)),
          ),
          h(
            'td',
            {},
            h(
              'details',
              {},
              h('summary', {}, `${r.payloadBytes} bytes`),
              h('pre', { class: 'payload' }, r.payload),
            ),
          ),
        ),
      ),
    ),
  );
}

export interface Page {
  readonly el: HTMLElement;
  dispose(): void;
}

/** `#/rejections?code=&type=&device=&limit=`: filters live in the address, so views can be shared. */
export function rejectionsPage(params: URLSearchParams): Page {
  const code = h(
    'select',
    { id: 'rej-code' },
    h('option', { value: '' }, 'Any code'),
    ...Object.keys(CODES).map((c) => h('option', { value: c }, c)),
  );
  const type = h(
    'select',
    { id: 'rej-type' },
    h('option', { value: '' }, 'Any type'),
    ...[...city.types.values()].map((t) => h('option', { value: t.type }, t.title)),
  );
  const device = h('input', {
    id: 'rej-device',
    type: 'search',
    list: 'rej-device-ids',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'any device',
  });
  const ids = h(
    'datalist',
    { id: 'rej-device-ids' },
    ...[...city.devices.keys()].map((id) => h('option', { value: id })),
  );
  const limit = h(
    'select',
    { id: 'rej-limit' },
    ...[50, 100, 500, 1000].map((n) => h('option', { value: n }, String(n))),
  );
  code.value = params.get('code') ?? '';
  type.value = params.get('type') ?? '';
  device.value = params.get('device') ?? '';
  limit.value = params.get('limit') ?? '100';
  const result = h('div', {
    class: 'table-scroll',
    id: 'rejections-result',
    'aria-live': 'polite',
  });
  const status = h('p', { class: 'note', id: 'rejections-status' });
  const form = h(
    'form',
    { class: 'controls', id: 'rej-form' },
    h('span', { class: 'ctl' }, h('label', { for: 'rej-code' }, 'Code'), code),
    h('span', { class: 'ctl' }, h('label', { for: 'rej-type' }, 'Device type'), type),
    h('span', { class: 'ctl' }, h('label', { for: 'rej-device' }, 'Device'), device, ids),
    h('span', { class: 'ctl' }, h('label', { for: 'rej-limit' }, 'Show'), limit),
    h('button', { type: 'submit' }, 'Apply'),
    h('button', { type: 'button', id: 'rej-refresh', class: 'secondary' }, 'Refresh'),
  );
  const el = h(
    'div',
    { class: 'page rejections-page' },
    h('h1', {}, 'Rejected messages'),
    h(
      'p',
      { class: 'lede' },
      'Newest first. Each row says where in the message the problem is (a JSON pointer) and what the gateway expected; the device received the same answer on its ',
      h('code', {}, 'sensors/{type}/{id}/errors'),
      ' topic.',
    ),
    h('section', { class: 'card', 'aria-label': 'Filters and results' }, form, status, result),
  );

  const ac = new AbortController();
  const load = async () => {
    status.textContent = 'Loading…';
    try {
      const q = {
        code: code.value,
        type: type.value,
        device: device.value.trim(),
        limit: limit.value,
      };
      const { items } = await getJson<{ items: Rejection[] }>(
        withQuery('/api/v1/rejections', q),
        ac.signal,
      );
      fill(result, rejectionTable(items, { showDevice: true }));
      status.textContent = `${items.length} rejected message${items.length === 1 ? '' : 's'}${items.length === Number(q.limit) ? ` (the newest ${q.limit})` : ''}, as of ${fmtTime(Date.now())}.`;
    } catch (err) {
      if (!ac.signal.aborted) status.textContent = `Could not load: ${(err as Error).message}`;
    }
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (code.value) p.set('code', code.value);
    if (type.value) p.set('type', type.value);
    if (device.value.trim()) p.set('device', device.value.trim());
    if (limit.value !== '100') p.set('limit', limit.value);
    const hash = `#/rejections${p.size ? `?${p}` : ''}`;
    if (location.hash === hash) void load();
    else location.hash = hash;
  });
  form.querySelector('#rej-refresh')?.addEventListener('click', () => void load());
  void load();
  return { el, dispose: () => ac.abort() };
}

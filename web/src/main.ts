/**
 * The dashboard's entry: asks for an API key, loads the city, opens the live stream and
 * routes between the pages by the address's hash (`#/`, `#/devices/<id>`, `#/rejections`).
 */
import { clearKey, getKey, onUnauthorized, setKey, UnauthorizedError } from './api';
import { devicePage } from './device';
import { byId, h } from './dom';
import { livePanel } from './live';
import { cityMap } from './map';
import { rejectionsPage, type Page } from './rejections';
import { city, loadDevices, loadStatic, startLive, stopLive } from './state';
import { trendsCard } from './trends';

const main = byId('main');
const streamState = byId('stream-state');
const changeKey = byId<HTMLButtonElement>('change-key');
let page: Page | undefined;
let firstRoute = true;

function show(p: Page): void {
  page?.dispose();
  page = p;
  main.replaceChildren(p.el);
}

function cityPage(): Page {
  const map = cityMap();
  const live = livePanel();
  const trends = trendsCard();
  return {
    el: h(
      'div',
      { class: 'page city-page' },
      h('h1', { class: 'sr-only' }, 'Wuxi city sensors'),
      h('div', { class: 'city-grid' }, map.el, live.el, trends.el),
    ),
    dispose() {
      map.dispose();
      live.dispose();
      trends.dispose();
    },
  };
}

function notFound(hash: string): Page {
  return {
    el: h(
      'div',
      { class: 'page' },
      h('h1', {}, 'Nothing here'),
      h(
        'p',
        {},
        `The dashboard has no page ${hash}. `,
        h('a', { href: '#/' }, 'Back to the city map'),
      ),
    ),
    dispose() {},
  };
}

function route(): void {
  if (!city.loaded) return;
  const hash = location.hash || '#/';
  // In-page anchors (the skip link) are not routes.
  if (!hash.startsWith('#/')) return;
  const [path = '/', query = ''] = hash.slice(1).split('?');
  let name = 'city';
  if (path === '/') show(cityPage());
  else if (path === '/rejections') {
    name = 'rejections';
    show(rejectionsPage(new URLSearchParams(query)));
  } else if (path.startsWith('/devices/')) {
    name = 'device';
    show(devicePage(decodeURIComponent(path.slice('/devices/'.length))));
  } else {
    name = '';
    show(notFound(hash));
  }
  for (const a of document.querySelectorAll<HTMLAnchorElement>('[data-nav]')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (name !== 'device')
    document.title = name === 'rejections' ? 'Rejections · Taihu' : 'Taihu · Wuxi city sensors';
  // After a navigation, start reading (and tabbing) at the new page, as a page load would.
  if (!firstRoute) main.focus();
  firstRoute = false;
}

/** Asks for a key; `previous` (when changing a working key) offers a way back to it. */
function keyPage(message?: string, previous?: string): void {
  stopLive();
  city.loaded = false;
  page?.dispose();
  page = undefined;
  streamState.textContent = '';
  changeKey.hidden = true;
  const input = h('input', {
    id: 'api-key',
    name: 'api-key',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
    'aria-describedby': 'key-help',
  });
  const form = h(
    'form',
    { id: 'key-form', class: 'key-form' },
    h('label', { for: 'api-key' }, 'API key'),
    input,
    h('button', { type: 'submit' }, 'Use this key'),
    previous
      ? h('button', { type: 'button', class: 'secondary', id: 'key-cancel' }, 'Cancel')
      : null,
  );
  form.querySelector('#key-cancel')?.addEventListener('click', () => {
    if (previous) setKey(previous);
    void boot();
  });
  main.replaceChildren(
    h(
      'div',
      { class: 'page key-page' },
      h(
        'section',
        { class: 'card key-card', 'aria-labelledby': 'key-title' },
        h('h1', { id: 'key-title' }, 'Enter an API key'),
        message ? h('p', { class: 'error', id: 'key-message', role: 'alert' }, message) : null,
        form,
        h(
          'p',
          { class: 'note', id: 'key-help' },
          'The dashboard reads the gateway’s API with this key and keeps it in this tab only (session storage). ',
          'The admin key is in ',
          h('code', {}, 'data/admin.key'),
          ' on the gateway’s host (or ',
          h('code', {}, 'TAIHU_ADMIN_KEY'),
          '); an admin can make read-only keys with ',
          h('code', {}, 'POST /api/v1/keys'),
          '.',
        ),
      ),
    ),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    setKey(key);
    void boot();
  });
  input.focus();
}

async function boot(): Promise<void> {
  if (!getKey()) return keyPage();
  main.replaceChildren(h('p', { class: 'loading', role: 'status' }, 'Loading the city…'));
  try {
    await loadStatic();
    await loadDevices();
  } catch (err) {
    if (err instanceof UnauthorizedError) return; // onUnauthorized has asked for a key
    main.replaceChildren(
      h(
        'div',
        { class: 'page' },
        h(
          'p',
          { class: 'error', role: 'alert' },
          `The gateway could not be reached: ${(err as Error).message}`,
        ),
        h('button', { type: 'button', id: 'retry' }, 'Try again'),
      ),
    );
    byId('retry').addEventListener('click', () => void boot());
    return;
  }
  changeKey.hidden = false;
  startLive();
  route();
}

onUnauthorized(() => {
  // Many requests may fail at once with the same bad key: the first one asks.
  if (!getKey()) return;
  clearKey();
  keyPage(
    'This key was not accepted by the gateway (HTTP 401 Unauthorized). Check it and enter it again, or use another key.',
  );
});

city.stream.on((s) => {
  const text: Record<typeof s, string> = {
    connecting: 'Connecting…',
    open: 'Live',
    retrying: 'Reconnecting…',
    stopped: 'Not live',
  };
  streamState.textContent = text[s];
  streamState.dataset.state = s;
  streamState.title = city.streamDetail;
});

changeKey.addEventListener('click', () => {
  const previous = getKey();
  clearKey();
  keyPage(undefined, previous ?? undefined);
});
byId('skip-link').addEventListener('click', (ev) => {
  // The hash is the router's: move focus without changing it.
  ev.preventDefault();
  main.focus();
  main.scrollIntoView();
});
window.addEventListener('hashchange', route);
void boot();

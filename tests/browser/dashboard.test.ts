/**
 * The city dashboard in a real browser: Debian's chromium, headless, driven by
 * playwright-core, against the built gateway. Each test leaves a screenshot in
 * test-output/screenshots/.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTool } from '../../support/tools.js';
import { ADMIN_KEY, ROOT, startGateway, type RunningGateway } from '../helpers/gateway.js';
import {
  SEED_DEVICES,
  mosquittoPub,
  seedDevice,
  telemetryTopic,
  type SeedDevice,
} from '../helpers/clients.js';

const SHOTS = join(ROOT, 'test-output', 'screenshots');
/** The promise: a reading shows within 2 s of its publish. */
const LIVE_WITHIN_MS = 2000;

let gw: RunningGateway;
let ctx: BrowserContext;
let profile: string;
let base: string;

/** What a page did that it should not: errors in its console, requests off the gateway. */
interface Watched {
  page: Page;
  errors: string[];
  outside: string[];
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  gw = await startGateway();
  base = `http://127.0.0.1:${gw.ports.http}`;
  profile = mkdtempSync(join(tmpdir(), 'taihu-chromium-'));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: requireTool('/usr/bin/chromium'),
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
    viewport: { width: 1440, height: 900 },
  });
});

afterAll(async () => {
  await ctx?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await gw?.stop();
  gw?.cleanup();
});

async function watch(): Promise<Watched> {
  const page = await ctx.newPage();
  const w: Watched = { page, errors: [], outside: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') w.errors.push(m.text());
  });
  page.on('pageerror', (err) => w.errors.push(`${err.name}: ${err.message}`));
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (url.protocol !== 'data:' && url.hostname !== '127.0.0.1') w.outside.push(r.url());
  });
  return w;
}

/** Opens the dashboard and gives it the key. */
async function open(key = ADMIN_KEY): Promise<Watched> {
  const w = await watch();
  await w.page.goto(`${base}/`);
  await w.page.fill('#api-key', key);
  await w.page.press('#api-key', 'Enter');
  return w;
}

/** Opens the dashboard and waits until the map is drawn and the stream is live. */
async function openCity(): Promise<Watched> {
  const w = await open();
  await w.page.locator('#city-map circle.dot').first().waitFor();
  await w.page.locator('#stream-state[data-state="open"]').waitFor();
  return w;
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

function reading(pm25: number, ts: number = Date.now()) {
  return { ts, data: { pm25_ugm3: pm25, pm10_ugm3: pm25 * 1.6, no2_ugm3: 30 } };
}

const publish = (d: SeedDevice, payload: unknown) =>
  mosquittoPub(gw.ports.mqtt, d, gw.secret(d.id), telemetryTopic(d), JSON.stringify(payload));

describe('the city dashboard', () => {
  it('loads without console errors, small, and fetches nothing from outside the gateway', async () => {
    const w = await watch();
    const sizes: Promise<number>[] = [];
    w.page.on('requestfinished', (r) => {
      // The page itself: the document and the assets it names, not the API's answers.
      const path = new URL(r.url()).pathname;
      if (path !== '/' && !path.startsWith('/assets/')) return;
      // A copy from the memory cache reports a negative body size: nothing was transferred.
      sizes.push(r.sizes().then((s) => Math.max(0, s.responseBodySize + s.responseHeadersSize)));
    });
    await w.page.goto(`${base}/`);
    await w.page.fill('#api-key', ADMIN_KEY);
    await w.page.click('#key-form button[type="submit"]');
    await w.page.locator('#city-map circle.dot').first().waitFor();
    await w.page.locator('#stream-state[data-state="open"]').waitFor();
    await w.page.locator('#trend-chart:is([data-state="ready"], [data-state="empty"])').waitFor();
    // The metrics poll fills the spool figure.
    await w.page.locator('#stat-spool:not(:text("…"))').waitFor();
    await shot(w.page, 'dashboard-city');
    // A wall screen: larger type, the map and live panel side by side, the map filling it.
    await w.page.setViewportSize({ width: 2560, height: 1440 });
    const map = await w.page.locator('#city-map').boundingBox();
    expect(map!.height).toBeGreaterThan(1000);
    await shot(w.page, 'dashboard-wall');

    expect(w.errors).toEqual([]);
    expect(w.outside).toEqual([]);
    const transferred = (await Promise.all(sizes)).reduce((a, b) => a + b, 0);
    console.log(
      `dashboard page: ${transferred} bytes transferred (document, script, styles, icon)`,
    );
    expect(transferred).toBeGreaterThan(10_000);
    expect(transferred).toBeLessThan(60_000);
    await w.page.close();
  });

  it('draws one dot per registered device and colours them by a chosen field', async () => {
    const w = await openCity();
    const { body } = await gw.api('/api/v1/devices?limit=1');
    expect(body.total).toBeGreaterThan(1000);
    await expect.poll(() => w.page.locator('#city-map circle.dot').count()).toBe(body.total);
    const districts = (await gw.api('/api/v1/districts')).body.items;
    expect(await w.page.locator('#city-map polygon.district').count()).toBe(districts.length);

    // A fresh gateway has heard from no device: every dot is "never seen".
    const never = w.page.locator('#map-legend li[data-status="never"] .count');
    expect(Number(await never.textContent())).toBe(body.total);

    // Four stations in four bands of China's AQI; the map hears of them over the stream.
    const bands: [number, string, string][] = [
      [20, '#00e400', 'aq-liangxi-0001'], // excellent
      [60, '#ffff00', 'aq-binhu-0002'], // good
      [100, '#ff7e00', 'aq-xishan-0001'], // lightly polluted
      [200, '#99004c', 'aq-yixing-0001'], // heavily polluted
    ];
    await w.page.selectOption('#color-by', 'air-quality/pm25_ugm3');
    await expect
      .poll(() => w.page.locator('#map-legend').textContent())
      .toContain('PM2.5, China AQI bands');
    const byId = (id: string) => SEED_DEVICES.find((d) => d.id === id)!;
    await Promise.all(bands.map(([v, , id]) => publish(byId(id), reading(v))));
    for (const [, color, id] of bands) {
      const dot = w.page.locator(`#city-map circle.dot[data-id="${id}"]`);
      await expect.poll(() => dot.getAttribute('fill'), { message: id }).toBe(color);
    }
    // Devices of other types step back.
    expect(await w.page.locator('#city-map circle.dot.muted').count()).toBe(
      body.total - SEED_DEVICES.filter((d) => d.type === 'air-quality').length,
    );
    // Dots of one site overlap at this zoom: a click on this very dot, wherever it is.
    await w.page.locator('#city-map circle.dot[data-id="aq-liangxi-0001"]').dispatchEvent('click');
    await w.page.locator('#map-tip.pinned:not([hidden])').waitFor();
    expect(await w.page.locator('#map-tip').textContent()).toContain('aq-liangxi-0001');
    expect(await w.page.locator('#map-tip a').getAttribute('href')).toBe(
      '#/devices/aq-liangxi-0001',
    );
    await shot(w.page, 'dashboard-map-pm25');
    expect(w.errors).toEqual([]);
    await w.page.close();
  });

  it('shows a reading published with mosquitto_pub in the live panel and on the device page within 2 s', async () => {
    const w = await openCity();
    const d = seedDevice('air-quality', 1);

    let t0 = Date.now();
    expect((await publish(d, reading(123.4))).code).toBe(0);
    const item = w.page.locator(`#live-feed li[data-device="${d.id}"]`).first();
    await item.waitFor({ timeout: LIVE_WITHIN_MS - (Date.now() - t0) });
    expect(Date.now() - t0).toBeLessThan(LIVE_WITHIN_MS);
    expect(await item.textContent()).toContain('pm25_ugm3 123 µg/m³');
    await shot(w.page, 'dashboard-live');

    await item.locator('a').click();
    await w.page.locator('#device-title').waitFor();
    expect(await w.page.locator('#device-title').textContent()).toBe(d.id);
    const cell = w.page.locator('#device-last tr[data-field="pm25_ugm3"] td.num');
    await expect.poll(() => cell.getAttribute('data-value')).toBe('123.4');
    await expect
      .poll(() => w.page.locator('#device-status').textContent())
      .toMatch(/online|offline/);

    t0 = Date.now();
    expect((await publish(d, reading(87.6))).code).toBe(0);
    await w.page
      .locator('#device-last tr[data-field="pm25_ugm3"] td.num[data-value="87.6"]')
      .waitFor({ timeout: LIVE_WITHIN_MS - (Date.now() - t0) });
    expect(Date.now() - t0).toBeLessThan(LIVE_WITHIN_MS);
    expect(await cell.textContent()).toBe('87.6');
    await shot(w.page, 'dashboard-device');
    expect(w.errors).toEqual([]);
    await w.page.close();
  });

  it('charts the aggregate the API returns, district by district', async () => {
    // Readings of the last hour in two districts; two share a minute, so a mean shows.
    const minute = 60_000;
    const at = Math.floor(Date.now() / minute) * minute - 20 * minute;
    const binhu = seedDevice('air-quality', 14);
    const xinwu = seedDevice('air-quality', 4);
    expect([binhu.district, xinwu.district]).toEqual(['binhu', 'xinwu']);
    const pubs = await Promise.all([
      publish(binhu, [
        reading(40, at + 5_000),
        reading(60, at + 35_000),
        reading(20, at + 600_000),
      ]),
      publish(xinwu, [reading(90, at + 5_000), reading(75.5, at - 600_000)]),
    ]);
    expect(pubs.map((p) => p.code)).toEqual([0, 0]);

    const w = await openCity();
    const chart = w.page.locator('#trend-chart[data-state="ready"]');
    await chart.waitFor();
    expect(await w.page.locator('#trend-chart canvas').count()).toBeGreaterThan(0);
    const query = (await chart.getAttribute('data-query'))!;
    expect(query).toMatch(/type=air-quality&field=pm25_ugm3&fn=mean&.*groupBy=district/);

    const api = await gw.api(query);
    expect(api.status).toBe(200);
    let compared = 0;
    for (const s of api.body.series) {
      for (const p of s.points) {
        const cell = w.page.locator(
          `#trend-chart-table td[data-series="${s.group.district}"][data-t="${p.t}"]`,
        );
        const shown = await cell.getAttribute('data-value');
        expect(shown === '' ? null : Number(shown), `${s.group.district} ${p.t}`).toBe(p.value);
        compared++;
      }
    }
    expect(compared).toBeGreaterThanOrEqual(2 * 60);
    expect(Number(await chart.getAttribute('data-points'))).toBe(
      api.body.series.flatMap((s: any) => s.points).filter((p: any) => p.value !== null).length,
    );
    // The mean of the two readings in one minute, as the table shows it to a reader.
    const iso = new Date(at).toISOString();
    const mean = w.page.locator(`#trend-chart-table td[data-series="binhu"][data-t="${iso}"]`);
    expect(await mean.getAttribute('data-value')).toBe('50');
    await w.page.click('#trend-chart summary');
    expect(await mean.textContent()).toBe('50');

    await w.page.locator('#trend-chart').scrollIntoViewIfNeeded();
    await shot(w.page, 'dashboard-chart');
    expect(w.errors).toEqual([]);
    await w.page.close();
  });

  it('lists a rejected message with the pointer and the reason a device maker needs', async () => {
    const d = seedDevice('air-quality', 2);
    expect((await publish(d, reading(-5))).code).toBe(0);
    const w = await openCity();
    await w.page.click('nav a[data-nav="rejections"]');
    await w.page.fill('#rej-device', d.id);
    await w.page.click('#rej-form button[type="submit"]');
    const row = w.page.locator(`#rejections-table tr[data-code="SCHEMA_INVALID"]`).first();
    await row.waitFor();
    expect(await row.locator('.pointer').first().textContent()).toBe('/data/pm25_ugm3');
    expect(await row.locator('.reason').first().textContent()).toMatch(/>= 0/);
    expect(await row.textContent()).toContain(d.id);
    await shot(w.page, 'dashboard-rejections');
    expect(w.errors).toEqual([]);
    await w.page.close();
  });

  it('says a wrong key was not accepted, and takes another', async () => {
    const w = await open('not-a-key-of-this-gateway');
    const message = w.page.locator('#key-message');
    await message.waitFor();
    expect(await message.textContent()).toMatch(/This key was not accepted/);
    expect(await message.getAttribute('role')).toBe('alert');
    await shot(w.page, 'dashboard-wrong-key');

    // The form is there again, with the focus in it.
    await w.page.keyboard.type(ADMIN_KEY);
    await w.page.keyboard.press('Enter');
    await w.page.locator('#city-map circle.dot').first().waitFor();
    expect(await w.page.locator('#key-message').count()).toBe(0);

    // Changing the key, then thinking better of it, keeps the one that works.
    await w.page.click('#change-key');
    await w.page.locator('#key-form').waitFor();
    await w.page.click('#key-cancel');
    await w.page.locator('#city-map circle.dot').first().waitFor();
    // Only the refused requests themselves were errors.
    expect(
      w.errors.every((e) => /status of 401/.test(e)),
      w.errors.join('\n'),
    ).toBe(true);
    await w.page.close();
  });

  it('can be used from the keyboard: a skip link, labelled controls, a visible focus', async () => {
    const w = await openCity();
    // A fresh load, as an operator would come back to the tab: the key is still in the session.
    await w.page.reload();
    await w.page.locator('#city-map circle.dot').first().waitFor();
    await w.page.keyboard.press('Tab');
    const skip = w.page.locator('#skip-link');
    expect(await skip.evaluate((el) => el === el.ownerDocument.activeElement)).toBe(true);
    expect(await skip.isVisible()).toBe(true);
    await w.page.keyboard.press('Enter');
    expect(
      await w.page.locator('#main').evaluate((el) => el === el.ownerDocument.activeElement),
    ).toBe(true);
    // Every form control on the page has a label that names it.
    const ids = await w.page
      .locator('main select, main input')
      .evaluateAll((els) => els.map((el) => el.id));
    expect(ids.length).toBeGreaterThan(10);
    for (const id of ids) {
      const label = w.page.locator(`label[for="${id}"]`);
      expect(await label.count(), `label for #${id}`).toBe(1);
      expect((await label.textContent())!.trim().length, `label for #${id}`).toBeGreaterThan(0);
    }
    // Tab onward lands on the first control of the map; its outline shows.
    await w.page.keyboard.press('Tab');
    const outline = await w.page
      .locator(':focus')
      .evaluate((el) => el.ownerDocument.defaultView!.getComputedStyle(el).outlineStyle);
    expect(outline).toBe('solid');
    await shot(w.page, 'dashboard-keyboard');
    expect(w.errors).toEqual([]);
    await w.page.close();
  });
});

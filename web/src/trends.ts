/**
 * Trends: one field of one device type over a window, a line per district (the API's
 * `groupBy=district`), districts picked with checkboxes.
 */
import { AggregateChart, FNS, WINDOWS } from './chart';
import { fill, h } from './dom';
import { city, districtName, numericFields, unitOf } from './state';

const REFRESH_MS = 30_000;

interface Choice {
  type: string;
  field: string;
  fn: string;
  window: string;
  districts: string[];
}

function saved(): Partial<Choice> {
  try {
    return JSON.parse(sessionStorage.getItem('taihu.trends') ?? '{}') as Partial<Choice>;
  } catch {
    return {};
  }
}

export interface TrendsCard {
  readonly el: HTMLElement;
  dispose(): void;
}

export function trendsCard(): TrendsCard {
  const prev = saved();
  const typeSel = h('select', { id: 'trend-type' });
  const fieldSel = h('select', { id: 'trend-field' });
  const fnSel = h('select', { id: 'trend-fn' }, ...FNS.map((f) => h('option', { value: f }, f)));
  const winSel = h(
    'select',
    { id: 'trend-window' },
    ...WINDOWS.map((w) => h('option', { value: w.every }, w.label)),
  );
  const boxes = city.districts.map((d) =>
    h('input', { type: 'checkbox', id: `trend-d-${d.id}`, value: d.id, checked: true }),
  );
  const districts = h(
    'fieldset',
    { class: 'districts-pick' },
    h('legend', {}, 'Districts'),
    ...city.districts.map((d, i) =>
      h('span', { class: 'check' }, boxes[i], h('label', { for: `trend-d-${d.id}` }, d.name)),
    ),
  );
  const chart = new AggregateChart('trend-chart', {
    labelOf: (g) => districtName(g.district ?? ''),
    include: (g) => boxes.some((b) => b.checked && b.value === g.district),
    unit: () => unitOf(typeSel.value, fieldSel.value),
    maxGapSeconds: () => 3 * (city.types.get(typeSel.value)?.intervalSeconds ?? 60),
  });
  const form = h(
    'form',
    { class: 'controls trend-controls', id: 'trend-form' },
    h('span', { class: 'ctl' }, h('label', { for: 'trend-type' }, 'Device type'), typeSel),
    h('span', { class: 'ctl' }, h('label', { for: 'trend-field' }, 'Field'), fieldSel),
    h('span', { class: 'ctl' }, h('label', { for: 'trend-fn' }, 'Function'), fnSel),
    h('span', { class: 'ctl' }, h('label', { for: 'trend-window' }, 'Window'), winSel),
    districts,
  );
  const el = h(
    'section',
    { class: 'card trends-card', 'aria-labelledby': 'trends-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'trends-title' }, 'Trends by district')),
    form,
    chart.el,
  );

  const types = [...city.types.values()].filter((t) => numericFields(t.type).length > 0);
  fill(typeSel, ...types.map((t) => h('option', { value: t.type }, t.title)));
  typeSel.value = types.some((t) => t.type === prev.type) ? (prev.type ?? '') : 'air-quality';
  if (!typeSel.value && types[0]) typeSel.value = types[0].type;
  const fillFields = (want?: string) => {
    const fields = numericFields(typeSel.value);
    fill(
      fieldSel,
      ...fields.map((f) =>
        h('option', { value: f.name }, `${f.name}${f.unit ? ` (${f.unit})` : ''}`),
      ),
    );
    if (want && fields.some((f) => f.name === want)) fieldSel.value = want;
  };
  fillFields(prev.field);
  fnSel.value = prev.fn && (FNS as readonly string[]).includes(prev.fn) ? prev.fn : 'mean';
  winSel.value = WINDOWS.some((w) => w.every === prev.window) ? (prev.window ?? '1m') : '1m';
  if (prev.districts) for (const b of boxes) b.checked = prev.districts.includes(b.value);

  const load = () => {
    const win =
      WINDOWS.find((w) => w.every === winSel.value) ?? (WINDOWS[1] as (typeof WINDOWS)[number]);
    const choice: Choice = {
      type: typeSel.value,
      field: fieldSel.value,
      fn: fnSel.value,
      window: winSel.value,
      districts: boxes.filter((b) => b.checked).map((b) => b.value),
    };
    sessionStorage.setItem('taihu.trends', JSON.stringify(choice));
    void chart.load({
      type: choice.type,
      field: choice.field,
      fn: choice.fn,
      window: win,
      groupBy: 'district',
    });
  };
  typeSel.addEventListener('change', () => {
    fillFields();
    load();
  });
  form.addEventListener('change', (ev) => {
    if (ev.target !== typeSel) load();
  });
  form.addEventListener('submit', (ev) => ev.preventDefault());
  load();
  const timer = window.setInterval(load, REFRESH_MS);
  return {
    el,
    dispose() {
      window.clearInterval(timer);
      chart.destroy();
    },
  };
}

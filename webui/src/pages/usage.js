// Metered usage (GET /api/admin/usage): filters by tenant, key and time range; one chart
// per tenant (tokens and requests over time, in buckets sized to the range); a table of
// totals per key; and a CSV export of the same query (format=csv). The filters live in the
// URL (#/usage?tenant=...&range=...), so a view can be bookmarked.
import { api, withQuery } from '../api.js';
import { lineChart } from '../charts.js';
import { busy, button, card, field, fmtInt, fromLocalInput, h, pageHeader, replace, table, toLocalInput } from '../ui.js';

export const title = 'Usage';

const RANGES = [
  { value: '3600', label: 'Last hour' },
  { value: '86400', label: 'Last 24 hours' },
  { value: '604800', label: 'Last 7 days' },
  { value: '2592000', label: 'Last 30 days' },
  { value: 'custom', label: 'Custom range' },
];

export async function render(main, ctx) {
  const p = ctx.params;
  const tenant = field({ label: 'Tenant', name: 'usage-tenant', type: 'select', options: [{ value: '', label: 'All tenants' }] });
  const key = field({ label: 'Key', name: 'usage-key', type: 'select', options: [{ value: '', label: 'All keys' }] });
  const range = field({ label: 'Time range', name: 'usage-range', type: 'select', options: RANGES, value: p.get('range') || '86400' });
  const now = Math.floor(Date.now() / 1000);
  const from = field({ label: 'From', name: 'usage-from', type: 'datetime-local', value: toLocalInput(Number(p.get('from')) || now - 86400) });
  const to = field({ label: 'To', name: 'usage-to', type: 'datetime-local', value: toLocalInput(Number(p.get('to')) || now) });
  const apply = button('Show usage', { kind: 'primary', type: 'submit' });
  const csv = h('a', { class: 'btn btn-secondary', href: '#', download: 'supernode-usage.csv' }, 'Export CSV');
  const form = h('form', { class: 'form filters', novalidate: true }, tenant.wrap, key.wrap, range.wrap, from.wrap, to.wrap,
    h('div', { class: 'form-actions' }, apply, csv));
  const syncCustom = () => {
    const custom = range.input.value === 'custom';
    from.wrap.hidden = !custom;
    to.wrap.hidden = !custom;
  };
  range.input.addEventListener('change', syncCustom);
  syncCustom();

  main.append(pageHeader('Usage', 'Requests and tokens metered per tenant and key.'), card('Filters', form));
  const summary = h('p', { class: 'summary', 'aria-live': 'polite' });
  const chartsBox = h('div', { class: 'chart-grid' });
  const tableBox = h('div', {});
  main.append(summary, chartsBox, card('Totals per key', tableBox));

  let charts = [];
  const destroyCharts = () => { for (const c of charts) c.destroy(); charts = []; };

  // Tenants and keys for the filters.
  try {
    const [ts, ks] = await Promise.all([api.get('/api/admin/tenants'), api.get('/api/admin/keys')]);
    replace(tenant.input, h('option', { value: '' }, 'All tenants'), (ts.tenants || []).map((t) => h('option', { value: t.name }, t.name)));
    const allKeys = ks.keys || [];
    const fillKeys = () => {
      const keep = key.input.value;
      const list = allKeys.filter((k) => !tenant.input.value || k.tenant === tenant.input.value);
      replace(key.input, h('option', { value: '' }, 'All keys'),
        list.map((k) => h('option', { value: k.key_id }, `${k.key_id}${k.label ? ` (${k.label})` : ''}${k.revoked ? ' \u2013 revoked' : ''}`)));
      if (list.some((k) => k.key_id === keep)) key.input.value = keep;
    };
    tenant.input.value = p.get('tenant') || '';
    fillKeys();
    key.input.value = p.get('key') || '';
    tenant.input.addEventListener('change', fillKeys);
  } catch (err) {
    summary.textContent = err.message;
  }

  function query() {
    const q = { tenant: tenant.input.value, key: key.input.value };
    const t = Math.floor(Date.now() / 1000);
    if (range.input.value === 'custom') {
      q.from = fromLocalInput(from.input.value);
      q.to = fromLocalInput(to.input.value);
    } else {
      q.from = t - Number(range.input.value);
      q.to = t;
    }
    return q;
  }

  async function show() {
    const q = query();
    csv.href = withQuery('/api/admin/usage', { ...q, format: 'csv' });
    const custom = range.input.value === 'custom';
    history.replaceState(null, '', withQuery('#/usage', { tenant: q.tenant, key: q.key, range: range.input.value,
      from: custom ? q.from : undefined, to: custom ? q.to : undefined }));
    let rows;
    try {
      rows = (await api.get('/api/admin/usage', q)).rows || [];
    } catch (err) {
      summary.textContent = err.message;
      summary.className = 'message message-error';
      return;
    }
    summary.className = 'summary';
    const totals = rows.reduce((a, r) => ({ requests: a.requests + r.requests, prompt: a.prompt + r.prompt_tokens,
      completion: a.completion + r.completion_tokens }), { requests: 0, prompt: 0, completion: 0 });
    summary.textContent = `${fmtInt(totals.requests)} requests, ${fmtInt(totals.prompt)} prompt tokens and ` +
      `${fmtInt(totals.completion)} completion tokens in the range.`;
    drawCharts(rows, q);
    drawTable(rows);
  }

  function drawCharts(rows, q) {
    destroyCharts();
    replace(chartsBox);
    const fromMin = Math.floor((q.from ?? Math.min(...rows.map((r) => r.minute * 60))) / 60 / 5) * 5;
    const toMin = Math.ceil((q.to ?? Math.floor(Date.now() / 1000)) / 60);
    const spanMin = Math.max(1, toMin - fromMin);
    // Buckets of a round size, at most ~120 points per chart.
    const bucket = [1, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440].find((b) => spanMin / b <= 120) || 1440;
    const buckets = Math.ceil(spanMin / bucket);
    const byTenant = new Map();
    for (const r of rows) {
      if (!byTenant.has(r.tenant)) byTenant.set(r.tenant, { tokens: new Array(buckets).fill(0), requests: new Array(buckets).fill(0) });
      const i = Math.min(buckets - 1, Math.max(0, Math.floor((r.minute - fromMin) / bucket)));
      const s = byTenant.get(r.tenant);
      s.tokens[i] += r.prompt_tokens + r.completion_tokens;
      s.requests[i] += r.requests;
    }
    if (byTenant.size === 0) {
      chartsBox.append(h('p', { class: 'empty-state' }, 'No usage in this range.'));
      return;
    }
    const xs = Array.from({ length: buckets }, (_, i) => (fromMin + i * bucket) * 60);
    const per = bucket === 1 ? 'minute' : bucket < 60 ? `${bucket} minutes` : bucket === 60 ? 'hour' : `${bucket / 60} hours`;
    for (const [name, s] of [...byTenant].sort()) {
      const c = card(`Tenant ${name}`);
      c.dataset.tenant = name;
      chartsBox.append(c);
      const chart = lineChart(c, { label: `Tokens and requests of tenant ${name} per ${per}`, longRange: spanMin > 24 * 60,
        yTitle: 'tokens', y1Title: 'requests',
        series: [{ label: `tokens per ${per}` }, { label: `requests per ${per}`, axis: 'y1' }] });
      chart.set(xs, [s.tokens, s.requests]);
      charts.push(chart);
    }
  }

  function drawTable(rows) {
    const byKey = new Map();
    for (const r of rows) {
      const k = `${r.tenant}\u0000${r.key_id}`;
      if (!byKey.has(k)) byKey.set(k, { tenant: r.tenant, key_id: r.key_id, requests: 0, prompt: 0, completion: 0 });
      const a = byKey.get(k);
      a.requests += r.requests;
      a.prompt += r.prompt_tokens;
      a.completion += r.completion_tokens;
    }
    replace(tableBox, table({
      caption: 'Usage totals per key',
      empty: 'No usage in this range.',
      rowKey: (r) => r.key_id,
      columns: [
        { label: 'Tenant', render: (r) => r.tenant },
        { label: 'Key id', render: (r) => h('code', {}, r.key_id) },
        { label: 'Requests', numeric: true, render: (r) => fmtInt(r.requests) },
        { label: 'Prompt tokens', numeric: true, render: (r) => fmtInt(r.prompt) },
        { label: 'Completion tokens', numeric: true, render: (r) => fmtInt(r.completion) },
        { label: 'Total tokens', numeric: true, render: (r) => fmtInt(r.prompt + r.completion) },
      ],
      rows: [...byKey.values()].sort((a, b) => b.prompt + b.completion - (a.prompt + a.completion)),
    }));
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    await busy(apply, show);
  });
  await show();
  return destroyCharts;
}

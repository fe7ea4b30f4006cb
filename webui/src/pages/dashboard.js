// The dashboard: the box's hardware (GET /api/admin/hardware), the loaded models (GET
// /api/admin/status, refreshed every 10 s) and live charts fed by the server-sent events of
// GET /api/admin/live (one `live` object a second): requests/s, tokens/s, TTFT p50/p99,
// running/queued and KV-cache occupancy per model. The last two minutes are kept.
import { api } from '../api.js';
import { lineChart } from '../charts.js';
import { badge, card, fmtBytes, fmtInt, fmtNumber, fmtSeconds, h, pageHeader, replace, table } from '../ui.js';

export const title = 'Dashboard';
const POINTS = 120;

export async function render(main) {
  const liveBadge = badge('Connecting…', 'neutral');
  main.append(pageHeader('Dashboard', 'Throughput, latency and cache of this box, live.', liveBadge));

  const kpi = {};
  const tile = (key, label) => {
    kpi[key] = h('p', { class: 'kpi-value' }, '\u2013');
    return h('div', { class: 'kpi' }, h('h2', { class: 'kpi-label' }, label), kpi[key]);
  };
  main.append(h('div', { class: 'kpi-grid' },
    tile('rps', 'Requests / s'), tile('tps', 'Tokens / s'), tile('ttft', 'TTFT p50 / p99'), tile('rq', 'Running / queued')));

  const chartsGrid = h('div', { class: 'chart-grid' });
  main.append(chartsGrid);
  const chartCard = (t) => { const c = card(t); chartsGrid.append(c); return c; };
  const charts = {
    rps: lineChart(chartCard('Requests per second'), { label: 'Requests per second over the last two minutes', series: [{ label: 'requests/s' }] }),
    tps: lineChart(chartCard('Tokens per second'), { label: 'Prompt and completion tokens per second over the last two minutes',
      series: [{ label: 'completion' }, { label: 'prompt' }] }),
    ttft: lineChart(chartCard('Time to first token'), { label: 'Time to first token, p50 and p99, in milliseconds', yTitle: 'ms',
      series: [{ label: 'p50' }, { label: 'p99' }] }),
    rq: lineChart(chartCard('Running and queued requests'), { label: 'Running and queued requests over the last two minutes',
      series: [{ label: 'running' }, { label: 'queued' }] }),
  };
  const kvCard = chartCard('KV cache occupancy');
  const kv = lineChart(kvCard, { label: 'KV cache blocks in use per model, percent', series: [], percent: true, yMax: 100 });
  const kvIndex = new Map();

  const modelsBox = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const hwBox = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  main.append(h('div', { class: 'grid-2' }, card('Loaded models', modelsBox), card('Hardware', hwBox)));

  api.get('/api/admin/hardware').then((hw) => replace(hwBox, hardwareView(hw)))
    .catch((e) => replace(hwBox, h('p', { class: 'message message-error' }, e.message)));
  const loadStatus = () => api.get('/api/admin/status').then((s) => replace(modelsBox, statusView(s.models || [])))
    .catch((e) => replace(modelsBox, h('p', { class: 'message message-error' }, e.message)));
  loadStatus();
  const statusTimer = window.setInterval(loadStatus, 10000);

  const onLive = (ev) => {
    let d;
    try { d = JSON.parse(ev.data); } catch { return; }
    const x = (d.time_us ?? Date.now() * 1000) / 1e6;
    const ms = (s) => (s === undefined || s === null ? null : s * 1000);
    charts.rps.push(x, [d.requests_per_s], POINTS);
    charts.tps.push(x, [d.completion_tokens_per_s, d.prompt_tokens_per_s], POINTS);
    charts.ttft.push(x, [ms(d.ttft_p50_s), ms(d.ttft_p99_s)], POINTS);
    charts.rq.push(x, [d.running, d.queued], POINTS);
    for (const m of d.models || []) {
      if (!kvIndex.has(m.id)) {
        const colors = kv.chart.data.datasets.length;
        const color = getComputedStyle(document.documentElement).getPropertyValue(`--series-${(colors % 6) + 1}`).trim();
        kvIndex.set(m.id, kv.chart.data.datasets.length);
        kv.chart.data.datasets.push({ label: m.id, data: [], borderColor: color, backgroundColor: color, borderWidth: 2,
                                      pointRadius: 0, tension: 0.25 });
        kv.chart.options.plugins.legend.display = true;
      }
    }
    const ys = [];
    for (const [id, i] of kvIndex) {
      const m = (d.models || []).find((mm) => mm.id === id);
      ys[i] = m && m.kv_blocks ? (100 * m.kv_blocks_used) / m.kv_blocks : null;
    }
    kv.push(x, ys, POINTS);
    kpi.rps.textContent = fmtNumber(d.requests_per_s);
    kpi.tps.textContent = fmtNumber(d.completion_tokens_per_s);
    kpi.ttft.textContent = `${fmtSeconds(d.ttft_p50_s)} / ${fmtSeconds(d.ttft_p99_s)}`;
    kpi.rq.textContent = `${fmtInt(d.running)} / ${fmtInt(d.queued)}`;
    liveBadge.className = 'badge badge-success';
    liveBadge.textContent = 'Live';
  };
  const source = new EventSource('/api/admin/live');
  source.addEventListener('live', onLive);
  source.addEventListener('message', onLive);
  source.addEventListener('error', () => {
    liveBadge.className = 'badge badge-warning';
    liveBadge.textContent = source.readyState === EventSource.CLOSED ? 'Live data stopped' : 'Reconnecting…';
  });

  return () => {
    source.close();
    window.clearInterval(statusTimer);
    for (const c of Object.values(charts)) c.destroy();
    kv.destroy();
  };
}

function statusView(models) {
  return table({
    caption: 'Loaded models',
    empty: 'No model is loaded. Load one on the Models page.',
    columns: [
      { label: 'Model', render: (m) => m.id },
      { label: 'Running', numeric: true, render: (m) => fmtInt(m.running) },
      { label: 'Waiting', numeric: true, render: (m) => fmtInt(m.waiting) },
      { label: 'Tokens generated', numeric: true, render: (m) => fmtInt(m.tokens_generated) },
      { label: 'KV blocks', render: (m) => kvMeter(m.kv_blocks_used, m.kv_blocks) },
    ],
    rows: models,
  });
}

function kvMeter(used, total) {
  if (!total) return '\u2013';
  const label = `${fmtInt(used)} of ${fmtInt(total)}`;
  return h('span', { class: 'meter-cell' }, h('meter', { min: 0, max: total, value: used, 'aria-label': `KV blocks in use: ${label}` }), ` ${label}`);
}

function hardwareView(hw) {
  const cpu = hw.cpu || {};
  const mem = hw.memory || {};
  const rows = [
    ['CPU', `${cpu.model || 'unknown'}`],
    ['Cores', `${fmtInt(cpu.packages)} package(s), ${fmtInt(cpu.cores)} cores, ${fmtInt(cpu.threads)} threads`],
    ['Instruction sets', Array.isArray(cpu.isa) ? cpu.isa.join(', ') : (cpu.isa || '\u2013')],
    ['Kernels', cpu.kernel_family || '\u2013'],
    ['Memory', `${fmtBytes(mem.available_bytes)} available of ${fmtBytes(mem.total_bytes)}`],
    ['NUMA nodes', (hw.numa_nodes || []).length
      ? (hw.numa_nodes || []).map((n) => `#${n.index}: ${fmtBytes(n.memory_bytes)}, ${Array.isArray(n.cpus) ? n.cpus.length : n.cpus} CPUs`).join('; ')
      : '\u2013'],
    ['GPUs', (hw.gpus || []).length
      ? hw.gpus.map((g) => `${g.name} (${fmtBytes(g.memory_free_bytes)} free of ${fmtBytes(g.memory_total_bytes)})`).join('; ')
      : 'none'],
  ];
  const dl = h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  const tiers = table({
    caption: 'KV cache tiers',
    empty: 'No KV tier is configured.',
    columns: [
      { label: 'Tier', render: (t) => t.tier },
      { label: 'Path', render: (t) => t.path || '\u2013' },
      { label: 'Free', numeric: true, render: (t) => fmtBytes(t.free_bytes) },
      { label: 'Total', numeric: true, render: (t) => fmtBytes(t.total_bytes) },
    ],
    rows: hw.kv_tiers || [],
  });
  return [dl, h('h3', { class: 'subhead' }, 'KV cache tiers'), tiers];
}

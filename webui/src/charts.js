// Line charts for the dashboard and the usage page: Chart.js 3 (Debian's libjs-chart.js,
// served from /assets/vendor/chart.js/) with only the parts we use registered. X values are
// numbers (Unix seconds), formatted as clock times, so no date adapter is needed. Colors
// come from CSS custom properties, so the charts follow the light or dark theme.
// Each canvas gets role=img and a label; the pages also show the latest values as text.
import {
  CategoryScale, Chart, Filler, Legend, LineController, LineElement, LinearScale, PointElement, Tooltip,
} from '/assets/vendor/chart.js/chart.mjs';
import { h } from './ui.js';

Chart.register(LineController, LineElement, PointElement, LinearScale, CategoryScale, Legend, Tooltip, Filler);

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

export function palette() {
  return [1, 2, 3, 4, 5, 6].map((i) => cssVar(`--series-${i}`, '#1d4ed8'));
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
const dateFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });

// A line chart in a new <canvas> inside `container`. series: [{label, axis?: 'y1' for a
// second scale on the right}]; options: {yTitle, y1Title,
// yMax, percent, longRange (dates instead of clock times), fill}. Returns {chart, push(x,
// ys, maxPoints), set(xs, ysPerSeries), destroy()}.
export function lineChart(container, { label, series, yTitle, y1Title, yMax, percent = false, longRange = false, fill = false }) {
  const canvas = h('canvas', { role: 'img', 'aria-label': label });
  const box = h('div', { class: 'chart-box' }, canvas);
  container.append(box);
  const colors = palette();
  const grid = cssVar('--chart-grid', '#e5e7eb');
  const text = cssVar('--text-muted', '#4b5563');
  const chart = new Chart(canvas, {
    type: 'line',
    data: {
      datasets: series.map((s, i) => ({
        label: s.label,
        data: [],
        borderColor: colors[i % colors.length],
        backgroundColor: `${colors[i % colors.length]}26`,
        borderWidth: 2,
        pointRadius: 0,
        pointHitRadius: 6,
        tension: 0.25,
        fill,
        yAxisID: s.axis || 'y',
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      normalized: true,
      interaction: { mode: 'index', intersect: false },
      // Fewer time labels on narrow charts, so they never overlap.
      onResize: (c, size) => { c.options.scales.x.ticks.maxTicksLimit = size.width < 420 ? 3 : 5; },
      plugins: {
        legend: { display: series.length > 1, labels: { color: text, boxWidth: 12 } },
        tooltip: {
          callbacks: {
            title: (items) => (items.length ? (longRange ? dateFmt : timeFmt).format(new Date(items[0].parsed.x * 1000)) : ''),
            label: (item) => `${item.dataset.label}: ${formatY(item.parsed.y, percent)}`,
          },
        },
      },
      scales: {
        x: {
          type: 'linear',
          bounds: 'data',
          grid: { color: grid },
          ticks: { color: text, maxTicksLimit: container.clientWidth < 420 ? 3 : 5, maxRotation: 0, autoSkip: true, autoSkipPadding: 16,
                   callback: (v) => (longRange ? dateFmt : timeFmt).format(new Date(v * 1000)) },
        },
        y: {
          beginAtZero: true,
          max: yMax,
          grid: { color: grid },
          title: { display: Boolean(yTitle), text: yTitle, color: text },
          ticks: { color: text, maxTicksLimit: 5, callback: (v) => formatY(v, percent) },
        },
        ...(series.some((s) => s.axis === 'y1') ? {
          y1: {
            position: 'right',
            beginAtZero: true,
            grid: { drawOnChartArea: false },
            title: { display: Boolean(y1Title), text: y1Title, color: text },
            ticks: { color: text, maxTicksLimit: 5, precision: 0 },
          },
        } : {}),
      },
    },
  });
  return {
    chart,
    push(x, ys, maxPoints = 120) {
      chart.data.datasets.forEach((d, i) => {
        d.data.push({ x, y: ys[i] ?? null });
        if (d.data.length > maxPoints) d.data.splice(0, d.data.length - maxPoints);
      });
      chart.update('none');
    },
    set(xs, ysPerSeries) {
      chart.data.datasets.forEach((d, i) => { d.data = xs.map((x, j) => ({ x, y: ysPerSeries[i][j] })); });
      chart.update('none');
    },
    destroy() { chart.destroy(); },
  };
}

function formatY(v, percent) {
  if (v === null || v === undefined) return '';
  if (percent) return `${Math.round(v)}%`;
  if (Math.abs(v) >= 1000) return `${(v / 1000).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
}

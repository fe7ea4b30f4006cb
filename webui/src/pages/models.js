// The model catalog (GET /api/admin/models): id, size, GGUF architecture, quantization,
// context length, sha256 and state; load, unload and delete; import of a GGUF file from a
// path on the server (POST /api/admin/models/import) with a progress bar, polled from
// GET /api/admin/models/imports/{id}. Imports already running when the page opens are
// shown too. Auditors see the catalog without the write controls.
import { api, seg } from '../api.js';
import {
  announce, badge, busy, button, card, confirmDialog, fmtBytes, fmtInt, field, h, messageBox, pageHeader, readOnlyNote,
  replace, table,
} from '../ui.js';

export const title = 'Models';

export async function render(main, ctx) {
  const refreshBtn = button('Refresh', { onclick: () => load() });
  main.append(pageHeader('Models', 'The GGUF models in this box\u2019s catalog.', refreshBtn));
  if (!ctx.canWrite) main.append(readOnlyNote());

  const timers = new Set();
  let closed = false;
  const imports = h('div', { class: 'imports' });

  if (ctx.canWrite) main.append(importCard());
  main.append(imports);
  const listBox = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  main.append(card('Catalog', listBox));

  function importCard() {
    const msg = messageBox();
    const path = field({ label: 'Path of the GGUF file on the server', name: 'path', required: true,
      placeholder: '/media/usb/model.gguf', hint: 'A file the daemon can read, e.g. on a mounted USB stick. It is copied into the models folder and checked.' });
    const id = field({ label: 'Model id (optional)', name: 'id', hint: 'Defaults to the file name without .gguf.' });
    const submit = button('Import', { kind: 'primary', type: 'submit' });
    const form = h('form', { class: 'form form-inline', novalidate: true }, path.wrap, id.wrap, h('div', { class: 'form-actions' }, submit), msg.el);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      msg.hide();
      const p = path.input.value.trim();
      if (!p) { msg.show('Enter the path of a .gguf file on the server.'); path.input.focus(); return; }
      await busy(submit, async () => {
        try {
          const body = { path: p };
          if (id.input.value.trim()) body.id = id.input.value.trim();
          const r = await api.post('/api/admin/models/import', body);
          announce(`Import of ${p} started.`);
          trackImport(r.import);
          path.input.value = '';
          id.input.value = '';
        } catch (err) {
          msg.show(err.message);
        }
      });
    });
    return card('Import a model', form);
  }

  const tracked = new Set();
  function trackImport(imp) {
    if (!imp || tracked.has(imp.import_id)) return;
    tracked.add(imp.import_id);
    const labelId = `import-${imp.import_id}-label`;
    const bar = h('progress', { max: 1, value: 0, 'aria-labelledby': labelId });
    const pct = h('span', { class: 'progress-text' }, '0%');
    const state = badge('running', 'info');
    const detail = h('p', { class: 'hint' });
    const box = h('div', { class: 'import-progress', dataset: { importId: imp.import_id } },
      h('p', { id: labelId, class: 'import-title' }, `Importing ${imp.id || imp.path}`, ' ', state),
      h('div', { class: 'progress-row' }, bar, pct), detail);
    imports.append(card('Import', box));
    const update = (i) => {
      const total = i.total || 0;
      const done = i.bytes || 0;
      bar.max = total || 1;
      bar.value = total ? done : 0;
      const p = total ? Math.floor((100 * done) / total) : 0;
      pct.textContent = `${i.state === 'done' ? 100 : p}%`;
      detail.textContent = `${fmtBytes(done)} of ${fmtBytes(total)} \u00b7 ${i.path}`;
      if (i.state === 'done') {
        bar.value = bar.max;
        state.className = 'badge badge-success';
        state.textContent = 'done';
        announce(`Model ${i.model?.id || i.id} imported.`, 'success');
        load();
      } else if (i.state === 'failed') {
        state.className = 'badge badge-danger';
        state.textContent = 'failed';
        detail.textContent = `Import failed: ${i.error || 'unknown error'}`;
        detail.className = 'message message-error';
        detail.setAttribute('role', 'alert');
        announce(`Import of ${i.path} failed: ${i.error || 'unknown error'}`, 'error');
      }
    };
    update(imp);
    const poll = async () => {
      if (closed) return;
      try {
        const r = await api.get(`/api/admin/models/imports/${seg(imp.import_id)}`);
        update(r.import);
        if (r.import.state === 'running') schedule(poll, 400);
      } catch (err) {
        detail.textContent = err.message;
        if (err.status !== 401 && err.status !== 404) schedule(poll, 2000);
      }
    };
    if (imp.state === 'running') schedule(poll, 200);
  }

  function schedule(fn, ms) {
    const t = window.setTimeout(() => { timers.delete(t); fn(); }, ms);
    timers.add(t);
  }

  async function action(btn, verb, m, fn) {
    await busy(btn, async () => {
      try {
        await fn();
        announce(`Model ${m.id}: ${verb}.`, 'success');
      } catch (err) {
        announce(`Model ${m.id}: ${err.message}`, 'error');
      }
    });
    load();
  }

  function stateBadge(m) {
    if (m.loading) return badge('loading', 'info');
    if (m.loaded) return badge(m.in_flight ? `loaded \u00b7 ${m.in_flight} in flight` : 'loaded', 'success');
    return badge('not loaded', 'neutral');
  }

  function actions(m) {
    if (!ctx.canWrite) return '\u2013';
    const wrap = h('div', { class: 'row-actions' });
    if (m.loaded || m.loading) {
      const b = button('Unload', { small: true, ariaLabel: `Unload ${m.id}`, disabled: m.loading });
      b.addEventListener('click', () => action(b, 'unloaded', m, () => api.post(`/api/admin/models/${seg(m.id)}/unload`)));
      wrap.append(b);
    } else {
      const b = button('Load', { small: true, kind: 'primary', ariaLabel: `Load ${m.id}` });
      b.addEventListener('click', () => action(b, 'loaded', m, () => api.post(`/api/admin/models/${seg(m.id)}/load`)));
      wrap.append(b);
    }
    const del = button('Delete', { small: true, kind: 'danger-ghost', ariaLabel: `Delete ${m.id}`, disabled: m.loaded || m.loading || !m.in_catalog });
    del.addEventListener('click', async () => {
      const ok = await confirmDialog({ title: `Delete ${m.id}?`, confirmLabel: 'Delete model',
        message: `The model leaves the catalog${m.path ? ` and its imported file ${m.path} is removed` : ''}. Applications using it get 404.` });
      if (ok) action(del, 'deleted', m, () => api.del(`/api/admin/models/${seg(m.id)}`));
    });
    wrap.append(del);
    return wrap;
  }

  let loadTimer = null;
  async function load() {
    try {
      const r = await api.get('/api/admin/models');
      if (closed) return;
      const models = r.models || [];
      replace(listBox, table({
        caption: 'Model catalog',
        empty: 'The catalog is empty: import a GGUF model above.',
        rowKey: (m) => m.id,
        columns: [
          { label: 'Model', render: (m) => h('span', { class: 'strong' }, m.id) },
          { label: 'Size', numeric: true, render: (m) => fmtBytes(m.bytes) },
          { label: 'Architecture', render: (m) => m.architecture || '\u2013' },
          { label: 'Quantization', render: (m) => m.quantization || '\u2013' },
          { label: 'Context', numeric: true, render: (m) => (m.context_length ? fmtInt(m.context_length) : '\u2013') },
          { label: 'SHA-256', render: (m) => (m.sha256 ? h('code', { class: 'hash' }, m.sha256) : '\u2013') },
          { label: 'State', render: stateBadge },
          { label: 'Actions', render: actions },
        ],
        rows: models,
      }));
      // While a model loads, look again shortly.
      window.clearTimeout(loadTimer);
      if (models.some((m) => m.loading)) loadTimer = window.setTimeout(load, 1000);
    } catch (err) {
      replace(listBox, h('p', { class: 'message message-error', role: 'alert' }, err.message));
    }
  }

  await load();
  api.get('/api/admin/models/imports').then((r) => {
    for (const i of r.imports || []) if (i.state === 'running') trackImport(i);
  }).catch(() => { /* the catalog is what matters; imports show when started here */ });

  return () => {
    closed = true;
    window.clearTimeout(loadTimer);
    for (const t of timers) window.clearTimeout(t);
  };
}

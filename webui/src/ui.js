// Small DOM helpers shared by the pages: elements built with textContent only (no
// innerHTML, so server data can never become markup), forms with labels, tables with
// scoped headers, badges, a confirmation dialog, the live status region and number/time
// formatting. Nothing here sets a style attribute: the CSP forbids inline styles, so looks
// come from classes in style.css and visibility from the `hidden` attribute.

// h('button', {class: 'btn', onclick: f}, 'Save'): attributes, on* listeners, children
// (strings become text nodes; null/false are skipped; arrays are flattened).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else if (k === 'checked' || k === 'selected' || k === 'disabled' || k === 'required' || k === 'readOnly') el[k] = Boolean(v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) { while (el.firstChild) el.firstChild.remove(); return el; }
export function replace(el, ...children) { clear(el); append(el, children); return el; }

let uid = 0;
export const nextId = (prefix = 'f') => `${prefix}-${++uid}`;

// The page's polite live region (index.html #status): status messages for screen readers,
// shown as a toast. kind: 'info' | 'success' | 'error'.
export function announce(message, kind = 'info') {
  const region = document.getElementById('status');
  if (!region) return;
  region.dataset.kind = kind;
  // Clear first so the same message twice is announced twice.
  region.textContent = '';
  window.setTimeout(() => { region.textContent = message; }, 30);
  window.clearTimeout(announce.timer);
  announce.timer = window.setTimeout(() => { region.textContent = ''; }, kind === 'error' ? 15000 : 6000);
}

// An inline message box inside a form or card; role=alert for errors.
export function messageBox() {
  const box = h('div', { class: 'message', hidden: true });
  return {
    el: box,
    show(text, kind = 'error') {
      box.className = `message message-${kind}`;
      box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
      box.textContent = text;
      box.hidden = false;
    },
    hide() { box.hidden = true; box.textContent = ''; },
  };
}

// A labelled form control. type: text, password, number, select, textarea, datetime-local...
// Returns {wrap, input}. `hint` is tied to the control by aria-describedby.
export function field({ label, type = 'text', name, id = nextId(name || 'f'), value, options, hint, required,
                        placeholder, autocomplete, min, step, inputmode, rows, readOnly, disabled }) {
  let input;
  if (type === 'select') {
    input = h('select', { id, name, required, disabled },
      (options || []).map((o) => (typeof o === 'string' ? h('option', { value: o }, o)
                                                        : h('option', { value: o.value, selected: o.selected }, o.label))));
    if (value !== undefined) input.value = value;
  } else if (type === 'textarea') {
    input = h('textarea', { id, name, rows: rows || 3, required, placeholder, readOnly, disabled });
    if (value !== undefined) input.value = value;
  } else {
    input = h('input', { id, name, type, value, required, placeholder, autocomplete, min, step, inputmode, readOnly, disabled });
  }
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
  return { wrap, input };
}

export function button(label, { kind = 'secondary', onclick, type = 'button', disabled, ariaLabel, id, small } = {}) {
  return h('button', { type, class: `btn btn-${kind}${small ? ' btn-sm' : ''}`, onclick, disabled, 'aria-label': ariaLabel, id }, label);
}

// Runs `fn` with `btn` disabled and marked busy, so a double click sends one request.
export async function busy(btn, fn) {
  const wasDisabled = btn.disabled;
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  try { return await fn(); } finally {
    btn.disabled = wasDisabled;
    btn.removeAttribute('aria-busy');
  }
}

export function badge(text, kind = 'neutral') { return h('span', { class: `badge badge-${kind}` }, text); }

export function card(title, ...children) {
  const id = nextId('card');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id, class: 'card-title' }, title), ...children);
}

// The page header: <h1> (focused after navigation) and an optional line of actions.
export function pageHeader(title, description, ...actions) {
  return h('div', { class: 'page-header' },
    h('div', {}, h('h1', { tabindex: '-1', id: 'page-title' }, title), description ? h('p', { class: 'lead' }, description) : null),
    actions.length ? h('div', { class: 'page-actions' }, ...actions) : null);
}

// A table in a keyboard-scrollable wrapper. columns: [{label, render(row) -> node|string,
// class?, numeric?}]; the first column is the row header (<th scope="row">).
export function table({ caption, columns, rows, empty = 'Nothing here yet.', rowKey }) {
  const capId = nextId('cap');
  const t = h('table', { class: 'table' },
    h('caption', { id: capId, class: caption?.visible ? '' : 'visually-hidden' }, caption?.text ?? caption ?? ''),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.numeric ? 'num' : c.class }, c.label)))),
    h('tbody', {}, rows.length === 0
      ? h('tr', {}, h('td', { colspan: columns.length, class: 'empty' }, empty))
      : rows.map((r) => h('tr', { dataset: rowKey ? { key: rowKey(r) } : undefined },
          columns.map((c, i) => h(i === 0 ? 'th' : 'td', { scope: i === 0 ? 'row' : undefined, class: c.numeric ? 'num' : c.class },
            c.render(r)))))));
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': capId }, t);
}

// A modal confirmation (<dialog>): resolves true when confirmed. The dialog returns focus
// to the element that opened it.
export function confirmDialog({ title, message, confirmLabel = 'Confirm', danger = true }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = nextId('dlg');
    const descId = nextId('dlgd');
    const ok = button(confirmLabel, { kind: danger ? 'danger' : 'primary' });
    const cancel = button('Cancel');
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': titleId, 'aria-describedby': descId },
      h('h2', { id: titleId }, title), h('p', { id: descId }, message),
      h('div', { class: 'dialog-actions' }, cancel, ok));
    const done = (v) => { dlg.close(); dlg.remove(); opener?.focus?.(); resolve(v); };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

// A modal form in a <dialog>: `build(form)` adds fields; `submit(form)` runs on submit and
// may throw (its message is shown in the dialog). Resolves with submit's result or null.
export function formDialog({ title, submitLabel = 'Save', build, submit }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = nextId('dlg');
    const msg = messageBox();
    const form = h('form', { class: 'form', novalidate: true });
    build(form);
    const save = button(submitLabel, { kind: 'primary', type: 'submit' });
    const cancel = button('Cancel');
    form.append(msg.el, h('div', { class: 'dialog-actions' }, cancel, save));
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': titleId }, h('h2', { id: titleId }, title), form);
    const done = (v) => { dlg.close(); dlg.remove(); opener?.focus?.(); resolve(v); };
    cancel.addEventListener('click', () => done(null));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(null); });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      msg.hide();
      try {
        const r = await busy(save, () => submit(form));
        done(r ?? true);
      } catch (err) {
        msg.show(err.message || String(err));
      }
    });
    document.body.append(dlg);
    dlg.showModal();
    form.querySelector('input, select, textarea')?.focus();
  });
}

// Formatting.
const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
export const fmtNumber = (n) => (n === undefined || n === null || Number.isNaN(n) ? '\u2013' : nf.format(n));
export function fmtInt(n) { return n === undefined || n === null ? '\u2013' : Math.round(n).toLocaleString(); }
export function fmtBytes(n) {
  if (n === undefined || n === null) return '\u2013';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; ++i; }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}
export function fmtTimeUs(us) {
  if (!us) return '\u2013';
  return new Date(us / 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}
export function fmtSeconds(s) {
  if (s === undefined || s === null || Number.isNaN(s)) return '\u2013';
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`;
}
export const fmtLimit = (v) => (!v ? 'no limit' : fmtInt(v));
export const fmtModels = (list) => (!list || list.length === 0 ? 'all models' : list.join(', '));

// "a, b ,c" -> ["a","b","c"]
export const parseList = (s) => String(s || '').split(',').map((x) => x.trim()).filter(Boolean);
// An optional non-negative integer field: '' -> undefined.
export function parseCount(value, label) {
  const s = String(value ?? '').trim();
  if (s === '') return undefined;
  if (!/^\d+$/.test(s)) throw new Error(`${label} must be a whole number (0 means no limit).`);
  return Number(s);
}

// <input type=datetime-local> value <-> Unix seconds (local time).
export function toLocalInput(unixS) {
  const d = new Date(unixS * 1000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
export function fromLocalInput(value) {
  if (!value) return undefined;
  const t = new Date(value).getTime();
  return Number.isNaN(t) ? undefined : Math.floor(t / 1000);
}

// A "Read only" note for auditors on pages with write controls.
export function readOnlyNote() {
  return h('p', { class: 'note' }, badge('Read only', 'neutral'), ' Your role is auditor: you can view everything here but change nothing.');
}

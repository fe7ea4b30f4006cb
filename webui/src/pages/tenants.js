// Tenants and their API keys. Tenants carry quotas (requests and tokens per minute,
// concurrent requests, allowed models; 0 or empty: no limit), editable in a dialog. Keys
// belong to a tenant, may narrow its quotas, and are shown once at creation (with a copy
// button and a warning); revoking asks for confirmation. Auditors see lists only.
import { api, seg } from '../api.js';
import {
  announce, badge, busy, button, card, confirmDialog, fmtLimit, fmtModels, fmtTimeUs, field, formDialog, h, messageBox,
  nextId, pageHeader, parseCount, parseList, readOnlyNote, replace, table,
} from '../ui.js';

export const title = 'Tenants and keys';

function quotaFields(prefix, limits = {}) {
  const f = {
    rpm: field({ label: 'Requests per minute', name: `${prefix}-rpm`, inputmode: 'numeric', value: limits.rpm ?? '', hint: '0: no limit; empty: the default' }),
    tpm: field({ label: 'Tokens per minute', name: `${prefix}-tpm`, inputmode: 'numeric', value: limits.tpm ?? '' }),
    concurrency: field({ label: 'Concurrent requests', name: `${prefix}-concurrency`, inputmode: 'numeric', value: limits.concurrency ?? '' }),
    models: field({ label: 'Allowed models', name: `${prefix}-models`, value: (limits.models || []).join(', '),
      hint: 'Comma-separated model ids; empty: all models' }),
  };
  const labels = { rpm: 'Requests per minute', tpm: 'Tokens per minute', concurrency: 'Concurrent requests' };
  f.read = () => {
    const out = {};
    for (const k of ['rpm', 'tpm', 'concurrency']) {
      const v = parseCount(f[k].input.value, labels[k]);
      if (v !== undefined) out[k] = v;
    }
    const models = parseList(f.models.input.value);
    if (models.length) out.models = models;
    return out;
  };
  f.nodes = [f.rpm.wrap, f.tpm.wrap, f.concurrency.wrap, f.models.wrap];
  return f;
}

export async function render(main, ctx) {
  main.append(pageHeader('Tenants and keys', 'Who may call the API, and how much.'));
  if (!ctx.canWrite) main.append(readOnlyNote());

  let tenants = [];
  const tenantsBox = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const keysBox = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const newKeyBox = h('div', { class: 'new-key', hidden: true, tabindex: '-1' });
  const keyFilter = field({ label: 'Show keys of tenant', name: 'key-filter', type: 'select', options: [{ value: '', label: 'All tenants' }] });
  keyFilter.input.addEventListener('change', () => loadKeys());
  const keyTenant = field({ label: 'Tenant', name: 'key-tenant', type: 'select', required: true, options: [] });

  // Create tenant.
  if (ctx.canWrite) {
    const msg = messageBox();
    const name = field({ label: 'Tenant name', name: 'tenant-name', required: true, hint: 'Letters, digits, dot, dash or underscore.' });
    const q = quotaFields('tenant');
    const submit = button('Create tenant', { kind: 'primary', type: 'submit' });
    const form = h('form', { class: 'form form-grid', novalidate: true }, name.wrap, ...q.nodes, msg.el,
      h('div', { class: 'form-actions' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      msg.hide();
      try {
        const body = { name: name.input.value.trim(), ...q.read() };
        if (!body.name) throw new Error('Enter a tenant name.');
        await busy(submit, () => api.post('/api/admin/tenants', body));
        announce(`Tenant ${body.name} created.`, 'success');
        form.reset();
        await loadTenants();
      } catch (err) { msg.show(err.message); }
    });
    main.append(h('details', { class: 'card card-collapsible' }, h('summary', {}, 'Create a tenant'), form));
  }
  main.append(card('Tenants', tenantsBox));

  // Create key.
  if (ctx.canWrite) {
    const msg = messageBox();
    const label = field({ label: 'Label', name: 'key-label', hint: 'What the key is for, e.g. the application\u2019s name.' });
    const q = quotaFields('key');
    const submit = button('Create key', { kind: 'primary', type: 'submit' });
    const form = h('form', { class: 'form form-grid', novalidate: true }, keyTenant.wrap, label.wrap, ...q.nodes, msg.el,
      h('div', { class: 'form-actions' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      msg.hide();
      try {
        if (!keyTenant.input.value) throw new Error('Choose the tenant the key belongs to (create a tenant first).');
        const body = { tenant: keyTenant.input.value, ...q.read() };
        if (label.input.value.trim()) body.label = label.input.value.trim();
        const r = await busy(submit, () => api.post('/api/admin/keys', body));
        showNewKey(r.key, r.key_id, body.tenant);
        form.reset();
        keyTenant.input.value = body.tenant;
        await loadKeys();
      } catch (err) { msg.show(err.message); }
    });
    main.append(h('details', { class: 'card card-collapsible' }, h('summary', {}, 'Create an API key'), form));
  }
  main.append(newKeyBox);
  main.append(card('API keys', h('div', { class: 'toolbar' }, keyFilter.wrap), keysBox));

  function showNewKey(key, keyId, tenant) {
    const inputId = nextId('newkey');
    const input = h('input', { id: inputId, type: 'text', readOnly: true, value: key, class: 'mono', spellcheck: 'false', autocomplete: 'off' });
    const copy = button('Copy key', { kind: 'primary', onclick: async () => {
      try {
        await navigator.clipboard.writeText(key);
      } catch {
        input.select();
        document.execCommand('copy');
      }
      announce('The key is copied to the clipboard.', 'success');
    } });
    const dismiss = button('I have stored it', { onclick: () => { newKeyBox.hidden = true; replace(newKeyBox); } });
    replace(newKeyBox,
      h('div', { class: 'message message-warning', role: 'alert' },
        h('h2', { class: 'card-title' }, `New key ${keyId} for ${tenant}`),
        h('p', {}, h('strong', {}, 'Copy this key now: it is shown only once.'), ' Supernode stores only its hash; if it is lost, revoke it and create another.')),
      h('div', { class: 'field' }, h('label', { for: inputId }, 'API key'), h('div', { class: 'copy-row' }, input, copy)),
      h('div', { class: 'form-actions' }, dismiss));
    newKeyBox.hidden = false;
    newKeyBox.classList.add('card');
    input.focus();
    input.select();
  }

  async function editQuotas(t) {
    let q;
    const r = await formDialog({
      title: `Quotas of ${t.name}`,
      submitLabel: 'Save quotas',
      build: (form) => { q = quotaFields(`edit-${t.name}`, t.limits || {}); form.append(...q.nodes); },
      submit: async () => {
        const body = q.read();
        if (!('models' in body)) body.models = parseList(q.models.input.value);
        return api.patch(`/api/admin/tenants/${seg(t.name)}`, body);
      },
    });
    if (r) { announce(`Quotas of ${t.name} saved.`, 'success'); await loadTenants(); }
  }

  async function revoke(k, btn) {
    const ok = await confirmDialog({ title: `Revoke key ${k.key_id}?`, confirmLabel: 'Revoke key',
      message: `Applications using this key (tenant ${k.tenant}${k.label ? `, ${k.label}` : ''}) get 401 from now on. This cannot be undone.` });
    if (!ok) return;
    await busy(btn, async () => {
      try {
        await api.del(`/api/admin/keys/${seg(k.key_id)}`);
        announce(`Key ${k.key_id} revoked.`, 'success');
      } catch (err) { announce(err.message, 'error'); }
    });
    await loadKeys();
  }

  const limitsText = (l = {}) => `${fmtLimit(l.rpm)} rpm \u00b7 ${fmtLimit(l.tpm)} tpm \u00b7 ${fmtLimit(l.concurrency)} concurrent`;

  async function loadTenants() {
    try {
      tenants = (await api.get('/api/admin/tenants')).tenants || [];
    } catch (err) {
      replace(tenantsBox, h('p', { class: 'message message-error', role: 'alert' }, err.message));
      return;
    }
    const cols = [
      { label: 'Tenant', render: (t) => h('span', { class: 'strong' }, t.name) },
      { label: 'Requests / min', numeric: true, render: (t) => fmtLimit(t.limits?.rpm) },
      { label: 'Tokens / min', numeric: true, render: (t) => fmtLimit(t.limits?.tpm) },
      { label: 'Concurrent', numeric: true, render: (t) => fmtLimit(t.limits?.concurrency) },
      { label: 'Models', render: (t) => fmtModels(t.limits?.models) },
      { label: 'Created', render: (t) => fmtTimeUs(t.created_us) },
    ];
    if (ctx.canWrite) {
      cols.push({ label: 'Actions', render: (t) => button('Edit quotas', { small: true, ariaLabel: `Edit quotas of ${t.name}`, onclick: () => editQuotas(t) }) });
    }
    replace(tenantsBox, table({ caption: 'Tenants', columns: cols, rows: tenants, rowKey: (t) => t.name, empty: 'No tenant yet.' }));
    const opts = (sel, first) => {
      const keep = sel.value;
      replace(sel, first ? h('option', { value: '' }, first) : null, tenants.map((t) => h('option', { value: t.name }, t.name)));
      if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
    };
    opts(keyFilter.input, 'All tenants');
    opts(keyTenant.input, null);
  }

  async function loadKeys() {
    let keys;
    try {
      keys = (await api.get('/api/admin/keys', { tenant: keyFilter.input.value })).keys || [];
    } catch (err) {
      replace(keysBox, h('p', { class: 'message message-error', role: 'alert' }, err.message));
      return;
    }
    const cols = [
      { label: 'Key id', render: (k) => h('code', {}, k.key_id) },
      { label: 'Tenant', render: (k) => k.tenant },
      { label: 'Label', render: (k) => k.label || '\u2013' },
      { label: 'Limits', render: (k) => limitsText(k.limits) },
      { label: 'Created', render: (k) => fmtTimeUs(k.created_us) },
      { label: 'State', render: (k) => (k.revoked ? badge('revoked', 'danger') : badge('active', 'success')) },
    ];
    if (ctx.canWrite) {
      cols.push({ label: 'Actions', render: (k) => {
        if (k.revoked) return '\u2013';
        const b = button('Revoke', { small: true, kind: 'danger-ghost', ariaLabel: `Revoke key ${k.key_id}` });
        b.addEventListener('click', () => revoke(k, b));
        return b;
      } });
    }
    replace(keysBox, table({ caption: 'API keys', columns: cols, rows: keys, rowKey: (k) => k.key_id, empty: 'No key yet.' }));
  }

  await loadTenants();
  await loadKeys();
}

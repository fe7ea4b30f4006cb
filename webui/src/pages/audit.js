// The audit log (GET /api/admin/audit, newest first): filters by time, actor and action,
// and a check of the whole hash chain (GET /api/admin/audit/verify) whose result is shown
// and announced.
import { api } from '../api.js';
import { badge, busy, button, card, field, fmtTimeUs, fromLocalInput, h, pageHeader, replace, table } from '../ui.js';

export const title = 'Audit log';

export async function render(main) {
  const from = field({ label: 'From', name: 'audit-from', type: 'datetime-local' });
  const to = field({ label: 'To', name: 'audit-to', type: 'datetime-local' });
  const actor = field({ label: 'Actor', name: 'audit-actor', placeholder: 'e.g. admin' });
  const action = field({ label: 'Action', name: 'audit-action', placeholder: 'e.g. key.create' });
  const limit = field({ label: 'Rows', name: 'audit-limit', type: 'select', options: ['50', '200', '1000'], value: '200' });
  const apply = button('Show entries', { kind: 'primary', type: 'submit' });
  const form = h('form', { class: 'form filters', novalidate: true }, from.wrap, to.wrap, actor.wrap, action.wrap, limit.wrap,
    h('div', { class: 'form-actions' }, apply));

  const verifyBtn = button('Verify chain', { kind: 'secondary' });
  const verifyStatus = h('div', { class: 'verify-status', role: 'status', 'aria-live': 'polite' });
  main.append(pageHeader('Audit log', 'Every change on this box, in a tamper-evident chain.', verifyBtn),
    verifyStatus, card('Filters', form));
  const listBox = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  main.append(card('Entries', listBox));

  verifyBtn.addEventListener('click', () => busy(verifyBtn, async () => {
    replace(verifyStatus, badge('checking…', 'info'));
    try {
      const v = await api.get('/api/admin/audit/verify');
      if (v.verified) {
        replace(verifyStatus, h('p', { class: 'message message-success' }, badge('verified', 'success'),
          ` The chain of ${v.rows} entries is intact.`));
      } else {
        replace(verifyStatus, h('p', { class: 'message message-error' }, badge('broken', 'danger'),
          ` The chain is broken at entry ${v.first_bad_seq}: ${v.problem || 'unknown problem'}. ` +
          'Entries from there on may have been changed outside Supernode.'));
      }
    } catch (err) {
      replace(verifyStatus, h('p', { class: 'message message-error' }, err.message));
    }
  }));

  async function load() {
    const q = { from: fromLocalInput(from.input.value), to: fromLocalInput(to.input.value), actor: actor.input.value.trim(),
                action: action.input.value.trim(), limit: limit.input.value };
    let entries;
    try {
      entries = (await api.get('/api/admin/audit', q)).entries || [];
    } catch (err) {
      replace(listBox, h('p', { class: 'message message-error', role: 'alert' }, err.message));
      return;
    }
    replace(listBox, table({
      caption: 'Audit entries, newest first',
      empty: 'No entry matches these filters.',
      rowKey: (e) => String(e.seq),
      columns: [
        { label: 'Seq', numeric: true, render: (e) => String(e.seq) },
        { label: 'Time', render: (e) => fmtTimeUs(e.time_us) },
        { label: 'Actor', render: (e) => e.actor },
        { label: 'Action', render: (e) => h('code', {}, e.action) },
        { label: 'Detail', class: 'wrap', render: (e) => (typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail)) },
      ],
      rows: entries,
    }));
  }
  form.addEventListener('submit', async (e) => { e.preventDefault(); await busy(apply, load); });
  await load();
}

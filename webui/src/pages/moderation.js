// Content moderation's term list (GET/POST/DELETE /api/admin/moderation/terms): a term
// applies to prompts (input), answers (output) or both, from the next request on.
import { api, seg } from '../api.js';
import {
  announce, badge, busy, button, card, confirmDialog, field, h, messageBox, pageHeader, readOnlyNote, replace, table,
} from '../ui.js';

export const title = 'Moderation';

const SCOPES = [
  { value: 'both', label: 'Prompts and answers' },
  { value: 'input', label: 'Prompts only' },
  { value: 'output', label: 'Answers only' },
];

export async function render(main, ctx) {
  main.append(pageHeader('Moderation', 'Terms that make a request fail (prompts) or an answer stop (answers).'));
  if (!ctx.canWrite) main.append(readOnlyNote());
  const listBox = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));

  if (ctx.canWrite) {
    const msg = messageBox();
    const term = field({ label: 'Term', name: 'term', required: true, hint: 'Matched case-insensitively.' });
    const scope = field({ label: 'Applies to', name: 'scope', type: 'select', options: SCOPES, value: 'both' });
    const submit = button('Add term', { kind: 'primary', type: 'submit' });
    const form = h('form', { class: 'form form-inline', novalidate: true }, term.wrap, scope.wrap, h('div', { class: 'form-actions' }, submit), msg.el);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      msg.hide();
      const t = term.input.value.trim();
      if (!t) { msg.show('Enter a term.'); term.input.focus(); return; }
      await busy(submit, async () => {
        try {
          await api.post('/api/admin/moderation/terms', { term: t, scope: scope.input.value });
          announce(`Term \u201c${t}\u201d added.`, 'success');
          term.input.value = '';
          await load();
        } catch (err) { msg.show(err.message); }
      });
    });
    main.append(card('Add a term', form));
  }
  main.append(card('Terms', listBox));

  async function remove(t, btn) {
    const ok = await confirmDialog({ title: `Remove \u201c${t.term}\u201d?`, confirmLabel: 'Remove term',
      message: 'Requests with this term are no longer refused, from the next request on.' });
    if (!ok) return;
    await busy(btn, async () => {
      try {
        await api.del(`/api/admin/moderation/terms/${seg(t.term)}`);
        announce(`Term \u201c${t.term}\u201d removed.`, 'success');
      } catch (err) { announce(err.message, 'error'); }
    });
    await load();
  }

  async function load() {
    let terms;
    try {
      terms = (await api.get('/api/admin/moderation/terms')).terms || [];
    } catch (err) {
      replace(listBox, h('p', { class: 'message message-error', role: 'alert' }, err.message));
      return;
    }
    const cols = [
      { label: 'Term', render: (t) => t.term },
      { label: 'Applies to', render: (t) => badge(SCOPES.find((s) => s.value === t.scope)?.label || t.scope, t.scope === 'both' ? 'info' : 'neutral') },
    ];
    if (ctx.canWrite) {
      cols.push({ label: 'Actions', render: (t) => {
        const b = button('Remove', { small: true, kind: 'danger-ghost', ariaLabel: `Remove term ${t.term}` });
        b.addEventListener('click', () => remove(t, b));
        return b;
      } });
    }
    replace(listBox, table({ caption: 'Moderation terms', columns: cols, rows: terms, rowKey: (t) => t.term,
      empty: 'No term: nothing is refused for its content.' }));
  }
  await load();
}

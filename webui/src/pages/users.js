// The console's users (admin only: GET/POST/PATCH/DELETE /api/admin/users): add a user as
// admin or auditor, change a role or a password, delete. The server refuses to delete
// the last admin or yourself; the buttons say so up front.
import { api, seg } from '../api.js';
import {
  announce, badge, busy, button, card, confirmDialog, field, fmtTimeUs, formDialog, h, messageBox, pageHeader, replace, table,
} from '../ui.js';

export const title = 'Users';
export const adminOnly = true;

const ROLES = [
  { value: 'admin', label: 'admin: may change everything' },
  { value: 'auditor', label: 'auditor: may read, changes nothing' },
];

export async function render(main, ctx) {
  main.append(pageHeader('Users', 'Who may sign in to this console.'));
  const listBox = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));

  const msg = messageBox();
  const username = field({ label: 'User name', name: 'new-username', required: true, autocomplete: 'off' });
  const role = field({ label: 'Role', name: 'new-role', type: 'select', options: ROLES, value: 'auditor' });
  const pw = field({ label: 'Password', name: 'new-password', type: 'password', required: true, autocomplete: 'new-password' });
  const pw2 = field({ label: 'Password again', name: 'new-password2', type: 'password', required: true, autocomplete: 'new-password' });
  const submit = button('Add user', { kind: 'primary', type: 'submit' });
  const form = h('form', { class: 'form form-grid', novalidate: true }, username.wrap, role.wrap, pw.wrap, pw2.wrap, msg.el,
    h('div', { class: 'form-actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.hide();
    const u = username.input.value.trim();
    if (!u || !pw.input.value) return msg.show('Enter a user name and a password.');
    if (pw.input.value !== pw2.input.value) return msg.show('The two passwords differ: type the same password twice.');
    await busy(submit, async () => {
      try {
        await api.post('/api/admin/users', { username: u, password: pw.input.value, role: role.input.value });
        announce(`User ${u} added as ${role.input.value}.`, 'success');
        form.reset();
        role.input.value = 'auditor';
        await load();
      } catch (err) { msg.show(err.message); }
    });
  });
  main.append(h('details', { class: 'card card-collapsible' }, h('summary', {}, 'Add a user'), form), card('Users', listBox));

  async function setRole(u, select, btn) {
    await busy(btn, async () => {
      try {
        await api.patch(`/api/admin/users/${seg(u.username)}`, { role: select.value });
        announce(`${u.username} is now ${select.value}.`, 'success');
      } catch (err) { announce(err.message, 'error'); }
    });
    await load();
  }

  async function setPassword(u) {
    let a;
    let b;
    const r = await formDialog({
      title: `New password for ${u.username}`,
      submitLabel: 'Set password',
      build: (f) => {
        a = field({ label: 'New password', name: 'pw-a', type: 'password', required: true, autocomplete: 'new-password' });
        b = field({ label: 'New password again', name: 'pw-b', type: 'password', required: true, autocomplete: 'new-password' });
        f.append(a.wrap, b.wrap);
      },
      submit: async () => {
        if (!a.input.value) throw new Error('Enter the new password.');
        if (a.input.value !== b.input.value) throw new Error('The two passwords differ: type the same password twice.');
        return api.patch(`/api/admin/users/${seg(u.username)}`, { password: a.input.value });
      },
    });
    if (r) announce(`Password of ${u.username} changed.`, 'success');
  }

  async function remove(u, btn) {
    const ok = await confirmDialog({ title: `Delete ${u.username}?`, confirmLabel: 'Delete user',
      message: `${u.username} can no longer sign in; their sessions end.` });
    if (!ok) return;
    await busy(btn, async () => {
      try {
        await api.del(`/api/admin/users/${seg(u.username)}`);
        announce(`User ${u.username} deleted.`, 'success');
      } catch (err) { announce(err.message, 'error'); }
    });
    await load();
  }

  async function load() {
    let users;
    try {
      users = (await api.get('/api/admin/users')).users || [];
    } catch (err) {
      replace(listBox, h('p', { class: 'message message-error', role: 'alert' }, err.message));
      return;
    }
    const admins = users.filter((u) => u.role === 'admin').length;
    replace(listBox, table({
      caption: 'Users',
      rowKey: (u) => u.username,
      columns: [
        { label: 'User', render: (u) => [u.username, u.username === ctx.user.username ? [' ', badge('you', 'info')] : null] },
        { label: 'Role', render: (u) => {
          const id = `role-${u.username}`;
          const sel = h('select', { id, 'aria-label': `Role of ${u.username}` },
            ROLES.map((r) => h('option', { value: r.value, selected: r.value === u.role }, r.value)));
          const save = button('Change role', { small: true, ariaLabel: `Change role of ${u.username}` });
          save.addEventListener('click', () => setRole(u, sel, save));
          return h('div', { class: 'row-actions' }, sel, save);
        } },
        { label: 'Created', render: (u) => fmtTimeUs(u.created_us) },
        { label: 'Last sign-in', render: (u) => fmtTimeUs(u.last_login_us) },
        { label: 'Actions', render: (u) => {
          const pwBtn = button('Set password', { small: true, ariaLabel: `Set password of ${u.username}`, onclick: () => setPassword(u) });
          const lastAdmin = u.role === 'admin' && admins <= 1;
          const del = button('Delete', { small: true, kind: 'danger-ghost', ariaLabel: `Delete user ${u.username}`,
            disabled: u.username === ctx.user.username || lastAdmin });
          del.addEventListener('click', () => remove(u, del));
          return h('div', { class: 'row-actions' }, pwBtn, del);
        } },
      ],
      rows: users,
    }));
  }
  await load();
}

// First-run setup: proves access to the box with the one-time token the daemon wrote to
// STATE_DIR/setup-token, and creates the first admin (POST /api/admin/setup), then signs in.
import { api, login } from '../api.js';
import { announce, busy, button, field, h, messageBox } from '../ui.js';

export const title = 'Set up Supernode';
export const auth = false;

export function render(main, ctx) {
  const msg = messageBox();
  const token = field({ label: 'Setup token', name: 'token', required: true, autocomplete: 'off',
    hint: 'The one-time token in the file setup-token of the state directory, e.g. sudo cat /var/lib/supernode/setup-token' });
  const user = field({ label: 'Admin user name', name: 'username', required: true, autocomplete: 'username', value: 'admin' });
  const pw = field({ label: 'Password', name: 'password', type: 'password', required: true, autocomplete: 'new-password',
    hint: 'Use a long passphrase: this account can change everything on the box.' });
  const pw2 = field({ label: 'Password again', name: 'password2', type: 'password', required: true, autocomplete: 'new-password' });
  const submit = button('Create admin and sign in', { kind: 'primary', type: 'submit' });
  const form = h('form', { class: 'form', novalidate: true }, token.wrap, user.wrap, pw.wrap, pw2.wrap, msg.el,
    h('div', { class: 'form-actions' }, submit));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.hide();
    const t = token.input.value.trim();
    const u = user.input.value.trim();
    if (!t || !u || !pw.input.value) return msg.show('Fill in the setup token, a user name and a password.');
    if (pw.input.value !== pw2.input.value) {
      msg.show('The two passwords differ: type the same password twice.');
      pw2.input.focus();
      return;
    }
    await busy(submit, async () => {
      try {
        await api.post('/api/admin/setup', { token: t, username: u, password: pw.input.value });
        await login(u, pw.input.value);
        await ctx.reloadState();
        announce(`Welcome, ${u}. Supernode is set up.`, 'success');
        ctx.navigate('#/dashboard');
      } catch (err) {
        if (err.status === 409) {
          await ctx.reloadState();
          msg.show('Setup has already been done on this box: sign in instead.');
        } else if (err.status === 403) {
          msg.show(`The setup token is wrong: copy it again from STATE_DIR/setup-token. (${err.message})`);
        } else {
          msg.show(err.message);
        }
      }
    });
  });

  main.append(h('div', { class: 'auth-card' },
    h('h1', { tabindex: '-1', id: 'page-title' }, 'Set up Supernode'),
    h('p', { class: 'lead' }, 'Create the first administrator of this box.'),
    form));
  token.input.focus();
}

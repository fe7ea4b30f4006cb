// Sign-in (POST /api/admin/login). After too many wrong passwords the server locks the
// account (429 with Retry-After); the message says how long to wait.
import { login } from '../api.js';
import { announce, busy, button, field, h, messageBox } from '../ui.js';

export const title = 'Sign in';
export const auth = false;

export function render(main, ctx) {
  const msg = messageBox();
  const user = field({ label: 'User name', name: 'username', required: true, autocomplete: 'username' });
  const pw = field({ label: 'Password', name: 'password', type: 'password', required: true, autocomplete: 'current-password' });
  const submit = button('Sign in', { kind: 'primary', type: 'submit' });
  const form = h('form', { class: 'form', novalidate: true }, user.wrap, pw.wrap, msg.el,
    h('div', { class: 'form-actions' }, submit));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.hide();
    if (!user.input.value.trim() || !pw.input.value) return msg.show('Enter your user name and password.');
    await busy(submit, async () => {
      try {
        const u = await login(user.input.value.trim(), pw.input.value);
        announce(`Signed in as ${u.username} (${u.role}).`, 'success');
        ctx.afterLogin();
      } catch (err) {
        pw.input.value = '';
        if (err.status === 401) msg.show('Wrong user name or password.');
        else msg.show(err.message);
        pw.input.focus();
      }
    });
  });

  main.append(h('div', { class: 'auth-card' },
    h('h1', { tabindex: '-1', id: 'page-title' }, 'Sign in'),
    h('p', { class: 'lead' }, 'Sign in to administer this Supernode box.'),
    form));
  user.input.focus();
}

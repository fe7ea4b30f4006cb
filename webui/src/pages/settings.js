// Settings: the box's version and this session, and (admins) a download of the state
// database as a consistent SQLite backup (GET /api/admin/backup).
import { sessionInfo } from '../api.js';
import { card, h, pageHeader } from '../ui.js';

export const title = 'Settings';

export function render(main, ctx) {
  main.append(pageHeader('Settings', 'This box and your session.'));
  const s = sessionInfo();
  const idle = s.idleTimeoutS ? `${Math.round(s.idleTimeoutS / 60)} minutes without a request` : '\u2013';
  main.append(card('About',
    h('dl', { class: 'facts' },
      h('dt', {}, 'Version'), h('dd', {}, ctx.state?.version || '\u2013'),
      h('dt', {}, 'Signed in as'), h('dd', {}, `${ctx.user.username} (${ctx.user.role})`),
      h('dt', {}, 'Session ends after'), h('dd', {}, idle))));

  if (ctx.canWrite) {
    main.append(card('Backup',
      h('p', {}, 'A consistent copy of the state database: catalog, tenants, keys (hashed), quotas, usage, audit log, ',
        'moderation terms and users. Keep it somewhere safe: it holds password and key hashes.'),
      h('p', {}, h('a', { class: 'btn btn-primary', href: '/api/admin/backup', download: 'supernode-state.sqlite3', id: 'backup-link' },
        'Download backup'))));
  } else {
    main.append(card('Backup', h('p', { class: 'note' }, 'Backups are for admins: your role is auditor.')));
  }
}

// The admin console's shell: session bootstrap, hash routing (#/page), the sidebar, the
// narrow-screen menu and the skip link. Each page is one ES module under pages/ exporting
//   title: string
//   auth: false for pages shown without a session (setup, login); default true
//   adminOnly: true for pages an auditor may not open (users)
//   render(main, ctx) -> optional cleanup function (closing streams and timers)
// ctx = {user, canWrite, navigate(hash), refreshSession(), params}.
import { ApiError, api, canWrite, currentUser, logout, onUnauthorized, restoreSession } from './api.js';
import { announce, h, replace } from './ui.js';

const PAGES = ['setup', 'login', 'dashboard', 'models', 'playground', 'tenants', 'usage', 'audit', 'moderation',
               'users', 'settings'];
const DEFAULT_PAGE = 'dashboard';

const main = document.getElementById('main');
const body = document.body;
let cleanup = null;
let state = null;        // GET /api/admin/state
let renderSeq = 0;       // a newer navigation makes an older, still loading one moot
let firstRender = true;

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function parseHash() {
  const m = /^#\/([a-z-]*)(?:\?(.*))?$/.exec(location.hash);
  if (!m) return null;
  return { page: m[1] || DEFAULT_PAGE, params: new URLSearchParams(m[2] || '') };
}

async function loadState() {
  try {
    state = await api.get('/api/admin/state');
  } catch (e) {
    state = null;
    throw e;
  }
  const v = document.getElementById('version');
  if (v) v.textContent = state.version ? `supernoded ${state.version}` : '';
  return state;
}

function updateChrome(page, signedIn) {
  const user = currentUser();
  const authLayout = !signedIn;
  body.classList.toggle('layout-auth', authLayout);
  body.classList.toggle('layout-app', !authLayout);
  body.classList.remove('layout-loading');
  document.getElementById('user-box').hidden = !user;
  document.getElementById('sidebar').hidden = authLayout;
  document.getElementById('menu-button').hidden = authLayout;
  if (user) {
    document.getElementById('user-name').textContent = user.username;
    document.getElementById('user-role').textContent = user.role;
  }
  for (const li of document.querySelectorAll('[data-admin-only]')) li.hidden = !canWrite();
  for (const a of document.querySelectorAll('.nav-list a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  setMenuOpen(false);
}

async function route() {
  const parsed = parseHash();
  if (!parsed) {
    // "#main" (the skip link) and the like are not routes: keep the current page.
    if (!location.hash || location.hash === '#' || location.hash === '#/') navigate(`#/${DEFAULT_PAGE}`);
    return;
  }
  let { page } = parsed;
  if (!PAGES.includes(page)) page = 'not-found';
  const seq = ++renderSeq;

  let mod;
  try {
    if (!state) await loadState();
    if (state.setup_required && page !== 'setup') return navigate('#/setup');
    if (!state.setup_required && page === 'setup') return navigate('#/login');
    mod = await import(`./pages/${page}.js`);
    if (mod.auth !== false && !currentUser()) {
      const user = await restoreSession();
      if (!user) {
        sessionStorage.setItem('sn.after-login', location.hash);
        return navigate('#/login');
      }
    }
    if (page === 'login' && currentUser()) return navigate(`#/${DEFAULT_PAGE}`);
    if (mod.adminOnly && !canWrite()) {
      mod = { title: 'Not allowed', render: (m) => m.append(h('h1', { tabindex: '-1', id: 'page-title' }, 'Not allowed'),
        h('p', {}, 'This page is for admins. Your role is auditor.')) };
    }
  } catch (e) {
    if (seq !== renderSeq) return;
    updateChrome(page, Boolean(currentUser()));
    replace(main, h('h1', { tabindex: '-1', id: 'page-title' }, 'Cannot load the console'),
      h('p', { class: 'message message-error', role: 'alert' }, e instanceof ApiError ? e.message : `${e.message || e}`),
      h('p', {}, h('button', { type: 'button', class: 'btn btn-primary', onclick: () => route() }, 'Try again')));
    return;
  }
  if (seq !== renderSeq) return;

  if (cleanup) { try { cleanup(); } catch { /* a page's cleanup must not block navigation */ } cleanup = null; }
  updateChrome(page, Boolean(currentUser()) && mod.auth !== false);
  document.title = `${mod.title} \u00b7 Supernode`;
  delete main.dataset.page;
  main.setAttribute('aria-busy', 'true');
  replace(main);
  const ctx = {
    user: currentUser(),
    canWrite: canWrite(),
    params: parsed.params,
    state,
    navigate,
    afterLogin: () => {
      const next = sessionStorage.getItem('sn.after-login');
      sessionStorage.removeItem('sn.after-login');
      navigate(next && !/#\/(login|setup)/.test(next) ? next : `#/${DEFAULT_PAGE}`);
    },
    reloadState: async () => { state = null; await loadState(); },
    isCurrent: () => seq === renderSeq,
  };
  try {
    const c = await mod.render(main, ctx);
    if (seq === renderSeq) cleanup = typeof c === 'function' ? c : null;
    else if (typeof c === 'function') c();
  } catch (e) {
    if (seq !== renderSeq) return;
    main.append(h('p', { class: 'message message-error', role: 'alert' }, e.message || String(e)));
  }
  // Move focus to the new page's heading (not on the first load: the browser starts at the top).
  if (!firstRender) document.getElementById('page-title')?.focus({ preventScroll: false });
  firstRender = false;
  main.dataset.page = page;
  main.setAttribute('aria-busy', 'false');
}

function setMenuOpen(open) {
  const btn = document.getElementById('menu-button');
  btn.setAttribute('aria-expanded', String(open));
  body.classList.toggle('menu-open', open);
}

function init() {
  onUnauthorized(() => {
    if (!/^#\/(login|setup)/.test(location.hash)) sessionStorage.setItem('sn.after-login', location.hash);
    announce('Your session has ended: sign in again.', 'error');
    navigate('#/login');
  });
  document.getElementById('menu-button').addEventListener('click', () => {
    setMenuOpen(!body.classList.contains('menu-open'));
  });
  document.getElementById('sidebar').addEventListener('click', (e) => {
    if (e.target.closest('a')) setMenuOpen(false);
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && body.classList.contains('menu-open')) {
      setMenuOpen(false);
      document.getElementById('menu-button').focus();
    }
  });
  document.getElementById('skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    main.focus();
  });
  document.getElementById('logout-button').addEventListener('click', async () => {
    try {
      await logout();
      announce('Signed out.', 'success');
    } catch (e) {
      announce(e.message, 'error');
    }
    navigate('#/login');
  });
  window.addEventListener('hashchange', route);
  route();
}

init();

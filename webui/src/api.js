// The admin API client (daemon/ADMIN_API.md): every page talks to the server through here.
// - Sends and receives JSON; state-changing requests (POST, PUT, PATCH, DELETE) carry the
//   session's CSRF token in X-CSRF-Token (from login, or GET /api/admin/session after a
//   reload). The session itself is the HttpOnly cookie sn_session, which scripts never see.
// - Failures become an ApiError whose message says what the admin can do about it
//   (the server's {"error":{"message","code"}} plus advice for the code).
// - A 401 on anything but the sign-in calls means the session ended: the handler set with
//   onUnauthorized (app.js: go to the login page) runs, and the ApiError is still thrown.
// The page is single-threaded; this module keeps the session in module state.

const session = { csrfToken: null, user: null, idleTimeoutS: 0 };
let unauthorizedHandler = () => {};

export class ApiError extends Error {
  constructor(status, code, message, retryAfterS = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;          // HTTP status, 0 when the server could not be reached
    this.code = code;              // the server's error code (ADMIN_API.md), or "network"
    this.retryAfterS = retryAfterS; // from Retry-After on 429
  }
}

export function onUnauthorized(handler) { unauthorizedHandler = handler; }
export function currentUser() { return session.user; }
export function canWrite() { return session.user?.role === 'admin'; }
export function setSession({ csrf_token, user, idle_timeout_s }) {
  session.csrfToken = csrf_token ?? null;
  session.user = user ?? null;
  session.idleTimeoutS = idle_timeout_s ?? 0;
}
export function clearSession() { setSession({}); }
export function sessionInfo() { return { ...session }; }

// Advice appended to the server's message, per error code, so the admin knows what to do.
const ADVICE = {
  unauthorized: 'Sign in again.',
  forbidden: 'Your role does not allow this; ask an admin.',
  csrf: 'The page\u2019s security token is stale: reload the page and try again.',
  not_found: 'It may have been removed meanwhile: refresh the list.',
  conflict: 'Refresh the page to see the current state.',
  too_large: 'Send less data.',
  unsupported_media_type: 'Reload the page (the client sent an unexpected format).',
  unavailable: 'The server is busy or shutting down: try again in a moment.',
  internal: 'The server failed: see its log (journalctl -u supernode).',
};

// The message for an error answer: the server's own words, then advice for its code.
export function errorMessage(status, body, retryAfterS) {
  const err = body && typeof body === 'object' ? body.error : null;
  const code = err?.code || codeForStatus(status);
  let text = (err?.message || `The server answered ${status}`).trim();
  if (code === 'locked' || status === 429) {
    const wait = retryAfterS != null ? ` Try again in ${formatWait(retryAfterS)}.` : ' Try again later.';
    return { code: code || 'locked', message: `${ensureStop(text)}${wait}` };
  }
  const advice = ADVICE[code];
  if (advice && !text.toLowerCase().includes(advice.toLowerCase())) text = `${ensureStop(text)} ${advice}`;
  return { code, message: text };
}

function ensureStop(text) { return /[.!?:]$/.test(text) ? text : `${text}.`; }

function formatWait(s) {
  if (s < 90) return `${s} second${s === 1 ? '' : 's'}`;
  const m = Math.ceil(s / 60);
  return `${m} minutes`;
}

function codeForStatus(status) {
  return { 400: 'invalid_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 409: 'conflict',
           413: 'too_large', 415: 'unsupported_media_type', 429: 'locked', 503: 'unavailable' }[status] ||
         (status >= 500 ? 'internal' : 'error');
}

// Paths whose 401 is an answer for the form, not a lapsed session.
const NO_REDIRECT = ['/api/admin/login', '/api/admin/session', '/api/admin/state', '/api/admin/setup'];

// request('GET', '/api/admin/models') -> parsed JSON (or {} for an empty body).
// `query`: an object of query parameters; empty values are left out.
export async function request(method, path, { body, query, signal } = {}) {
  const url = withQuery(path, query);
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store', signal };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && session.csrfToken) headers['X-CSRF-Token'] = session.csrfToken;
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Cannot reach the server: check the network connection and that supernoded is running.');
  }
  const text = await res.text();
  let data = {};
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: { message: text.slice(0, 200) } }; }
  }
  if (res.ok) return data;
  const retry = res.headers.get('Retry-After');
  const { code, message } = errorMessage(res.status, data, retry != null && retry !== '' ? Number(retry) : null);
  const error = new ApiError(res.status, code, message, retry ? Number(retry) : null);
  if (res.status === 401 && !NO_REDIRECT.includes(path)) {
    clearSession();
    unauthorizedHandler(error);
  }
  throw error;
}

export function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export const api = {
  get: (path, query, opts = {}) => request('GET', path, { ...opts, query }),
  post: (path, body = {}, opts = {}) => request('POST', path, { ...opts, body }),
  patch: (path, body = {}, opts = {}) => request('PATCH', path, { ...opts, body }),
  del: (path, opts = {}) => request('DELETE', path, opts),
};

// Sign-in helpers: they keep the session's CSRF token and user.
export async function login(username, password) {
  const data = await api.post('/api/admin/login', { username, password });
  setSession(data);
  return data.user;
}

export async function restoreSession() {
  try {
    setSession(await api.get('/api/admin/session'));
    return session.user;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { clearSession(); return null; }
    throw e;
  }
}

export async function logout() {
  try { await api.post('/api/admin/logout'); } finally { clearSession(); }
}

// Path segments in URLs: model ids, user names, terms may hold any character.
export const seg = (s) => encodeURIComponent(String(s));

// The admin web page in Chromium against a real supernoded (daemon/ADMIN_API.md), as an
// admin would use it: first-run setup with the token from STATE_DIR/setup-token, sign-in
// and a wrong password, the live dashboard, a tenant and a key (shown once, copied), that
// key used through the official openai client and its usage on the usage page (and its
// CSV), a model imported from a server path with its progress, loaded, chatted with in the
// playground (streamed, TTFT, tokens/s, cached tokens), unloaded and deleted, moderation
// terms, the audit chain, users, the backup, CSRF rejection, an auditor who can change
// nothing, sign-out and the lockout after five wrong passwords.
// Every page gets a screenshot at 1280x800 and 390x844 (SUPERNODE_ARTIFACTS) and an
// axe-core check at both sizes; serious or critical violations fail. Script errors and
// Content-Security-Policy violations anywhere fail the last test.
// The tests run in order and build on each other (one daemon, one browser, one page).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import {
  ARTIFACTS, NARROW, WIDE, checkPage, generateChatModel, launchBrowser, readSetupToken, startServer, tempDir,
} from './harness.mjs';

const T = { timeout: 120000 };
const ADMIN = { username: 'admin', password: 'correct horse battery staple' };
const AUDITOR = { username: 'audrey', password: 'auditor passphrase 42' };
const CHAT_MODEL = 'tiny-chat';        // served from the start (-m)
const IMPORTED = 'imported-chat';      // imported through the page

describe('the admin web page', () => {
  let tmp;
  let server;
  let browser;
  let context;
  let page;
  let apiKey;
  let keyId;
  let importFile;
  const pageErrors = [];
  const cspViolations = [];

  before(async () => {
    tmp = tempDir();
    const chatFile = generateChatModel(tmp.dir, CHAT_MODEL);
    importFile = generateChatModel(tmp.dir, IMPORTED);
    server = await startServer({ dir: tmp.dir, models: [chatFile] });
    console.log(`# server at ${server.origin}; artifacts in ${ARTIFACTS}`);
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: WIDE, baseURL: server.origin, colorScheme: 'light' });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin });
    await context.addInitScript(() => {
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
      });
    });
    page = await context.newPage();
    page.setDefaultTimeout(15000);
    page.on('pageerror', (e) => pageErrors.push(`${e.message}\n${e.stack || ''}`));
    page.on('console', (msg) => {
      const text = msg.text();
      if (/Content Security Policy|Refused to (load|execute|apply|evaluate|connect)/i.test(text)) cspViolations.push(text);
    });
  });

  after(async () => {
    await browser?.close();
    if (server) {
      const alive = server.alive();
      await server.stop();
      if (!alive) console.log(`# the server died during the tests; its log:\n${server.logTail()}`);
    }
    tmp?.remove();
  });

  // Waits until the page `name` has rendered (app.js sets main[data-page] when done).
  async function onPage(name) {
    await page.locator(`main[data-page="${name}"]`).waitFor({ timeout: 30000 });
  }
  async function nav(label, name) {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
    await onPage(name);
  }
  const main = () => page.locator('main');
  const tableRow = (key) => page.locator(`tr[data-key="${key}"]`);
  // A fetch from inside the page (same origin, the session cookie), returning {status, body}.
  const pageFetch = (url, init = {}) => page.evaluate(async ([u, i]) => {
    const r = await fetch(u, i);
    let body = null;
    try { body = await r.json(); } catch { /* not JSON */ }
    return { status: r.status, body };
  }, [url, init]);
  // Fills and sends the sign-in form; resolves to the HTTP status of POST /api/admin/login.
  async function signIn({ username, password }) {
    await page.getByLabel('User name').fill(username);
    await page.getByLabel('Password', { exact: true }).fill(password);
    const [res] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/api/admin/login'),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    return res.status();
  }

  test('the page is served with a strict Content-Security-Policy', T, async () => {
    const res = await page.request.get('/');
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-type'], /^text\/html/);
    const policy = res.headers()['content-security-policy'];
    assert.ok(policy, 'the page must be served with a Content-Security-Policy header');
    assert.match(policy, /script-src 'self'/);
    assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval|https?:/);
    const js = await page.request.get('/assets/app.js');
    assert.equal(js.status(), 200);
    assert.match(js.headers()['content-type'], /javascript/);
    const etag = js.headers().etag;
    if (etag) {
      const again = await page.request.get('/assets/app.js', { headers: { 'If-None-Match': etag } });
      assert.equal(again.status(), 304, 'a matching If-None-Match gets 304');
    }
    assert.equal((await page.request.get('/assets/vendor/chart.js/chart.mjs')).status(), 200);
  });

  test('first-run setup with the token from STATE_DIR/setup-token', T, async () => {
    await page.goto('/');
    await onPage('setup');
    await checkPage(page, 'setup');
    const token = await readSetupToken(server.stateDir);
    await page.getByLabel('Setup token').fill(token);
    await page.getByLabel('Admin user name').fill(ADMIN.username);
    await page.getByLabel('Password', { exact: true }).fill(ADMIN.password);
    await page.getByLabel('Password again').fill('something else');
    await page.getByRole('button', { name: 'Create admin and sign in' }).click();
    await assert.doesNotReject(page.getByRole('alert').filter({ hasText: 'The two passwords differ' }).waitFor());
    await page.getByLabel('Password again').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Create admin and sign in' }).click();
    await onPage('dashboard');
    await page.locator('#user-name', { hasText: ADMIN.username }).waitFor();
    const state = await pageFetch('/api/admin/state');
    assert.equal(state.body.setup_required, false);
  });

  test('the dashboard shows hardware, loaded models and live charts', T, async () => {
    await page.locator('.page-header .badge', { hasText: 'Live' }).waitFor({ timeout: 15000 });
    assert.equal(await main().locator('canvas').count(), 5);
    await main().getByRole('region', { name: 'Loaded models' }).getByText(CHAT_MODEL).waitFor();
    await main().locator('.facts dt', { hasText: 'CPU' }).waitFor();
    await checkPage(page, 'dashboard');
    // Narrow screens: the sidebar is behind the menu button, which opens and closes it.
    await page.setViewportSize(NARROW);
    const menu = page.getByRole('button', { name: 'Menu' });
    assert.equal(await menu.getAttribute('aria-expanded'), 'false');
    assert.equal(await page.getByRole('navigation', { name: 'Main' }).isVisible(), false);
    await menu.click();
    assert.equal(await menu.getAttribute('aria-expanded'), 'true');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }).waitFor({ state: 'visible' });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.waitForTimeout(300);  // the drawer slides in
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-menu-390x844.png') });
    await page.keyboard.press('Escape');
    assert.equal(await menu.getAttribute('aria-expanded'), 'false');
    await page.setViewportSize(WIDE);
  });

  test('sign out, a wrong password, sign in again; the skip link works by keyboard', T, async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await onPage('login');
    await checkPage(page, 'login');
    assert.equal(await signIn({ username: ADMIN.username, password: 'not the password' }), 401);
    await page.getByRole('alert').filter({ hasText: 'Wrong user name or password' }).waitFor();
    // Backwards by keyboard from the form reaches the skip link first in the page.
    await page.getByLabel('User name').focus();
    for (let i = 0; i < 6; ++i) {
      await page.keyboard.press('Shift+Tab');
      if (await page.evaluate(() => document.activeElement?.id === 'skip-link')) break;
    }
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to main content');
    assert.ok(await page.locator('#skip-link').isVisible(), 'the focused skip link is visible');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');
    await signIn(ADMIN);
    await onPage('dashboard');
  });

  test('create a tenant, edit its quotas, create a key shown once and copy it', T, async () => {
    await nav('Tenants and keys', 'tenants');
    const create = page.locator('details', { hasText: 'Create a tenant' });
    await create.locator('summary').click();
    await create.getByLabel('Tenant name').fill('acme');
    await create.getByLabel('Requests per minute').fill('600');
    await create.getByRole('button', { name: 'Create tenant' }).click();
    await tableRow('acme').waitFor();
    assert.match(await tableRow('acme').innerText(), /600/);

    await page.getByRole('button', { name: 'Edit quotas of acme' }).click();
    const dialog = page.getByRole('dialog', { name: 'Quotas of acme' });
    await dialog.getByLabel('Tokens per minute').fill('100000');
    await dialog.getByRole('button', { name: 'Save quotas' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.waitForFunction(() => /100,000|100000/.test(document.querySelector('tr[data-key="acme"]')?.textContent || ''));

    const keyForm = page.locator('details', { hasText: 'Create an API key' });
    await keyForm.locator('summary').click();
    await keyForm.getByLabel('Tenant', { exact: true }).selectOption('acme');
    await keyForm.getByLabel('Label').fill('webui-test');
    await keyForm.getByRole('button', { name: 'Create key' }).click();
    const shown = page.locator('.new-key');
    await shown.getByText('it is shown only once').waitFor();
    apiKey = await shown.getByLabel('API key').inputValue();
    assert.ok(apiKey.length >= 16, `the new key: ${apiKey}`);
    keyId = (await shown.locator('h2').innerText()).match(/New key (\S+) for acme/)[1];
    await shown.getByRole('button', { name: 'Copy key' }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), apiKey);
    await tableRow(keyId).getByText('active').waitFor();
    await checkPage(page, 'tenants');
    // Shown once: after a reload the key is nowhere on the page.
    await page.reload();
    await onPage('tenants');
    assert.equal(await page.locator('.new-key').isVisible(), false);
    assert.ok(!(await main().innerText()).includes(apiKey));
  });

  test('the key works through the openai client and its usage appears on the usage page', T, async () => {
    const client = new OpenAI({ apiKey, baseURL: `${server.origin}/v1`, maxRetries: 0, timeout: 60000 });
    const r = await client.chat.completions.create({ model: CHAT_MODEL, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8 });
    assert.ok(r.usage.completion_tokens > 0);
    const stream = await client.chat.completions.create({ model: CHAT_MODEL, messages: [{ role: 'user', content: 'Hi again' }],
      max_tokens: 8, stream: true, stream_options: { include_usage: true } });
    let usage = null;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    assert.ok(usage?.completion_tokens > 0, 'the stream ends with usage');

    await nav('Usage', 'usage');
    await page.getByLabel('Tenant', { exact: true }).selectOption('acme');
    // Usage is flushed to the database in the background: look again until it is there.
    const deadline = Date.now() + 60000;
    for (;;) {
      await page.getByRole('button', { name: 'Show usage' }).click();
      await page.waitForTimeout(500);
      const row = tableRow(keyId);
      if (await row.count()) {
        const cells = await row.locator('td').allInnerTexts();
        if (Number(cells[1].replace(/\D/g, '')) >= 2) break;
      }
      if (Date.now() > deadline) assert.fail(`the usage of key ${keyId} did not reach the usage page within 60 s`);
      await page.waitForTimeout(1500);
    }
    await main().locator('section[data-tenant="acme"] canvas').waitFor();
    const csvHref = await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href');
    assert.match(csvHref, /^\/api\/admin\/usage\?.*format=csv/);
    assert.match(csvHref, /tenant=acme/);
    const csv = await page.request.get(csvHref);
    assert.equal(csv.status(), 200);
    assert.ok((await csv.text()).includes(keyId), 'the CSV holds the key\u2019s rows');
    await checkPage(page, 'usage');
  });

  test('import a model from a server path with progress, then load it', T, async () => {
    await nav('Models', 'models');
    await tableRow(CHAT_MODEL).waitFor();
    await page.getByLabel('Path of the GGUF file on the server').fill(importFile);
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    const progress = page.locator('.import-progress');
    await progress.locator('progress').waitFor();
    await progress.locator('.badge', { hasText: 'done' }).waitFor({ timeout: 60000 });
    assert.equal(await progress.locator('.progress-text').innerText(), '100%');
    assert.equal(await progress.locator('progress').evaluate((p) => p.value === p.max), true);
    await tableRow(IMPORTED).waitFor();
    assert.match(await tableRow(IMPORTED).innerText(), /not loaded/);
    await page.getByRole('button', { name: `Load ${IMPORTED}` }).click();
    await tableRow(IMPORTED).locator('.badge', { hasText: /^loaded/ }).waitFor({ timeout: 60000 });
    await checkPage(page, 'models');
  });

  test('the playground streams a chat answer with TTFT, tokens/s and cached tokens', T, async () => {
    await nav('Playground', 'playground');
    await page.getByLabel('API key').fill(apiKey);
    await page.getByLabel('API key').dispatchEvent('change');
    await page.getByLabel('Model', { exact: true }).selectOption(IMPORTED);
    await page.getByLabel('Max tokens').fill('16');
    await page.getByLabel('Temperature').fill('0');
    for (let turn = 0; turn < 2; ++turn) {
      await page.getByLabel('Message', { exact: true }).fill('Tell me a short story about a robot.');
      await page.getByRole('button', { name: 'Send' }).click();
      await page.locator('.pg-status', { hasText: 'Answer complete' }).waitFor({ timeout: 60000 });
      assert.match(await page.locator('[data-stat="ttft"]').innerText(), /^\d+ ms$/);
      assert.match(await page.locator('[data-stat="completion"]').innerText(), /^[1-9]/);
      assert.match(await page.locator('[data-stat="cached"]').innerText(), /^\d/);
      assert.match(await page.locator('[data-stat="prompt"]').innerText(), /^[1-9]/);
    }
    assert.equal(await page.locator('.msg-assistant').count(), 2);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('sn.playground.key')), apiKey);
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
    await checkPage(page, 'playground');
  });

  test('unload and delete the imported model (with confirmation)', T, async () => {
    await nav('Models', 'models');
    await page.getByRole('button', { name: `Unload ${IMPORTED}` }).click();
    await tableRow(IMPORTED).locator('.badge', { hasText: 'not loaded' }).waitFor({ timeout: 60000 });
    await page.getByRole('button', { name: `Delete ${IMPORTED}` }).click();
    const dialog = page.getByRole('dialog', { name: `Delete ${IMPORTED}?` });
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.equal(await tableRow(IMPORTED).count(), 1, 'cancel keeps the model');
    await page.getByRole('button', { name: `Delete ${IMPORTED}` }).click();
    await dialog.getByRole('button', { name: 'Delete model' }).click();
    await tableRow(IMPORTED).waitFor({ state: 'detached' });
  });

  test('moderation terms: add and remove', T, async () => {
    await nav('Moderation', 'moderation');
    await page.getByLabel('Term', { exact: true }).fill('forbidden-word');
    await page.getByLabel('Applies to').selectOption('input');
    await page.getByRole('button', { name: 'Add term' }).click();
    await tableRow('forbidden-word').getByText('Prompts only').waitFor();
    await page.getByLabel('Term', { exact: true }).fill('second-term');
    await page.getByRole('button', { name: 'Add term' }).click();
    await tableRow('second-term').waitFor();
    await checkPage(page, 'moderation');
    await page.getByRole('button', { name: 'Remove term second-term' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove term' }).click();
    await tableRow('second-term').waitFor({ state: 'detached' });
  });

  test('the audit log lists the changes and its chain verifies', T, async () => {
    await nav('Audit log', 'audit');
    await main().locator('tbody tr').first().waitFor();
    assert.ok(await main().locator('tbody tr').count() >= 3);
    await page.getByRole('button', { name: 'Verify chain' }).click();
    await page.locator('.verify-status', { hasText: 'intact' }).waitFor({ timeout: 30000 });
    await page.getByLabel('Actor').fill(ADMIN.username);
    await page.getByRole('button', { name: 'Show entries' }).click();
    await page.waitForTimeout(300);
    for (const actor of await main().locator('tbody tr td:nth-child(3)').allInnerTexts()) assert.equal(actor, ADMIN.username);
    await checkPage(page, 'audit');
  });

  test('users: add an auditor', T, async () => {
    await nav('Users', 'users');
    const add = page.locator('details', { hasText: 'Add a user' });
    await add.locator('summary').click();
    await add.getByLabel('User name').fill(AUDITOR.username);
    await add.getByLabel('Role').selectOption('auditor');
    await add.getByLabel('Password', { exact: true }).fill(AUDITOR.password);
    await add.getByLabel('Password again').fill(AUDITOR.password);
    await add.getByRole('button', { name: 'Add user' }).click();
    await tableRow(AUDITOR.username).waitFor();
    assert.equal(await page.getByLabel(`Role of ${AUDITOR.username}`, { exact: true }).inputValue(), 'auditor');
    assert.equal(await page.getByRole('button', { name: `Delete user ${ADMIN.username}` }).isDisabled(), true, 'you cannot delete yourself');
    await checkPage(page, 'users');
  });

  test('settings: the backup downloads the SQLite database', T, async () => {
    await nav('Settings', 'settings');
    const href = await page.getByRole('link', { name: 'Download backup' }).getAttribute('href');
    assert.equal(href, '/api/admin/backup');
    const res = await page.request.get(href);
    assert.equal(res.status(), 200);
    const body = await res.body();
    assert.equal(body.subarray(0, 15).toString('latin1'), 'SQLite format 3');
    await checkPage(page, 'settings');
  });

  test('a state-changing request without the CSRF token is refused (403)', T, async () => {
    const json = { 'Content-Type': 'application/json' };
    const none = await pageFetch('/api/admin/tenants', { method: 'POST', headers: json, body: JSON.stringify({ name: 'csrf-none' }) });
    assert.equal(none.status, 403);
    assert.equal(none.body?.error?.code, 'csrf');
    const wrong = await pageFetch('/api/admin/tenants', { method: 'POST', headers: { ...json, 'X-CSRF-Token': 'wrong' },
                                                         body: JSON.stringify({ name: 'csrf-wrong' }) });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.body?.error?.code, 'csrf');
    const del = await pageFetch(`/api/admin/keys/${encodeURIComponent(keyId)}`, { method: 'DELETE' });
    assert.equal(del.status, 403);
    // With the session's token the same request goes through: the header was the difference.
    const { body: s } = await pageFetch('/api/admin/session');
    const ok = await pageFetch('/api/admin/tenants', { method: 'POST', headers: { ...json, 'X-CSRF-Token': s.csrf_token },
                                                      body: JSON.stringify({ name: 'csrf-ok' }) });
    assert.equal(ok.status, 201);
    const tenants = (await pageFetch('/api/admin/tenants')).body.tenants.map((t) => t.name);
    assert.ok(!tenants.includes('csrf-none') && !tenants.includes('csrf-wrong'));
  });

  test('an auditor sees everything but can change nothing', T, async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await onPage('login');
    await signIn(AUDITOR);
    await onPage('dashboard');
    assert.equal(await page.locator('#user-role').innerText(), 'auditor');
    assert.equal(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).count(), 0);

    await nav('Tenants and keys', 'tenants');
    await tableRow('acme').waitFor();
    await main().getByText('Your role is auditor').waitFor();
    assert.equal(await page.locator('details', { hasText: 'Create a tenant' }).count(), 0);
    assert.equal(await page.locator('details', { hasText: 'Create an API key' }).count(), 0);
    assert.equal(await page.getByRole('button', { name: /Edit quotas|Revoke/ }).count(), 0);
    await checkPage(page, 'auditor-tenants');

    await nav('Models', 'models');
    await tableRow(CHAT_MODEL).waitFor();
    assert.equal(await page.getByRole('button', { name: /^(Import|Load|Unload|Delete)\b/ }).count(), 0);
    await checkPage(page, 'auditor-models');

    await nav('Moderation', 'moderation');
    await tableRow('forbidden-word').waitFor();
    assert.equal(await page.getByRole('button', { name: /Add term|Remove/ }).count(), 0);

    await nav('Settings', 'settings');
    assert.equal(await page.getByRole('link', { name: 'Download backup' }).count(), 0);

    await page.evaluate(() => { location.hash = '#/users'; });
    await onPage('users');
    await main().getByRole('heading', { name: 'Not allowed' }).waitFor();

    // The server refuses too, whatever the page shows.
    const { body: s } = await pageFetch('/api/admin/session');
    assert.equal(s.user.role, 'auditor');
    const post = await pageFetch('/api/admin/tenants', { method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf_token }, body: JSON.stringify({ name: 'by-auditor' }) });
    assert.equal(post.status, 403);
    assert.equal(post.body?.error?.code, 'forbidden');
    assert.equal((await pageFetch('/api/admin/users')).status, 403);
    assert.equal((await page.request.get('/api/admin/backup')).status(), 403);
  });

  test('sign-out ends the session', T, async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await onPage('login');
    assert.equal((await pageFetch('/api/admin/session')).status, 401);
    await page.evaluate(() => { location.hash = '#/models'; });
    await onPage('login');
    assert.equal(await page.locator('#user-box').isVisible(), false);
  });

  test('five wrong passwords lock the account (429, shown as a message)', T, async () => {
    let locked = 0;
    for (let attempt = 1; attempt <= 6 && !locked; ++attempt) {
      const status = await signIn({ username: AUDITOR.username, password: `wrong ${attempt}` });
      const alert = page.getByRole('alert').filter({ hasText: /Wrong user name or password|Try again/ });
      await alert.waitFor();
      if (status === 429) {
        locked = attempt;
        assert.match(await alert.innerText(), /Try again/);
      } else {
        assert.equal(status, 401);
        assert.ok(attempt <= 5, `attempt ${attempt} is still answered "wrong password"`);
      }
    }
    assert.ok(locked >= 5, `locked after ${locked} attempts`);
    // While locked, even the right password is refused, with the time to wait.
    assert.equal(await signIn(AUDITOR), 429);
    await page.getByRole('alert').filter({ hasText: /Try again in \d+/ }).waitFor();
    await checkPage(page, 'login-locked');
  });

  test('no script error and no Content-Security-Policy violation on any page', T, async () => {
    const fromEvents = await page.evaluate(() => window.__csp || []);
    assert.deepEqual([...cspViolations, ...fromEvents], [], 'CSP violations');
    assert.deepEqual(pageErrors, [], 'uncaught script errors');
  });
});

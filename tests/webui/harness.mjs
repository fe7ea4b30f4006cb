// The server and browser under the web page tests (webui.test.mjs).
// - startServer(): the real supernoded on 127.0.0.1, port 0, plain HTTP, over a fresh state
//   directory (the way tests/daemon/js/daemon.mjs starts it), serving a generated chat model.
//   Every daemon started here is killed when the test process exits, however it exits.
// - launchBrowser(): Debian's Chromium through playwright-core (CHROMIUM overrides the path).
// - checkPage(): a screenshot at 1280x800 and at 390x844 under the artifacts folder, and
//   axe-core at both sizes; serious or critical violations fail the test.
// Environment: SUPERNODED, SUPERNODE_CLI, SUPERNODE_SOURCE_DIR, SUPERNODE_ARTIFACTS,
// CHROMIUM (see run.sh). One Node process per test file; nothing is shared.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.SUPERNODE_SOURCE_DIR || path.resolve(here, '../..');
export const SUPERNODED = process.env.SUPERNODED || path.join(SOURCE_DIR, 'build/bin/supernoded');
export const SUPERNODE_CLI = process.env.SUPERNODE_CLI || path.join(path.dirname(SUPERNODED), 'supernode');
export const ARTIFACTS = process.env.SUPERNODE_ARTIFACTS || path.join(path.dirname(path.dirname(SUPERNODED)), 'artifacts/webui');

const CHAT_TEMPLATE =
  '{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}' +
  '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';

const live = new Set();
function killAll() {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { killAll(); process.exit(128 + os.constants.signals[sig]); });
}

export function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sn-webui-'));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

// A tiny random-weight model with a ChatML template at DIR/NAME.gguf (model id NAME).
export function generateChatModel(dir, name) {
  const file = path.join(dir, `${name}.gguf`);
  if (!fs.existsSync(SUPERNODE_CLI)) {
    throw new Error(`the supernode CLI is not at ${SUPERNODE_CLI}: build it (cmake --build BUILD --target supernode)`);
  }
  const tmpl = path.join(dir, `${name}.jinja`);
  fs.writeFileSync(tmpl, CHAT_TEMPLATE);
  execFileSync(SUPERNODE_CLI, ['gen-model', '-o', file, '--tokenizer', 'spm', '--chat-template', tmpl],
               { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000 });
  return file;
}

// Starts the server over a state directory under `dir`, serving `models` (files). Resolves
// to {origin, stateDir, logTail(), stop()} once it listens.
export async function startServer({ dir, models = [] }) {
  const stateDir = path.join(dir, 'state');
  const logFile = path.join(dir, 'server.log');
  if (!fs.existsSync(SUPERNODED)) {
    throw new Error(`supernoded not found at ${SUPERNODED}: build it (cmake --build BUILD --target supernoded supernode) and set SUPERNODED`);
  }
  const bin = SUPERNODED;
  const args = ['--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--plain-http', '--state-dir', stateDir,
                '--admin-socket', path.join(dir, 'admin.sock'), '-t', '2', '--context', '512'];
  for (const m of models) args.push('-m', m);
  const log = fs.openSync(logFile, 'w');
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', log], env: { ...process.env, SUPERNODE_SOURCE_DIR: SOURCE_DIR } });
  fs.closeSync(log);
  live.add(child);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => { exited = { code, signal }; live.delete(child); resolve(exited); });
  });
  const logTail = () => {
    try { return fs.readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n'); } catch { return ''; }
  };
  const { host, port } = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the server did not print "listening HOST:PORT" within 60 s:\n${logTail()}`));
    }, 60000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^listening (\S+):(\d+)$/m.exec(out);
      if (m) { clearTimeout(timer); resolve({ host: m[1], port: Number(m[2]) }); }
    });
    exitPromise.then((e) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (code ${e.code}, signal ${e.signal}) before listening:\n${logTail()}`));
    });
  });
  child.stdout.resume();
  return {
    origin: `http://${host}:${port}`,
    stateDir,
    logTail,
    alive: () => exited === null,
    async stop(graceMs = 10000) {
      if (exited) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const e = await exitPromise;
      clearTimeout(timer);
      return e;
    },
  };
}

// STATE_DIR/setup-token, waiting briefly for the daemon to write it.
export async function readSetupToken(stateDir) {
  const file = path.join(stateDir, 'setup-token');
  for (let i = 0; i < 50; ++i) {
    if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${file} was not written: the daemon must write a one-time setup token on first start`);
}

export function findChromium() {
  for (const c of [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']) {
    if (c && fs.existsSync(c)) return c;
  }
  return null;
}

export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  const executablePath = findChromium();
  if (!executablePath) throw new Error('Chromium not found (apt-get install chromium, or set CHROMIUM)');
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

export const WIDE = { width: 1280, height: 800 };
export const NARROW = { width: 390, height: 844 };

const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

// axe-core over the page as it is; returns the serious and critical violations, described.
export async function axeViolations(page) {
  // page.evaluate runs through the DevTools protocol, which the page's CSP does not govern.
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(axeSource);
  const result = await page.evaluate(async () => window.axe.run(document, {
    resultTypes: ['violations'],
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  }));
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) =>
    `${v.impact}: ${v.id} (${v.help}) at ${v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}${n.failureSummary ? ` [${n.failureSummary.replace(/\s+/g, ' ')}]` : ''}`).join('; ')}`);
}

// Screenshots of the page at both sizes (ARTIFACTS/NAME-1280x800.png, -390x844.png) and axe
// at both; throws listing every serious or critical violation. Leaves the page at 1280x800.
export async function checkPage(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const problems = [];
  for (const size of [NARROW, WIDE]) {
    await page.setViewportSize(size);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(250);  // charts and layout follow the resize
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}-${size.width}x${size.height}.png`), fullPage: true });
    for (const v of await axeViolations(page)) problems.push(`${size.width}x${size.height} ${v}`);
  }
  if (problems.length) throw new Error(`axe-core found on page ${name}:\n  ${problems.join('\n  ')}`);
}

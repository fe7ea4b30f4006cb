// The real supernoded for the JavaScript tests (openai.test.mjs, raw_http.test.mjs): starts
// the binary on 127.0.0.1, port 0, plain HTTP, over a fresh temporary state directory and
// admin socket, reads the bound port from its "listening HOST:PORT" stdout line and the
// first API key from STATE_DIR/initial-api-key, and stops it with SIGTERM (SIGKILL after a
// grace period). Every daemon started here is also killed when the test process exits,
// however it exits, so a failing test leaves no process behind.
//
// Paths come from the environment (tests/CMakeLists.txt sets them for ctest):
//   SUPERNODED            the daemon binary          (default: <repo>/build/bin/supernoded)
//   SUPERNODE_CLI         the `supernode` CLI binary (default: next to SUPERNODED)
//   SUPERNODE_SHARED_DIR  ../shared with models/stories260K.gguf (optional)
//   MODEL                 the completion model       (default: SHARED/models/stories260K.gguf,
//                                                     else a generated one)
// Each test file runs in its own Node process; nothing here is shared between files.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');

export const SUPERNODED = process.env.SUPERNODED || path.join(repo, 'build/bin/supernoded');
export const SUPERNODE_CLI = process.env.SUPERNODE_CLI || path.join(path.dirname(SUPERNODED), 'supernode');
export const SHARED_DIR = process.env.SUPERNODE_SHARED_DIR || path.resolve(repo, '../shared');

// A ChatML-style template (the one tests/daemon/daemon_test.cpp stores in its generated model).
const CHAT_TEMPLATE =
  '{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}' +
  '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';

const live = new Set();  // child processes not yet reaped
function killAll() {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killAll();
    process.exit(128 + os.constants.signals[sig]);
  });
}

function requireBinary(file, what) {
  if (!fs.existsSync(file)) {
    throw new Error(`${what} not found at ${file}: build it (cmake --build BUILD --target supernoded supernode) ` +
                    'and set SUPERNODED / SUPERNODE_CLI');
  }
}

// A fresh directory under the system temp dir; removed by the returned function.
export function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sn-js-'));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

// `supernode ARGS...`; returns stdout. Throws with stderr on a non-zero exit.
export function cli(args, { timeout = 30000 } = {}) {
  requireBinary(SUPERNODE_CLI, 'supernode (the CLI)');
  try {
    return execFileSync(SUPERNODE_CLI, args, { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`supernode ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

// A tiny random-weight model with a chat template, at DIR/NAME.gguf (model id NAME).
export function generateChatModel(dir, name = 'tiny-chat') {
  const tmpl = path.join(dir, `${name}.jinja`);
  fs.writeFileSync(tmpl, CHAT_TEMPLATE);
  const file = path.join(dir, `${name}.gguf`);
  cli(['gen-model', '-o', file, '--tokenizer', 'spm', '--chat-template', tmpl]);
  return file;
}

// The completion model: MODEL, else the shared stories260K, else null (callers generate one).
export function sharedCompletionModel() {
  if (process.env.MODEL) {
    if (!fs.existsSync(process.env.MODEL)) throw new Error(`MODEL=${process.env.MODEL} does not exist`);
    return process.env.MODEL;
  }
  const stories = path.join(SHARED_DIR, 'models/stories260K.gguf');
  return fs.existsSync(stories) ? stories : null;
}

export const modelId = (file) => path.basename(file).replace(/\.gguf$/, '');

// Starts supernoded over `models` in a state directory under `dir`. Resolves once it listens.
export async function startDaemon({ dir, models, extraArgs = [], startTimeoutMs = 60000 }) {
  requireBinary(SUPERNODED, 'supernoded');
  const stateDir = path.join(dir, 'state');
  const adminSocket = path.join(dir, 'admin.sock');
  const logFile = path.join(dir, 'supernoded.log');
  const args = ['--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--plain-http', '--state-dir', stateDir,
                '--admin-socket', adminSocket, '-t', '2', '--context', '512'];
  for (const m of models) args.push('-m', m);
  args.push(...extraArgs);
  const log = fs.openSync(logFile, 'w');
  const child = spawn(SUPERNODED, args, { stdio: ['ignore', 'pipe', log] });
  fs.closeSync(log);
  live.add(child);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      live.delete(child);
      resolve(exited);
    });
  });
  const logTail = () => {
    try { return fs.readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n'); } catch { return ''; }
  };

  const { host, port, metricsPort } = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`supernoded did not print "listening HOST:PORT" within ${startTimeoutMs} ms:\n${logTail()}`));
    }, startTimeoutMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^listening (\S+):(\d+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        const mm = /^metrics (\S+):(\d+)$/m.exec(out);
        resolve({ host: m[1], port: Number(m[2]), metricsPort: mm ? Number(mm[2]) : 0 });
      }
    });
    exitPromise.then((e) => {
      clearTimeout(timer);
      reject(new Error(`supernoded exited (code ${e.code}, signal ${e.signal}) before listening:\n${logTail()}`));
    });
  });
  child.stdout.resume();  // keep draining stdout so the daemon never blocks on it
  const key = fs.readFileSync(path.join(stateDir, 'initial-api-key'), 'utf8').trim();

  return {
    host,
    port,
    metricsPort,  // /metrics: never on the API port
    key,
    stateDir,
    adminSocket,
    baseURL: `http://${host}:${port}/v1`,
    pid: child.pid,
    logTail,
    alive: () => exited === null,
    // `supernode --admin-socket SOCK ARGS...` against this daemon.
    admin: (cliArgs) => cli(['--admin-socket', adminSocket, ...cliArgs]),
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

// A test file's teardown: stops the daemon (printing its log tail if it had died during the
// tests) and removes the temporary folder.
export async function stopAndCleanUp(daemon, tmp) {
  if (daemon) {
    const alive = daemon.alive();
    await daemon.stop();
    if (!alive) console.log(`# supernoded died during the tests; its log:\n${daemon.logTail()}`);
  }
  tmp?.remove();
}

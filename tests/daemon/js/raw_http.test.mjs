// supernoded's HTTP/1.1 front door under hostile or clumsy clients, over raw sockets
// (node:net, no client library): exact status codes and OpenAI error objects for bad JSON,
// wrong types, missing or unknown models, an over-large body or header and a garbage
// request line; a client that trickles its request byte by byte; 64 idle half-open
// connections; a client that hangs up mid-stream; missing or non-Bearer credentials;
// keep-alive. After each, the daemon must still serve an ordinary request.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir, startDaemon, stopAndCleanUp, generateChatModel, modelId } from './daemon.mjs';

const T = { timeout: 60000 };

// Parses one HTTP response from the front of `buf`; null while incomplete. `ended`: the peer
// closed, so a body without a length ends here.
function parseResponse(buf, ended = false) {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0])}`);
  const headers = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let p = headEnd + 4;
  let body;
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const parts = [];
    for (;;) {
      const eol = buf.indexOf('\r\n', p);
      if (eol < 0) return null;
      const len = parseInt(buf.subarray(p, eol).toString('latin1'), 16);
      if (buf.length < eol + 2 + len + 2) return null;
      p = eol + 2;
      if (len === 0) {
        p += 2;
        break;
      }
      parts.push(buf.subarray(p, p + len));
      p += len + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    const len = Number(headers['content-length']);
    if (buf.length < p + len) return null;
    body = buf.subarray(p, p + len);
    p += len;
  } else {
    if (!ended) return null;
    body = buf.subarray(p);
    p = buf.length;
  }
  return { status: Number(m[1]), headers, body: body.toString('utf8'), size: p };
}

// One client connection with a receive buffer.
class Conn {
  static open(port) {
    return new Promise((resolve, reject) => {
      const c = new Conn();
      c.socket = net.connect({ host: '127.0.0.1', port }, () => resolve(c));
      c.socket.once('error', reject);
    });
  }

  constructor() {
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.error = null;
    this.waiters = [];
  }

  set socket(s) {
    this._socket = s;
    s.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    s.on('end', () => { this.ended = true; this.wake(); });
    s.on('close', () => { this.ended = true; this.wake(); });
    // A server that answers and closes while we still send resets the connection; what it
    // sent before is already in `buf`.
    s.on('error', (e) => { this.error = e; this.ended = true; this.wake(); });
  }

  get socket() { return this._socket; }

  wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  write(data) {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve(false);
      this.socket.write(data, (err) => resolve(!err));
    });
  }

  // Waits until `pred()` holds or the time is up; returns pred().
  async waitFor(pred, ms) {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) return pred();
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    return true;
  }

  // The next whole response on this connection.
  async response(ms = 20000) {
    let r = null;
    await this.waitFor(() => (r = parseResponse(this.buf, this.ended)) !== null || (this.ended && this.buf.length === 0), ms);
    if (!r) {
      throw new Error(`no whole response within ${ms} ms (received ${this.buf.length} bytes` +
                      `${this.ended ? ', connection closed' : ''}${this.error ? `, ${this.error.code}` : ''}): ` +
                      JSON.stringify(this.buf.subarray(0, 300).toString('latin1')));
    }
    this.buf = this.buf.subarray(r.size);
    return r;
  }

  // Resolves true once the server has closed the connection.
  closed(ms = 5000) { return this.waitFor(() => this.ended, ms); }

  destroy() { this.socket.destroy(); }
}

// The text of an HTTP/1.1 request.
function httpText({ method = 'POST', path = '/v1/completions', key, body, headers = {}, close = true }) {
  let s = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  if (key) s += `Authorization: Bearer ${key}\r\n`;
  if (close) s += 'Connection: close\r\n';
  for (const [k, v] of Object.entries(headers)) s += `${k}: ${v}\r\n`;
  if (body !== undefined) {
    s += `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
  }
  return s + '\r\n' + (body ?? '');
}

// One request on a fresh connection; the response.
async function roundTrip(port, text, ms = 20000) {
  const c = await Conn.open(port);
  try {
    await c.write(text);
    return await c.response(ms);
  } finally {
    c.destroy();
  }
}

// The body must be exactly an OpenAI error object; returns its `error`.
function assertOpenAiError(r, status, { param, code } = {}) {
  assert.equal(r.status, status, `status ${r.status}, body ${r.body}`);
  assert.match(r.headers['content-type'] ?? '', /^application\/json/);
  let j;
  assert.doesNotThrow(() => { j = JSON.parse(r.body); }, `the body is not JSON: ${r.body}`);
  assert.ok(j && typeof j.error === 'object' && j.error !== null, `no "error" object: ${r.body}`);
  const e = j.error;
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type'], r.body);
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 0, 'empty message');
  assert.equal(typeof e.type, 'string');
  assert.ok(e.param === null || typeof e.param === 'string', r.body);
  assert.ok(e.code === null || typeof e.code === 'string', r.body);
  if (param !== undefined) assert.equal(e.param, param, r.body);
  if (code !== undefined) assert.equal(e.code, code, r.body);
  return e;
}

describe('supernoded over raw HTTP/1.1', () => {
  let tmp;
  let daemon;
  let model;
  let port;
  let key;

  const completionBody = (extra = {}) => JSON.stringify({ model, prompt: 'hello', max_tokens: 2, temperature: 0, ...extra });

  // An ordinary completion, answered promptly: the daemon is still serving.
  async function assertStillServing() {
    assert.ok(daemon.alive(), `supernoded exited:\n${daemon.logTail()}`);
    const start = Date.now();
    const r = await roundTrip(port, httpText({ key, body: completionBody() }), 15000);
    assert.equal(r.status, 200, r.body);
    const j = JSON.parse(r.body);
    assert.equal(j.object, 'text_completion');
    assert.equal(typeof j.choices[0].text, 'string');
    assert.ok(Date.now() - start < 15000);
  }

  before(async () => {
    tmp = tempDir();
    const file = generateChatModel(tmp.dir, 'tiny');
    model = modelId(file);
    daemon = await startDaemon({ dir: tmp.dir, models: [file] });
    ({ port, key } = daemon);
  });

  after(() => stopAndCleanUp(daemon, tmp));

  test('bad JSON bodies: 400 or 404 with an OpenAI error naming the param', T, async () => {
    const send = (body, path) => roundTrip(port, httpText({ key, body, path }));
    assertOpenAiError(await send('{not json'), 400);
    assertOpenAiError(await send('{"model":'), 400);
    assertOpenAiError(await send(JSON.stringify([{ model, prompt: 'x' }])), 400);
    assertOpenAiError(await send(JSON.stringify('a string')), 400);
    assertOpenAiError(await send(completionBody({ max_tokens: 'ten' })), 400, { param: 'max_tokens' });
    assertOpenAiError(await send(completionBody({ stream: 'yes' })), 400, { param: 'stream' });
    assertOpenAiError(await send(completionBody({ temperature: '0' })), 400, { param: 'temperature' });
    assertOpenAiError(await send(JSON.stringify({ model, messages: 3 }), '/v1/chat/completions'), 400,
                      { param: 'messages' });
    assertOpenAiError(await send(JSON.stringify({ prompt: 'x', max_tokens: 1 })), 400, { param: 'model' });
    assertOpenAiError(await send(JSON.stringify({ model: 7, prompt: 'x' })), 400, { param: 'model' });
    assertOpenAiError(await send(JSON.stringify({ model: 'no-such-model', prompt: 'x' })), 404,
                      { param: 'model', code: 'model_not_found' });
    assertOpenAiError(
      await send(JSON.stringify({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
                 '/v1/chat/completions'),
      404, { code: 'model_not_found' });
    await assertStillServing();
  });

  test('a body over 4 MiB (with Content-Length): 413', T, async () => {
    const size = (4 << 20) + (1 << 20);
    const chunk = Buffer.alloc(64 << 10, 0x20);
    const head = `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\n` +
                 `Content-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`;
    const c = await Conn.open(port);
    try {
      // The body goes out 64 KiB at a time, and stops once an answer arrives: the daemon
      // answers from Content-Length and closes without reading the rest, and a write into
      // that reset connection would make Node drop the answer it has already received.
      await c.write(head);
      let sent = 0;
      while (sent < size && !(await c.waitFor(() => c.buf.length > 0 || c.ended, sent === 0 ? 1000 : 0))) {
        if (!(await c.write(chunk.subarray(0, Math.min(chunk.length, size - sent))))) break;
        sent += chunk.length;
      }
      const r = await c.response();
      assertOpenAiError(r, 413);
      assert.ok(await c.closed(), 'the connection stays open after 413');
    } finally {
      c.destroy();
    }
    await assertStillServing();
  });

  test('a 64 KiB header line: 431', T, async () => {
    const r = await roundTrip(port, httpText({ key, body: completionBody(), headers: { 'X-Big': 'a'.repeat(64 << 10) } }));
    assertOpenAiError(r, 431);
    await assertStillServing();
  });

  test('a garbage request line: 400', T, async () => {
    assertOpenAiError(await roundTrip(port, 'HELLO\r\n\r\n'), 400);
    assertOpenAiError(await roundTrip(port, 'GET / HTTP/9\x01\r\nHost: x\r\n\r\n'), 400);
    assertOpenAiError(await roundTrip(port, '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not TLS either\r\n\r\n'), 400);
    await assertStillServing();
  });

  test('a client that sends its request one byte every 50 ms is served', T, async () => {
    const text = Buffer.from(httpText({ key, body: completionBody() }));
    assert.ok(text.length < 300, `${text.length} bytes`);
    const c = await Conn.open(port);
    try {
      for (let i = 0; i < text.length; i++) {
        await c.write(text.subarray(i, i + 1));
        await sleep(50);
      }
      const r = await c.response();
      assert.equal(r.status, 200, r.body);
      assert.equal(JSON.parse(r.body).object, 'text_completion');
    } finally {
      c.destroy();
    }
    await assertStillServing();
  });

  test('64 idle half-sent connections do not keep a normal request from being served', T, async () => {
    const idle = [];
    try {
      for (let i = 0; i < 64; i++) {
        const c = await Conn.open(port);
        await c.write(`POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-${i}: `);
        idle.push(c);
      }
      await sleep(200);
      await assertStillServing();
      const models = await roundTrip(port, httpText({ method: 'GET', path: '/v1/models', key }), 10000);
      assert.equal(models.status, 200, models.body);
      // None of the idle ones was answered or dropped meanwhile.
      for (const c of idle) assert.equal(c.buf.length, 0);
    } finally {
      for (const c of idle) c.destroy();
    }
  });

  test('a client that hangs up mid-stream: the daemon cancels it and serves on', T, async () => {
    const c = await Conn.open(port);
    try {
      await c.write(httpText({ key, body: completionBody({ max_tokens: 200, stream: true, ignore_eos: true }) }));
      assert.ok(await c.waitFor(() => c.buf.includes('data: '), 20000), 'no first chunk');
      const head = c.buf.toString('latin1');
      assert.match(head, /^HTTP\/1\.1 200/);
      assert.match(head, /content-type: text\/event-stream/i);
    } finally {
      c.destroy();
    }
    await sleep(100);
    assert.ok(daemon.alive(), 'supernoded exited');
    const start = Date.now();
    await assertStillServing();
    assert.ok(Date.now() - start < 10000, `the next request took ${Date.now() - start} ms`);
    const m = await roundTrip(daemon.metricsPort, httpText({ method: 'GET', path: '/metrics' }));
    assert.equal(m.status, 200, m.body);
    assert.match(m.body, /^supernode_requests_total\{/m);
    // A tenant's key does not reach other tenants' figures on the API port.
    assert.equal((await roundTrip(port, httpText({ method: 'GET', path: '/metrics', key }))).status, 404);
  });

  test('no credentials or non-Bearer credentials: 401 invalid_api_key', T, async () => {
    assertOpenAiError(await roundTrip(port, httpText({ body: completionBody() })), 401, { code: 'invalid_api_key' });
    assertOpenAiError(await roundTrip(port, httpText({ method: 'GET', path: '/v1/models' })), 401,
                      { code: 'invalid_api_key' });
    assertOpenAiError(
      await roundTrip(port, httpText({ body: completionBody(), headers: { Authorization: 'Basic x' } })), 401,
      { code: 'invalid_api_key' });
    assertOpenAiError(
      await roundTrip(port, httpText({ body: completionBody(), headers: { Authorization: 'Bearer sk-sn-nope' } })), 401,
      { code: 'invalid_api_key' });
    await assertStillServing();
  });

  test('HTTP/1.1 keep-alive: two requests on one connection are both answered', T, async () => {
    const c = await Conn.open(port);
    try {
      await c.write(httpText({ key, body: completionBody(), close: false }));
      const a = await c.response();
      assert.equal(a.status, 200, a.body);
      assert.doesNotMatch(a.headers.connection ?? '', /close/i);
      assert.equal(JSON.parse(a.body).object, 'text_completion');
      await c.write(httpText({ method: 'GET', path: '/v1/models', key, close: false }));
      const b = await c.response();
      assert.equal(b.status, 200, b.body);
      assert.ok(JSON.parse(b.body).data.some((m) => m.id === model));
      // Pipelined: two requests in one write, two answers in order.
      await c.write(httpText({ method: 'GET', path: '/healthz', close: false }) +
                    httpText({ key, body: completionBody({ max_tokens: 1 }), close: true }));
      const h = await c.response();
      assert.equal(h.status, 200);
      assert.equal(h.body, 'ok\n');
      const d = await c.response();
      assert.equal(d.status, 200, d.body);
      assert.equal(JSON.parse(d.body).object, 'text_completion');
      assert.ok(await c.closed(), 'Connection: close was not honoured');
    } finally {
      c.destroy();
    }
  });
});

// supernoded through the official `openai` npm client, as an application would use it: the
// model list, greedy completions (JSON and streamed, usage, determinism, prefix caching),
// chat completions through a model's chat template, the client's typed errors (404 unknown
// model, 400 bad parameter, 401 revoked key, 429 over quota with its headers), logprobs in
// OpenAI's shapes and several choices per request.
// One daemon for the whole file: the shared stories260K (or MODEL) for completions, when
// present, and a generated model with a ChatML template for chat (and for completions when
// ../shared is absent).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { tempDir, startDaemon, stopAndCleanUp, generateChatModel, sharedCompletionModel, modelId } from './daemon.mjs';

const T = { timeout: 60000 };  // per test: nothing here may hang

// A ~200-token prompt for the prefix-cache test (stories260K's vocabulary is tiny, so this
// is well past one KV block of 16 tokens).
const LONG_PROMPT = Array.from({ length: 8 }, (_, i) =>
  `Once upon a time there was a little girl named Lily${i}. She liked to play in the park with her big red ball. `).join('');

// A header of an APIError (a fetch Headers in openai v5, a plain object in v4).
function header(err, name) {
  const h = err.headers;
  if (!h) return undefined;
  return typeof h.get === 'function' ? h.get(name) ?? undefined : h[name.toLowerCase()];
}

// Runs `fn`, which must reject with an instance of `cls`; returns the error.
async function expectError(fn, cls) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e?.constructor?.name}: ${e?.message}`);
    return e;
  }
  assert.fail(`expected ${cls.name}, but the request succeeded`);
}

function assertUsage(usage, { completionTokens } = {}) {
  assert.ok(usage, 'usage is missing');
  assert.ok(Number.isInteger(usage.prompt_tokens) && usage.prompt_tokens > 0, `prompt_tokens ${usage.prompt_tokens}`);
  assert.ok(Number.isInteger(usage.completion_tokens) && usage.completion_tokens > 0,
            `completion_tokens ${usage.completion_tokens}`);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  if (completionTokens !== undefined) assert.equal(usage.completion_tokens, completionTokens);
}

describe('supernoded through the openai client', () => {
  let tmp;
  let daemon;
  let client;
  let textModel;  // model id for /v1/completions
  let chatModel;  // model id with a chat template

  before(async () => {
    tmp = tempDir();
    const chatFile = generateChatModel(tmp.dir);
    const shared = sharedCompletionModel();
    if (!shared) {
      console.log('# NOTE: ../shared/models/stories260K.gguf absent (SUPERNODE_SHARED_DIR); completions use a generated model');
    }
    const models = shared ? [shared, chatFile] : [chatFile];
    daemon = await startDaemon({ dir: tmp.dir, models });
    textModel = modelId(shared ?? chatFile);
    chatModel = modelId(chatFile);
    client = new OpenAI({ apiKey: daemon.key, baseURL: daemon.baseURL, maxRetries: 0, timeout: 30000 });
  });

  after(() => stopAndCleanUp(daemon, tmp));

  test('models.list names every served model by its file stem', T, async () => {
    const ids = [];
    for await (const m of client.models.list()) {
      assert.equal(m.object, 'model');
      ids.push(m.id);
    }
    assert.ok(ids.includes(textModel), `${textModel} not in ${JSON.stringify(ids)}`);
    assert.ok(ids.includes(chatModel), `${chatModel} not in ${JSON.stringify(ids)}`);
  });

  test('greedy completions: text, consistent usage, finish_reason length, deterministic', T, async () => {
    const req = { model: textModel, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 };
    const a = await client.completions.create(req);
    assert.equal(a.object, 'text_completion');
    assert.equal(a.model, textModel);
    assert.match(a.id, /^cmpl-/);
    assert.equal(a.choices.length, 1);
    assert.equal(a.choices[0].index, 0);
    assert.equal(typeof a.choices[0].text, 'string');
    assert.ok(a.choices[0].text.length > 0, 'empty completion text');
    assert.equal(a.choices[0].finish_reason, 'length');
    assertUsage(a.usage, { completionTokens: 8 });
    const b = await client.completions.create(req);
    assert.equal(b.choices[0].text, a.choices[0].text, 'greedy decoding is not deterministic');
    assert.deepEqual(
      { p: b.usage.prompt_tokens, c: b.usage.completion_tokens },
      { p: a.usage.prompt_tokens, c: a.usage.completion_tokens });
  });

  test('streamed completion chunks add up to the greedy text, then a usage chunk', T, async () => {
    const req = { model: textModel, prompt: 'Once upon a time', max_tokens: 12, temperature: 0 };
    const whole = await client.completions.create(req);
    const stream = await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish = null;
    let usageChunk = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.object, 'text_completion');
      if (chunk.choices.length === 0) {
        assert.equal(usageChunk, null, 'two usage chunks');
        usageChunk = chunk;
        continue;
      }
      assert.equal(usageChunk, null, 'a text chunk after the usage chunk');
      text += chunk.choices[0].text;
      if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    }
    assert.ok(chunks >= 2, `only ${chunks} chunks`);
    assert.equal(text, whole.choices[0].text);
    assert.equal(finish, whole.choices[0].finish_reason);
    assert.ok(usageChunk, 'no usage chunk with stream_options.include_usage');
    assertUsage(usageChunk.usage);
    assert.equal(usageChunk.usage.completion_tokens, whole.usage.completion_tokens);
    assert.equal(usageChunk.usage.prompt_tokens, whole.usage.prompt_tokens);
  });

  test('chat completion through the chat template', T, async () => {
    const r = await client.chat.completions.create({
      model: chatModel,
      messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello' }],
      max_completion_tokens: 6,
      temperature: 0,
    });
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.choices.length, 1);
    const c = r.choices[0];
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
    assert.ok(['length', 'stop'].includes(c.finish_reason), `finish_reason ${c.finish_reason}`);
    assertUsage(r.usage);
    if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 6);
  });

  test('streamed chat completion: assistant role first, content deltas, finish_reason', T, async () => {
    const req = { model: chatModel, messages: [{ role: 'user', content: 'hello there' }], max_tokens: 6, temperature: 0 };
    const whole = await client.chat.completions.create(req);
    const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    let content = '';
    let role = null;
    let finish = null;
    let usage = null;
    let first = true;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.choices.length === 0) {
        usage = chunk.usage;
        continue;
      }
      const d = chunk.choices[0].delta;
      if (first) {
        role = d.role;
        first = false;
      }
      if (typeof d.content === 'string') content += d.content;
      if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    }
    assert.equal(role, 'assistant');
    assert.equal(content, whole.choices[0].message.content);
    assert.equal(finish, whole.choices[0].finish_reason);
    assertUsage(usage);
    assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
  });

  test('a repeated long prompt reports cached prompt tokens', T, async () => {
    const req = { model: textModel, prompt: LONG_PROMPT, max_tokens: 2, temperature: 0 };
    const first = await client.completions.create(req);
    assert.ok(first.usage.prompt_tokens >= 100, `the prompt is only ${first.usage.prompt_tokens} tokens`);
    const second = await client.completions.create(req);
    assert.equal(second.usage.prompt_tokens, first.usage.prompt_tokens);
    const cached = second.usage.prompt_tokens_details?.cached_tokens;
    assert.ok(Number.isInteger(cached) && cached > 0,
              `no cached tokens on the repeat: ${JSON.stringify(second.usage)}`);
    assert.ok(cached <= second.usage.prompt_tokens);
  });

  test('unknown model: NotFoundError 404, code model_not_found', T, async () => {
    const e = await expectError(
      () => client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 1 }), OpenAI.NotFoundError);
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    assert.equal(e.param, 'model');
    assert.equal(e.type, 'invalid_request_error');
    const c = await expectError(
      () => client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
      OpenAI.NotFoundError);
    assert.equal(c.code, 'model_not_found');
  });

  test('out-of-range temperature: BadRequestError 400 naming the param', T, async () => {
    const e = await expectError(
      () => client.completions.create({ model: textModel, prompt: 'x', max_tokens: 1, temperature: 5 }),
      OpenAI.BadRequestError);
    assert.equal(e.status, 400);
    assert.equal(e.param, 'temperature');
    assert.equal(e.type, 'invalid_request_error');
    assert.ok(e.message.includes('temperature'), e.message);
  });

  test('a key revoked with the admin CLI: AuthenticationError 401', T, async () => {
    const key = daemon.admin(['keys', 'create', '--tenant', 'default', '--label', 'js-revoke']).trim();
    assert.match(key, /^sk-sn-[0-9a-f]{16}-/);
    const keyId = key.slice('sk-sn-'.length, 'sk-sn-'.length + 16);
    assert.ok(daemon.admin(['keys', 'list', '--tenant', 'default']).includes(keyId), 'the new key is not listed');
    const c = new OpenAI({ apiKey: key, baseURL: daemon.baseURL, maxRetries: 0, timeout: 30000 });
    const before = await c.completions.create({ model: textModel, prompt: 'hi', max_tokens: 1 });
    assert.equal(before.choices.length, 1);
    assert.match(daemon.admin(['keys', 'revoke', keyId]), /revoked/);
    assert.match(daemon.admin(['keys', 'list', '--tenant', 'default']), new RegExp(`${keyId}\\s+\\S+\\s+revoked`));
    const e = await expectError(() => c.completions.create({ model: textModel, prompt: 'hi', max_tokens: 1 }),
                                OpenAI.AuthenticationError);
    assert.equal(e.status, 401);
    assert.equal(e.code, 'invalid_api_key');
    await expectError(() => c.models.list(), OpenAI.AuthenticationError);
  });

  test('over the key\'s requests per minute: RateLimitError 429 with retry-after and x-ratelimit headers', T, async () => {
    const key = daemon.admin(['keys', 'create', '--tenant', 'default', '--rpm', '1', '--label', 'js-rpm']).trim();
    const c = new OpenAI({ apiKey: key, baseURL: daemon.baseURL, maxRetries: 0, timeout: 30000 });
    const req = { model: textModel, prompt: 'hi', max_tokens: 1, temperature: 0 };
    const { data, response } = await c.completions.create(req).withResponse();
    assert.equal(data.choices.length, 1);
    assert.equal(response.headers.get('x-ratelimit-limit-requests'), '1');
    assert.equal(response.headers.get('x-ratelimit-remaining-requests'), '0');
    const e = await expectError(() => c.completions.create(req), OpenAI.RateLimitError);
    assert.equal(e.status, 429);
    assert.equal(e.type, 'rate_limit_error');
    assert.equal(e.code, 'rate_limit_exceeded');
    const retry = header(e, 'retry-after');
    assert.ok(retry !== undefined, 'no retry-after header');
    assert.ok(Number(retry) > 0 && Number(retry) <= 60, `retry-after ${retry}`);
    assert.equal(header(e, 'x-ratelimit-limit-requests'), '1');
  });

  test('completions logprobs: 2 in OpenAI\'s legacy shape', T, async () => {
    const r = await client.completions.create(
      { model: textModel, prompt: 'Once upon a time', max_tokens: 8, temperature: 0, logprobs: 2 });
    const c = r.choices[0];
    const lp = c.logprobs;
    assert.ok(lp && typeof lp === 'object', `choices[0].logprobs is ${JSON.stringify(lp)}`);
    const n = r.usage.completion_tokens;
    for (const field of ['tokens', 'token_logprobs', 'top_logprobs', 'text_offset']) {
      assert.ok(Array.isArray(lp[field]), `logprobs.${field} is not an array`);
      assert.equal(lp[field].length, n, `logprobs.${field} has ${lp[field].length} entries for ${n} tokens`);
    }
    assert.equal(lp.tokens.join(''), c.text, 'the tokens do not spell the text');
    for (let i = 0; i < n; i++) {
      assert.equal(typeof lp.tokens[i], 'string');
      const chosen = lp.token_logprobs[i];
      assert.ok(Number.isFinite(chosen) && chosen <= 0, `token_logprobs[${i}] = ${chosen}`);
      const top = lp.top_logprobs[i];
      assert.ok(top && typeof top === 'object' && !Array.isArray(top), `top_logprobs[${i}] is not an object`);
      const values = Object.values(top);
      // Two distinct token ids may decode to one string; the object then has one entry.
      assert.ok(values.length >= 1 && values.length <= 2, `top_logprobs[${i}] has ${values.length} entries`);
      for (const v of values) assert.ok(Number.isFinite(v) && v <= 0, `top logprob ${v}`);
      // Greedy: the chosen token is the most likely one.
      const best = Math.max(...values);
      assert.ok(Math.abs(chosen - best) < 1e-4, `token ${i}: chosen ${chosen}, best top ${best}`);
      assert.ok(lp.tokens[i] in top, `token ${JSON.stringify(lp.tokens[i])} not among its top_logprobs`);
      // Object key order is lost for integer-like keys in JavaScript; check it only otherwise.
      const keys = Object.keys(top);
      if (!keys.some((k) => /^(0|[1-9]\d*)$/.test(k))) {
        for (let j = 1; j < values.length; j++) assert.ok(values[j - 1] >= values[j], `top_logprobs[${i}] not sorted`);
      }
      if (i + 1 < n) {
        assert.equal(lp.text_offset[i + 1] - lp.text_offset[i], lp.tokens[i].length, `text_offset[${i + 1}]`);
      }
    }
  });

  test('chat logprobs with top_logprobs: 2 in OpenAI\'s shape', T, async () => {
    const r = await client.chat.completions.create({
      model: chatModel, messages: [{ role: 'user', content: 'hello' }], max_tokens: 6, temperature: 0,
      logprobs: true, top_logprobs: 2,
    });
    const c = r.choices[0];
    assert.ok(c.logprobs && Array.isArray(c.logprobs.content), `choices[0].logprobs is ${JSON.stringify(c.logprobs)}`);
    const content = c.logprobs.content;
    assert.equal(content.length, r.usage.completion_tokens);
    assert.equal(content.map((t) => t.token).join(''), c.message.content, 'the tokens do not spell the content');
    const checkEntry = (t, where) => {
      assert.equal(typeof t.token, 'string', `${where}.token`);
      assert.ok(Number.isFinite(t.logprob) && t.logprob <= 0, `${where}.logprob = ${t.logprob}`);
      assert.ok(t.bytes === null || Array.isArray(t.bytes), `${where}.bytes`);
      if (Array.isArray(t.bytes)) {
        for (const b of t.bytes) assert.ok(Number.isInteger(b) && b >= 0 && b <= 255, `${where}.bytes holds ${b}`);
        if (!t.token.includes('\uFFFD')) assert.equal(Buffer.from(t.bytes).toString('utf8'), t.token, `${where}.bytes`);
      }
    };
    content.forEach((t, i) => {
      checkEntry(t, `content[${i}]`);
      assert.ok(Array.isArray(t.top_logprobs), `content[${i}].top_logprobs`);
      assert.equal(t.top_logprobs.length, 2, `content[${i}].top_logprobs has ${t.top_logprobs.length} entries`);
      t.top_logprobs.forEach((u, j) => checkEntry(u, `content[${i}].top_logprobs[${j}]`));
      for (let j = 1; j < t.top_logprobs.length; j++) {
        assert.ok(t.top_logprobs[j - 1].logprob >= t.top_logprobs[j].logprob, `content[${i}].top_logprobs not sorted`);
      }
      assert.ok(Math.abs(t.logprob - t.top_logprobs[0].logprob) < 1e-4,
                `content[${i}]: chosen ${t.logprob}, best ${t.top_logprobs[0].logprob} under greedy`);
      assert.equal(t.token, t.top_logprobs[0].token, `content[${i}]: greedy did not take the most likely token`);
    });
  });

  test('n: 2 with temperature 1 and a seed gives two choices', T, async () => {
    const r = await client.completions.create(
      { model: textModel, prompt: 'Once upon a time', max_tokens: 8, temperature: 1, seed: 42, n: 2 });
    assert.equal(r.choices.length, 2);
    const sorted = [...r.choices].sort((a, b) => a.index - b.index);
    assert.deepEqual(sorted.map((c) => c.index), [0, 1]);
    for (const c of sorted) {
      assert.equal(typeof c.text, 'string');
      assert.ok(['length', 'stop'].includes(c.finish_reason), `finish_reason ${c.finish_reason}`);
    }
    assertUsage(r.usage);
    if (sorted.every((c) => c.finish_reason === 'length')) assert.equal(r.usage.completion_tokens, 16);
    const chat = await client.chat.completions.create(
      { model: chatModel, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 1, seed: 7, n: 2 });
    assert.deepEqual([...chat.choices].map((c) => c.index).sort(), [0, 1]);
    for (const c of chat.choices) assert.equal(c.message.role, 'assistant');
  });

  test('the daemon is still alive after all of the above', T, () => {
    assert.ok(daemon.alive(), `supernoded exited:\n${daemon.logTail()}`);
  });
});

// The playground: chat with a loaded model through the OpenAI API itself (POST
// /v1/chat/completions, streamed), using an API key the admin pastes. The key is kept only
// in this tab's sessionStorage and sent only to this server. Shows time to first token,
// tokens per second and the prompt tokens served from the prefix cache
// (usage.prompt_tokens_details.cached_tokens, asked for with stream_options.include_usage).
import { api, errorMessage } from '../api.js';
import { announce, button, card, field, fmtInt, fmtNumber, h, nextId, pageHeader, replace } from '../ui.js';

export const title = 'Playground';
const KEY_STORE = 'sn.playground.key';

export async function render(main) {
  main.append(pageHeader('Playground', 'Try a loaded model through the OpenAI-compatible API, as an application would.'));

  const key = field({ label: 'API key', name: 'pg-key', type: 'password', autocomplete: 'off', value: sessionStorage.getItem(KEY_STORE) || '',
    hint: 'A key from Tenants and keys. Kept only in this browser tab (sessionStorage) and sent only to this server.' });
  key.input.addEventListener('change', () => {
    if (key.input.value.trim()) sessionStorage.setItem(KEY_STORE, key.input.value.trim());
    else sessionStorage.removeItem(KEY_STORE);
  });
  const model = field({ label: 'Model', name: 'pg-model', type: 'select', options: [] });
  const maxTokens = field({ label: 'Max tokens', name: 'pg-max-tokens', type: 'number', value: '128', min: '1', step: '1' });
  const temperature = field({ label: 'Temperature', name: 'pg-temperature', type: 'number', value: '0.7', min: '0', step: '0.1' });
  const system = field({ label: 'System prompt (optional)', name: 'pg-system', type: 'textarea', rows: 2 });
  main.append(card('Settings', h('div', { class: 'form form-grid' }, key.wrap, model.wrap, maxTokens.wrap, temperature.wrap, system.wrap)));

  try {
    const models = ((await api.get('/api/admin/models')).models || []).filter((m) => m.loaded);
    if (models.length === 0) {
      replace(model.input, h('option', { value: '' }, 'No model is loaded'));
      model.input.disabled = true;
    } else {
      replace(model.input, models.map((m) => h('option', { value: m.id }, m.id)));
    }
  } catch (err) {
    announce(err.message, 'error');
  }

  const stat = (name, label) => {
    const dd = h('dd', { dataset: { stat: name } }, '\u2013');
    return { dd, nodes: [h('dt', {}, label), dd] };
  };
  const stats = { ttft: stat('ttft', 'Time to first token'), tps: stat('tps', 'Tokens per second'),
    prompt: stat('prompt', 'Prompt tokens'), cached: stat('cached', 'Cached prompt tokens'), completion: stat('completion', 'Completion tokens') };
  const statsList = h('dl', { class: 'stats' }, Object.values(stats).map((s) => s.nodes));

  const transcriptId = nextId('transcript');
  const transcript = h('ol', { class: 'transcript', id: transcriptId, 'aria-live': 'off' });
  const emptyNote = h('p', { class: 'empty-state' }, 'No messages yet: write one below.');
  const prompt = field({ label: 'Message', name: 'pg-prompt', type: 'textarea', rows: 3, placeholder: 'Ask something…' });
  const send = button('Send', { kind: 'primary', type: 'submit' });
  const stop = button('Stop', { disabled: true });
  const clearBtn = button('Clear chat');
  const status = h('p', { class: 'pg-status', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { class: 'form', novalidate: true }, prompt.wrap, h('div', { class: 'form-actions' }, send, stop, clearBtn), status);
  main.append(card('Chat', statsList, emptyNote, transcript, form));

  let messages = [];
  let controller = null;

  prompt.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
  });
  stop.addEventListener('click', () => controller?.abort());
  clearBtn.addEventListener('click', () => {
    controller?.abort();
    messages = [];
    replace(transcript);
    emptyNote.hidden = false;
    status.textContent = 'Chat cleared.';
  });

  function addMessage(role, text) {
    emptyNote.hidden = true;
    const content = h('div', { class: 'msg-text' }, text);
    const li = h('li', { class: `msg msg-${role}` }, h('span', { class: 'msg-role' }, role === 'user' ? 'You' : role === 'assistant' ? 'Model' : role), content);
    transcript.append(li);
    li.scrollIntoView({ block: 'nearest' });
    return content;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const apiKey = key.input.value.trim();
    const text = prompt.input.value.trim();
    if (!apiKey) { status.textContent = 'Paste an API key first (create one under Tenants and keys).'; key.input.focus(); return; }
    if (!model.input.value) { status.textContent = 'Load a model first (Models page).'; return; }
    if (!text) { status.textContent = 'Write a message.'; prompt.input.focus(); return; }
    sessionStorage.setItem(KEY_STORE, apiKey);
    messages.push({ role: 'user', content: text });
    addMessage('user', text);
    prompt.input.value = '';
    const out = addMessage('assistant', '');
    out.classList.add('streaming');
    for (const s of Object.values(stats)) s.dd.textContent = '\u2013';

    const body = {
      model: model.input.value,
      messages: (system.input.value.trim() ? [{ role: 'system', content: system.input.value.trim() }] : []).concat(messages),
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: Number(maxTokens.input.value) || 128,
      temperature: Number(temperature.input.value),
    };
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    status.textContent = 'Generating…';
    const t0 = performance.now();
    let tFirst = null;
    let chunks = 0;
    let answer = '';
    let usage = null;
    try {
      const res = await fetch('/v1/chat/completions', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${apiKey}`, Accept: 'text/event-stream' },
        body: JSON.stringify(body),
        signal: controller.signal,
        credentials: 'omit',
      });
      if (!res.ok) {
        let data = {};
        try { data = await res.json(); } catch { /* not JSON */ }
        const retry = res.headers.get('Retry-After');
        let { message } = errorMessage(res.status, data, retry ? Number(retry) : null);
        if (res.status === 401) message = `The API key was refused (${data?.error?.message || 'unauthorized'}): paste a valid, unrevoked key.`;
        throw new Error(message);
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let sep;
        while ((sep = buf.search(/\r?\n\r?\n/)) >= 0) {
          const event = buf.slice(0, sep);
          buf = buf.slice(sep).replace(/^\r?\n\r?\n/, '');
          for (const line of event.split(/\r?\n/)) {
            if (!line.startsWith('data:')) continue;
            const data = line.slice(5).trim();
            if (data === '[DONE]') continue;
            let chunk;
            try { chunk = JSON.parse(data); } catch { continue; }
            if (chunk.error) throw new Error(chunk.error.message || 'The server stopped the answer.');
            const delta = chunk.choices?.[0]?.delta?.content;
            if (delta) {
              if (tFirst === null) {
                tFirst = performance.now();
                stats.ttft.dd.textContent = `${Math.round(tFirst - t0)} ms`;
              }
              ++chunks;
              answer += delta;
              out.textContent = answer;
            }
            if (chunk.usage) usage = chunk.usage;
          }
        }
      }
      const tEnd = performance.now();
      const completion = usage?.completion_tokens ?? chunks;
      if (tFirst !== null) {
        const secs = (tEnd - tFirst) / 1000;
        stats.tps.dd.textContent = completion > 1 && secs > 0 ? fmtNumber((completion - 1) / secs) : '\u2013';
      }
      stats.completion.dd.textContent = fmtInt(completion);
      stats.prompt.dd.textContent = usage ? fmtInt(usage.prompt_tokens) : '\u2013';
      stats.cached.dd.textContent = usage ? fmtInt(usage.prompt_tokens_details?.cached_tokens ?? 0) : '\u2013';
      messages.push({ role: 'assistant', content: answer });
      status.textContent = `Answer complete: ${fmtInt(completion)} tokens.`;
    } catch (caught) {
      let err = caught;
      messages.pop();
      if (err.name === 'AbortError') {
        status.textContent = 'Stopped.';
        if (answer) messages.push({ role: 'user', content: text }, { role: 'assistant', content: answer });
      } else {
        if (err instanceof TypeError) err = new Error('Cannot reach the server: check the connection and try again.');
        out.textContent = answer;
        out.append(h('span', { class: 'message message-error', role: 'alert' }, err.message));
        status.textContent = err.message;
      }
    } finally {
      out.classList.remove('streaming');
      controller = null;
      send.disabled = false;
      stop.disabled = true;
    }
  });

  return () => controller?.abort();
}

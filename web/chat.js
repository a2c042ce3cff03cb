// chat.js - the chat view: OpenAI's chat API (POST /v1/chat/completions,
// streamed chat.completion.chunk deltas until [DONE]), a stop button, the
// sampling controls, time to first token and tokens/s. Every text, the
// user's and the model's, goes into the page as text (textContent), never
// as HTML.
import { t, num } from './i18n.js';
import { stream, showError } from './api.js';

const $ = (id) => document.getElementById(id);
let history = []; // [{role, content}]
let controller = null;
let modelId = 'minigpt';

function bubble(role, text) {
  $('chat-hint').hidden = true;
  const div = document.createElement('div');
  div.className = `msg ${role}`;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = role === 'user' ? t('you') : t('model');
  const body = document.createElement('p');
  body.className = 'text';
  body.textContent = text;
  div.append(who, body);
  $('messages').append(div);
  div.scrollIntoView({ block: 'end' });
  return body;
}

function settings() {
  const seed = $('c-seed').value.trim();
  const o = {
    temperature: Number($('c-temp').value), top_k: Number($('c-topk').value), top_p: Number($('c-topp').value),
    repeat_penalty: Number($('c-rep').value), max_tokens: Math.max(1, Number($('c-max').value) || 200),
  };
  if (seed !== '') o.seed = Number(seed);
  return o;
}

function busy(on) {
  $('chat-send').disabled = on;
  $('chat-stop').disabled = !on;
}

async function send(text) {
  showError('');
  history.push({ role: 'user', content: text });
  bubble('user', text);
  const out = bubble('assistant', '');
  out.parentElement.setAttribute('aria-busy', 'true');
  controller = new AbortController();
  busy(true);
  const t0 = performance.now();
  let first = 0, deltas = 0, usage = null, answer = '';
  try {
    await stream('/v1/chat/completions', { model: modelId, messages: history, stream: true, ...settings() },
      (chunk) => {
        if (chunk.usage) usage = chunk.usage;
        const d = chunk.choices?.[0]?.delta?.content;
        if (!d) return;
        if (!first) first = performance.now();
        deltas++;
        answer += d;
        out.textContent = answer;
        out.dataset.deltas = deltas; // the stream's text events shown so far (tests read it)
        out.parentElement.scrollIntoView({ block: 'end' });
      }, controller.signal);
  } catch (e) {
    if (e.name === 'AbortError') {
      const s = document.createElement('span');
      s.className = 'note';
      s.textContent = ` ${t('stopped')}`;
      out.after(s);
    } else {
      showError(e.message);
    }
  }
  const end = performance.now(), n = usage?.completion_tokens ?? deltas;
  if (first) {
    $('chat-stats').textContent = t('chat_stats', {
      tokens: n, ttft: num(first - t0, 0), tps: num(n > 1 ? (n - 1) / ((end - first) / 1000) : 0, 1),
    });
  }
  out.parentElement.removeAttribute('aria-busy');
  history.push({ role: 'assistant', content: answer });
  controller = null;
  busy(false);
  $('chat-input').focus();
}

export function initChat(app) {
  if (app.model?.id) modelId = app.model.id;
  for (const [id, digits] of [['c-temp', 2], ['c-topk', 0], ['c-topp', 2], ['c-rep', 2]]) {
    const show = () => { $(`${id}-out`).textContent = num(Number($(id).value), digits); };
    $(id).addEventListener('input', show);
    show();
  }
  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = $('chat-input').value.trim();
    if (!text || controller) return;
    $('chat-input').value = '';
    send(text);
  });
  $('chat-input').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $('chat-form').requestSubmit();
    }
  });
  $('chat-stop').addEventListener('click', () => controller?.abort());
  $('chat-clear').addEventListener('click', () => {
    controller?.abort();
    history = [];
    for (const m of [...$('messages').querySelectorAll('.msg')]) m.remove();
    $('chat-hint').hidden = false;
    $('chat-stats').textContent = '';
  });
}

// api.js - requests to the server that served this page: JSON calls and
// OpenAI-style server-sent event streams, with the API key (asked for on a
// 401, kept for the tab only) as "Authorization: Bearer".
import { t } from './i18n.js';

let key = sessionStorage.getItem('minigpt-key') || '';
let waiting = null; // the promise of the key form while it is shown

function askKey() {
  if (waiting) return waiting;
  const form = document.getElementById('key-form'), input = document.getElementById('key-input');
  form.hidden = false;
  input.focus();
  waiting = new Promise((resolve) => {
    form.onsubmit = (ev) => {
      ev.preventDefault();
      key = input.value.trim();
      sessionStorage.setItem('minigpt-key', key);
      form.hidden = true;
      waiting = null;
      resolve();
    };
  });
  return waiting;
}

// fetch with the key; a 401 shows the key form and retries once it is given
export async function call(path, opts = {}) {
  for (;;) {
    const headers = { ...(opts.headers || {}) };
    if (key) headers.Authorization = `Bearer ${key}`;
    if (opts.body) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, { ...opts, headers });
    if (r.status !== 401) return r;
    await askKey();
  }
}

// the error message of a failed response (the OpenAI shape, or its status)
export async function failure(r) {
  try {
    const j = await r.json();
    return j.error?.message || `HTTP ${r.status}`;
  } catch {
    return `HTTP ${r.status}`;
  }
}

export async function getJSON(path, body) {
  const r = await call(path, body ? { method: 'POST', body: JSON.stringify(body) } : {});
  if (!r.ok) throw new Error(await failure(r));
  return r.json();
}

// POSTs body and calls onEvent(json) for each "data:" event until [DONE]
export async function stream(path, body, onEvent, signal) {
  const r = await call(path, { method: 'POST', body: JSON.stringify(body), signal });
  if (!r.ok) throw new Error(await failure(r));
  const reader = r.body.getReader(), dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      for (const line of ev.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

export function showError(msg) {
  const el = document.getElementById('error');
  el.textContent = msg ? `${t('error')}: ${msg}` : '';
  el.hidden = !msg;
}

// inside.js - the "inside the model" view, from POST /v1/explain (the
// educational trace, src/web/web_explain.c): tokens and BPE merges, every
// layer's and head's attention, the next-token distribution reshaped live
// by temperature / top-k / top-p exactly as src/infer/sample.c cuts it,
// a step-by-step "next token", and each layer's time and activations.
import { t, num, visible } from './i18n.js';
import { getJSON, showError } from './api.js';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const N_BARS = 20;
let data = null, prompt = '', extra = [], picked = [0, 0], steps = 0;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// softmax(logits / T) over the whole vocabulary, the ids by probability
// (ties: smaller id first) and how many the top-k / top-p cut keeps: the
// same rule as explain_cut_size / sample_token
export function reshape(logits, T, k, p) {
  const V = logits.length, order = [...logits.keys()];
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  const probs = new Float64Array(V);
  if (T <= 0) {
    const best = logits.indexOf(max);
    probs[best] = 1;
    order.sort((a, b) => logits[b] - logits[a] || a - b);
    return { probs, order, kept: 1 };
  }
  let sum = 0;
  for (let i = 0; i < V; i++) sum += probs[i] = Math.exp((logits[i] - max) / T);
  for (let i = 0; i < V; i++) probs[i] /= sum;
  order.sort((a, b) => probs[b] - probs[a] || a - b);
  let kept = V;
  if (k > 0 && k < kept) kept = k;
  if (p < 1) {
    let acc = 0;
    for (let i = 0; i < kept; i++) {
      acc += probs[order[i]];
      if (acc >= p) { kept = i + 1; break; }
    }
  }
  return { probs, order, kept };
}

function sliders() {
  return { T: Number($('i-temp').value), k: Number($('i-topk').value), p: Number($('i-topp').value) };
}

function drawBars() {
  if (!data) return;
  const { T, k, p } = sliders();
  const r = reshape(data.logits, T, k, p);
  let keptMass = 0;
  for (let i = 0; i < r.kept; i++) keptMass += r.probs[r.order[i]];
  const text = new Map(data.top.map((x) => [x.id, x.text]));
  const bars = $('bars');
  bars.replaceChildren();
  const top = r.probs[r.order[0]] || 1;
  for (let i = 0; i < N_BARS && i < r.order.length; i++) {
    const id = r.order[i], pr = r.probs[id], kept = i < r.kept;
    const li = el('li', kept ? 'bar' : 'bar cut');
    const label = el('span', 'bar-label', visible(text.get(id) ?? `#${id}`));
    const track = el('span', 'bar-track');
    const fill = el('span', 'bar-fill');
    fill.style.width = `${(100 * pr / top).toFixed(2)}%`;
    track.append(fill);
    const val = el('span', 'bar-value', kept ? `${num(100 * pr / keptMass, 1)}%` : t('cut'));
    li.title = `id ${id}, logit ${num(data.logits[id], 3)}, p ${num(pr, 4)}`;
    li.dataset.id = id;
    li.append(label, track, val);
    bars.append(li);
  }
  $('cut-info').textContent = (T <= 0 ? `${t('greedy')}. ` : '') +
    t('cut_info', r.kept, data.logits.length, visible(data.sample.text));
  $('cut-info').dataset.kept = r.kept;
  return r;
}

// mulberry32: a small seeded generator, so a seed repeats the steps
function uniform(seed) {
  let a = seed >>> 0;
  a = (a + 0x6D2B79F5) >>> 0;
  let x = Math.imul(a ^ (a >>> 15), 1 | a);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
}

function nextToken() {
  const r = drawBars();
  let mass = 0;
  for (let i = 0; i < r.kept; i++) mass += r.probs[r.order[i]];
  const u = uniform(42 + steps++) * mass;
  let acc = 0, id = r.order[0];
  for (let i = 0; i < r.kept; i++) {
    acc += r.probs[r.order[i]];
    if (acc > u) { id = r.order[i]; break; }
  }
  extra.push(id);
  analyze();
}

function drawTokens() {
  const ol = $('tokens');
  ol.replaceChildren();
  data.tokens.forEach((tok, i) => {
    const li = el('li', i >= data.n_prompt ? 'tok gen' : 'tok');
    li.append(el('span', 'tok-text', visible(tok.text)), el('span', 'tok-id', String(tok.id)));
    li.title = i >= data.n_prompt ? t('generated') : `pos ${tok.pos}`;
    ol.append(li);
  });
  const m = $('merges');
  m.replaceChildren();
  let last = null;
  for (const x of data.merges) {
    if (x.pre !== last) {
      m.append(el('li', 'pre', `${t('pretoken')} «${visible(x.pre)}»`));
      last = x.pre;
    }
    m.append(el('li', 'merge', t('merge_line', { ...x, left: visible(x.left), right: visible(x.right), merged: visible(x.merged) })));
  }
  $('n-merges').textContent = data.merges.length;
}

function paint(canvas, w, n) {
  const px = Math.max(1, Math.floor(canvas.width / n));
  canvas.width = canvas.height = px * n;
  const g = canvas.getContext('2d');
  let max = 0;
  for (const x of w) max = Math.max(max, x);
  g.fillStyle = getComputedStyle(document.body).getPropertyValue('--map-bg') || '#fff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  for (let r = 0; r < n; r++)
    for (let c = 0; c <= r; c++) {
      const v = max > 0 ? w[r * n + c] / max : 0;
      g.fillStyle = `rgba(47, 111, 222, ${v.toFixed(3)})`;
      g.fillRect(c * px, r * px, px, px);
    }
}

function drawBig() {
  const [l, h] = picked, n = data.attention.rows, w = data.attention.maps[l][h];
  $('att-big-title').textContent = t('layer_head', l + 1, h + 1);
  const labels = data.tokens.map((x) => visible(x.text.length > 8 ? `${x.text.slice(0, 7)}…` : x.text));
  const cell = Math.max(8, Math.min(28, Math.floor(560 / n))), pad = 70;
  const size = pad + n * cell;
  const s = svg('svg', { viewBox: `0 0 ${size} ${size}`, class: 'att-svg', role: 'img' });
  s.append(svg('title'));
  s.firstChild.textContent = t('layer_head', l + 1, h + 1);
  let max = 0;
  for (const x of w) max = Math.max(max, x);
  for (let r = 0; r < n; r++) {
    const y = pad + r * cell;
    const tx = svg('text', { x: pad - 4, y: y + cell * 0.7, 'text-anchor': 'end', class: 'lab' });
    tx.textContent = labels[r];
    const cx = svg('text', { transform: `translate(${y + cell * 0.7},${pad - 4}) rotate(-60)`, class: 'lab' });
    cx.textContent = labels[r];
    s.append(tx, cx);
    for (let c = 0; c <= r; c++) {
      const v = w[r * n + c];
      const rect = svg('rect', { x: pad + c * cell, y, width: cell - 1, height: cell - 1, class: 'cell',
        'fill-opacity': (max > 0 ? v / max : 0).toFixed(3) });
      const tip = svg('title');
      tip.textContent = `${visible(data.tokens[r].text)} → ${visible(data.tokens[c].text)}: ${num(100 * v, 1)}%`;
      rect.append(tip);
      s.append(rect);
    }
  }
  $('att-big-map').replaceChildren(s);
  for (const b of $('att-grid').querySelectorAll('button'))
    b.setAttribute('aria-pressed', String(b.dataset.l == l && b.dataset.h == h));
}

function drawAttention() {
  const grid = $('att-grid'), m = data.model, n = data.attention.rows;
  grid.replaceChildren();
  grid.style.gridTemplateColumns = `auto repeat(${m.heads}, minmax(0, 1fr))`;
  grid.append(el('span', 'att-corner', ''));
  for (let h = 0; h < m.heads; h++) grid.append(el('span', 'att-head', `h${h + 1}`));
  if (picked[0] >= m.layers || picked[1] >= m.heads) picked = [0, 0];
  for (let l = 0; l < m.layers; l++) {
    grid.append(el('span', 'att-layer', `L${l + 1}`));
    for (let h = 0; h < m.heads; h++) {
      const b = el('button', 'att-map');
      b.type = 'button';
      b.dataset.l = l;
      b.dataset.h = h;
      b.setAttribute('aria-label', t('layer_head', l + 1, h + 1));
      const c = el('canvas');
      c.width = c.height = 96;
      paint(c, data.attention.maps[l][h], n);
      b.append(c);
      b.addEventListener('click', () => { picked = [l, h]; drawBig(); });
      grid.append(b);
    }
  }
  drawBig();
}

function drawLayers() {
  const body = $('layers').tBodies[0];
  body.replaceChildren();
  const row = (name, ms, st) => {
    const tr = el('tr');
    tr.append(el('th', '', name), el('td', '', ms === null ? '' : `${num(ms, 3)} ms`));
    for (const k of ['mean', 'std', 'min', 'max']) tr.append(el('td', '', num(st[k], 4)));
    body.append(tr);
  };
  row(t('st_embed'), null, data.embedding);
  data.layers.forEach((x, l) => {
    row(t('st_attn', l + 1), x.attn_ms, x.attn);
    row(t('st_mlp', l + 1), x.mlp_ms, x.mlp);
  });
  row(t('st_lnf'), null, data.final_ln);
  $('layers-info').textContent = t('layers_info', data.tokens.length, num(data.prefill_ms, 3), data.model);
}

async function analyze() {
  showError('');
  const { T, k, p } = sliders();
  try {
    data = await getJSON('/v1/explain', { prompt, extra_ids: extra, temperature: T, top_k: k, top_p: p, seed: 42 });
  } catch (e) {
    if (extra.length) extra.pop();
    showError(e.message);
    return;
  }
  $('inside-body').hidden = false;
  $('inside-next').disabled = false;
  drawTokens();
  drawAttention();
  drawBars();
  drawLayers();
}

export function initInside() {
  for (const [id, digits] of [['i-temp', 2], ['i-topk', 0], ['i-topp', 2]]) {
    const show = () => { $(`${id}-out`).textContent = num(Number($(id).value), digits); };
    $(id).addEventListener('input', () => { show(); drawBars(); });
    show();
  }
  $('inside-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    prompt = $('inside-prompt').value;
    if (!prompt) return;
    extra = [];
    steps = 0;
    analyze();
  });
  $('inside-next').addEventListener('click', nextToken);
}

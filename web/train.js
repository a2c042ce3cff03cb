// train.js - the training view: live (`minigpt train --dashboard`: the
// server-sent events of /v1/train/events) or past runs (`minigpt serve
// --runs DIR`: /v1/runs) on one chart to compare them.
import { t, num } from './i18n.js';
import { getJSON, showError } from './api.js';
import { drawChart, COLORS } from './chart.js';

const $ = (id) => document.getElementById(id);
const live = { steps: [], evals: [], last: null, lastEval: null };
let pending = false;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function duration(s) {
  if (!isFinite(s) || s <= 0) return '–';
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h ? `${h}h${String(m % 60).padStart(2, '0')}m` : m ? `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

function cards() {
  const s = live.last, e = live.lastEval;
  const items = [
    ['card_step', s ? (s.total ? `${s.step} / ${s.total}` : String(s.step)) : '–'],
    ['card_loss', num(s?.loss, 4)], ['card_val', num(e?.val_loss, 4)], ['card_bpb', num(e?.val_bpb, 4)],
    ['card_lr', s ? s.lr.toExponential(2) : '–'], ['card_grad', num(s?.grad_norm, 3)],
    ['card_speed', num(s?.tok_per_s, 0)], ['card_elapsed', duration(s?.elapsed_s)], ['card_eta', duration(s?.eta_s)],
  ];
  $('train-cards').replaceChildren(...items.map(([k, v]) => {
    const d = el('div', 'card');
    d.dataset.card = k;
    d.append(el('span', 'card-label', t(k)), el('span', 'card-value', v));
    return d;
  }));
}

function redraw() {
  pending = false;
  const x = (p) => p.step;
  drawChart($('ch-loss'), [
    { name: t('train'), points: live.steps.map((p) => [x(p), p.loss]) },
    { name: t('validation'), points: live.evals.map((p) => [x(p), p.val_loss]), dots: true },
  ], { xLabel: t('step') });
  drawChart($('ch-lr'), [{ name: '', points: live.steps.map((p) => [x(p), p.lr]) }], { xLabel: t('step') });
  drawChart($('ch-grad'), [{ name: '', points: live.steps.map((p) => [x(p), p.grad_norm]), color: COLORS[2] }], { xLabel: t('step') });
  drawChart($('ch-speed'), [{ name: '', points: live.steps.map((p) => [x(p), p.tok_per_s]), color: COLORS[3] }], { xLabel: t('step') });
  cards();
}

function later() {
  if (!pending) {
    pending = true;
    requestAnimationFrame(redraw);
  }
}

function startLive() {
  $('train-live').hidden = false;
  $('train-status').textContent = t('live');
  const es = new EventSource('/v1/train/events');
  es.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (ev.type === 'step') {
      live.steps.push(ev);
      live.last = ev;
    } else if (ev.type === 'eval') {
      live.evals.push(ev);
      live.lastEval = ev;
      if (ev.sample !== undefined) {
        const li = el('li', 'sample');
        li.append(el('span', 'sample-step', t('sample_at', ev.step)), el('p', 'sample-text', ev.sample));
        $('samples').prepend(li);
      }
    } else if (ev.type === 'info' || ev.type === 'save' || ev.type === 'epoch') {
      const msg = ev.type === 'info' ? ev.msg : ev.type === 'save' ? t('saved', ev.msg, ev.step) : t('epoch_done', ev.epoch, num(ev.loss, 4));
      $('train-log').append(el('li', '', msg));
    } else if (ev.type === 'end') {
      es.close(); // the trainer is done: no reconnecting to a closed port
      $('train-status').textContent = t('ended');
    }
    later();
  };
  es.onerror = () => {
    if (es.readyState !== EventSource.CLOSED) $('train-status').textContent = t('reconnecting');
  };
  es.onopen = () => { $('train-status').textContent = t('live'); };
}

async function showRuns() {
  let runs;
  try {
    runs = (await getJSON('/v1/runs')).runs;
  } catch (e) {
    showError(e.message);
    return;
  }
  $('train-runs').hidden = false;
  const shown = new Set(runs.map((r) => r.name));
  const draw = () => {
    const series = [];
    runs.forEach((r, i) => {
      if (!shown.has(r.name)) return;
      const color = COLORS[i % COLORS.length];
      series.push({ name: r.name, color, points: r.points.map((p) => [p.step, p.train_loss]) });
      series.push({ name: '', color, dots: true, points: r.points.filter((p) => p.val_loss !== undefined).map((p) => [p.step, p.val_loss]) });
    });
    drawChart($('ch-runs'), series, { xLabel: t('step') });
  };
  const picks = $('run-picks');
  runs.forEach((r, i) => {
    const label = el('label', 'pick');
    const box = el('input');
    box.type = 'checkbox';
    box.checked = true;
    box.addEventListener('change', () => { box.checked ? shown.add(r.name) : shown.delete(r.name); draw(); });
    const sw = el('span', 'swatch');
    sw.style.background = COLORS[i % COLORS.length];
    label.append(box, sw, document.createTextNode(r.name));
    picks.append(label);
  });
  const body = $('runs-table').tBodies[0];
  for (const r of runs) {
    const last = r.points[r.points.length - 1] || {}, ev = r.points.filter((p) => p.val_loss !== undefined).pop() || {};
    const tr = el('tr');
    tr.append(el('th', '', r.name), el('td', '', String(last.step ?? '–')), el('td', '', num(last.train_loss, 4)),
      el('td', '', num(ev.val_loss, 4)), el('td', '', num(ev.val_bpb, 4)));
    body.append(tr);
  }
  if (!runs.length) picks.append(el('p', 'hint', t('no_runs')));
  draw();
}

export function initTrain(app) {
  if (app.mode === 'train') startLive();
  else if (app.runs) showRuns();
  else $('train-none').hidden = false;
}

// app.js - the minigpt web app: the three views (chat, inside the model,
// training) as tabs, shown according to what the server offers (/v1/app):
// `minigpt serve` has all three, `minigpt train --dashboard` the training one.
import { applyI18n } from './i18n.js';
import { getJSON, showError } from './api.js';
import { initChat } from './chat.js';
import { initInside } from './inside.js';
import { initTrain } from './train.js';

const tabs = [...document.querySelectorAll('[role=tab]')];

function show(view, focus) {
  for (const b of tabs) {
    const on = b.dataset.view === view;
    b.setAttribute('aria-selected', String(on));
    b.tabIndex = on ? 0 : -1;
    document.getElementById(`view-${b.dataset.view}`).hidden = !on;
    if (on && focus) b.focus();
  }
  if (location.hash !== `#${view}`) history.replaceState(null, '', `#${view}`);
}

async function main() {
  applyI18n();
  let app;
  try {
    app = await getJSON('/v1/app');
  } catch (e) {
    showError(e.message);
    return;
  }
  if (app.model) document.getElementById('model-name').textContent = app.model.id;
  const offered = app.mode === 'train' ? ['train'] : ['chat', 'inside', 'train'];
  for (const b of tabs) {
    b.hidden = !offered.includes(b.dataset.view);
    b.addEventListener('click', () => show(b.dataset.view));
    // arrow keys move between tabs, as the ARIA tabs pattern has it
    b.addEventListener('keydown', (ev) => {
      const vis = tabs.filter((x) => !x.hidden), i = vis.indexOf(b);
      const j = ev.key === 'ArrowRight' ? i + 1 : ev.key === 'ArrowLeft' ? i - 1 : ev.key === 'Home' ? 0 : ev.key === 'End' ? vis.length - 1 : null;
      if (j === null) return;
      ev.preventDefault();
      show(vis[(j + vis.length) % vis.length].dataset.view, true);
    });
  }
  if (app.mode !== 'train') {
    initChat(app);
    initInside();
  }
  initTrain(app);
  const want = location.hash.slice(1);
  show(offered.includes(want) ? want : offered[0]);
  document.body.dataset.ready = '1';
}

main();

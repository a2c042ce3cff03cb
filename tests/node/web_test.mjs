// web_test.mjs - the web app in a real browser (Debian's chromium, driven
// by playwright-core) against a real `minigpt serve` and a real
// `minigpt train --dashboard`. Run by tests/web.sh, which starts the server:
//   node web_test.mjs BASE_URL MINIGPT DATA_FILE WORK_DIR
// Prints one "pass NAME" or "fail NAME" line per check. SCREENSHOTS=1
// also writes docs/web-chat.png, docs/web-inside.png and docs/web-train.png.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const [base, minigpt, data, work] = process.argv.slice(2);
const shots = process.env.SCREENSHOTS === '1';
const XSS = '<img src=x onerror="window.__xss=1">';
let failed = 0;
const check = (name, ok, why = '') => {
  if (!ok) failed++;
  console.log(`${ok ? 'pass' : 'fail'} ${name}${ok || !why ? '' : ` (${why})`}`);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  // (a fresh profile: playwright makes a new temporary --user-data-dir each launch)
  timeout: 60000,
});
const errors = [];
async function open(url, opts = {}) {
  const ctx = await browser.newContext({ locale: 'pt-BR', viewport: { width: 1280, height: 860 }, ...opts });
  const page = await ctx.newPage();
  page.setDefaultTimeout(30000); // generous: the test machine is shared and busy
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${url}: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`${url}: ${e.message}`));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]');
  return page;
}
const noXSS = async (page) => (await page.evaluate(() => window.__xss === undefined && !document.querySelector('main img')));

try {
  // --- language: pt-BR by default, English when the browser asks for it
  let page = await open(base);
  check('pt-BR by default: the tabs read Conversa / Por dentro / Treino',
    (await page.locator('[role=tab]:visible').allTextContents()).join('/') === 'Conversa/Por dentro/Treino');
  const en = await open(base, { locale: 'en-US' });
  check('English when the browser prefers it: Chat / Inside / Training',
    (await en.locator('[role=tab]:visible').allTextContents()).join('/') === 'Chat/Inside/Training' &&
    (await en.evaluate(() => document.documentElement.lang)) === 'en');
  await en.context().close();

  // --- chat: OpenAI's /v1/chat/completions, streamed
  await page.fill('#c-max', '24');
  await page.fill('#c-seed', '7');
  const say = async (text, n) => {
    await page.fill('#chat-input', text);
    await page.keyboard.press('Enter');
    await page.waitForFunction((k) => !document.querySelector('.msg[aria-busy]') &&
      document.querySelectorAll('.msg').length === k, n);
  };
  await page.evaluate(() => {
    window.__updates = 0;
    // the answer's own changes, counted by record, not by callback: a fast
    // model's whole stream can arrive in one read, its deltas then shown in
    // one task (one callback, a record each); an answer in one piece is 1
    const mine = (n) => (n.nodeType === 1 ? n : n.parentElement)?.matches?.('.msg.assistant .text');
    new MutationObserver((recs) => { window.__updates += recs.filter((r) => mine(r.target)).length; }).observe(document.getElementById('messages'),
      { subtree: true, childList: true, characterData: true });
  });
  await say('O Rio de Janeiro é', 2);
  const answer = await page.locator('.msg.assistant .text').textContent();
  // streamed: the answer came as the stream's text events, each shown as it
  // came (the server sends what is generated when the client reads: on a
  // busy machine several tokens can share one event, so the count of events
  // is not asserted, only that every one was rendered)
  const deltas = Number(await page.locator('.msg.assistant .text').getAttribute('data-deltas'));
  const updates = await page.evaluate(() => window.__updates);
  check('chat: a message sent with Enter gets a streamed answer, each event shown as it came',
    answer.length > 0 && deltas >= 1 && updates >= deltas,
    `answer ${JSON.stringify(answer)}, ${deltas} events, ${updates} updates`);
  check('chat: tokens/s and time to first token shown', /tokens\/s/.test(await page.textContent('#chat-stats')));
  if (shots) await page.screenshot({ path: 'docs/web-chat.png' });
  await say(`O Brasil é ${XSS}`, 4);
  check('chat: the user\'s <img onerror> is shown as text, never run',
    (await page.locator('.msg.user .text').nth(1).textContent()).includes(XSS) && (await noXSS(page)));

  // --- inside the model
  const app = await (await fetch(`${base}/v1/app`)).json();
  await page.click('#tab-inside');
  await page.fill('#inside-prompt', 'O Brasil é um país de muitas');
  await page.click('#inside-form button[type=submit]');
  await page.waitForSelector('#bars .bar');
  const maps = await page.locator('#att-grid .att-map').count();
  check(`inside: the attention grid has layers x heads maps (${app.model.layers} x ${app.model.heads})`,
    maps === app.model.layers * app.model.heads, `${maps} maps`);
  const server = await (await fetch(`${base}/v1/explain`, { method: 'POST',
    body: JSON.stringify({ prompt: 'O Brasil é um país de muitas', temperature: 0.8, top_k: 40, top_p: 0.95, seed: 42 }) })).json();
  const kept = Number(await page.getAttribute('#cut-info', 'data-kept'));
  check('inside: the page\'s top-k/top-p cut keeps as many tokens as the server\'s sampler', kept === server.sample.kept,
    `page ${kept}, server ${server.sample.kept}`);
  const width = () => page.locator('#bars .bar-fill').nth(1).evaluate((e) => e.style.width);
  const w0 = await width();
  await page.fill('#i-temp', '1.8');
  const w1 = await width();
  check('inside: moving the temperature slider reshapes the bars', w0 !== w1, `${w0} -> ${w1}`);
  await page.fill('#i-topk', '3');
  check('inside: top-k 3 leaves 3 bars uncut', (await page.locator('#bars .bar:not(.cut)').count()) === 3);
  await page.click('#att-grid .att-map >> nth=-1');
  check('inside: a map enlarges with its token labels',
    (await page.textContent('#att-big-title')).includes(String(app.model.layers)) &&
    (await page.locator('#att-big-map text').count()) >= 2 * server.tokens.length);
  const before = await page.locator('#tokens .tok').count();
  await page.click('#inside-next');
  await page.waitForFunction((n) => document.querySelectorAll('#tokens .tok').length === n + 1, before);
  check('inside: "next token" steps generation by one token', (await page.locator('#tokens .tok.gen').count()) === 1);
  check('inside: per-layer times and activation stats', (await page.locator('#layers tbody tr').count()) === 2 * app.model.layers + 2);
  await page.fill('#i-topk', '40');
  await page.fill('#i-temp', '0.8');
  if (shots) await page.screenshot({ path: 'docs/web-inside.png', fullPage: true });
  await page.fill('#inside-prompt', XSS);
  await page.click('#inside-form button[type=submit]');
  const shown = await page.waitForFunction((x) => [...document.querySelectorAll('#tokens .tok-text')]
    .map((e) => e.textContent).join('').replaceAll('\\"', '"').replaceAll('␣', ' ') === x, XSS, { timeout: 30000 })
    .then(() => true, () => false);
  check('inside: a prompt with <img onerror> is shown as tokens of text, never run', shown && (await noXSS(page)));

  // --- past runs (serve --runs)
  await page.click('#tab-train');
  await page.waitForSelector('#ch-runs .series');
  const pts = Number(await page.getAttribute('#ch-runs .series >> nth=0', 'data-points'));
  check('runs: serve --runs shows the runs\' curves and a table', pts > 5 && (await page.locator('#runs-table tbody tr').count()) >= 2);

  // --- keyboard and a phone-sized window
  await page.focus('#tab-train');
  await page.keyboard.press('ArrowLeft');
  check('keyboard: arrow keys move between the tabs', await page.evaluate(() =>
    document.activeElement.id === 'tab-inside' && !document.getElementById('view-inside').hidden));
  await page.setViewportSize({ width: 375, height: 740 });
  let fits = true;
  for (const v of ['chat', 'inside', 'train']) {
    await page.click(`#tab-${v}`);
    fits &&= await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
  }
  check('narrow (375 px) window: no view scrolls sideways', fits);
  await page.context().close();

  // --- the live dashboard of a real training run
  const out = mkdtempSync(join(work, 'dash-'));
  const train = spawn(minigpt, ['train', '--data', data, '--preset', 'micro', '--steps', '2000', '--batch', '4',
    '--threads', '1', '--eval-every', '10', '--eval-batches', '2', '--out', out, '--dashboard', '0'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let trainErr = '';
  train.stdout.on('data', (d) => { log += d; });
  train.stderr.on('data', (d) => { trainErr += d; });
  let url = null;
  for (let i = 0; i < 200 && !url; i++) {
    await sleep(50);
    url = /dashboard: (http:\/\/\S+)/.exec(log)?.[1];
  }
  check('train --dashboard 0: prints its address', !!url, log.slice(0, 300));
  const dash = await open(url);
  const points = () => dash.getAttribute('#ch-loss .series >> nth=0', 'data-points').then(Number).catch(() => 0);
  await dash.waitForFunction(() => Number(document.querySelector('#ch-loss .series')?.dataset.points) >= 2);
  const n1 = await points();
  await dash.waitForFunction((n) => Number(document.querySelector('#ch-loss .series')?.dataset.points) > n + 5, n1);
  check('dashboard: the loss curve grows as training runs', (await points()) > n1);
  await dash.waitForSelector('#samples .sample');
  check('dashboard: a sample from each evaluation, validation loss and bpb',
    (await dash.locator('#samples .sample-text').first().textContent()).startsWith('O Brasil é') &&
    (await dash.textContent('[data-card=card_bpb] .card-value')) !== '–');
  if (shots) {
    await dash.waitForFunction(() => document.querySelectorAll('#samples .sample').length >= 3);
    await dash.screenshot({ path: 'docs/web-train.png', fullPage: true });
  }
  train.kill('SIGTERM'); // the trainer saves and stops; the page is told the run ended
  await dash.waitForFunction((s) => document.getElementById('train-status').textContent === s, 'Treino concluído.');
  check('dashboard: the page learns that training ended', true);
  await new Promise((r) => (train.exitCode !== null ? r() : train.on('exit', r)));
  check('train --dashboard: exits 0 after SIGTERM, no sanitizer report', train.exitCode === 0 && !/Sanitizer/.test(trainErr),
    `exit ${train.exitCode} ${trainErr.slice(-300)}`);
  await dash.context().close();
  rmSync(out, { recursive: true, force: true });
} catch (e) {
  check('the browser run completes', false, e.message.split('\n')[0]);
}
check('zero console errors', errors.length === 0, errors.join(' | ').slice(0, 500));
await browser.close();
process.exit(failed ? 1 : 0);

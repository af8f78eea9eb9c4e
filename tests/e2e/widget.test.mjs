// The chat widget (web-demo/) in Debian's Chromium, driven by playwright-core,
// embedded on a page of another origin with one <script> tag, against the
// real gateway (serving the widget from web.root) and the upstream simulator.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { SIM_TEXT, expectedText, startProxy, startWithPort } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const skip = !CHROMIUM ? 'no Chromium (/usr/bin/chromium): install Debian\'s chromium package' :
  !fs.existsSync(path.join(repo, 'web-demo', 'node_modules', 'marked')) ? 'web-demo/node_modules missing: npm ci --prefix web-demo' : false;
const shots = process.env.SLUICE_SCREENSHOT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-shots-'));

let work, sim, gw, page0, proxy, browser;

// The host page: another origin, embedding the widget with one tag.
function startPage() {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const gwBase = u.searchParams.get('gw');
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(`<!doctype html><html><head><meta charset="utf-8"><title>A shop</title></head>
      <body style="font-family:sans-serif;background:#f5f5f4"><h1>Someone's shop</h1><p>Products, prices, a footer.</p>
      <script src="${gwBase}/widget.js" data-heartbeat-ms="1000" data-open="true" async></script></body></html>`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: (gwPort) => `http://127.0.0.1:${server.address().port}/?gw=${encodeURIComponent(`http://127.0.0.1:${gwPort}`)}`,
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => server.close(),
  })));
}

before(async () => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-widget-'));
  const db = path.join(work, 'orders.sqlite');
  const made = await new Promise((resolve) => {
    spawn('python3', [path.join(repo, 'tools', 'make_demo_orders.py'), db], { stdio: 'ignore' }).on('exit', resolve);
  });
  assert.equal(made, 0, 'make_demo_orders.py');
  page0 = await startPage();
  sim = await startWithPort(process.env.SLUICE_SIM_BIN, ['--listen', '127.0.0.1:0', '--text', SIM_TEXT, '--rate', '25']);
  const plugins = process.env.SLUICE_PLUGIN_DIR;
  const toml = path.join(work, 'sluice.toml');
  fs.writeFileSync(toml, `
[server]
allowed_origins = ["${page0.origin}", "http://127.0.0.1"]
[web]
root = "${path.join(repo, 'web-demo')}"
[[plugins]]
path = "${plugins}/order_lookup.so"
[plugins.settings]
database = "${db}"
order_url = "https://shop.example/orders/{id}"
[[plugins]]
path = "${plugins}/moderation.so"
[plugins.settings]
pii = ["email"]
`);
  gw = await startWithPort(process.env.SLUICE_GATEWAY_BIN,
    ['--config', toml, '--listen', '127.0.0.1:0', '--upstream', `http://127.0.0.1:${sim.port}/v1`]);
  proxy = await startProxy(gw.port);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
});

after(async () => {
  await browser?.close();
  proxy?.close();
  page0?.close();
  gw?.child.kill('SIGKILL');
  sim?.child.kill('SIGKILL');
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

async function openWidget(locale = 'en-US', port = gw.port) {
  const context = await browser.newContext({ locale, viewport: { width: 1000, height: 760 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('dialog', (d) => { errors.push(`dialog: ${d.message()}`); d.dismiss(); });
  await page.goto(page0.url(port));
  await page.locator('#sluice-widget .state[data-state="open"]').waitFor({ timeout: 15000 });
  return { context, page, errors };
}

async function ask(page, text) {
  const input = page.locator('#sluice-widget textarea');
  await input.fill(text);
  await input.press('Enter');
}

// The last answer's state, read from the page.
const lastAnswer = (page) => page.evaluate(() => {
  const nodes = document.querySelector('#sluice-widget').shadowRoot.querySelectorAll('.msg.assistant');
  const n = nodes[nodes.length - 1];
  return n ? { text: n.sluiceText, busy: n.getAttribute('aria-busy'), html: n.innerHTML, shown: n.textContent } : null;
});

async function waitAnswer(page, predicate, timeout = 30000) {
  const end = Date.now() + timeout;
  for (;;) {
    const a = await lastAnswer(page);
    if (a && predicate(a)) return a;
    if (Date.now() > end) throw new Error(`timed out; last answer: ${JSON.stringify(a)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const doneAnswer = (page, timeout) => waitAnswer(page, (a) => a.busy === 'false', timeout);

// What the gateway journaled for the page's session: every delta from
// offset 0. `counts.deltas`, when given, gets the number of delta events.
async function journaled(page, counts = {}) {
  const saved = await page.evaluate(() => {
    const k = Object.keys(sessionStorage).find((x) => x.startsWith('sluice-widget:'));
    return JSON.parse(sessionStorage.getItem(k)).session;
  });
  const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/v1/ws`);
  await new Promise((r) => ws.on('open', r));
  ws.send(JSON.stringify({ type: 'resume', session_id: saved.id, offset: 0, resume_token: saved.resumeToken }));
  const turns = [];
  let text = '';
  await new Promise((resolve, reject) => {
    ws.on('message', (m) => {
      const f = JSON.parse(m);
      if (f.type === 'resume_failed') reject(new Error(f.reason));
      if (f.type === 'delta') {
        text += f.text;
        counts.deltas = (counts.deltas || 0) + 1;
      }
      if (f.type === 'done') {
        turns.push(text);
        text = '';
        if (f.offset === saved.offset) resolve();
      }
    });
    setTimeout(() => reject(new Error('journal read timed out')), 10000);
  });
  ws.close();
  return turns;
}

async function stats() {
  return (await fetch(`http://127.0.0.1:${sim.port}/sim/stats`)).json();
}

test('a question: the first text shows before the answer ends, and the whole answer is what the gateway streamed', { skip }, async () => {
  const { context, page, errors } = await openWidget();
  const q = 'Shipping to 上海? 🚚';
  await ask(page, `${q} [[sim repeat=3]]`);
  const early = await waitAnswer(page, (a) => a.text && a.text.length > 0);
  assert.equal(early.busy, 'true', 'text is visible while the answer still streams');
  assert.ok(early.text.length < expectedText(q, 3).length);
  const done = await doneAnswer(page);
  assert.equal(done.text, expectedText(q, 3));
  assert.deepEqual(await journaled(page), [expectedText(q, 3)]);
  // The widget's files refuse a page whose origin is not allowed.
  const refused = await fetch(`http://127.0.0.1:${gw.port}/widget.js`, { headers: { Origin: 'https://evil.example' } });
  assert.equal(refused.status, 403);
  const allowed = await fetch(`http://127.0.0.1:${gw.port}/sdk/sluice.mjs`, { headers: { Origin: page0.origin } });
  assert.equal(allowed.headers.get('access-control-allow-origin'), page0.origin);
  // Typing: Shift+Enter breaks the line and does not send.
  const input = page.locator('#sluice-widget textarea');
  await input.fill('line one');
  await input.press('Shift+Enter');
  await input.type('line two');
  assert.equal(await input.inputValue(), 'line one\nline two');
  await page.screenshot({ path: path.join(shots, 'widget-en.png') });
  assert.deepEqual(errors, []);
  await context.close();
});

test('offline mid-answer (CDP network emulation): the answer completes with nothing missing or repeated', { skip }, async () => {
  const { context, page } = await openWidget();
  const q = 'offline test 离线';
  await ask(page, `${q} [[sim repeat=4 rate=15]]`);
  await waitAnswer(page, (a) => a.text && a.text.length > 10);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await page.locator('#sluice-widget .state[data-state="reconnecting"]').waitFor({ timeout: 10000 });
  const during = await lastAnswer(page);
  await new Promise((r) => setTimeout(r, 1500));
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  const done = await doneAnswer(page);
  assert.ok(during.text.length < done.text.length, 'the cut came mid-answer');
  assert.equal(done.text, expectedText(q, 4));
  await context.close();
});

test('the gateway drops the socket mid-answer: the widget resumes and the answer is exact', { skip }, async () => {
  const { context, page } = await openWidget('en-US', proxy.port);
  const q = 'drop test 断线';
  await ask(page, `${q} [[sim repeat=4 rate=15]]`);
  await waitAnswer(page, (a) => a.text && a.text.length > 10);
  proxy.cut();
  const cutAt = (await lastAnswer(page)).text.length;
  await page.locator('#sluice-widget .state[data-state="open"]').waitFor({ timeout: 15000 });
  const done = await doneAnswer(page);
  assert.ok(cutAt < done.text.length);
  assert.equal(done.text, expectedText(q, 4));
  await context.close();
});

test('Stop ends the answer and the upstream sees the abort', { skip }, async () => {
  const { context, page } = await openWidget();
  const before = (await stats()).aborted;
  await ask(page, 'stop test [[sim repeat=20 rate=10]]');
  await waitAnswer(page, (a) => a.text && a.text.length > 3);
  await page.locator('#sluice-widget button.stop').click();
  const done = await doneAnswer(page, 10000);
  assert.ok(done.text.length < expectedText('stop test', 20).length);
  const s = await (await fetch(`http://127.0.0.1:${sim.port}/sim/stats?wait_aborted=${before + 1}&timeout_ms=5000`)).json();
  assert.equal(s.aborted, before + 1);
  await page.locator('#sluice-widget .notice').filter({ hasText: 'Stopped' }).waitFor();
  await context.close();
});

test('model output with <script>, <img onerror> and javascript: links renders inert', { skip }, async () => {
  const { context, page, errors } = await openWidget();
  const evil = '<script>window.__xss=1</script> <img src=x onerror="window.__xss=2"> [click me](javascript:window.__xss=3) <a href="javascript:window.__xss=4">raw</a> **bold**';
  await ask(page, evil);
  const done = await doneAnswer(page);
  assert.equal(done.text, expectedText(evil));  // the text arrived as the model wrote it ...
  // ... and rendered without any of it running or staying clickable.
  assert.doesNotMatch(done.html, /<script|<img|onerror|javascript:/i);
  assert.match(done.html, /<strong>bold<\/strong>/);
  await page.locator('#sluice-widget .msg.assistant a').first().click().catch(() => {});
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a page reload mid-answer resumes the same answer', { skip }, async () => {
  const { context, page } = await openWidget();
  const q = 'reload test 刷新 🔄';
  await ask(page, `${q} [[sim repeat=4 rate=15]]`);
  await waitAnswer(page, (a) => a.text && a.text.length > 10);
  await page.reload();
  const resumed = await waitAnswer(page, (a) => a.text && a.text.length > 0, 10000);
  const done = await doneAnswer(page);
  assert.ok(resumed.text.length <= done.text.length);
  assert.equal(done.text, expectedText(q, 4));
  // The conversation survived: the question is still there, once.
  const users = await page.evaluate(() => [...document.querySelector('#sluice-widget').shadowRoot.querySelectorAll('.msg.user')].map((n) => n.textContent));
  assert.deepEqual(users, [`${q} [[sim repeat=4 rate=15]]`]);
  assert.deepEqual(await journaled(page), [expectedText(q, 4)]);
  await context.close();
});

test('a long answer is saved to sessionStorage a few times, not once per delta, and survives a reload', { skip }, async () => {
  const { context, page } = await openWidget();
  await page.evaluate(() => {
    window.__writes = 0;
    const set = Storage.prototype.setItem;
    Storage.prototype.setItem = function (k, v) {
      if (k.startsWith('sluice-widget:')) window.__writes++;
      return set.call(this, k, v);
    };
  });
  const q = 'save test 保存 💾';
  await ask(page, `${q} [[sim repeat=8 rate=120]]`);
  const done = await doneAnswer(page);
  assert.equal(done.text, expectedText(q, 8));
  const writes = await page.evaluate(() => window.__writes);
  const counts = {};
  assert.deepEqual(await journaled(page, counts), [expectedText(q, 8)]);
  assert.ok(counts.deltas >= 100, `a long answer: ${counts.deltas} deltas`);
  assert.ok(writes * 4 < counts.deltas, `${writes} writes for ${counts.deltas} deltas`);
  // What was saved last is the whole answer.
  await page.reload();
  await page.locator('#sluice-widget .state[data-state="open"]').waitFor({ timeout: 15000 });
  const again = await lastAnswer(page);
  assert.equal(again.text, expectedText(q, 8));
  assert.equal(again.busy, 'false');
  await context.close();
});

test('Chinese interface, an order card and a moderation notice (screenshots)', { skip }, async () => {
  const { context, page } = await openWidget('zh-CN');
  assert.equal(await page.locator('#sluice-widget textarea').getAttribute('placeholder'), '询问订单、配送、退货……');
  assert.equal(await page.locator('#sluice-widget .log').getAttribute('aria-live'), 'polite');
  await ask(page, '怎么退货？');
  await waitAnswer(page, (a) => a.busy === 'false' && a.text.includes('怎么退货'));
  await page.screenshot({ path: path.join(shots, 'widget-zh.png') });
  await ask(page, '我的订单 A1001 到哪了？');
  const card = page.locator('#sluice-widget .card.order');
  await card.waitFor({ timeout: 15000 });
  assert.match(await card.textContent(), /A1001/);
  assert.match(await card.textContent(), /已发货|运输中|已签收/);
  await page.locator('#sluice-widget .card.sources a').waitFor();
  const answer = await waitAnswer(page, (a) => a.busy === 'false' && a.text.includes('A1001'));
  assert.match(answer.text, /A1001 is (shipped|in_transit|delivered)/);
  await page.screenshot({ path: path.join(shots, 'order-card.png') });
  await context.close();

  const en = await openWidget();
  await ask(en.page, 'Write to me at ana.li@example.com please');
  const done = await waitAnswer(en.page, (a) => a.busy === 'false' && a.text.includes('Write to me'));
  assert.doesNotMatch(done.text, /ana\.li@example\.com/);
  await en.page.locator('#sluice-widget .notice').filter({ hasText: 'moderation' }).waitFor();
  await en.page.screenshot({ path: path.join(shots, 'moderation.png') });
  await en.context.close();
  for (const f of ['widget-en.png', 'widget-zh.png', 'order-card.png', 'moderation.png']) {
    const head = fs.readFileSync(path.join(shots, f)).subarray(0, 8);
    assert.deepEqual([...head], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${f} is a PNG`);
  }
});

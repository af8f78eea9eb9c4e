// The JavaScript SDK (sdk/js/sluice.mjs) in Node with the `ws` package,
// against the real gateway and the upstream simulator.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { SluiceClient, SluiceError } from '../../sdk/js/sluice.mjs';
import { startStack, startProxy, expectedText } from './harness.mjs';

let stack, proxy;

before(async () => {
  stack = await startStack(['--rate', '40']);
  proxy = await startProxy(Number(new URL(stack.gatewayUrl).port));
});
after(() => {
  proxy.close();
  stack.stop();
});

const client = (port, extra = {}) => new SluiceClient({
  url: `ws://127.0.0.1:${port}/v1/ws`, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, ...extra,
});

test('several sessions on one connection, each with its own events', async () => {
  const c = client(new URL(stack.gatewayUrl).port);
  await c.connect();
  const prompts = ['first 第一', 'second 第二 🚀', 'third'];
  const sessions = prompts.map(() => c.session());
  const texts = sessions.map(() => '');
  sessions.forEach((s, i) => s.on('delta', (e) => { texts[i] += e.text; }));
  const done = await Promise.all(sessions.map((s, i) => s.send(prompts[i])));
  prompts.forEach((p, i) => {
    assert.equal(done[i].finish_reason, 'stop');
    assert.equal(done[i].text, expectedText(p));
    assert.equal(texts[i], expectedText(p));
  });
  assert.equal(new Set(sessions.map((s) => s.id)).size, 3);
  // A second turn on a session continues its conversation.
  const again = await sessions[0].send('more');
  assert.equal(again.text, expectedText('more'));
  c.close();
});

test('a dropped connection: reconnects, resumes every session, and each piece of text arrives exactly once', async () => {
  const c = client(proxy.port);
  const statuses = [];
  c.on('status', (s) => statuses.push(s));
  await c.connect();
  const a = c.session();
  const b = c.session();
  let textA = '';
  let textB = '';
  a.on('delta', (e) => { textA += e.text; });
  b.on('delta', (e) => { textB += e.text; });
  const pa = a.send('alpha 甲 [[sim repeat=4 rate=20]]');
  const pb = b.send('beta 乙 [[sim repeat=4 rate=20]]');
  await new Promise((resolve) => a.on('delta', () => { if (textA.length > 20) resolve(); }));
  proxy.cut();
  const [da, db] = await Promise.all([pa, pb]);
  assert.equal(textA, expectedText('alpha 甲', 4));
  assert.equal(textB, expectedText('beta 乙', 4));
  assert.equal(da.text, textA);
  assert.equal(db.text, textB);
  assert.ok(statuses.includes('reconnecting'), statuses.join());
  assert.ok(statuses.includes('resumed'), statuses.join());
  c.close();
});

test('a saved session resumes in a new client (a page reload)', async () => {
  const first = client(new URL(stack.gatewayUrl).port);
  await first.connect();
  const s = first.session();
  let seen = '';
  s.on('delta', (e) => { seen += e.text; });
  s.send('reload 刷新 [[sim repeat=4 rate=20]]').catch(() => {});
  await new Promise((resolve) => s.on('delta', () => { if (seen.length > 20) resolve(); }));
  const saved = s.state();
  first.close();  // the "page" goes away mid-answer

  const second = client(new URL(stack.gatewayUrl).port);
  await second.connect();
  const again = second.session(saved);
  let rest = '';
  again.on('delta', (e) => { rest += e.text; });
  const done = await new Promise((resolve) => again.on('done', resolve));
  assert.equal(done.finish_reason, 'stop');
  assert.equal(seen + rest, expectedText('reload 刷新', 4));  // nothing lost, nothing twice
  second.close();
});

test('cancel ends the turn; a refused turn rejects with the gateway\'s code', async () => {
  const c = client(new URL(stack.gatewayUrl).port);
  await c.connect();
  const s = c.session();
  const p = s.send('long [[sim repeat=50 rate=20]]');
  await new Promise((resolve) => s.once('delta', resolve));
  await assert.rejects(s.send('again'), (e) => e instanceof SluiceError && e.code === 'session_busy');
  s.cancel();
  const done = await p;
  assert.equal(done.finish_reason, 'cancelled');
  await assert.rejects(c.session().send({ messages: [{ role: 'wizard', content: 'x' }] }),
    (e) => e instanceof SluiceError && e.code === 'bad_message');
  c.close();
});

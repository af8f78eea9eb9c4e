// The SDK's sources and citations (sdk/js/sluice.mjs): citations() on its
// own, a session's per-turn sources fed frame by frame, and the SDK against
// the real gateway with the knowledge_base plugin and the upstream simulator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { SluiceClient, citations } from '../../sdk/js/sluice.mjs';
import { CITED_TEXT, kbConfig, startWithPort } from './harness.mjs';

const items = [
  { kind: 'passage', id: 'en/returns#return-policy', title: 'Returns › Return policy', url: 'https://shop.sluice.example/help/returns#return-policy', snippet: 'You can return any item within 30 days.', score: 16.6 },
  { kind: 'passage', id: 'en/returns#how-to-return', title: 'Returns › How to return an item', url: '', snippet: 'To start a return, sign in.', score: 16.1 },
  { kind: 'passage', id: 'zh/returns#return-policy', title: '退货 › 退货政策', url: 'https://shop.sluice.example/zh/help/returns', snippet: '收货后30天内可以退货。', score: 15.2 },
];

// [marker, numbers] per citation, and each marker where it says it is.
function shape(text, found) {
  for (const c of found) assert.equal(text.slice(c.start, c.end), c.marker);
  for (const c of found) assert.deepEqual(c.items, c.numbers.map((n) => items[n - 1]));
  return found.map((c) => [c.marker, c.numbers]);
}

test('citations: [n], [1][3], [1, 3]; a number without an item is not a citation', () => {
  const text = 'Free [2]. See [1][3] or [1, 3]; [9] and [0] are not sources, [1, 9] cites only 1.';
  assert.deepEqual(shape(text, citations(text, items)), [
    ['[2]', [2]], ['[1]', [1]], ['[3]', [3]], ['[1, 3]', [1, 3]], ['[1, 9]', [1]],
  ]);
  assert.deepEqual(citations('nothing cited [9]', items), []);
  assert.deepEqual(citations('[1] with no sources', []), []);
  assert.deepEqual(citations('[1] with no sources', undefined), []);
  // Not markers: a Markdown link, words in brackets, a marker still open.
  assert.deepEqual(citations('[1](https://example.com) [a] [1 and [2', items), []);
  assert.deepEqual(shape('[1,3] [2，3]', citations('[1,3] [2，3]', items)), [['[1,3]', [1, 3]], ['[2，3]', [2, 3]]]);
});

test('citations: Chinese text and emoji around the markers (offsets in UTF-16 units, as String.slice)', () => {
  const text = '退货免费[1]。🚀[2]✅ 见[1, 3]👍🏽[3]';
  const found = citations(text, items);
  assert.deepEqual(shape(text, found), [['[1]', [1]], ['[2]', [2]], ['[1, 3]', [1, 3]], ['[3]', [3]]]);
  assert.equal(found[0].start, 4);
  assert.equal(found[1].start, '退货免费[1]。🚀'.length);
});

test('citations: a marker split across deltas is found once both halves are there', () => {
  const deltas = ['returns are free [', '2]. 退货', '免费 [1', ']。 ✅ [1', ', 3]'];
  let text = '';
  const seen = deltas.map((d) => {
    text += d;
    return citations(text, items).map((c) => c.marker);
  });
  assert.deepEqual(seen, [[], ['[2]'], ['[2]'], ['[2]', '[1]'], ['[2]', '[1]', '[1, 3]']]);
});

// A session fed the frames a gateway sends: no connection.
function offlineSession() {
  class NoSocket { constructor() { this.readyState = 0; } send() {} close() {} }
  const client = new SluiceClient({ url: 'ws://127.0.0.1:9/v1/ws', WebSocket: NoSocket, heartbeatMs: 0 });
  return client.session({ id: 's_test', resumeToken: 'rt_test', offset: 0 });
}

test('a session: sources before the first delta, the turn\'s done carries sources and citations, a tool\'s sources are apart', () => {
  const s = offlineSession();
  const events = [];
  let sourcesAtFirstDelta = null;
  s.on('sources', (e) => events.push(`sources:${e.origin}`));
  s.on('delta', () => { if (sourcesAtFirstDelta === null) sourcesAtFirstDelta = s.sources; });
  let done = null;
  s.on('done', (d) => { done = d; });
  const frames = [
    { type: 'sources', origin: 'retrieval', items },
    { type: 'tool_call', id: 'call_1', name: 'lookup_order', arguments: {} },
    { type: 'tool_result', id: 'call_1', name: 'lookup_order', ok: true, result: {} },
    { type: 'sources', origin: 'tool', id: 'call_1', items: [{ title: 'Order A1001', url: 'https://shop.example/orders/A1001' }] },
    ...['Returns are free [', '2]; 退货 [1', '][3] 🚀 [9]'].map((text) => ({ type: 'delta', text })),
    { type: 'done', finish_reason: 'stop' },
  ];
  frames.forEach((f, i) => s._event({ session_id: 's_test', offset: i + 1, ...f }));
  assert.deepEqual(events, ['sources:retrieval', 'sources:tool']);
  assert.equal(sourcesAtFirstDelta, items);
  assert.equal(done.text, 'Returns are free [2]; 退货 [1][3] 🚀 [9]');
  assert.equal(done.sources, items);
  assert.deepEqual(done.citations.map((c) => c.numbers), [[2], [1], [3]]);
  assert.deepEqual(s.citations(), done.citations);
  // The last turn's text and sources stay until the next turn begins; a
  // replay that goes on into it starts afresh, a turn without passages has none.
  assert.equal(s.sources, items);
  s._event({ session_id: 's_test', offset: frames.length + 1, type: 'delta', text: 'No sources now [1].' });
  assert.equal(s.text, 'No sources now [1].');
  assert.deepEqual(s.sources, []);
  assert.deepEqual(s.citations(), []);
});

const bins = ['SLUICE_GATEWAY_BIN', 'SLUICE_SIM_BIN', 'SLUICE_PLUGIN_DIR'];
const noStack = bins.some((v) => !process.env[v]) ? `needs ${bins.join(', ')}` : false;
const hasKb = !noStack && fs.existsSync(path.join(process.env.SLUICE_PLUGIN_DIR, 'knowledge_base.so'));

test('the SDK against the gateway with the knowledge base: passages first, a marker split across deltas, citations mapped',
  { skip: noStack || (!hasKb && 'no knowledge_base.so') }, async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-cite-'));
    const toml = path.join(work, 'sluice.toml');
    fs.writeFileSync(toml, kbConfig());
    const sim = await startWithPort(process.env.SLUICE_SIM_BIN, ['--listen', '127.0.0.1:0', '--text', CITED_TEXT, '--rate', '400']);
    let gw;
    try {
      gw = await startWithPort(process.env.SLUICE_GATEWAY_BIN,
        ['--config', toml, '--listen', '127.0.0.1:0', '--upstream', `http://127.0.0.1:${sim.port}/v1`]);
      const client = new SluiceClient({ url: `ws://127.0.0.1:${gw.port}/v1/ws`, WebSocket });
      await client.connect();
      const s = client.session();
      const order = [];
      const deltas = [];
      let retrieval = null;
      s.on('sources', (e) => { order.push(`sources:${e.origin}`); if (e.origin === 'retrieval') retrieval = e; });
      s.on('delta', (e) => { if (!deltas.length) order.push('delta'); deltas.push(e.text); });
      // by_char: one character a delta, so every marker is split.
      const done = await s.send('How do I return an item? [[sim by_char=1]]');
      client.close();
      assert.deepEqual(order, ['sources:retrieval', 'delta']);
      assert.equal(done.text, CITED_TEXT);
      assert.ok(deltas.includes('[') && !deltas.some((d) => d.includes('[1]')), 'markers arrived split');
      assert.ok(retrieval.items.length >= 3, `${retrieval.items.length} passages`);
      for (const it of retrieval.items) {
        assert.equal(it.kind, 'passage');
        assert.match(it.id, /^(en|zh)\/[a-z-]+#[a-z0-9-]+$/);
        assert.match(it.title, / › /);
        assert.match(it.url, /^https:\/\/shop\.sluice\.example\//);
        assert.ok(it.snippet.length > 40);
        assert.equal(typeof it.score, 'number');
        assert.ok(it.metadata.path && it.metadata.heading && it.metadata.lang, JSON.stringify(it.metadata));
      }
      assert.deepEqual(done.sources, retrieval.items);
      assert.deepEqual(done.citations.map((c) => c.marker), ['[1]', '[2]', '[1]', '[1]', '[3]', '[1, 3]']);
      assert.deepEqual(done.citations.map((c) => c.items.map((i) => i.id)),
        [[1], [2], [1], [1], [3], [1, 3]].map((ns) => ns.map((n) => retrieval.items[n - 1].id)));
      assert.ok(/returns|refunds/.test(retrieval.items[0].id), retrieval.items[0].id);
    } finally {
      gw?.child.kill('SIGKILL');
      sim.child.kill('SIGKILL');
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

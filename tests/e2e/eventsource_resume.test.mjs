// The npm `eventsource` package, cut off mid-answer, reconnects with
// Last-Event-ID and gets the rest of the same answer: nothing lost or repeated.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { startStack, expectedText } from './harness.mjs';

let stack;
before(async () => { stack = await startStack(['--rate', '100']); });
after(() => stack.stop());

test('EventSource resumes with Last-Event-ID after a cut', async () => {
  // Start a streaming turn, keep only its session, and leave at once: the
  // turn runs on (resume grace).
  const controller = new AbortController();
  const res = await fetch(`${stack.gatewayUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', stream: true,
      messages: [{ role: 'user', content: '[[sim repeat=3]] 断点续传 🔁' }] }),
    signal: controller.signal,
  });
  const sessionId = res.headers.get('x-sluice-session-id');
  const token = res.headers.get('x-sluice-resume-token');
  controller.abort();

  // The first connection is cut after a few kilobytes, as a network would.
  const requests = [];
  const cuttingFetch = async (url, init) => {
    const headers = new Headers(init.headers);
    requests.push({ lastEventId: headers.get('last-event-id') });
    const response = await fetch(url, init);
    if (requests.length > 1) return response;
    const reader = response.body.getReader();
    let sent = 0;
    const body = new ReadableStream({
      async pull(ctrl) {
        const { value, done } = await reader.read();
        if (done) return ctrl.close();
        sent += value.length;
        ctrl.enqueue(value);
        if (sent > 2000) {
          reader.cancel();
          ctrl.error(new Error('simulated network cut'));
        }
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };

  const url = `${stack.gatewayUrl}/v1/sessions/${sessionId}/stream?resume_token=${token}&offset=0`;
  const es = new EventSource(url, { fetch: cuttingFetch });
  const ids = [];
  let text = '';
  await new Promise((resolve, reject) => {
    es.onmessage = (ev) => {
      if (ev.data === '[DONE]') {
        es.close();
        return resolve();
      }
      const chunk = JSON.parse(ev.data);
      if (chunk.error) return reject(new Error(chunk.error.message));
      ids.push(Number(ev.lastEventId.split(':')[1]));
      text += chunk.choices[0]?.delta?.content ?? '';
    };
    setTimeout(() => reject(new Error('no [DONE] in time')), 30000).unref();
  });

  assert.ok(requests.length >= 2, 'the client reconnected');
  assert.match(requests[1].lastEventId, new RegExp(`^${sessionId}:\\d+$`));
  assert.equal(text, expectedText('断点续传 🔁', 3));
  for (let i = 1; i < ids.length; i++) assert.equal(ids[i], ids[i - 1] + 1, 'offsets in order, once each');
});

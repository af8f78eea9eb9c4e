// The official npm `openai` package streams a completion through the gateway.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack, expectedText } from './harness.mjs';

let stack;
before(async () => { stack = await startStack(['--rate', '200', '--split-writes']); });
after(() => stack.stop());

test('streams a chat completion with the openai package', async () => {
  const client = new OpenAI({ baseURL: `${stack.gatewayUrl}/v1`, apiKey: 'not-needed-yet' });
  const stream = await client.chat.completions.create({
    model: 'sim-model',
    messages: [{ role: 'user', content: '退货政策 📦' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.choices.length > 0) {
      text += chunk.choices[0].delta?.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, expectedText('退货政策 📦'));
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.completion_tokens > 10);
});

test('non-streaming completion, and the session continues over HTTP', async () => {
  const client = new OpenAI({ baseURL: `${stack.gatewayUrl}/v1`, apiKey: 'x' });
  const { data, response } = await client.chat.completions
    .create({ model: 'sim-model', messages: [{ role: 'user', content: 'first' }] })
    .withResponse();
  assert.equal(data.choices[0].message.content, expectedText('first'));
  assert.equal(data.choices[0].finish_reason, 'stop');
  const sessionId = response.headers.get('x-sluice-session-id');
  const token = response.headers.get('x-sluice-resume-token');
  assert.match(sessionId, /^s_/);

  const second = await client.chat.completions.create(
    { model: 'sim-model', messages: [{ role: 'user', content: 'second' }] },
    { headers: { 'X-Sluice-Session-Id': sessionId, 'X-Sluice-Resume-Token': token } });
  assert.equal(second.choices[0].message.content, expectedText('second'));
  // The upstream got the whole conversation.
  const stats = await (await fetch(`${stack.simUrl}/sim/stats`)).json();
  const roles = stats.last_body.messages.map((m) => m.role);
  assert.deepEqual(roles, ['user', 'assistant', 'user']);
});

test('errors come back as OpenAI API errors', async () => {
  const client = new OpenAI({ baseURL: `${stack.gatewayUrl}/v1`, apiKey: 'x', maxRetries: 0 });
  await assert.rejects(
    client.chat.completions.create({ model: 'm', messages: [{ role: 'wizard', content: 'x' }] }),
    (err) => err.status === 400 && err.code === 'bad_message');
});

// Drives aoqd's HTTP API with the official openai package: list models, a completion, a streamed
// chat completion, and bad requests that must come back as OpenAI errors with the right status.
// Usage: node openai_test.mjs BASE_URL API_KEY
import OpenAI from 'openai';

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120000 });
let failures = 0;
function check(cond, what) {
  if (!cond) {
    console.error(`FAIL: ${what}`);
    failures++;
  } else {
    console.log(`ok: ${what}`);
  }
}

const models = await client.models.list();
const ids = models.data.map((m) => m.id);
check(ids.includes('tiny'), `models.list has tiny (${JSON.stringify(ids)})`);
check(models.data.every((m) => m.object === 'model'), 'every model has object "model"');
const one = await client.models.retrieve('tiny');
check(one.id === 'tiny', 'models.retrieve(tiny)');

const c = await client.completions.create({ model: 'tiny', prompt: 'The capital of France is', max_tokens: 7, temperature: 0, seed: 1, ignore_eos: true });
check(c.object === 'text_completion' && c.choices.length === 1, 'completion object');
check(typeof c.choices[0].text === 'string', 'completion text is a string');
check(c.usage.completion_tokens === 7 && c.choices[0].finish_reason === 'length', `7 tokens, finish length (${JSON.stringify(c.usage)})`);
check(c.usage.prompt_tokens > 0 && c.usage.total_tokens === c.usage.prompt_tokens + c.usage.completion_tokens, 'usage adds up');
const c2 = await client.completions.create({ model: 'tiny', prompt: 'The capital of France is', max_tokens: 7, temperature: 0, seed: 1, ignore_eos: true });
check(c2.choices[0].text === c.choices[0].text, 'greedy completion is reproducible');

const stream = await client.chat.completions.create({
  model: 'tiny', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }],
  max_tokens: 9, temperature: 0.8, top_p: 0.9, seed: 42, ignore_eos: true, stream: true, stream_options: { include_usage: true },
});
let text = '', chunks = 0, finish = null, usage = null, role = null;
for await (const ch of stream) {
  chunks++;
  check(ch.object === 'chat.completion.chunk', `chunk ${chunks} is a chat.completion.chunk`);
  if (ch.usage) usage = ch.usage;
  for (const choice of ch.choices) {
    if (choice.delta.role) role = choice.delta.role;
    if (choice.delta.content) text += choice.delta.content;
    if (choice.finish_reason) finish = choice.finish_reason;
  }
}
check(chunks >= 3, `streamed ${chunks} chunks`);
check(role === 'assistant', 'the stream names the assistant role');
check(finish === 'length', `stream finish_reason length (got ${finish})`);
check(usage && usage.completion_tokens === 9, `stream usage (${JSON.stringify(usage)})`);
const whole = await client.chat.completions.create({
  model: 'tiny', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }],
  max_tokens: 9, temperature: 0.8, top_p: 0.9, seed: 42, ignore_eos: true,
});
check(whole.choices[0].message.content === text, 'same seed: streamed text equals the non-streamed message');
check(whole.choices[0].message.role === 'assistant', 'chat message role');

async function expectError(what, fn, status, type) {
  try {
    await fn();
    check(false, `${what}: expected an error`);
  } catch (e) {
    check(e instanceof OpenAI.APIError, `${what}: an APIError`);
    check(e.status === status, `${what}: status ${status} (got ${e.status})`);
    check(e.error && e.error.type === type && typeof e.error.message === 'string' && e.error.message.length > 0,
      `${what}: error object of type ${type} (${JSON.stringify(e.error)})`);
  }
}
await expectError('unknown model', () => client.completions.create({ model: 'nope', prompt: 'x' }), 404, 'not_found_error');
await expectError('bad temperature', () => client.completions.create({ model: 'tiny', prompt: 'x', temperature: 7 }), 400, 'invalid_request_error');
await expectError('bad role', () => client.chat.completions.create({ model: 'tiny', messages: [{ role: 'wizard', content: 'x' }] }), 400, 'invalid_request_error');
const bad = new OpenAI({ baseURL, apiKey: 'not-a-key', maxRetries: 0 });
await expectError('bad key', () => bad.models.list(), 401, 'authentication_error');

if (failures) {
  console.error(`${failures} check(s) failed`);
  process.exit(1);
}
console.log('openai package: all checks passed');

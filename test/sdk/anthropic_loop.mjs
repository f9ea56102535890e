// An agent loop through whyops-proxy with the official Anthropic Node SDK.
//
//   WHYOPS_BASE_URL=http://127.0.0.1:8080 WHYOPS_KEY=whyops_... node anthropic_loop.mjs
//
//   1. messages.create, model claude-x-tool: text and a tool_use block; the
//      script appends the assistant content and a user tool_result;
//   2. messages.stream, model claude-x-stream, assembled by finalMessage();
//   3. messages.create, model claude-x-text: plain text.
// The upstream answers are scripted by the test (test/integration/test_sdk.py),
// chosen by model name.  Prints one JSON line; exit status 1 on any error.
import Anthropic from '@anthropic-ai/sdk';
import { config, recordingFetch, proxyHeaders, assert, last, main } from './common.mjs';

const TOOLS = [
  {
    name: 'get_weather',
    description: 'Current weather for a city',
    input_schema: {
      type: 'object',
      properties: { city: { type: 'string' } },
      required: ['city'],
    },
  },
];

function getWeather(input) {
  return JSON.stringify({ city: input.city, temperature_c: 21, conditions: 'clear' });
}

const text = (msg) => msg.content.filter((b) => b.type === 'text').map((b) => b.text).join('');

main(async () => {
  const { base, key } = config();
  const log = [];
  const client = new Anthropic({
    baseURL: base,
    apiKey: key,
    authToken: null,
    maxRetries: 0,
    timeout: 20_000,
    fetch: recordingFetch(log),
  });
  const out = { ok: true, sdk: 'anthropic', headers: {} };
  const system = 'You are a weather assistant. Use the tools.';

  // --- turn 1: non-streamed, a tool_use block -----------------------------
  const messages = [{ role: 'user', content: 'What is the weather in Rome?' }];
  const t1 = await client.messages
    .create({ model: 'claude-x-tool', max_tokens: 1024, system, tools: TOOLS, messages })
    .withResponse();
  out.headers.turn1 = proxyHeaders(t1.response);
  const m1 = t1.data;
  assert(m1.stop_reason === 'tool_use', 'turn 1 stop_reason tool_use');
  const uses = m1.content.filter((b) => b.type === 'tool_use');
  assert(uses.length === 1 && uses[0].name === 'get_weather', 'turn 1 has one get_weather tool_use');
  out.toolUseIds = uses.map((b) => b.id);
  out.toolInput = uses[0].input;
  out.turn1Text = text(m1);
  out.turn1Usage = m1.usage;
  messages.push({ role: 'assistant', content: m1.content });
  const toolResult = getWeather(uses[0].input);
  messages.push({
    role: 'user',
    content: [{ type: 'tool_result', tool_use_id: uses[0].id, content: toolResult }],
  });
  out.toolResult = toolResult;

  // --- turn 2: streamed, finalMessage() -------------------------------------
  const stream = client.messages.stream({
    model: 'claude-x-stream',
    max_tokens: 1024,
    system,
    tools: TOOLS,
    messages,
  });
  const deltas = [];
  stream.on('text', (delta) => deltas.push(delta));
  const { response: streamResponse } = await stream.withResponse();
  const m2 = await stream.finalMessage();
  out.headers.turn2 = proxyHeaders(streamResponse);
  assert(m2.stop_reason === 'end_turn', 'turn 2 stop_reason end_turn');
  out.turn2Text = text(m2);
  assert(deltas.join('') === out.turn2Text, 'turn 2 text events add up to finalMessage()');
  assert((await stream.finalText()) === out.turn2Text, 'finalText() equals the text blocks');
  out.turn2Deltas = deltas;
  out.turn2Id = m2.id;
  out.turn2Usage = m2.usage;
  assert(last(log, 'turn 2').headers['x-request-id'] === out.headers.turn2['x-request-id'],
    'recorded exchange matches the stream response');
  messages.push({ role: 'assistant', content: m2.content });
  messages.push({ role: 'user', content: 'Thanks! Anything else?' });

  // --- turn 3: non-streamed text ----------------------------------------------
  const t3 = await client.messages
    .create({ model: 'claude-x-text', max_tokens: 1024, system, tools: TOOLS, messages })
    .withResponse();
  out.headers.turn3 = proxyHeaders(t3.response);
  assert(t3.data.stop_reason === 'end_turn', 'turn 3 stop_reason end_turn');
  out.turn3Text = text(t3.data);
  out.turn3Usage = t3.data.usage;

  out.exchanges = log;
  return out;
});

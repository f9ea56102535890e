// An agent loop through whyops-proxy with the official OpenAI Node SDK.
//
//   WHYOPS_BASE_URL=http://127.0.0.1:8080 WHYOPS_KEY=whyops_... node openai_loop.mjs
//
// Chat completions, three turns:
//   1. non-streamed, model gpt-4o-mini-toolcall: the answer is a tool call;
//      the script appends the assistant message and the tool's result;
//   2. streamed with the chat.completions.stream() helper, model
//      gpt-4o-mini-stream, assembled by finalChatCompletion(); the same turn
//      is then replayed with create({stream: true}) and accumulated by hand
//      (asking for usage, so the usage chunk reaches the client);
//   3. non-streamed text, model gpt-4o-mini-text.
// Responses API, two calls:
//   R1. responses.create, model gpt-4o-mini-resp-tool: a function_call item;
//   R2. responses.stream + finalResponse(), model gpt-4o-mini-resp-stream,
//       with R1's output and a function_call_output as input.
// The upstream answers are scripted by the test (test/integration/test_sdk.py),
// chosen by model name.  Prints one JSON line; exit status 1 on any error.
import OpenAI from 'openai';
import { config, recordingFetch, proxyHeaders, assert, last, main } from './common.mjs';

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather for a city',
      parameters: {
        type: 'object',
        properties: {
          city: { type: 'string' },
          unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
        },
        required: ['city'],
      },
    },
  },
];

const RESPONSE_TOOLS = [
  {
    type: 'function',
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' } },
      required: ['city'],
      additionalProperties: false,
    },
    strict: true,
  },
];

// The "tool" the agent runs.
function getWeather(args) {
  const { city } = JSON.parse(args);
  return JSON.stringify({ city, temperature_c: 18, conditions: 'sunny' });
}

main(async () => {
  const { base, key } = config();
  const log = [];
  const client = new OpenAI({
    baseURL: base + '/v1',
    apiKey: key,
    organization: null,
    project: null,
    maxRetries: 0,
    timeout: 20_000,
    fetch: recordingFetch(log),
  });
  const out = { ok: true, sdk: 'openai', chat: {}, responses: {}, headers: {} };

  // --- turn 1: non-streamed, a tool call --------------------------------
  const messages = [
    { role: 'system', content: 'You are a weather assistant. Use the tools.' },
    { role: 'user', content: 'What is the weather in Paris?' },
  ];
  const t1 = await client.chat.completions
    .create({ model: 'gpt-4o-mini-toolcall', messages, tools: TOOLS, tool_choice: 'auto' })
    .withResponse();
  out.headers.turn1 = proxyHeaders(t1.response);
  out.chat.turn1RequestId = t1.request_id;
  const m1 = t1.data.choices[0].message;
  assert(t1.data.choices[0].finish_reason === 'tool_calls', 'turn 1 finish_reason tool_calls');
  assert(Array.isArray(m1.tool_calls) && m1.tool_calls.length === 1, 'turn 1 has one tool call');
  const call = m1.tool_calls[0];
  assert(call.type === 'function' && call.function.name === 'get_weather', 'turn 1 tool name');
  out.chat.toolCallIds = m1.tool_calls.map((c) => c.id);
  out.chat.toolCallArguments = call.function.arguments;
  out.chat.turn1Usage = t1.data.usage;
  messages.push(m1);
  const toolResult = getWeather(call.function.arguments);
  messages.push({ role: 'tool', tool_call_id: call.id, content: toolResult });
  out.chat.toolResult = toolResult;

  // --- turn 2: streamed, through the stream() helper --------------------
  const stream = client.chat.completions.stream({
    model: 'gpt-4o-mini-stream',
    messages,
    tools: TOOLS,
  });
  const deltas = [];
  stream.on('content', (delta) => deltas.push(delta));
  const t2 = await stream.finalChatCompletion();
  out.headers.turn2 = last(log, 'turn 2').headers;
  const m2 = t2.choices[0].message;
  assert(t2.choices[0].finish_reason === 'stop', 'turn 2 finish_reason stop');
  assert(typeof m2.content === 'string' && m2.content.length > 0, 'turn 2 has text');
  assert(deltas.join('') === m2.content, 'turn 2 content events add up to the final text');
  out.chat.turn2Text = m2.content;
  out.chat.turn2Deltas = deltas;
  out.chat.turn2Id = t2.id;
  out.chat.turn2Usage = t2.usage ?? null;

  // --- turn 2 again: create({stream: true}), accumulated by hand ----------
  const raw = await client.chat.completions
    .create({
      model: 'gpt-4o-mini-stream',
      messages,
      tools: TOOLS,
      stream: true,
      stream_options: { include_usage: true },
    })
    .withResponse();
  out.headers.turn2Manual = proxyHeaders(raw.response);
  let manualText = '';
  let manualFinish = null;
  let manualUsage = null;
  let chunks = 0;
  for await (const chunk of raw.data) {
    chunks++;
    assert(chunk.object === 'chat.completion.chunk', 'chunk object');
    if (chunk.usage) manualUsage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta && typeof choice.delta.content === 'string') manualText += choice.delta.content;
      if (choice.finish_reason) manualFinish = choice.finish_reason;
    }
  }
  assert(manualText === m2.content, 'manual accumulation equals finalChatCompletion()');
  assert(manualFinish === 'stop', 'manual finish_reason');
  out.chat.turn2ManualText = manualText;
  out.chat.turn2ManualChunks = chunks;
  out.chat.turn2ManualUsage = manualUsage;
  messages.push(m2);
  messages.push({ role: 'user', content: 'Thanks! Anything else I should know?' });

  // --- turn 3: non-streamed text ------------------------------------------
  const t3 = await client.chat.completions
    .create({ model: 'gpt-4o-mini-text', messages, tools: TOOLS })
    .withResponse();
  out.headers.turn3 = proxyHeaders(t3.response);
  assert(t3.data.choices[0].finish_reason === 'stop', 'turn 3 finish_reason stop');
  out.chat.turn3Text = t3.data.choices[0].message.content;
  out.chat.turn3Usage = t3.data.usage;

  // --- Responses R1: non-streamed, a function call --------------------------
  const input = [{ role: 'user', content: 'And in Berlin?' }];
  const r1 = await client.responses
    .create({ model: 'gpt-4o-mini-resp-tool', input, tools: RESPONSE_TOOLS })
    .withResponse();
  out.headers.responses1 = proxyHeaders(r1.response);
  const fc = r1.data.output.find((o) => o.type === 'function_call');
  assert(fc, 'R1 output has a function_call');
  out.responses.r1Id = r1.data.id;
  out.responses.callIds = r1.data.output.filter((o) => o.type === 'function_call').map((o) => o.call_id);
  out.responses.r1Arguments = fc.arguments;
  out.responses.r1Usage = r1.data.usage;
  const rToolResult = getWeather(fc.arguments);
  input.push(...r1.data.output);
  input.push({ type: 'function_call_output', call_id: fc.call_id, output: rToolResult });
  out.responses.toolResult = rToolResult;

  // --- Responses R2: streamed, finalResponse() ------------------------------
  const rs = client.responses.stream({ model: 'gpt-4o-mini-resp-stream', input, tools: RESPONSE_TOOLS });
  const rDeltas = [];
  rs.on('response.output_text.delta', (ev) => rDeltas.push(ev.delta));
  const r2 = await rs.finalResponse();
  out.headers.responses2 = last(log, 'R2').headers;
  assert(r2.status === 'completed', 'R2 completed');
  // The text of the message items; openai 6 also sets output_text on the
  // final response (openai 5's finalResponse() leaves it out).
  const r2Text = r2.output
    .filter((o) => o.type === 'message')
    .flatMap((o) => o.content)
    .filter((c) => c.type === 'output_text')
    .map((c) => c.text)
    .join('');
  assert(r2.output_text === undefined || r2.output_text === r2Text, 'R2 output_text');
  assert(rDeltas.join('') === r2Text, 'R2 deltas add up to the final text');
  out.responses.r2Id = r2.id;
  out.responses.r2Text = r2Text;
  out.responses.r2OutputText = r2.output_text ?? null;
  out.responses.r2Deltas = rDeltas;
  out.responses.r2Usage = r2.usage;

  out.exchanges = log;
  return out;
});

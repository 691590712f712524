// The gateway as a faithful OpenAI proxy with the official Node SDK (npm `openai`, a dev
// dependency of ui/) as the client and llmock as the recording upstream: gateway_fidelity.py's
// checks, from the other SDK a user is likely to point at it.
//
// argv: GATEWAY_BASE_URL (…/v1) LLMOCK_ADMIN_URL (…/_llmock) TOKEN UI_DIR
// For each kind of request, streamed and not: the upstream's body equals the client's for every
// field the client set (plus only stream / stream_options.include_usage); tool calls reach the
// client. During an outage: answered offline where the offline model can honour the request,
// else refused with an error saying OpenAI is unreachable and why the offline model cannot.
// Exits non-zero with a message on the first failed check.
import { createRequire } from "node:module";
import { isDeepStrictEqual } from "node:util";
import path from "node:path";

const [base, admin, token, ui] = process.argv.slice(2);
const OpenAI = createRequire(path.join(ui, "package.json"))("openai");
const client = new OpenAI({ baseURL: base, apiKey: token, maxRetries: 0 });

function check(cond, what) {
  if (!cond) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
}

async function adminCall(p, body, method = "POST") {
  const r = await fetch(admin + p, { method, headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

async function journal() {
  const v = await adminCall("/requests", undefined, "GET");
  return Array.isArray(v) ? v : v.requests;
}

/** The body of the last chat request llmock received with these messages. */
async function upstreamBody(messages) {
  const all = await journal();
  for (let i = all.length - 1; i >= 0; i--) {
    const b = all[i].body;
    if (b && typeof b === "object" && isDeepStrictEqual(b.messages, messages)) return b;
  }
  check(false, `no upstream request carried ${JSON.stringify(messages)}`);
}

let compared = 0;

async function sameAsSent(sent, what) {
  compared++;
  const up = await upstreamBody(sent.messages);
  for (const [k, v] of Object.entries(sent)) {
    if (k === "stream" || k === "stream_options") continue;
    check(isDeepStrictEqual(up[k], v), `${what}: upstream ${k} = ${JSON.stringify(up[k])}, client sent ${JSON.stringify(v)}`);
  }
  const extra = Object.keys(up).filter((k) => !(k in sent) && k !== "stream" && k !== "stream_options");
  check(extra.length === 0, `${what}: upstream got fields the client did not set: ${extra}`);
  if (sent.stream) {
    check(up.stream === true && up.stream_options?.include_usage === true, `${what}: the gateway watches a stream: ${JSON.stringify(up)}`);
    for (const [k, v] of Object.entries(sent.stream_options ?? {})) {
      if (k !== "include_usage") check(isDeepStrictEqual(up.stream_options[k], v), `${what}: stream_options.${k} kept`);
    }
  } else {
    check(up.stream === sent.stream && !("stream_options" in up), `${what}: no stream forced on: ${JSON.stringify(up)}`);
  }
}

/** [message, finish_reason, chunks or null, response headers]. */
async function ask(sent, stream) {
  const { data, response } = await client.chat.completions.create(stream ? { ...sent, stream: true } : sent).withResponse();
  if (!stream) {
    const c = data.choices[0];
    return [c.message, c.finish_reason, null, response.headers];
  }
  const chunks = [];
  let text = "";
  let finish = null;
  const calls = new Map();
  for await (const ch of data) {
    chunks.push(ch);
    for (const c of ch.choices) {
      text += c.delta.content ?? "";
      for (const t of c.delta.tool_calls ?? []) {
        if (!calls.has(t.index)) calls.set(t.index, { id: null, type: "function", function: { name: "", arguments: "" } });
        const slot = calls.get(t.index);
        if (t.id) slot.id = t.id;
        if (t.function?.name) slot.function.name = t.function.name;
        if (t.function?.arguments) slot.function.arguments += t.function.arguments;
      }
      finish = c.finish_reason ?? finish;
    }
  }
  const toolCalls = [...calls.keys()].sort((a, b) => a - b).map((i) => calls.get(i));
  return [{ role: "assistant", content: text || null, tool_calls: toolCalls.length ? toolCalls : null }, finish, chunks, response.headers];
}

const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const image = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

const cases = {
  sampling: (tag) => ({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: `Say hello (${tag})` }],
    temperature: 0.3,
    top_p: 0.9,
    seed: 42,
    stop: ["\n\n", "END"],
    max_tokens: 20,
    presence_penalty: 0.5,
    frequency_penalty: 0.25,
    user: "user-123",
    // A field the SDK does not know yet goes in the body as it is.
    future_field: { x: [1, 2] },
  }),
  "json mode": (tag) => ({
    model: "gpt-4o-mini",
    messages: [
      { role: "system", content: "Answer in JSON." },
      { role: "user", content: `A colour (${tag})` },
    ],
    response_format: { type: "json_object" },
  }),
  "structured outputs": (tag) => ({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: `A city (${tag})` }],
    response_format: {
      type: "json_schema",
      json_schema: { name: "city", strict: true, schema: { type: "object", properties: { name: { type: "string" } }, required: ["name"], additionalProperties: false } },
    },
  }),
  "tools offered": (tag) => ({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: `What is the weather in Paris? (${tag})` }],
    tools: [weatherTool],
    tool_choice: "auto",
    parallel_tool_calls: false,
  }),
  "tool result turn": (tag) => ({
    model: "gpt-4o-mini",
    tools: [weatherTool],
    messages: [
      { role: "user", content: `What is the weather in Paris? (${tag})` },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
      { role: "tool", tool_call_id: "call_1", content: '{"temp_c": 21}' },
    ],
  }),
  "image parts": (tag) => ({
    model: "gpt-4o-mini",
    messages: [
      {
        role: "user",
        content: [
          { type: "text", text: `What is in this picture? (${tag})` },
          { type: "image_url", image_url: { url: image, detail: "low" } },
        ],
      },
    ],
  }),
  logprobs: (tag) => ({ model: "gpt-4o-mini", messages: [{ role: "user", content: `Say hi (${tag})` }], logprobs: true, top_logprobs: 2 }),
};

// Healthy upstream: every field reaches it, and its answer (tool calls included) reaches us.
for (const [name, make] of Object.entries(cases)) {
  for (const stream of [false, true]) {
    const what = `node ${name}, ${stream ? "streamed" : "not streamed"}`;
    const sent = make(what);
    if (stream) sent.stream_options = { include_usage: true };
    const [msg, finish, chunks, headers] = await ask(sent, stream);
    check(headers.get("x-understudy-provider") === "openai", `${what}: answered by ${headers.get("x-understudy-provider")}`);
    await sameAsSent(stream ? { ...sent, stream: true } : sent, what);
    if (name === "tools offered") {
      const calls = msg.tool_calls ?? [];
      check(finish === "tool_calls" && calls.length > 0, `${what}: tool calls reach the client: ${JSON.stringify(msg)} ${finish}`);
      check(calls[0].function.name === "get_weather" && calls[0].id, `${what}: the call: ${JSON.stringify(calls)}`);
      check("city" in JSON.parse(calls[0].function.arguments), `${what}: arguments assembled: ${JSON.stringify(calls)}`);
    } else if (name === "tool result turn") {
      check(finish === "stop" && msg.content, `${what}: a text answer after the tool result: ${JSON.stringify(msg)}`);
    } else {
      check(msg.content !== null && msg.content !== undefined, `${what}: an answer: ${JSON.stringify(msg)}`);
    }
    if (stream) {
      check(
        chunks.every((c) => c.id.startsWith("chatcmpl")),
        `${what}: chunk ids ${chunks.map((c) => c.id)}`,
      );
      const last = chunks[chunks.length - 1];
      check(last.usage && last.choices.length === 0, `${what}: usage chunk last: ${JSON.stringify(last)}`);
    }
  }
}

// Streamed without include_usage: the usage the gateway forced on upstream is not passed on.
{
  const chunks = [];
  for await (const c of await client.chat.completions.create({ ...cases.sampling("node no usage asked"), stream: true })) chunks.push(c);
  check(chunks.length && chunks.every((c) => !c.usage && c.choices.length), `no usage chunk unless asked: ${JSON.stringify(chunks.at(-1))}`);
}
{
  const chunks = [];
  const sent = { ...cases.sampling("node usage false"), stream: true, stream_options: { include_usage: false } };
  for await (const c of await client.chat.completions.create(sent)) chunks.push(c);
  check(chunks.length && chunks.every((c) => !c.usage), `no usage chunk with include_usage false: ${JSON.stringify(chunks.at(-1))}`);
}
// models.retrieve, for the provider's models and the offline one; an endpoint the gateway does
// not serve is OpenAI's 404 saying what it serves.
{
  const ids = (await client.models.list()).data.map((m) => m.id);
  for (const id of [ids[0], ids.find((i) => i.startsWith("local/"))]) check((await client.models.retrieve(id)).id === id, `models.retrieve(${id})`);
  try {
    await client.responses.create({ model: "gpt-4o-mini", input: "hi" });
    check(false, "the Responses API is not served");
  } catch (e) {
    check(e instanceof OpenAI.NotFoundError && e.message.includes("POST /v1/responses") && e.message.includes("serves POST /v1/chat/completions"), `responses: ${e}`);
  }
}

// Outage: what the offline model can honour is answered offline; the rest is refused in words.
await adminCall("/scenario", { behaviors: [{ type: "fail", status: 503, message: "overloaded", times: 100000 }] });
const sent = cases.sampling("node offline");
delete sent.future_field;
const { data: a, response } = await client.chat.completions.create(sent).withResponse();
check(response.headers.get("x-understudy-provider") === "local", `sampling answered offline: ${[...response.headers]}`);
check(a.usage.completion_tokens <= 20, `max_tokens honoured offline: ${JSON.stringify(a.usage)}`);
const again = (await client.chat.completions.create(sent)).choices[0].message.content;
check(again === a.choices[0].message.content, `same seed, same offline answer: ${again} vs ${a.choices[0].message.content}`);
// Structured outputs offline: held to the schema by a grammar, so even the tiny random-weight
// model answers with JSON that matches it.
const bounded = {
  type: "object",
  properties: { ok: { type: "boolean" }, colour: { enum: ["red", "green", "blue"] } },
  required: ["ok", "colour"],
  additionalProperties: false,
};
for (const stream of [false, true]) {
  const body = {
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: `A colour, node outage (${stream})` }],
    max_tokens: 200,
    seed: 6,
    stream,
    response_format: { type: "json_schema", json_schema: { name: "colour", strict: true, schema: bounded } },
  };
  const { data, response } = await client.chat.completions.create(body).withResponse();
  check(response.headers.get("x-understudy-provider") === "local", `structured outputs answered offline: ${[...response.headers]}`);
  let text = "";
  if (stream) for await (const c of data) text += c.choices[0]?.delta?.content ?? "";
  else text = data.choices[0].message.content;
  const v = JSON.parse(text);
  check(
    Object.keys(v).sort().join() === "colour,ok" && typeof v.ok === "boolean" && ["red", "green", "blue"].includes(v.colour),
    `offline JSON matches the schema: ${text}`,
  );
}
for (const [name, says] of [
  ["tools offered", "tools"],
  ["tool result turn", "tool"],
  ["image parts", "image"],
  ["logprobs", "logprobs"],
]) {
  for (const stream of [false, true]) {
    try {
      const got = await client.chat.completions.create({ ...cases[name]("node outage"), stream });
      if (stream) for await (const _ of got);
      check(false, `${name} during an outage is refused, not answered without it`);
    } catch (e) {
      check(e instanceof OpenAI.APIError, `${name}: an API error: ${e}`);
      check(e.status === 503, `${name}: status ${e.status}: ${e.message}`);
      check(e.message.includes("unreachable") && e.message.includes("offline model cannot take this request") && e.message.includes(says), `${name}: the error says why: ${e.message}`);
      console.log(`${name}, outage: ${e.message}`);
    }
  }
}
// local/<id> asked directly: a 400 that says why.
const localId = (await client.models.list()).data.map((m) => m.id).find((id) => id.startsWith("local/"));
try {
  await client.chat.completions.create({ ...cases["image parts"]("node local"), model: localId });
  check(false, "an image for the local model is refused");
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.message.includes("offline model cannot take this request") && e.message.includes("image"), `local 400: ${e}`);
}

console.log(`compared ${compared} upstream bodies`);
console.log("gateway node fidelity suite: ok");

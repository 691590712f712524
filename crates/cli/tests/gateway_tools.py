"""Tools answered by the offline model through the gateway, with the official openai SDK as the
client; the offline model is the tiny random-weight GGUF carrying Qwen 2.5's real chat template.

argv: GATEWAY_BASE_URL (…/v1) LLMOCK_ADMIN_URL (…/_llmock) TOKEN
During an outage (llmock fails every request) and for `local/<id>` asked directly:
tool_choice "required" or a named function comes back as one valid call of an offered tool
(streamed, put together by the SDK's own stream accumulator, and not), finish_reason
"tool_calls"; a tool-result turn is answered offline; tool_choice "none" answers without calls.
Before the outage: llmock streams a tool call and drops the connection inside its arguments;
the SDK's stream accumulator gets one whole, valid call from the offline model and no piece of
llmock's half call (the gateway held it back), under the id of the response llmock began.
Exits non-zero with a message on the first failed check.
"""
import json
import sys
import urllib.request

import openai

base, admin, token = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base, api_key=token, max_retries=0)


def check(cond, what):
    if not cond:
        sys.exit(f"FAILED: {what}")


def scenario(*behaviors):
    req = urllib.request.Request(admin + "/scenario", method="POST", headers={"content-type": "application/json"},
                                 data=json.dumps({"behaviors": list(behaviors)}).encode())
    urllib.request.urlopen(req).read()


tools = [
    {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city", "parameters": {
        "type": "object", "properties": {"city": {"enum": ["Paris", "Oslo"]}, "unit": {"enum": ["c", "f"]}},
        "required": ["city", "unit"], "additionalProperties": False}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}, "additionalProperties": False}}},
]
local_id = next(m.id for m in client.models.list() if m.id.startswith("local/"))


def one_valid_call(message, only, what):
    calls = message.tool_calls or []
    check(len(calls) == 1, f"{what}: one call: {message}")
    c = calls[0]
    check(c.id and c.type == "function", f"{what}: id and type: {c}")
    args = json.loads(c.function.arguments)
    if c.function.name == "get_weather":
        check(args.get("city") in ("Paris", "Oslo") and args.get("unit") in ("c", "f") and len(args) == 2, f"{what}: arguments fit the schema: {args}")
    else:
        check(c.function.name == "get_time" and args == {}, f"{what}: a tool that was offered: {c}")
    check(only is None or c.function.name == only, f"{what}: the named function: {c}")
    return f"{c.function.name}({c.function.arguments})"


user = [{"role": "user", "content": "What is the weather in Paris?"}]

# Role, the call's name, then 12-character pieces of its arguments: cut after the first piece.
scenario({"type": "reply", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "f"}}]},
         {"type": "stream_fault", "kind": "disconnect", "after_chunks": 3})
with client.chat.completions.stream(model="gpt-4o-mini", messages=user, tools=tools, tool_choice="required", temperature=1.0, seed=1,
                                    max_tokens=200) as s:
    deltas = [t for e in s if e.type == "chunk" and e.chunk.choices for t in e.chunk.choices[0].delta.tool_calls or []]
    final = s.get_final_completion()
what = "upstream cut inside its tool call, streamed"
check(not final.id.startswith("chatcmpl-understudy"), f"{what}: llmock began the answer: {final.id}")
check(final.choices[0].finish_reason == "tool_calls", f"{what}: finish {final.choices[0].finish_reason}")
got = one_valid_call(final.choices[0].message, None, what)
check(len(deltas) == 1 and deltas[0].id.startswith("call_understudy_"), f"{what}: only the offline model's whole call: {deltas}")
print(f"{what}: {got}")

scenario({"type": "fail", "status": 503, "message": "overloaded", "times": 100000})
for model in ("gpt-4o-mini", local_id):
    for choice, only in (("required", None), ({"type": "function", "function": {"name": "get_weather"}}, "get_weather")):
        for seed in (1, 2):
            what = f"{model}, tool_choice {choice}, seed {seed}"
            body = dict(model=model, messages=user, tools=tools, tool_choice=choice, temperature=1.0, seed=seed, max_tokens=200)
            raw = client.chat.completions.with_raw_response.create(**body)
            check(raw.headers.get("x-understudy-provider") == "local", f"{what}: answered offline: {dict(raw.headers)}")
            c = raw.parse().choices[0]
            check(c.finish_reason == "tool_calls" and c.message.content is None, f"{what}: finish {c.finish_reason}, content {c.message.content!r}")
            got = one_valid_call(c.message, only, what)
            with client.chat.completions.stream(**body) as s:
                final = s.get_final_completion()
            fc = final.choices[0]
            check(fc.finish_reason == "tool_calls", f"{what}, streamed: finish {fc.finish_reason}")
            streamed = one_valid_call(fc.message, only, what + ", streamed")
            check(streamed == got, f"{what}: same seed, same call streamed and not: {streamed} vs {got}")
            print(f"{what}: {got}")

history = user + [
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                                                           "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"c\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "21 degrees and sunny"},
]
answers = {}
for stream in (False, True):
    for choice in ("auto", "none"):
        what = f"tool result turn, tool_choice {choice}, stream {stream}"
        body = dict(model="gpt-4o-mini", messages=history, tools=tools, tool_choice=choice, temperature=0, max_tokens=8)
        # Random weights run to max_tokens, which the SDK's stream helper refuses to parse:
        # the chunks are read as they come.
        if stream:
            chunks = [c for c in client.chat.completions.create(**body, stream=True) if c.choices]
            text = "".join(c.choices[0].delta.content or "" for c in chunks)
            calls = [t for c in chunks for t in c.choices[0].delta.tool_calls or []]
            finish = chunks[-1].choices[0].finish_reason
        else:
            c = client.chat.completions.create(**body).choices[0]
            text, calls, finish = c.message.content, c.message.tool_calls or [], c.finish_reason
        check(finish in ("stop", "length", "tool_calls"), f"{what}: answered offline: {finish}")
        check(choice != "none" or not calls, f"{what}: no call: {calls}")
        print(f"{what}: {finish} {text!r}")
        answers[(stream, choice)] = text
# Greedy, so only the prompt tells them apart: "none" shows the model no tools.
check(answers[(False, "auto")] != answers[(False, "none")], f"tool_choice none renders no tools: {answers}")
check(answers[(False, "auto")] == answers[(True, "auto")], f"the same answer streamed and not: {answers}")

print("gateway tools suite: ok")

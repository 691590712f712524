"""The gateway as a faithful OpenAI proxy, with the official openai SDK as the client and
llmock as the recording upstream (its journal keeps every body it received).

argv: GATEWAY_BASE_URL (…/v1) LLMOCK_ADMIN_URL (…/_llmock) TOKEN
For each kind of request, streamed and not: the upstream's body equals the client's for every
field the client set (plus only stream / stream_options.include_usage); tool calls reach the
client, and so do the upstream's headers that describe its answer (the SDK's `_request_id`,
rate limits; the upstream is llmock behind a proxy that adds `x-request-id`, see gateway.rs),
never to an offline answer. During an outage: answered offline where the offline model can honour the request,
else refused with an error saying OpenAI is unreachable and why the offline model cannot.
Exits non-zero with a message on the first failed check.
"""
import json
import sys
import urllib.request

import openai

base, admin, token = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base, api_key=token, max_retries=0)


def admin_call(path, body=None, method="POST"):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(admin + path, data=data, method=method if data or method != "POST" else "POST", headers={"content-type": "application/json"})
    if data is None and method == "POST":
        req.data = b""
    return json.loads(urllib.request.urlopen(req).read() or b"null")


def journal():
    v = admin_call("/requests", method="GET")
    return v["requests"] if isinstance(v, dict) else v


def check(cond, what):
    if not cond:
        sys.exit(f"FAILED: {what}")


def upstream_body(messages):
    """The body of the last chat request llmock received with these messages."""
    for r in reversed(journal()):
        b = r.get("body")
        if isinstance(b, dict) and b.get("messages") == messages:
            return b
    sys.exit(f"FAILED: no upstream request carried {messages}")


compared = 0


def same_as_sent(sent, stream, what):
    global compared
    compared += 1
    up = upstream_body(sent["messages"])
    for k, v in sent.items():
        if k in ("stream", "stream_options"):
            continue
        check(up.get(k) == v, f"{what}: upstream {k} = {up.get(k)!r}, client sent {v!r}")
    extra = set(up) - set(sent) - {"stream", "stream_options"}
    check(not extra, f"{what}: upstream got fields the client did not set: {extra}")
    if stream:
        check(up.get("stream") is True and up.get("stream_options", {}).get("include_usage") is True, f"{what}: the gateway watches a stream: {up}")
        for k, v in sent.get("stream_options", {}).items():
            if k != "include_usage":
                check(up["stream_options"].get(k) == v, f"{what}: stream_options.{k} kept")
    else:
        check(up.get("stream") == sent.get("stream") and "stream_options" not in up, f"{what}: no stream forced on: {up}")
    return up


def ask(sent, stream):
    """(message dict, finish_reason, chunks or None, raw response headers, the SDK's request id)."""
    body = dict(sent, stream=True) if stream else dict(sent)
    known = {k: v for k, v in body.items() if k not in ("future_field",)}
    extra = {k: v for k, v in body.items() if k in ("future_field",)}
    if not stream:
        raw = client.chat.completions.with_raw_response.create(**known, extra_body=extra or None)
        r = raw.parse()
        c = r.choices[0]
        return c.message.model_dump(), c.finish_reason, None, raw.headers, r._request_id
    raw = client.chat.completions.with_raw_response.create(**known, extra_body=extra or None)
    chunks = list(raw.parse())
    text, calls, finish = "", {}, None
    for ch in chunks:
        for c in ch.choices:
            text += c.delta.content or ""
            for t in c.delta.tool_calls or []:
                slot = calls.setdefault(t.index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                if t.id:
                    slot["id"] = t.id
                if t.function and t.function.name:
                    slot["function"]["name"] = t.function.name
                if t.function and t.function.arguments:
                    slot["function"]["arguments"] += t.function.arguments
            finish = c.finish_reason or finish
    msg = {"role": "assistant", "content": text or None, "tool_calls": [calls[i] for i in sorted(calls)] or None}
    return msg, finish, chunks, raw.headers, raw.request_id


weather_tool = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
image = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

cases = {
    "sampling": lambda tag: {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Say hello ({tag})"}],
        "temperature": 0.3, "top_p": 0.9, "seed": 42, "stop": ["\n\n", "END"], "max_tokens": 20,
        "presence_penalty": 0.5, "frequency_penalty": 0.25, "user": "user-123", "future_field": {"x": [1, 2]},
    },
    "json mode": lambda tag: {
        "model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": f"A colour ({tag})"}],
        "response_format": {"type": "json_object"},
    },
    "structured outputs": lambda tag: {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"A city ({tag})"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "city", "strict": True, "schema": {
            "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": False}}},
    },
    "tools offered": lambda tag: {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"What is the weather in Paris? ({tag})"}],
        "tools": [weather_tool], "tool_choice": "auto", "parallel_tool_calls": False,
    },
    "tool result turn": lambda tag: {
        "model": "gpt-4o-mini", "tools": [weather_tool], "messages": [
            {"role": "user", "content": f"What is the weather in Paris? ({tag})"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21}"},
        ],
    },
    "image parts": lambda tag: {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
            {"type": "text", "text": f"What is in this picture? ({tag})"}, {"type": "image_url", "image_url": {"url": image, "detail": "low"}}]}],
    },
    "logprobs": lambda tag: {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Say hi ({tag})"}], "logprobs": True, "top_logprobs": 2,
    },
}

# The upstream's headers that describe its answer (llmock's rate limits with --rpm/--tpm, and
# the request id and processing time the test's proxy in front of it adds) reach the client as
# it sent them; the hop-by-hop `connection: close` the proxy adds does not.
request_ids = []


def described(headers, request_id, what):
    rid = headers.get("x-request-id")
    check(rid and rid.startswith("req_shim_") and request_id == rid, f"{what}: the SDK's request id {request_id!r}, header {rid!r}")
    request_ids.append(rid)
    check(headers.get("openai-processing-ms") == "1", f"{what}: openai-processing-ms: {dict(headers)}")
    check(headers.get("x-ratelimit-limit-requests") == "100000" and headers.get("x-ratelimit-limit-tokens") == "1000000000", f"{what}: limits: {dict(headers)}")
    for h in ("x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        check(headers.get(h), f"{what}: {h}: {dict(headers)}")
    check("close" not in headers.get("connection", ""), f"{what}: a hop-by-hop header passed on: {dict(headers)}")


def none_described(headers, request_id, what):
    check(request_id is None, f"{what}: no request id from an offline answer: {request_id!r}")
    passed = [h for h in headers if h.startswith("x-ratelimit-") or h.startswith("openai-") or h == "x-request-id"]
    check(not passed, f"{what}: an offline answer carries no provider's headers: {passed}")


# Healthy upstream: every field reaches it, and its answer (tool calls included) reaches us.
for name, make in cases.items():
    for stream in (False, True):
        what = f"{name}, {'streamed' if stream else 'not streamed'}"
        sent = make(what)
        if stream:
            sent["stream_options"] = {"include_usage": True}
        msg, finish, chunks, headers, request_id = ask(sent, stream)
        check(headers.get("x-understudy-provider") == "openai", f"{what}: answered by {headers.get('x-understudy-provider')}")
        described(headers, request_id, what)
        same_as_sent(dict(sent, stream=True) if stream else sent, stream, what)
        if name == "tools offered":
            calls = msg.get("tool_calls") or []
            check(finish == "tool_calls" and calls, f"{what}: tool calls reach the client: {msg} {finish}")
            check(calls[0]["function"]["name"] == "get_weather" and calls[0]["id"], f"{what}: the call: {calls}")
            check("city" in json.loads(calls[0]["function"]["arguments"]), f"{what}: arguments assembled: {calls}")
            print(f"{what}: {calls[0]}")
        elif name == "tool result turn":
            check(finish == "stop" and msg.get("content"), f"{what}: a text answer after the tool result: {msg}")
        else:
            check(msg.get("content") is not None, f"{what}: an answer: {msg}")
        if stream:
            # The upstream's own chunks: its ids, and usage since the client asked for it.
            check(all(c.id.startswith("chatcmpl") for c in chunks), f"{what}: chunk ids {[c.id for c in chunks]}")
            check(chunks[-1].usage is not None and not chunks[-1].choices, f"{what}: usage chunk last: {chunks[-1]}")

check(len(set(request_ids)) == len(request_ids), f"each answer its own request id: {request_ids}")
# The plain call, as most code makes it.
r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "request id"}])
check(r._request_id and r._request_id.startswith("req_shim_") and r._request_id not in request_ids, f"completion._request_id: {r._request_id!r}")
print(f"request ids passed on: {len(request_ids) + 1}, e.g. {r._request_id}")

# Streamed without include_usage: the usage the gateway forced on upstream is not passed on.
sent = cases["sampling"]("no usage asked")
chunks = list(client.chat.completions.create(**{k: v for k, v in sent.items() if k != "future_field"}, stream=True))
check(chunks and all(c.usage is None for c in chunks) and all(c.choices for c in chunks), f"no usage chunk unless asked: {chunks[-1]}")
chunks = list(client.chat.completions.create(**{k: v for k, v in sent.items() if k != "future_field"}, stream=True, stream_options={"include_usage": False}))
check(chunks and all(c.usage is None for c in chunks), f"no usage chunk with include_usage false: {chunks[-1]}")

# models.retrieve, for the provider's models and the offline one; an endpoint the gateway does
# not serve is OpenAI's 404 saying what it serves.
ids = [m.id for m in client.models.list()]
for i in (ids[0], next(i for i in ids if i.startswith("local/"))):
    check(client.models.retrieve(i).id == i, f"models.retrieve({i!r})")
try:
    client.responses.create(model="gpt-4o-mini", input="hi")
    check(False, "the Responses API is not served")
except openai.NotFoundError as e:
    check("POST /v1/responses" in str(e) and "serves POST /v1/chat/completions" in str(e), f"responses: {e}")

# Outage: what the offline model can honour is answered offline; the rest is refused in words.
admin_call("/scenario", {"behaviors": [{"type": "fail", "status": 503, "message": "overloaded", "times": 100000}]})
sent = cases["sampling"]("offline")
sent.pop("future_field")
first = client.chat.completions.with_raw_response.create(**sent)
check(first.headers.get("x-understudy-provider") == "local", f"sampling answered offline: {dict(first.headers)}")
a = first.parse()
none_described(first.headers, a._request_id, "answered offline")
check(a.usage.completion_tokens <= 20, f"max_tokens honoured offline: {a.usage}")
again = client.chat.completions.create(**sent).choices[0].message.content
check(again == a.choices[0].message.content, f"same seed, same offline answer: {again!r} vs {a.choices[0].message.content!r}")
greedy = dict(sent, max_tokens=3, temperature=0)
r = client.chat.completions.create(**greedy)
check(r.usage.completion_tokens <= 3, f"max_tokens 3 offline: {r.usage}")
# Structured outputs and JSON mode offline: held to the schema by a grammar, so even the tiny
# random-weight model answers with JSON that matches it.
bounded = {"type": "object", "properties": {"ok": {"type": "boolean"}, "colour": {"enum": ["red", "green", "blue"]}},
           "required": ["ok", "colour"], "additionalProperties": False}
for stream in (False, True):
    sent = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"A colour, outage ({stream})"}], "max_tokens": 200, "seed": 5,
            "response_format": {"type": "json_schema", "json_schema": {"name": "colour", "strict": True, "schema": bounded}}}
    raw = client.chat.completions.with_raw_response.create(**sent, stream=stream)
    check(raw.headers.get("x-understudy-provider") == "local", f"structured outputs answered offline: {dict(raw.headers)}")
    none_described(raw.headers, raw.request_id, f"structured outputs offline (stream {stream})")
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) if stream else raw.parse().choices[0].message.content
    v = json.loads(text)
    check(set(v) == {"ok", "colour"} and isinstance(v["ok"], bool) and v["colour"] in ("red", "green", "blue"), f"offline JSON matches the schema: {text!r}")
    print(f"structured outputs offline (stream {stream}): {text!r}")
r = client.chat.completions.create(**dict(cases["json mode"]("outage"), max_tokens=300, seed=3))
check(r.choices[0].message.content.lstrip().startswith("{"), f"JSON mode offline writes an object: {r.choices[0].message.content!r}")
for name, says in [("tools offered", "tools"), ("tool result turn", "tool"), ("image parts", "image"), ("logprobs", "logprobs")]:
    for stream in (False, True):
        try:
            got = client.chat.completions.create(**cases[name]("outage"), stream=stream)
            if stream:
                list(got)
            check(False, f"{name} during an outage is refused, not answered without it")
        except openai.APIStatusError as e:
            m = str(e)
            check(e.status_code == 503, f"{name}: status {e.status_code}: {m}")
            check("unreachable" in m and "offline model cannot take this request" in m and says in m, f"{name}: the error says why: {m}")
            print(f"{name}, outage: {m}")
# local/<id> asked directly: a 400 that says why.
local_id = next(m.id for m in client.models.list() if m.id.startswith("local/"))
try:
    client.chat.completions.create(**dict(cases["image parts"]("local"), model=local_id))
    check(False, "an image for the local model is refused")
except openai.BadRequestError as e:
    check("offline model cannot take this request" in str(e) and "image" in str(e), f"local 400: {e}")
r = client.chat.completions.create(model=local_id, messages=[{"role": "user", "content": "Count: 1 2 3"}], max_completion_tokens=4, temperature=0, seed=1)
check(r.usage.completion_tokens <= 4, f"local max_completion_tokens: {r.usage}")

print(f"compared {compared} upstream bodies")
print("gateway fidelity suite: ok")

"""The official openai SDK against `understudy serve` (llmock as the upstream).

argv: GATEWAY_BASE_URL (…/v1) LLMOCK_ADMIN_URL (…/_llmock) TOKEN
Exits non-zero with a message on the first failed check.
"""
import http.client
import json
import sys
import urllib.request
from urllib.parse import urlparse

import openai

base, admin, token = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base, api_key=token, max_retries=0)


def scenario(behaviors):
    req = urllib.request.Request(admin + "/scenario", data=json.dumps({"behaviors": behaviors}).encode(), headers={"content-type": "application/json"})
    urllib.request.urlopen(req).read()


def check(cond, what):
    if not cond:
        sys.exit(f"FAILED: {what}")


msgs = [{"role": "user", "content": "Say hello"}]

# Non-streamed, with the provider header.
raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs)
r = raw.parse()
check(r.choices[0].message.content, f"non-stream content: {r}")
check(r.choices[0].finish_reason == "stop", f"finish_reason: {r.choices[0].finish_reason}")
check(raw.headers.get("x-understudy-provider") == "openai", f"provider header: {dict(raw.headers)}")
check(raw.headers.get("x-understudy-failover") is None, "no failover header when the primary answered")
check(r.usage is not None and r.usage.completion_tokens > 0, f"usage: {r.usage}")

# Streamed with include_usage.
stream = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True, stream_options={"include_usage": True})
text, usage, models = "", None, set()
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        text += c.delta.content or ""
    if chunk.choices:
        models.add(chunk.model)
check(text == r.choices[0].message.content or text, f"stream text: {text!r}")
check(usage is not None and usage.completion_tokens > 0, f"stream usage: {usage}")
check(models == {"gpt-4o-mini"}, f"chunk models: {models}")

# Models: upstream plus local/<id>.
ids = [m.id for m in client.models.list()]
check(any(i.startswith("local/") for i in ids), f"local model listed: {ids}")
check(len(ids) > 1, f"upstream models listed: {ids}")

# Error mapping. (Health probes are not streamed, so scripting only streamed requests keeps
# probes out of the way.)
scenario([{"type": "fail", "status": 400, "code": "context_length_exceeded", "message": "maximum context length is 10 tokens", "match": {"stream": True}}])
try:
    client.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True)
    check(False, "400 raises")
except openai.BadRequestError as e:
    check(e.status_code == 400 and "rejected the request (400)" in str(e), f"400 mapping: {e}")
try:
    openai.OpenAI(base_url=base, api_key="wrong-token", max_retries=0).models.list()
    check(False, "a wrong gateway token raises")
except openai.AuthenticationError as e:
    check(e.status_code == 401, f"401 mapping: {e}")
try:
    client.models.retrieve("no-such-model")
    check(False, "404 raises")
except openai.NotFoundError as e:
    check(e.status_code == 404, f"404 mapping: {e}")

# Outage: the answer still comes, and the headers say who and why.
scenario([{"type": "fail", "status": 503, "message": "overloaded", "times": 2}])
raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs, max_tokens=8)
check(raw.headers.get("x-understudy-provider") == "local", f"failover provider header: {dict(raw.headers)}")
check("server error (503)" in (raw.headers.get("x-understudy-failover") or ""), f"failover reason header: {dict(raw.headers)}")
check(raw.parse().choices[0].message.content, "the local model answered")

# local/<id> goes to the local engine only, streamed.
local_id = next(i for i in ids if i.startswith("local/"))
chunks = list(client.chat.completions.create(model=local_id, messages=msgs, stream=True, max_tokens=6))
check({c.model for c in chunks if c.choices} == {local_id.split("/", 1)[1]}, f"local chunk models: {[c.model for c in chunks]}")

# DNS rebinding: a Host that is not loopback is refused.
u = urlparse(base)
conn = http.client.HTTPConnection(u.hostname, u.port)
conn.request("GET", "/v1/models", headers={"Host": "evil.example", "Authorization": f"Bearer {token}"})
resp = conn.getresponse()
check(resp.status == 403, f"rebinding refused: {resp.status}")
check(json.loads(resp.read())["error"]["code"] == "host_not_allowed", "403 in OpenAI's error shape")
# Cut mid-answer: the offline model continues where OpenAI stopped, and the chunk models show
# the switch. (A plain response is asked unstreamed, which llmock cannot cut.)
local_name = next(i for i in ids if i.startswith("local/")).split("/", 1)[1]
urllib.request.urlopen(urllib.request.Request(admin + "/reset", data=b"", method="POST")).read()  # the 503s left over above
# Healthy answers first, so the failures above no longer weigh on the breaker's failure rate.
for _ in range(6):
    client.chat.completions.create(model="gpt-4o-mini", messages=msgs, max_tokens=4)
scenario([{"type": "stream_fault", "kind": "truncate", "after_chunks": 3, "match": {"stream": True}}])
chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True, max_tokens=8))
seq = [c.model for c in chunks if c.choices and (c.choices[0].delta.content or "")]
check(seq and seq[0] == "gpt-4o-mini" and seq[-1] == local_name, f"mid-stream switch visible in chunk models: {seq}")
check(chunks[-1].choices[0].finish_reason in ("stop", "length"), f"the continued stream ends normally: {chunks[-1]}")

print("gateway SDK suite: ok")

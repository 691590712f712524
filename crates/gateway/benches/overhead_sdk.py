"""The gateway's overhead as a real client sees it: the official openai SDK calls llmock
directly and through the gateway, interleaved request by request (ABBA, so neither path always
goes first), in one process and one run.

argv: DIRECT_BASE_URL GATEWAY_BASE_URL REQUESTS
Prints one JSON line per mode: {"mode", "direct": [ms...], "gateway": [ms...]} for the caller
(crates/gateway/benches/overhead.rs) to summarise.
"""
import json
import sys
import time

import openai

direct_url, gateway_url, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
KEY = "sk-bench-0123456789"
direct = openai.OpenAI(base_url=direct_url, api_key=KEY, max_retries=0)
gateway = openai.OpenAI(base_url=gateway_url, api_key=KEY, max_retries=0)
messages = [{"role": "user", "content": "hello"}]


def once(client, stream):
    t0 = time.perf_counter()
    if stream:
        # The SDK stops reading at [DONE] and closes the response before reading its end, so
        # its connection is closed and the next request connects anew, on either path.
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True):
            pass
    else:
        r = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert r.choices[0].message.content
    return (time.perf_counter() - t0) * 1000.0


for stream in (False, True):
    for client in (direct, gateway):
        for _ in range(20):
            once(client, stream)
    d, g = [], []
    for i in range(requests):
        if i % 2:
            d.append(once(direct, stream))
            g.append(once(gateway, stream))
        else:
            g.append(once(gateway, stream))
            d.append(once(direct, stream))
    print(json.dumps({"mode": "stream" if stream else "non-stream", "direct": d, "gateway": g}), flush=True)

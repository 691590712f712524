#![allow(clippy::unwrap_used)]
//! The upstream's answer reaches the client unchanged: a recording upstream here serves canned
//! OpenAI streams (logprobs, a refusal, annotations, usage details, `system_fingerprint`,
//! `service_tier`, tool-call deltas) and keeps every request it gets. Streamed clients get its
//! chunks as they were; non-streamed clients its completion as it was. A stream
//! cut inside a tool call is never continued by the offline model: it answers afresh where it
//! can (a streamed client never saw the half call, which is held until the upstream ends), and
//! the client is told why where it cannot.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use understudy_local::engine::EngineConfig;

/// What the recording upstream received: (authorization header, body) per chat request.
type Journal = Arc<Mutex<Vec<(String, Value)>>>;

/// Serves `chunks` as SSE to every chat request that asks for a stream (then `[DONE]` unless
/// `cut`, which closes the connection mid-answer) and [`whole_answer`] to one that does not
/// (half of it when `cut`), recording each request.
async fn upstream(chunks: Vec<Value>, cut: bool) -> (String, Journal) {
    upstream_text(chunks.iter().map(Value::to_string).collect(), cut).await
}

/// [`upstream`] with each chunk's text as given (key order and spacing kept).
async fn upstream_text(chunks: Vec<String>, cut: bool) -> (String, Journal) {
    upstream_paced(chunks, cut, Duration::from_millis(5)).await
}

/// [`upstream_text`] with `pace` between chunks.
async fn upstream_paced(chunks: Vec<String>, cut: bool, pace: Duration) -> (String, Journal) {
    let journal: Journal = Arc::default();
    let j = journal.clone();
    let url = common::upstream(move |head, body, mut s| {
        let (chunks, j) = (chunks.clone(), j.clone());
        async move {
            if !head.starts_with("post") {
                let _ = s.write_all(common::NOT_FOUND).await;
                return;
            }
            let auth = head.lines().find_map(|l| l.strip_prefix("authorization:")).unwrap_or_default().trim().to_string();
            j.lock().unwrap().push((auth, serde_json::from_slice(&body).unwrap()));
            if !common::asks_stream(&body) {
                let answer = common::json_answer("200 OK", "", &whole_answer());
                let _ = s.write_all(&answer.as_bytes()[..if cut { answer.len() / 2 } else { answer.len() }]).await;
                return;
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n").await;
            for c in chunks {
                let _ = s.write_all(format!("data: {c}\n\n").as_bytes()).await;
                tokio::time::sleep(pace).await;
            }
            if !cut {
                let _ = s.write_all(b"data: [DONE]\n\n").await;
            }
        }
    })
    .await;
    (url, journal)
}

/// The gateway over the recording upstream at `base_url`, then the stand-in offline worker:
/// (its chat URL, the gateway).
async fn gateway(base_url: String) -> (String, common::Gw) {
    gateway_with(base_url, &understudy_testkit::tiny_gguf()).await
}

/// [`gateway`] whose offline model is the file `model` (its chat template decides tool support;
/// the answers still come from the stand-in worker).
async fn gateway_with(base_url: String, model: &std::path::Path) -> (String, common::Gw) {
    gateway_config(base_url, model, understudy_gateway::GatewayConfig::default()).await
}

/// [`gateway_with`], configured by `cfg`.
async fn gateway_config(base_url: String, model: &std::path::Path, cfg: understudy_gateway::GatewayConfig) -> (String, common::Gw) {
    let gw = common::start_failover_with(EngineConfig::new("bash", &["-c", common::WORKER]), model, base_url, cfg).await;
    (gw.url.clone(), gw)
}

fn chunk(choices: Value) -> Value {
    json!({ "id": "chatcmpl-up1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "gpt-4o-2024-08-06",
        "service_tier": "default", "system_fingerprint": "fp_abc", "choices": choices, "usage": null })
}

fn lp(token: &str) -> Value {
    json!({ "token": token, "logprob": -0.25, "bytes": token.as_bytes(), "top_logprobs": [{ "token": token, "logprob": -0.25, "bytes": token.as_bytes() }] })
}

/// An answer with everything a client might rely on besides the text.
fn rich_answer() -> Vec<Value> {
    let mut usage = chunk(json!([]));
    usage["usage"] = json!({ "prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13,
        "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
        "completion_tokens_details": { "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0 } });
    vec![
        chunk(
            json!([{ "index": 0, "delta": { "role": "assistant", "content": "", "refusal": null }, "logprobs": { "content": [], "refusal": null }, "finish_reason": null }]),
        ),
        chunk(json!([{ "index": 0, "delta": { "content": "Hel" }, "logprobs": { "content": [lp("Hel")], "refusal": null }, "finish_reason": null }])),
        chunk(
            json!([{ "index": 0, "delta": { "content": "lo", "annotations": [{ "type": "url_citation", "url_citation": { "url": "https://example.org", "title": "e", "start_index": 0, "end_index": 5 } }] }, "logprobs": { "content": [lp("lo")], "refusal": null }, "finish_reason": null }]),
        ),
        chunk(json!([{ "index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop" }])),
        usage,
    ]
}

/// A completion as OpenAI sends one unstreamed: logprobs, annotations, usage details.
fn whole_answer() -> Value {
    json!({
        "id": "chatcmpl-up1", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o-2024-08-06",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hello", "refusal": null,
            "annotations": [{ "type": "url_citation", "url_citation": { "url": "https://example.org", "title": "e", "start_index": 0, "end_index": 5 } }] },
            "logprobs": { "content": [lp("Hel"), lp("lo")], "refusal": null }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10,
            "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 }, "completion_tokens_details": { "reasoning_tokens": 0, "audio_tokens": 0 } },
        "service_tier": "default", "system_fingerprint": "fp_abc",
    })
}

fn data_lines(text: &str) -> Vec<&str> {
    text.lines().filter_map(|l| l.strip_prefix("data: ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_s_chunks_and_completion_pass_unchanged() {
    let chunks = rich_answer();
    let mut texts: Vec<String> = chunks.iter().map(Value::to_string).collect();
    // OpenAI's own key order and spacing, which a client sees unchanged.
    texts[0] = r#"{"id":"chatcmpl-up1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_abc","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":{"content":[],"refusal":null},"finish_reason":null}], "usage":null}"#.into();
    assert_eq!(serde_json::from_str::<Value>(&texts[0]).unwrap(), chunks[0]);
    let (base, journal) = upstream_text(texts.clone(), false).await;
    let (url, _gw) = gateway(base).await;
    let http = reqwest::Client::new();
    let sent = json!({ "model": "gpt-4o", "messages": [{ "role": "user", "content": "hi" }], "logprobs": true, "top_logprobs": 1,
        "stream": true, "stream_options": { "include_usage": true }, "seed": 3, "some_new_field": [1] });
    let r = http.post(&url).bearer_auth("client-token-not-for-upstream").json(&sent).send().await.unwrap();
    assert_eq!(r.headers()["x-understudy-provider"], "openai");
    let text = r.text().await.unwrap();
    let mut expected = texts.clone();
    expected.push("[DONE]".into());
    assert_eq!(data_lines(&text), expected, "streamed chunks are the upstream's, byte for byte");
    {
        let j = journal.lock().unwrap();
        let (auth, body) = j.last().unwrap();
        assert_eq!(body, &sent, "the body went upstream unchanged");
        assert_eq!(
            body.to_string(),
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":1,"stream":true,"stream_options":{"include_usage":true},"seed":3,"some_new_field":[1]}"#,
            "in the client's key order"
        );
        assert_eq!(auth, "bearer sk-test-stored0123456789", "the stored key goes upstream, never the client's token");
    }

    // Without include_usage: the same chunks without the usage the gateway asked for.
    let mut plain = sent.clone();
    plain.as_object_mut().unwrap().remove("stream_options");
    let text = http.post(&url).json(&plain).send().await.unwrap().text().await.unwrap();
    let lines = data_lines(&text);
    assert_eq!((lines.len(), lines.last()), (chunks.len(), Some(&"[DONE]")), "the usage-only chunk is left out: {text}");
    for (line, original) in lines.iter().zip(&chunks[..chunks.len() - 1]) {
        let mut original = original.clone();
        original.as_object_mut().unwrap().remove("usage");
        assert_eq!(serde_json::from_str::<Value>(line).unwrap(), original);
    }

    // Not streamed: the provider's completion, byte for byte, to the client's body as it was.
    plain["stream"] = false.into();
    let text = http.post(&url).json(&plain).send().await.unwrap().text().await.unwrap();
    assert_eq!(journal.lock().unwrap().last().unwrap().1, plain, "no stream forced on upstream");
    assert_eq!(text, whole_answer().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_only_answer_is_an_answer() {
    let (base, _journal) = upstream(
        vec![
            chunk(json!([{ "index": 0, "delta": { "role": "assistant", "content": null, "refusal": "" }, "finish_reason": null }])),
            chunk(json!([{ "index": 0, "delta": { "refusal": "I can't help with that." }, "finish_reason": null }])),
            chunk(json!([{ "index": 0, "delta": {}, "finish_reason": "stop" }])),
        ],
        false,
    )
    .await;
    let (url, _gw) = gateway(base).await;
    let r = reqwest::Client::new()
        .post(&url)
        .json(&json!({ "model": "gpt-4o", "stream": true, "messages": [{ "role": "user", "content": "x" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-understudy-provider"], "openai");
    let text = r.text().await.unwrap();
    assert!(text.contains("I can't help with that.") && data_lines(&text).last() == Some(&"[DONE]"), "{text}");
}

/// Tool-call deltas are the answer (not "no first token"), and a stream cut inside a tool call
/// is not continued inside its JSON: with tools offered the offline model cannot take it, so
/// the client hears that and why (and, streamed, never got the half call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_inside_a_tool_call_is_refused_in_words_not_continued() {
    let call = |d: Value| chunk(json!([{ "index": 0, "delta": { "tool_calls": [d] }, "finish_reason": null }]));
    let (base, journal) = upstream(
        vec![
            chunk(json!([{ "index": 0, "delta": { "role": "assistant", "content": null }, "finish_reason": null }])),
            call(json!({ "index": 0, "id": "call_9", "type": "function", "function": { "name": "get_weather", "arguments": "" } })),
            call(json!({ "index": 0, "function": { "arguments": "{\"ci" } })),
        ],
        true,
    )
    .await;
    let (url, _gw) = gateway(base).await;
    let tools = json!([{ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object", "properties": { "city": { "type": "string" } } } } }]);
    let body = json!({ "model": "gpt-4o", "stream": true, "tools": tools, "messages": [{ "role": "user", "content": "weather in Paris?" }] });
    let r = reqwest::Client::new().post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.headers()["x-understudy-provider"], "openai", "the tool call began the answer");
    let text = r.text().await.unwrap();
    let lines = data_lines(&text);
    assert!(!text.contains("call_9") && !text.contains("tool_calls"), "the half call was held back: {text}");
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let message = last["error"]["message"].as_str().unwrap_or_else(|| panic!("ends with an error chunk: {text}"));
    assert!(message.contains("unreachable") && message.contains("offline model cannot take this request") && message.contains("tools"), "{message}");
    assert!(!text.contains("offline\"") && !text.contains("[DONE]"), "never continued offline, never presented as complete: {text}");

    let mut plain = body.clone();
    plain["stream"] = false.into();
    let r = reqwest::Client::new().post(&url).json(&plain).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("offline model cannot take this request"), "{v}");
    assert_eq!(journal.lock().unwrap().len(), 2);
}

/// Chunks as an upstream sends them: `delta` holds the deltas of choice 0.
fn deltas(deltas: &[Value]) -> Vec<Value> {
    deltas.iter().map(|d| chunk(json!([{ "index": 0, "delta": d, "finish_reason": null }]))).collect()
}

fn tool_call_delta(d: Value) -> Value {
    json!({ "tool_calls": [d] })
}

/// With an offline model whose template has tools, a cut inside a tool call is answered afresh
/// offline: a non-streamed client gets the offline answer in place of the upstream's half call,
/// and so does a streamed one, which never saw the half call (held back until the upstream's
/// stream ends) and gets the fresh answer as the rest of the same response. Only a client that
/// already had answer text before the call is told in an error chunk: the fresh answer would be
/// joined onto that text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_inside_a_tool_call_is_answered_afresh_offline_never_joined_to_the_half_call() {
    let half_call = [
        tool_call_delta(json!({ "index": 0, "id": "call_9", "type": "function", "function": { "name": "get_weather", "arguments": "" } })),
        tool_call_delta(json!({ "index": 0, "function": { "arguments": "{\"ci" } })),
    ];
    let tools = json!([{ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object", "properties": { "city": { "type": "string" } } } } }]);
    let body = json!({ "model": "gpt-4o", "stream": false, "tools": tools, "messages": [{ "role": "user", "content": "weather in Paris?" }] });
    let model = understudy_testkit::tiny_gguf_with_template("qwen2.5");

    // The role in a chunk of its own (llmock's way), or in the call's first chunk (OpenAI's).
    for first in [vec![json!({ "role": "assistant", "content": null })], vec![]] {
        let mut sent: Vec<Value> = first.clone();
        sent.extend(half_call.iter().cloned());
        if first.is_empty() {
            sent[0]["role"] = "assistant".into();
            sent[0]["content"] = Value::Null;
        }
        let (base, journal) = upstream(deltas(&sent), true).await;
        let (url, _gw) = gateway_with(base, &model).await;
        let r = reqwest::Client::new().post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let message = &v["choices"][0]["message"];
        assert_eq!((message["content"].as_str(), message.get("tool_calls")), (Some("offline"), None), "the offline answer alone: {v}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");

        let mut streamed = body.clone();
        streamed["stream"] = true.into();
        let text = reqwest::Client::new().post(&url).json(&streamed).send().await.unwrap().text().await.unwrap();
        assert!(!text.contains("call_9") && !text.contains("tool_calls"), "no fragment of the half call: {text}");
        let lines = data_lines(&text);
        assert_eq!(lines.last(), Some(&"[DONE]"), "{text}");
        let chunks: Vec<Value> = lines[..lines.len() - 1].iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        let delta = |k: &str| chunks.iter().filter_map(|c| c["choices"][0]["delta"][k].as_str()).collect::<Vec<_>>();
        assert_eq!((delta("role"), delta("content").concat()), (vec!["assistant"], "offline".to_string()), "one role, the offline answer: {text}");
        assert!(chunks.iter().all(|c| c["id"] == "chatcmpl-up1"), "one response: {text}");
        assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop", "{text}");
        assert_eq!(journal.lock().unwrap().len(), 2);
    }

    // Text went out before the call: an error chunk, never the fresh answer joined onto it.
    let mut sent = vec![json!({ "role": "assistant", "content": "Let me check." })];
    sent.extend(half_call.iter().cloned());
    let (base, _journal) = upstream(deltas(&sent), true).await;
    let (url, _gw) = gateway_with(base, &model).await;
    let mut streamed = body.clone();
    streamed["stream"] = true.into();
    let text = reqwest::Client::new().post(&url).json(&streamed).send().await.unwrap().text().await.unwrap();
    let lines = data_lines(&text);
    assert!(lines[0].contains("Let me check.") && !text.contains("call_9"), "the text came, the half call did not: {text}");
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let m = last["error"]["message"].as_str().unwrap_or_else(|| panic!("ends with an error chunk: {text}"));
    assert!(m.contains("in the middle of a tool call") && m.contains("Send the request again"), "{m}");
    assert!(!text.contains("offline\"") && !text.contains("[DONE]"), "no second answer joined to the text: {text}");
}

/// A healthy tool-call stream reaches a streamed client byte for byte (held back from the first
/// tool-call delta until the upstream's stream ended, then sent unchanged and in order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_tool_call_stream_passes_unchanged() {
    let mut texts: Vec<String> = deltas(&[
        json!({ "role": "assistant", "content": null }),
        tool_call_delta(json!({ "index": 0, "id": "call_9", "type": "function", "function": { "name": "get_weather", "arguments": "" } })),
        tool_call_delta(json!({ "index": 0, "function": { "arguments": "{\"city\":" } })),
        tool_call_delta(json!({ "index": 0, "function": { "arguments": "\"Paris\"}" } })),
        tool_call_delta(json!({ "index": 1, "id": "call_10", "type": "function", "function": { "name": "get_time", "arguments": "{}" } })),
    ])
    .iter()
    .map(Value::to_string)
    .collect();
    // OpenAI's own key order and spacing.
    texts[2] = r#"{"id":"chatcmpl-up1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_abc","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"logprobs":null,"finish_reason":null}], "usage":null}"#.into();
    texts.push(chunk(json!([{ "index": 0, "delta": {}, "finish_reason": "tool_calls" }])).to_string());
    let mut usage = chunk(json!([]));
    usage["usage"] = json!({ "prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20 });
    texts.push(usage.to_string());
    let (base, _journal) = upstream_text(texts.clone(), false).await;
    let (url, _gw) = gateway(base).await;
    let tools = json!([{ "type": "function", "function": { "name": "get_weather" } }, { "type": "function", "function": { "name": "get_time" } }]);
    let body = json!({ "model": "gpt-4o", "stream": true, "stream_options": { "include_usage": true }, "tools": tools,
        "messages": [{ "role": "user", "content": "weather in Paris?" }] });
    let r = reqwest::Client::new().post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.headers()["x-understudy-provider"], "openai");
    let text = r.text().await.unwrap();
    let mut expected = texts.clone();
    expected.push("[DONE]".into());
    assert_eq!(data_lines(&text), expected, "the upstream's chunks, byte for byte");
}

/// A tool call the upstream takes long to write is held back from the client, which meanwhile
/// gets SSE comments (skipped by clients) instead of a silence an idle timeout would cut; the
/// data that follows is still the upstream's, unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_held_tool_call_keeps_the_client_connection_alive() {
    let texts: Vec<String> = deltas(&[
        json!({ "role": "assistant", "content": null }),
        tool_call_delta(json!({ "index": 0, "id": "call_9", "type": "function", "function": { "name": "get_weather", "arguments": "" } })),
        tool_call_delta(json!({ "index": 0, "function": { "arguments": "{\"city\":" } })),
        tool_call_delta(json!({ "index": 0, "function": { "arguments": "\"Paris\"}" } })),
    ])
    .iter()
    .map(Value::to_string)
    .chain([chunk(json!([{ "index": 0, "delta": {}, "finish_reason": "tool_calls" }])).to_string()])
    .collect();
    let (base, _journal) = upstream_paced(texts.clone(), false, Duration::from_millis(300)).await;
    let limits = understudy_gateway::Limits { keep_alive: Duration::from_millis(100), ..understudy_gateway::Limits::default() };
    let (url, _gw) = gateway_config(base, &understudy_testkit::tiny_gguf(), understudy_gateway::GatewayConfig { token: None, limits }).await;
    let body = json!({ "model": "gpt-4o", "stream": true, "stream_options": { "include_usage": true },
        "tools": [{ "type": "function", "function": { "name": "get_weather" } }], "messages": [{ "role": "user", "content": "weather in Paris?" }] });
    let text = reqwest::Client::new().post(&url).json(&body).send().await.unwrap().text().await.unwrap();
    let comments = text.lines().filter(|l| *l == ": keep-alive").count();
    assert!(comments >= 3, "about one comment per 100 ms of the ~1 s the call was held: {text}");
    let mut expected = texts;
    expected.push("[DONE]".into());
    assert_eq!(data_lines(&text), expected, "the upstream's chunks, unchanged: {text}");
}

#![allow(clippy::unwrap_used)]
//! The answering provider's response headers that describe its answer reach the client (its
//! request id, which the SDKs show as `_request_id`, processing time, API version, account and
//! rate-limit state), streamed and not; nothing else of its response does (cookies, `server`,
//! `date`, body headers). Only the provider whose answer the client gets: none when the offline
//! model answers, none of a provider that sent its headers and then failed before its first
//! token.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use understudy_local::engine::EngineConfig;

/// What a raw upstream does after its response headers.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    /// A whole answer ("Hi there", usage, `[DONE]`).
    Answer,
    /// Closes the connection before any chunk: failed before its first token.
    Close,
    /// One chunk of text, then closes: cut mid-answer.
    Cut,
    /// Refuses the request: 400 with OpenAI's error body (a request error, which no other
    /// provider would take either, so it reaches the client).
    Refuse,
    /// 429 with `retry-after: 7`, longer than the router waits before it fails over.
    RateLimited,
}

/// OpenAI's response headers with `tag` in the values, and some that must never be passed on.
fn upstream_headers(tag: &str) -> String {
    format!(
        "x-request-id: req_{tag}\r\nopenai-processing-ms: 37\r\nopenai-version: 2020-10-01\r\nopenai-organization: org-{tag}\r\n\
         openai-project: proj_{tag}\r\nx-ratelimit-limit-requests: 5000\r\nx-ratelimit-limit-tokens: 800000\r\n\
         x-ratelimit-remaining-requests: 4999\r\nx-ratelimit-remaining-tokens: 799{tag}\r\nx-ratelimit-reset-requests: 12ms\r\n\
         x-ratelimit-reset-tokens: 7ms\r\nset-cookie: __cf_bm={tag}; path=/\r\nserver: cloudflare-{tag}\r\n\
         date: Thu, 01 Jan 1970 00:00:00 GMT\r\ncf-ray: {tag}-AMS\r\nx-powered-by: {tag}\r\nalt-svc: h3=\":443\"\r\n"
    )
}

/// The names and values a client must get from the provider tagged `tag`.
fn described(tag: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-request-id", format!("req_{tag}")),
        ("openai-processing-ms", "37".into()),
        ("openai-version", "2020-10-01".into()),
        ("openai-organization", format!("org-{tag}")),
        ("openai-project", format!("proj_{tag}")),
        ("x-ratelimit-limit-requests", "5000".into()),
        ("x-ratelimit-limit-tokens", "800000".into()),
        ("x-ratelimit-remaining-requests", "4999".into()),
        ("x-ratelimit-remaining-tokens", format!("799{tag}")),
        ("x-ratelimit-reset-requests", "12ms".into()),
        ("x-ratelimit-reset-tokens", "7ms".into()),
    ]
}

/// The status line's rest and OpenAI's error body for the error answers of `then`.
fn refusal(then: Then) -> Option<(&'static str, Value)> {
    match then {
        Then::Refuse => Some((
            "400 Bad Request",
            json!({ "error": { "message": "Invalid value for 'temperature': 7 is above 2.", "type": "invalid_request_error", "param": "temperature", "code": "invalid_value" } }),
        )),
        Then::RateLimited => Some((
            "429 Too Many Requests\r\nretry-after: 7",
            json!({ "error": { "message": "Rate limit reached for gpt-4o-mini.", "type": "requests", "param": null, "code": "rate_limit_exceeded" } }),
        )),
        _ => None,
    }
}

/// An upstream answering every chat request with [`upstream_headers`]`(tag)` and then `then`.
async fn upstream(tag: &'static str, then: Then) -> String {
    common::upstream(move |head, body, mut s| async move {
        if !head.starts_with("post") {
            let _ = s.write_all(common::NOT_FOUND).await;
            return;
        }
        if let Some((status, body)) = refusal(then) {
            let _ = s.write_all(common::json_answer(status, &upstream_headers(tag), &body).as_bytes()).await;
            return;
        }
        if !common::asks_stream(&body) {
            // Asked for no stream: the whole completion, or its head and then a close.
            let completion = json!({ "id": format!("chatcmpl-{tag}"), "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o-2024-08-06",
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hi there", "refusal": null }, "logprobs": null, "finish_reason": "stop" }],
                "usage": { "prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7 } });
            let answer = common::json_answer("200 OK", &upstream_headers(tag), &completion);
            let sent = match then {
                Then::Answer => answer.len(),
                Then::Cut => answer.len() - 10,
                _ => answer.find("\r\n\r\n").unwrap() + 4,
            };
            let _ = s.write_all(&answer.as_bytes()[..sent]).await;
            return;
        }
        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n{}\r\n", upstream_headers(tag));
        let _ = s.write_all(head.as_bytes()).await;
        let chunk = |delta: Value, finish: Value| {
            json!({ "id": format!("chatcmpl-{tag}"), "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "gpt-4o-2024-08-06",
                    "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }] })
        };
        let chunks = match then {
            Then::Close | Then::Refuse | Then::RateLimited => vec![],
            Then::Cut => vec![chunk(json!({ "role": "assistant", "content": "Hi" }), Value::Null)],
            Then::Answer => vec![
                chunk(json!({ "role": "assistant", "content": "Hi" }), Value::Null),
                chunk(json!({ "content": " there" }), Value::Null),
                chunk(json!({}), json!("stop")),
                json!({ "id": format!("chatcmpl-{tag}"), "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "gpt-4o-2024-08-06",
                        "choices": [], "usage": { "prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7 } }),
            ],
        };
        for c in chunks {
            let _ = s.write_all(format!("data: {c}\n\n").as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if then == Then::Answer {
            let _ = s.write_all(b"data: [DONE]\n\n").await;
        }
    })
    .await
}

/// A port nothing listens on.
fn unreachable() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}/v1")
}

/// A gateway over the cloud providers at `base_urls` in this order (`p0`, `p1`, …), then the
/// stand-in offline worker: (its chat URL, the gateway).
async fn gateway(base_urls: &[String]) -> (String, common::Gw) {
    let gw = common::start_chain(EngineConfig::new("bash", &["-c", common::WORKER]), &understudy_testkit::tiny_gguf(), base_urls).await;
    (gw.url.clone(), gw)
}

/// Asks the gateway, streamed or not; (response headers, body).
async fn ask(url: &str, stream: bool) -> (reqwest::header::HeaderMap, String) {
    ask_expecting(url, stream, 200).await
}

/// [`ask`], answered with `status`.
async fn ask_expecting(url: &str, stream: bool, status: u16) -> (reqwest::header::HeaderMap, String) {
    let body = json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "hi" }], "stream": stream });
    let r = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), status, "{}", if stream { "streamed" } else { "not streamed" });
    let headers = r.headers().clone();
    (headers, r.text().await.unwrap())
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

/// Every described header of the provider tagged `tag` is there, with its values.
fn has_described(h: &reqwest::header::HeaderMap, tag: &str, what: &str) {
    for (name, value) in described(tag) {
        assert_eq!(header(h, name), Some(value.as_str()), "{what}: {name} in {h:?}");
    }
}

/// None of the described headers is there.
fn none_described(h: &reqwest::header::HeaderMap, what: &str) {
    for (name, _) in described("") {
        assert!(h.get(name).is_none(), "{what}: {name} must not be passed on: {h:?}");
    }
}

/// What a provider says of itself or of its transport never reaches the client.
fn nothing_else(h: &reqwest::header::HeaderMap, tag: &str, stream: bool, what: &str) {
    for name in ["set-cookie", "server", "cf-ray", "x-powered-by", "alt-svc"] {
        assert!(h.get(name).is_none(), "{what}: {name} passed on: {h:?}");
    }
    assert_ne!(header(h, "date"), Some("Thu, 01 Jan 1970 00:00:00 GMT"), "{what}: the upstream's date passed on");
    let ct = if stream { "text/event-stream" } else { "application/json" };
    assert_eq!(header(h, "content-type"), Some(ct), "{what}");
    assert!(h.values().all(|v| !v.to_str().unwrap_or_default().contains(&format!("cloudflare-{tag}"))), "{what}: {h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answering_provider_s_request_id_and_rate_limits_reach_the_client() {
    let (url, _gw) = gateway(&[upstream("a1", Then::Answer).await]).await;
    for stream in [false, true] {
        let what = if stream { "streamed" } else { "not streamed" };
        let (h, body) = ask(&url, stream).await;
        assert_eq!(header(&h, "x-understudy-provider"), Some("p0"), "{what}");
        assert!(body.contains("there"), "{what}: {body}");
        has_described(&h, "a1", what);
        nothing_else(&h, "a1", stream, what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_answer_carries_no_provider_s_headers() {
    // The provider is unreachable: the offline model answers from the start.
    let (url, _gw) = gateway(&[unreachable()]).await;
    for stream in [false, true] {
        let what = if stream { "offline, streamed" } else { "offline, not streamed" };
        let (h, body) = ask(&url, stream).await;
        assert_eq!(header(&h, "x-understudy-provider"), Some("local"), "{what}");
        assert!(body.contains("offline"), "{what}: {body}");
        none_described(&h, what);
    }
    // It sent its headers, then failed before its first token: the offline model's answer
    // carries none of them.
    let (url, _gw) = gateway(&[upstream("f1", Then::Close).await]).await;
    for stream in [false, true] {
        let what = if stream { "failed over offline, streamed" } else { "failed over offline, not streamed" };
        let (h, _) = ask(&url, stream).await;
        assert_eq!(header(&h, "x-understudy-provider"), Some("local"), "{what}");
        assert!(header(&h, "x-understudy-failover").is_some(), "{what}: {h:?}");
        none_described(&h, what);
        nothing_else(&h, "f1", stream, what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_only_the_answering_provider_s_headers_are_passed_on() {
    // The first provider sends its headers and fails before its first token; the second answers.
    let (url, _gw) = gateway(&[upstream("f2", Then::Close).await, upstream("b2", Then::Answer).await]).await;
    for stream in [false, true] {
        let what = if stream { "streamed" } else { "not streamed" };
        let (h, body) = ask(&url, stream).await;
        assert_eq!(header(&h, "x-understudy-provider"), Some("p1"), "{what}");
        assert!(body.contains("there"), "{what}: {body}");
        has_described(&h, "b2", what);
        nothing_else(&h, "b2", stream, what);
        nothing_else(&h, "f2", stream, what);
    }
    // A cloud answer cut mid-stream and continued offline: the client got the provider's
    // headers with its first token, and the provider stays the one named.
    let (url, _gw) = gateway(&[upstream("c3", Then::Cut).await]).await;
    let (h, body) = ask(&url, true).await;
    assert_eq!(header(&h, "x-understudy-provider"), Some("p0"));
    assert!(body.contains("offline"), "{body}");
    has_described(&h, "c3", "continued offline");
    // A whole answer cut short left the client nothing: the offline model's answer is all
    // there is, and none of the provider's headers describe it.
    let (h, body) = ask(&url, false).await;
    assert_eq!(header(&h, "x-understudy-provider"), Some("local"));
    assert!(header(&h, "x-understudy-failover").is_some(), "{h:?}");
    assert!(body.contains("offline"), "{body}");
    none_described(&h, "answered afresh offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_s_error_answer_keeps_its_request_id() {
    // The SDKs show an error's `x-request-id` as its `request_id`, to quote to the provider's
    // support; the error's own fields still come through.
    let (url, _gw) = gateway(&[upstream("e4", Then::Refuse).await]).await;
    for stream in [false, true] {
        let what = if stream { "streamed" } else { "not streamed" };
        let (h, e) = ask_expecting(&url, stream, 400).await;
        assert_eq!(header(&h, "x-request-id"), Some("req_e4"), "{what}: {h:?}");
        nothing_else(&h, "e4", false, what);
        let e: Value = serde_json::from_str(&e).unwrap();
        assert_eq!(e["error"]["param"], "temperature", "{what}: {e}");
        assert_eq!(e["error"]["code"], "invalid_value", "{what}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_s_rate_limit_that_reaches_the_client_keeps_its_retry_after() {
    // No offline model to fail over to, and a wait longer than the router's own: the client
    // gets the provider's 429, and its SDK waits as long as the provider asked.
    let worker = EngineConfig::new("bash", &["-c", common::WORKER]);
    let gw = common::start_chain(worker, std::path::Path::new("/nonexistent/model.gguf"), &[upstream("r5", Then::RateLimited).await]).await;
    for stream in [false, true] {
        let what = if stream { "streamed" } else { "not streamed" };
        let (h, e) = ask_expecting(&gw.url, stream, 429).await;
        assert_eq!(header(&h, "retry-after"), Some("7"), "{what}: {h:?}");
        assert_eq!(header(&h, "x-request-id"), Some("req_r5"), "{what}: {h:?}");
        let e: Value = serde_json::from_str(&e).unwrap();
        assert_eq!(e["error"]["code"], "rate_limit_exceeded", "{what}: {e}");
    }
}

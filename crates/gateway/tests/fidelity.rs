#![allow(clippy::unwrap_used)]
//! What real OpenAI clients ask of the gateway besides a plain answer, against a recording
//! upstream that keeps each request's header and body: `models.retrieve`, endpoints the gateway
//! does not serve (an OpenAI error naming what it serves, never an empty 404 or 405), the
//! provider's `error.param`, audio output and several choices passed to a non-streamed client as
//! the provider sent them, and the client headers OpenAI reads that are not sent upstream (named in
//! `x-understudy-not-forwarded`).

mod common;

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use understudy_local::engine::EngineConfig;

/// Each chat request the upstream got: (its header, lowercased; its body).
type Journal = Arc<Mutex<Vec<(String, Value)>>>;

/// An OpenAI stand-in: `GET /v1/models` lists two models; a chat request whose last message
/// says "invalid" gets OpenAI's 400 with a `param`; any other gets `whole` (the answers asked
/// of it here are unstreamed).
async fn upstream(whole: Value) -> (String, Journal) {
    let journal: Journal = Arc::default();
    let j = journal.clone();
    let url = common::upstream(move |head, body, mut s| {
        let (whole, j) = (whole.clone(), j.clone());
        async move {
            if head.starts_with("get /v1/models") {
                let list = json!({ "object": "list", "data": [
                    { "id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741, "owned_by": "system" },
                    { "id": "gpt-4o-audio-preview", "object": "model", "created": 1_727_460_443, "owned_by": "system" },
                ] });
                let _ = s.write_all(common::json_answer("200 OK", "", &list).as_bytes()).await;
                return;
            }
            let body: Value = serde_json::from_slice(&body).unwrap();
            j.lock().unwrap().push((head, body.clone()));
            if body["messages"].as_array().and_then(|m| m.last()).is_some_and(|m| m["content"] == "invalid") {
                let e = json!({ "error": { "message": "Invalid value for 'temperature': must be <= 2.", "type": "invalid_request_error", "param": "temperature", "code": "invalid_value" } });
                let _ = s.write_all(common::json_answer("400 Bad Request", "", &e).as_bytes()).await;
                return;
            }
            let _ = s.write_all(common::json_answer("200 OK", "", &whole).as_bytes()).await;
        }
    })
    .await;
    (url, journal)
}

async fn gateway(whole: Value) -> (common::Gw, Journal) {
    let (base, journal) = upstream(whole).await;
    let gw = common::start_failover(EngineConfig::new("bash", &["-c", common::WORKER]), &understudy_testkit::tiny_gguf(), base).await;
    (gw, journal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_retrieved_by_id_and_other_endpoints_are_openai_errors_naming_what_is_served() {
    let (gw, _journal) = gateway(Value::Null).await;
    let base = gw.url.trim_end_matches("/chat/completions").to_string();
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}")).send();

    // The provider's model as it describes it (its `created` too), and the offline model.
    let list: Value = get("/models").await.unwrap().json().await.unwrap();
    assert_eq!(list["data"][0], json!({ "id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741, "owned_by": "system" }));
    let local = list["data"].as_array().unwrap().iter().find(|m| m["id"].as_str().unwrap().starts_with("local/")).unwrap().clone();
    let r = get("/models/gpt-4o-mini").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), list["data"][0]);
    let id = local["id"].as_str().unwrap();
    for path in [format!("/models/{id}"), format!("/models/{}", id.replace('/', "%2F"))] {
        let r = get(&path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.json::<Value>().await.unwrap(), local, "{path}");
    }
    for missing in ["/models/gpt-9", "/models/local/nothing-here"] {
        let r = get(missing).await.unwrap();
        assert_eq!(r.status(), 404, "{missing}");
        let e: Value = r.json().await.unwrap();
        assert_eq!((e["error"]["type"].as_str(), e["error"]["code"].as_str()), (Some("invalid_request_error"), Some("model_not_found")), "{e}");
    }

    // What real clients also call: OpenAI's JSON error, saying what the gateway serves.
    for (method, path) in [
        (reqwest::Method::POST, "/responses"),
        (reqwest::Method::POST, "/embeddings"),
        (reqwest::Method::POST, "/completions"),
        (reqwest::Method::GET, "/assistants"),
    ] {
        let r = http.request(method.clone(), format!("{base}{path}")).json(&json!({ "model": "gpt-4o-mini", "input": "hi" })).send().await.unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
        let e: Value = r.json().await.unwrap();
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("{method} /v1{path}")) && message.contains("serves POST /v1/chat/completions"), "{message}");
        assert_eq!(e["error"]["type"], "invalid_request_error");
    }
    for (method, path) in [(reqwest::Method::GET, "/chat/completions"), (reqwest::Method::DELETE, "/models/gpt-4o-mini")] {
        let r = http.request(method.clone(), format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"]["message"].as_str().unwrap().contains("serves POST /v1/chat/completions"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_s_error_param_reaches_the_client() {
    let (gw, journal) = gateway(Value::Null).await;
    for stream in [false, true] {
        let sent = json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "invalid" }], "temperature": 3, "stream": stream });
        let r = reqwest::Client::new().post(&gw.url).json(&sent).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let e: Value = r.json().await.unwrap();
        assert_eq!(
            (&e["error"]["type"], &e["error"]["param"], &e["error"]["code"]),
            (&json!("invalid_request_error"), &json!("temperature"), &json!("invalid_value")),
            "{e}"
        );
        assert!(e["error"]["message"].as_str().unwrap().contains("Invalid value for 'temperature'"), "{e}");
    }
    assert_eq!(journal.lock().unwrap().len(), 2, "asked once each, never answered offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_output_and_several_choices_reach_a_non_streamed_client_as_the_provider_sent_them() {
    let message = |audio: Value| json!({ "role": "assistant", "content": null, "refusal": null, "audio": audio, "annotations": [] });
    let completion = json!({ "id": "chatcmpl-up2", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o-audio-preview-2024-12-17",
        "choices": [
            { "index": 0, "message": message(json!({ "id": "audio_abc", "transcript": "Hello", "data": "UklGRiQA", "expires_at": 1_700_003_600 })), "logprobs": null, "finish_reason": "stop" },
            { "index": 1, "message": message(json!({ "id": "audio_def", "transcript": "Hi", "data": "AAAA", "expires_at": 1_700_003_601 })), "logprobs": null, "finish_reason": "length" },
        ],
        "usage": { "prompt_tokens": 9, "completion_tokens": 30, "total_tokens": 39,
            "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 }, "completion_tokens_details": { "reasoning_tokens": 0, "audio_tokens": 25 } },
        "service_tier": "default", "system_fingerprint": "fp_a", "a_field_added_next_year": { "x": 1 } });
    let (gw, journal) = gateway(completion.clone()).await;
    let sent = json!({ "model": "gpt-4o-audio-preview", "messages": [{ "role": "user", "content": "Say hello" }], "n": 2,
        "modalities": ["text", "audio"], "audio": { "voice": "alloy", "format": "pcm16" }, "stream": false });
    let r = reqwest::Client::new()
        .post(&gw.url)
        .json(&sent)
        .header("OpenAI-Organization", "org-someone-else")
        .header("OpenAI-Project", "proj_x")
        .header("Idempotency-Key", "k1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-understudy-not-forwarded"], "openai-organization, openai-project, idempotency-key");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), completion.to_string(), "the provider's completion, byte for byte");
    let (head, body) = journal.lock().unwrap().last().unwrap().clone();
    for h in ["openai-organization", "openai-project", "idempotency-key"] {
        assert!(!head.contains(h), "{h} is not sent with the stored key: {head}");
    }
    assert_eq!(body, sent, "the body went upstream as sent, no stream forced on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_an_outage_the_offline_model_is_retrieved_and_the_provider_s_are_a_503_saying_why() {
    // Nothing listens on port 1: the provider's model list cannot be read.
    let gw = common::start_failover(EngineConfig::new("bash", &["-c", common::WORKER]), &understudy_testkit::tiny_gguf(), "http://127.0.0.1:1/v1".into()).await;
    let base = gw.url.trim_end_matches("/chat/completions").to_string();
    let list: Value = reqwest::get(format!("{base}/models")).await.unwrap().json().await.unwrap();
    let id = list["data"][0]["id"].as_str().unwrap();
    assert!(id.starts_with("local/") && list["data"].as_array().unwrap().len() == 1, "{list}");
    assert_eq!(reqwest::get(format!("{base}/models/{id}")).await.unwrap().status(), 200);
    let r = reqwest::get(format!("{base}/models/gpt-4o-mini")).await.unwrap();
    let status = r.status();
    let e: Value = r.json().await.unwrap();
    assert_eq!(status, 503, "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("could not be read") && message.contains("answered by the offline model"), "{message}");
}

#![allow(clippy::unwrap_used)]
//! JSON mode and structured outputs answered by the offline model: `response_format` becomes a
//! grammar the worker's sampler enforces. The model is the tiny GGUF with random weights, which
//! has never seen JSON: whatever it writes under the grammar must still be JSON that matches the
//! schema, streamed and not, greedy and sampled.

mod common;
use common::start_local;
use serde_json::{json, Value};
use understudy_local::engine::EngineConfig;

/// A schema whose answers are bounded (fixed keys, a boolean, an enum, a small integer, a short
/// array of them): the grammar accepts finitely many texts, so even random weights end.
fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "ok": { "type": "boolean" },
            "colour": { "enum": ["red", "green", "blue"] },
            "n": { "type": "integer", "minimum": 1, "maximum": 9 },
            "tags": { "type": "array", "items": { "enum": ["a", "b"] }, "maxItems": 3 }
        },
        "required": ["ok", "colour", "n", "tags"],
        "additionalProperties": false
    })
}

fn matches_schema(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    o.len() == 4
        && o["ok"].is_boolean()
        && ["red", "green", "blue"].contains(&o["colour"].as_str().unwrap_or(""))
        && o["n"].as_i64().is_some_and(|n| (1..=9).contains(&n))
        && o["tags"].as_array().is_some_and(|a| a.len() <= 3 && a.iter().all(|t| t == "a" || t == "b"))
}

async fn ask(http: &reqwest::Client, url: &str, body: &Value) -> (String, String) {
    let r = http.post(url).json(body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{body}");
    if body["stream"] != json!(true) {
        let v: Value = r.json().await.unwrap();
        let c = &v["choices"][0];
        return (c["message"]["content"].as_str().unwrap().to_string(), c["finish_reason"].as_str().unwrap().to_string());
    }
    let (mut text, mut finish) = (String::new(), String::new());
    for data in r.text().await.unwrap().lines().filter_map(|l| l.strip_prefix("data: ")).filter(|d| *d != "[DONE]") {
        let chunk: Value = serde_json::from_str(data).unwrap();
        text.push_str(chunk["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
        if let Some(f) = chunk["choices"][0]["finish_reason"].as_str() {
            finish = f.to_string();
        }
    }
    (text, finish)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_outputs_offline_are_json_matching_the_schema_even_from_random_weights() {
    let gw = start_local(EngineConfig::new(understudy_testkit::local_worker(), &[])).await;
    let http = reqwest::Client::new();
    let format = json!({ "type": "json_schema", "json_schema": { "name": "answer", "strict": true, "schema": schema() } });
    // Without the grammar the same model writes no JSON at all: the grammar is what holds it.
    let free = json!({ "model": "local/tiny", "messages": [{ "role": "user", "content": "Reply in JSON." }], "temperature": 0, "max_tokens": 40 });
    let (text, _) = ask(&http, &gw.url, &free).await;
    assert!(serde_json::from_str::<Value>(&text).map_or(true, |v| !matches_schema(&v)), "random weights wrote the schema unaided: {text:?}");
    for (stream, temperature, seed) in [(false, 0.0, 1), (true, 0.0, 1), (false, 1.0, 7), (true, 1.0, 8), (false, 1.5, 9), (false, 1.0, 10)] {
        let body = json!({
            "model": "local/tiny", "stream": stream, "temperature": temperature, "seed": seed, "max_tokens": 400,
            "messages": [{ "role": "user", "content": "Reply in JSON." }], "response_format": format,
        });
        let (text, finish) = ask(&http, &gw.url, &body).await;
        assert_eq!(finish, "stop", "the grammar's answer ended: {text:?}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
        assert!(matches_schema(&v), "does not match the schema: {v}");
        eprintln!("stream {stream}, temperature {temperature}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_mode_offline_writes_a_json_object() {
    let gw = start_local(EngineConfig::new(understudy_testkit::local_worker(), &[])).await;
    let http = reqwest::Client::new();
    for (stream, seed) in [(false, 3), (true, 4)] {
        let body = json!({
            "model": "local/tiny", "stream": stream, "temperature": 1.0, "seed": seed, "max_tokens": 1500,
            "messages": [{ "role": "user", "content": "Reply in JSON." }], "response_format": { "type": "json_object" },
        });
        let (text, finish) = ask(&http, &gw.url, &body).await;
        // JSON mode allows any object, of any length: an answer cut by max_tokens is cut JSON, as
        // with OpenAI; one that ended is a whole object.
        eprintln!("json mode, stream {stream}: {finish} {text}");
        assert!(text.trim_start().starts_with('{'), "{text:?}");
        if finish == "stop" {
            // Syntax only (random weights write numbers like 40e485497, valid JSON that
            // serde_json will not hold as an f64).
            serde_json::from_str::<serde::de::IgnoredAny>(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
            assert!(text.trim_end().ends_with('}'), "{text:?}");
        }
    }
}

#![allow(clippy::unwrap_used)]
//! Requests with large images: OpenAI takes up to 50 MB of them in one request, so the gateway
//! passes bodies up to 50 MiB on whole. Over 8 MiB a body must declare its length, and the
//! bodies over 8 MiB held at once (each until its answer ends) share `Limits::large_bodies`:
//! a request that finds no room waits for it, then gets 503 with `Retry-After`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use understudy_gateway::{GatewayConfig, Limits};
use understudy_local::engine::EngineConfig;

const MIB: usize = 1024 * 1024;

/// The bodies the upstream received, in order.
type Journal = Arc<Mutex<Vec<Value>>>;

/// An upstream that records each chat request and answers it once `open` is true (a request
/// under 1 MiB at once).
async fn upstream(open: tokio::sync::watch::Receiver<bool>) -> (String, Journal) {
    let journal: Journal = Arc::default();
    let j = journal.clone();
    let url = common::upstream(move |head, body, mut s| {
        let (j, mut open) = (j.clone(), open.clone());
        async move {
            if !head.starts_with("post") {
                let _ = s.write_all(common::NOT_FOUND).await;
                return;
            }
            let large = body.len() >= MIB;
            j.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
            if large {
                let _ = open.wait_for(|o| *o).await;
            }
            if !common::asks_stream(&body) {
                let message = json!({ "role": "assistant", "content": "A cat." });
                let completion = json!({ "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o", "choices": [{ "index": 0, "message": message, "finish_reason": "stop" }] });
                let _ = s.write_all(common::json_answer("200 OK", "", &completion).as_bytes()).await;
                return;
            }
            let chunk = |delta: Value, finish: Value| json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] });
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n").await;
            for c in [chunk(json!({ "role": "assistant", "content": "A cat." }), Value::Null), chunk(json!({}), json!("stop"))] {
                let _ = s.write_all(format!("data: {c}\n\n").as_bytes()).await;
            }
            let _ = s.write_all(b"data: [DONE]\n\n").await;
        }
    })
    .await;
    (url, journal)
}

/// A request whose image is `mib` MiB of base64.
fn with_image(mib: usize) -> Value {
    let url = format!("data:image/png;base64,{}", "A".repeat(mib * MIB));
    json!({ "model": "gpt-4o", "messages": [{ "role": "user", "content": [{ "type": "text", "text": "What is this?" }, { "type": "image_url", "image_url": { "url": url } }] }] })
}

async fn gateway(base_url: String, limits: Limits) -> common::Gw {
    let cfg = GatewayConfig { token: None, limits };
    common::start_failover_with(EngineConfig::new("bash", &["-c", common::WORKER]), &understudy_testkit::tiny_gguf(), base_url, cfg).await
}

/// Sends `head` and as much of `body` as the gateway takes, then reads its answer until it
/// closes the connection.
async fn raw(addr: &str, head: &str, body: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read_to_end(&mut s, &mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_request_over_8_mib_reaches_the_upstream_whole() {
    let (_open, rx) = tokio::sync::watch::channel(true);
    let (url, journal) = upstream(rx).await;
    let gw = gateway(url, Limits::default()).await;
    let http = reqwest::Client::new();
    let body = with_image(20);
    let r = http.post(&gw.url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "A cat.", "{answer}");
    let sent = journal.lock().unwrap().pop().unwrap();
    assert_eq!(sent["messages"], body["messages"], "the image went upstream whole");

    // Without a Content-Length (chunked), a body may not pass 8 MiB: its size is unknown
    // until it has been read. (Raw: the gateway answers before the body is all sent and then
    // closes, which an HTTP client may see as a broken pipe instead of the answer.)
    let addr = gw.url.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let json = serde_json::to_vec(&with_image(9)).unwrap();
    let mut chunked = Vec::new();
    for c in json.chunks(MIB) {
        chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        chunked.extend_from_slice(c);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    let answer = raw(&addr, &head, &chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("Content-Length"), "{answer}");
    // Over 50 MiB is refused at once, on its declared length (the gateway does not read it).
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", 51 * MIB);
    let answer = raw(&addr, &head, b"").await;
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("50 MiB"), "{answer}");
    assert_eq!(journal.lock().unwrap().len(), 0, "a refused body never went upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_requests_share_their_budget_and_one_without_room_is_told_to_retry() {
    let (open, rx) = tokio::sync::watch::channel(false);
    let (url, journal) = upstream(rx).await;
    // Room for one 30 MiB body at a time (the budget is never under 50 MiB).
    let limits = Limits { large_bodies: 50 * MIB as u64, body_read: Duration::from_secs(1), ..Limits::default() };
    let gw = gateway(url, limits).await;
    let http = reqwest::Client::new();
    let first = tokio::spawn({
        let (http, url, body) = (http.clone(), gw.url.clone(), with_image(30));
        async move { http.post(&url).json(&body).send().await.unwrap().status() }
    });
    while journal.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first is at the upstream, its answer held: a second finds no room within the body time.
    let r = http.post(&gw.url).json(&with_image(30)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "busy", "{e}");
    // A small request is not held back by them.
    let small = json!({ "model": "gpt-4o", "messages": [{ "role": "user", "content": "hi" }] });
    assert_eq!(http.post(&gw.url).json(&small).send().await.unwrap().status(), 200);
    // Once the first answer has ended, its room is free again.
    open.send(true).unwrap();
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(http.post(&gw.url).json(&with_image(30)).send().await.unwrap().status(), 200);
    assert_eq!(journal.lock().unwrap().len(), 3, "the first, the small one and the last reached the upstream");
}

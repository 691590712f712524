#![allow(clippy::unwrap_used)]
//! A full offline queue is OpenAI's rate-limit answer, so SDKs back off and retry: 429 with
//! `Retry-After`, and the answers already queued go on.

use std::time::{Duration, Instant};

mod common;
use common::start_local;
use understudy_local::engine::EngineConfig;

/// A stand-in worker that loads, then takes each request and answers only after 4 s (long
/// enough for the second request to queue behind the first on a loaded machine).
const SLOW_WORKER: &str = r#"read l; echo '{"type":"loaded","path":"m","architecture":"llama","load_ms":1,"context":2048,"threads":1,"template":"chatml"}'
while read l; do
  id=$(echo "$l" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  echo "{\"type\":\"started\",\"id\":\"$id\"}"
  sleep 4
  echo "{\"type\":\"token\",\"id\":\"$id\",\"text\":\"done\"}"
  echo "{\"type\":\"done\",\"id\":\"$id\",\"finish_reason\":\"stop\",\"usage\":{\"prompt_tokens\":9,\"prompt_evaluated\":9,\"prompt_reused\":0,\"completion_tokens\":1,\"dropped_messages\":0,\"prompt_ms\":1,\"generation_ms\":1}}"
done"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_offline_queue_answers_429_with_retry_after() {
    let mut engine = EngineConfig::new("bash", &["-c", SLOW_WORKER]);
    engine.max_queue = 2;
    let gw = start_local(engine).await;
    let (router, url) = (gw.router.clone(), gw.url.clone());
    let t0 = Instant::now();
    let body = serde_json::json!({ "model": "local", "messages": [{ "role": "user", "content": "hi" }] });
    let http = reqwest::Client::new();
    let mut queued: Vec<_> = (0..2)
        .map(|_| {
            let (http, url, body) = (http.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                let r = http.post(&url).json(&body).send().await.unwrap();
                (r.status(), r.text().await.unwrap_or_default())
            })
        })
        .collect();
    while router.engine().in_flight() < 2 {
        // An answer that came back before both were queued says why.
        if let Some(i) = queued.iter().position(tokio::task::JoinHandle::is_finished) {
            let (status, text) = queued.remove(i).await.unwrap();
            panic!("an answer ended before both were queued: {status} {text}");
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the two answers never queued: {} in flight", router.engine().in_flight());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "2");
    let err: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(err["error"]["code"], "rate_limit_exceeded", "{err}");
    for q in queued {
        let (status, text) = q.await.unwrap();
        assert_eq!(status, 200, "the queued answers go on: {text}");
    }
}

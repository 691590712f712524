#![allow(clippy::unwrap_used)]
//! A full offline queue is OpenAI's rate-limit answer, so SDKs back off and retry: 429 with
//! `Retry-After`, and the answers already queued go on.

use std::time::{Duration, Instant};

use understudy_core::config::{Config, Mode};
use understudy_core::{Env, Paths};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::NoKeys;
use understudy_router::{Chain, Router};

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
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([
        ("UNDERSTUDY_DATA_DIR", dir.path().join("data").display().to_string()),
        ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string()),
    ]);
    let mut config = Config { mode: Mode::LocalOnly, ..Config::default() };
    config.local.model = Some(understudy_testkit::tiny_gguf().display().to_string());
    let mut engine = EngineConfig::new("bash", &["-c", SLOW_WORKER]);
    engine.max_queue = 2;
    let router = Router::new(Chain::build(&config, &Paths::resolve(&env).unwrap(), &NoKeys), Engine::new(engine));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let r = router.clone();
    tokio::spawn(async move { understudy_gateway::serve(r, understudy_gateway::GatewayConfig::default(), addr, std::future::pending()).await.unwrap() });
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "gateway did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("http://{addr}/v1/chat/completions");
    let body = serde_json::json!({ "model": "local", "messages": [{ "role": "user", "content": "hi" }] });
    let http = reqwest::Client::new();
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let (http, url, body) = (http.clone(), url.clone(), body.clone());
            tokio::spawn(async move { http.post(&url).json(&body).send().await.unwrap().status() })
        })
        .collect();
    while router.engine().in_flight() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(30), "the two answers never queued: {} in flight", router.engine().in_flight());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "2");
    let err: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(err["error"]["code"], "rate_limit_exceeded", "{err}");
    for q in queued {
        assert_eq!(q.await.unwrap(), 200, "the queued answers go on");
    }
}

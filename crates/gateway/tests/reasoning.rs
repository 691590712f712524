#![allow(clippy::unwrap_used)]
//! A reasoning model's thinking reaches OpenAI clients as `reasoning_content` (as DeepSeek's API
//! and OpenRouter send it), apart from the answer's `content`. The worker here is a stand-in
//! that answers as a reasoning model's worker does: `reasoning` events, then `token`s.

use std::time::{Duration, Instant};

use understudy_core::config::{Config, Mode};
use understudy_core::{Env, Paths};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::NoKeys;
use understudy_router::{Chain, Router};

const THINKING_WORKER: &str = r#"read l; echo '{"type":"loaded","path":"m","architecture":"qwen3","load_ms":1,"context":2048,"threads":1,"template":"model (jinja)"}'
while read l; do
  id=$(echo "$l" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  echo "{\"type\":\"started\",\"id\":\"$id\"}"
  echo "{\"type\":\"reasoning\",\"id\":\"$id\",\"text\":\"The user greets me. \"}"
  echo "{\"type\":\"reasoning\",\"id\":\"$id\",\"text\":\"Be brief.\"}"
  echo "{\"type\":\"token\",\"id\":\"$id\",\"text\":\"Hello\"}"
  echo "{\"type\":\"token\",\"id\":\"$id\",\"text\":\"!\"}"
  echo "{\"type\":\"done\",\"id\":\"$id\",\"finish_reason\":\"stop\",\"usage\":{\"prompt_tokens\":9,\"prompt_evaluated\":9,\"prompt_reused\":0,\"completion_tokens\":12,\"dropped_messages\":0,\"prompt_ms\":1,\"generation_ms\":1}}"
done"#;

async fn start() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([
        ("UNDERSTUDY_DATA_DIR", dir.path().join("data").display().to_string()),
        ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string()),
    ]);
    let mut config = Config { mode: Mode::LocalOnly, ..Config::default() };
    config.local.model = Some(understudy_testkit::tiny_gguf().display().to_string());
    let chain = Chain::build(&config, &Paths::resolve(&env).unwrap(), &NoKeys);
    let router = Router::new(chain, Engine::new(EngineConfig::new("bash", &["-c", THINKING_WORKER])));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    tokio::spawn(async move { understudy_gateway::serve(router, understudy_gateway::GatewayConfig::default(), addr, std::future::pending()).await.unwrap() });
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "gateway did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (format!("http://{addr}/v1/chat/completions"), dir)
}

fn body(stream: bool) -> serde_json::Value {
    serde_json::json!({ "model": "local", "stream": stream, "messages": [{ "role": "user", "content": "hi" }] })
}

#[tokio::test]
async fn thinking_is_reasoning_content_not_content() {
    let (url, _dir) = start().await;
    let http = reqwest::Client::new();
    let r: serde_json::Value = http.post(&url).json(&body(false)).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    assert_eq!((message["content"].as_str(), message["reasoning_content"].as_str()), (Some("Hello!"), Some("The user greets me. Be brief.")), "{r}");

    let text = http.post(&url).json(&body(true)).send().await.unwrap().text().await.unwrap();
    let (mut content, mut reasoning) = (String::new(), String::new());
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|d| *d != "[DONE]") {
        let chunk: serde_json::Value = serde_json::from_str(data).unwrap();
        let delta = &chunk["choices"][0]["delta"];
        content.push_str(delta["content"].as_str().unwrap_or(""));
        reasoning.push_str(delta["reasoning_content"].as_str().unwrap_or(""));
    }
    assert_eq!((content.as_str(), reasoning.as_str()), ("Hello!", "The user greets me. Be brief."), "{text}");
}
